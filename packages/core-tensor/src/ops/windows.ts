import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { formatShape } from '../validate';
import { nativeKernelsActive } from '../native';
import { invertPermutation, permuteRows } from './gather';

/**
 * Token order of `torch.roll(x, −shift)` followed by Swin's `window_partition` on an `h × w` grid
 * (row-major): entry `i` is the grid position that becomes token `i` of the windows (window-major,
 * row-major within each window).
 */
export function windowOrder(h: number, w: number, ws: number, shift: number): Int32Array {
  const out = new Int32Array(h * w);
  let i = 0;
  for (let wy = 0; wy < h; wy += ws) {
    for (let wx = 0; wx < w; wx += ws) {
      for (let ty = 0; ty < ws; ty++) {
        for (let tx = 0; tx < ws; tx++) out[i++] = ((wy + ty + shift) % h) * w + ((wx + tx + shift) % w);
      }
    }
  }
  return out;
}

/** Partition and merge orders per grid, the most recently used {@link ORDER_CACHE_SIZE} kept. */
const ORDERS = new Map<string, { partition: Int32Array; merge: Int32Array }>();
const ORDER_CACHE_SIZE = 32;

function orders(h: number, w: number, ws: number, shift: number): { partition: Int32Array; merge: Int32Array } {
  const key = `${h}x${w}x${ws}x${shift}`;
  let o = ORDERS.get(key);
  if (o) ORDERS.delete(key);
  else {
    const partition = windowOrder(h, w, ws, shift);
    o = { partition, merge: invertPermutation(partition, partition.length) };
    if (ORDERS.size >= ORDER_CACHE_SIZE) ORDERS.delete(ORDERS.keys().next().value!);
  }
  ORDERS.set(key, o); // most recent last
  return o;
}

/** Cyclic roll of a `[B, H, W, C]` map by `shift` along H and W (`torch.roll` with dims (1, 2)). */
function roll(x: Tensor, shift: number): Tensor {
  const along = (t: Tensor, axis: number) => {
    const size = t.shape[axis]!;
    const s = ((shift % size) + size) % size;
    if (s === 0) return t;
    const begin = t.shape.map(() => 0);
    const head = t.shape.slice();
    head[axis] = size - s;
    const tailBegin = begin.slice();
    tailBegin[axis] = size - s;
    const tail = t.shape.slice();
    tail[axis] = s;
    return tf.concat([tf.slice(t, tailBegin, tail), tf.slice(t, begin, head)], axis);
  };
  return along(along(x, 1), 2);
}

function checkGrid(what: string, h: number, w: number, ws: number, shift: number): void {
  if (!Number.isInteger(ws) || ws < 1 || h % ws || w % ws)
    throw new SkySenseError('E_SHAPE', `${what}: expected a map of whole ${ws}×${ws} windows, got ${h}×${w}`);
  if (!Number.isInteger(shift) || shift < 0 || shift >= ws)
    throw new SkySenseError('E_ARG', `${what}: shift: expected an integer in [0, ${ws}), got ${shift}`);
}

/**
 * Swin's cyclic shift by −`shift` then window partition: `[B, H, W, C]` → `[B·nW, ws², C]` (H and W
 * multiples of `ws`). With the native kernels one token permutation (a gather, whose gradient is
 * the inverse permutation); elsewhere slices, concat and a transpose, which are faster than a
 * gather on wasm. Differentiable.
 */
export function windowPartition(x: Tensor, ws: number, shift: number): Tensor {
  if (x.rank !== 4) throw new SkySenseError('E_SHAPE', `windowPartition: expected [B, H, W, C], got ${formatShape(x.shape)}`);
  const [b, h, w, c] = x.shape as [number, number, number, number];
  checkGrid('windowPartition', h, w, ws, shift);
  return tf.tidy(() => {
    if (nativeKernelsActive())
      return tf.reshape(permuteRows(tf.reshape(x, [b, h * w, c]), orders(h, w, ws, shift).partition, 1), [-1, ws * ws, c]);
    const rolled = shift ? roll(x, -shift) : x;
    return tf.reshape(tf.transpose(tf.reshape(rolled, [b, h / ws, ws, w / ws, ws, c]), [0, 1, 3, 2, 4, 5]), [-1, ws * ws, c]);
  });
}

/** The inverse of {@link windowPartition}: windows `[B·nW, ws², C]` back to `[B, H, W, C]`, shifted back by +`shift`. */
export function windowMerge(windows: Tensor, batch: number, h: number, w: number, ws: number, shift: number): Tensor {
  checkGrid('windowMerge', h, w, ws, shift);
  const c = windows.shape[2]!;
  if (windows.rank !== 3 || windows.shape[0] !== (batch * h * w) / (ws * ws) || windows.shape[1] !== ws * ws) {
    throw new SkySenseError(
      'E_SHAPE',
      `windowMerge: expected [${(batch * h * w) / (ws * ws)}, ${ws * ws}, C] windows of ${batch} ${h}×${w} maps, got ${formatShape(windows.shape)}`,
    );
  }
  return tf.tidy(() => {
    if (nativeKernelsActive())
      return tf.reshape(permuteRows(tf.reshape(windows, [batch, h * w, c]), orders(h, w, ws, shift).merge, 1), [batch, h, w, c]);
    const y = tf.reshape(tf.transpose(tf.reshape(windows, [batch, h / ws, w / ws, ws, ws, c]), [0, 1, 3, 2, 4, 5]), [batch, h, w, c]);
    return shift ? roll(y, shift) : y;
  });
}
