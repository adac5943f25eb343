import { tf, type Tensor } from '../tf';
import { assertRank } from '../validate';

/**
 * A validity mask (`[N, H, W]`, 1 = data, 0 = nodata) on another grid `h × w` covering the same
 * extent: a cell is valid only if every input pixel of its footprint is. Cell `i` of `h` covers
 * input rows `[⌊i·H/h⌋, ⌈(i+1)·H/h⌉)` (at least one row; likewise for columns), so sizes need not
 * divide, and enlarging (`h > H`) gives each cell the pixel it lies in.
 * @returns float32 `[N, h, w]` of 0 and 1.
 */
export function poolValidity(valid: Tensor, h: number, w: number): Tensor {
  assertRank('valid', valid, 3);
  const [n, H, W] = valid.shape as [number, number, number];
  if (H === h && W === w) return tf.tidy(() => tf.cast(tf.greater(valid, 0), 'float32'));
  const v = tf.tidy(() => tf.cast(tf.greater(valid, 0), 'float32').dataSync() as Float32Array);
  const span = (i: number, cells: number, size: number): [number, number] => {
    const lo = Math.min(size - 1, Math.floor((i * size) / cells));
    return [lo, Math.max(lo + 1, Math.min(size, Math.ceil(((i + 1) * size) / cells)))];
  };
  const rows = Array.from({ length: h }, (_, i) => span(i, h, H));
  const cols = Array.from({ length: w }, (_, j) => span(j, w, W));
  const out = new Float32Array(n * h * w);
  const sum = new Float64Array((H + 1) * (W + 1)); // prefix sums of nodata
  for (let k = 0; k < n; k++) {
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++)
        sum[(y + 1) * (W + 1) + x + 1] =
          1 - v[(k * H + y) * W + x]! + sum[y * (W + 1) + x + 1]! + sum[(y + 1) * (W + 1) + x]! - sum[y * (W + 1) + x]!;
    rows.forEach(([y0, y1], i) =>
      cols.forEach(([x0, x1], j) => {
        const bad = sum[y1 * (W + 1) + x1]! - sum[y0 * (W + 1) + x1]! - sum[y1 * (W + 1) + x0]! + sum[y0 * (W + 1) + x0]!;
        out[(k * h + i) * w + j] = bad > 0 ? 0 : 1;
      }),
    );
  }
  return tf.tensor3d(out, [n, h, w]);
}

/**
 * Replaces NaN and ±Inf in `x` by 0 and reports where they were: `valid` is `x` without its channel
 * axis, 0 wherever any channel was not finite. `null` (nothing allocated) when every value is finite.
 */
export function nonFiniteMask(x: Tensor, channelAxis = 1): { x: Tensor; valid: Tensor } | null {
  const clean = tf.tidy(() => tf.all(tf.isFinite(x)).dataSync()[0]);
  if (clean) return null;
  return tf.tidy(() => {
    const finite = tf.isFinite(x);
    return { x: tf.where(finite, x, tf.zerosLike(x)), valid: tf.cast(tf.all(finite, channelAxis), 'float32') };
  });
}
