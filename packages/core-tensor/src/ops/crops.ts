import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { matMul } from './matmul';

/** A crop of an HR tile in its pixels: rows `[y, y + h)`, columns `[x, x + w)` (fractional allowed). */
export interface CropBox {
  y: number;
  x: number;
  h: number;
  w: number;
}

/**
 * Cuts one box per sample out of `[B, C, H, W]` tiles and resizes it (bilinear) to `size × size`,
 * sampling at the box's cell centres — the same geometry {@link roiAlignCrops} assumes.
 */
export function cropResize(tiles: Tensor, boxes: readonly CropBox[], size: number): Tensor {
  const [b, , H, W] = tiles.shape as [number, number, number, number];
  if (boxes.length !== b) throw new SkySenseError('E_SHAPE', `cropResize: expected ${b} boxes (one per tile), got ${boxes.length}`);
  const norm = (start: number, len: number, full: number) => [
    (start + (0.5 * len) / size - 0.5) / Math.max(full - 1, 1),
    (start + len - (0.5 * len) / size - 0.5) / Math.max(full - 1, 1),
  ];
  const coords = boxes.map((bx) => {
    const [y1, y2] = norm(bx.y, bx.h, H);
    const [x1, x2] = norm(bx.x, bx.w, W);
    return [y1!, x1!, y2!, x2!];
  });
  return tf.tidy(() => {
    const nhwc = tf.transpose(tiles, [0, 2, 3, 1]) as tf.Tensor4D;
    const out = tf.image.cropAndResize(
      nhwc,
      tf.tensor2d(coords),
      tf.tensor1d(
        boxes.map((_, i) => i),
        'int32',
      ),
      [size, size],
      'bilinear',
    );
    return tf.transpose(out, [0, 3, 1, 2]);
  });
}

/** The intersection of two boxes, or null if they do not overlap. */
export function intersect(a: CropBox, b: CropBox): CropBox | null {
  const y = Math.max(a.y, b.y),
    x = Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - y,
    w = Math.min(a.x + a.w, b.x + b.w) - x;
  return h > 0 && w > 0 ? { y, x, h, w } : null;
}

/**
 * Bilinear sampling weights `[k, f]` of a `k`-cell grid over `[start, start + len)` from the `f` cells
 * of a map covering `[from, from + span)` (cell centres, borders clamped, as RoIAlign with one sample per bin).
 */
function axisWeights(start: number, len: number, from: number, span: number, f: number, k: number): Float32Array {
  const w = new Float32Array(k * f);
  for (let a = 0; a < k; a++) {
    const u = Math.min(Math.max(((start + ((a + 0.5) * len) / k - from) / span) * f - 0.5, 0), f - 1);
    const i0 = Math.floor(u),
      i1 = Math.min(i0 + 1, f - 1),
      t = u - i0;
    w[a * f + i0]! += 1 - t;
    w[a * f + i1]! += t;
  }
  return w;
}

/**
 * RoIAlign between crops (the pre-training views' overlaps): for pair p, the map `maps[p]` covering `boxes[p]`
 * is sampled over `regions[p]`. Not mmcv's `RoIAlign` (boxes of one image's feature map): here each map has its own box.
 * In detail: for pair p, the map `maps[p]` `[D, f, f]` covering `boxes[p]`
 * is sampled (bilinear, differentiable) on a `k × k` grid over `regions[p]`.
 * @returns `[P, D, k, k]`.
 */
export function roiAlignCrops(maps: Tensor, boxes: readonly CropBox[], regions: readonly CropBox[], k: number): Tensor {
  const [p, , fh, fw] = maps.shape as [number, number, number, number];
  if (boxes.length !== p || regions.length !== p)
    throw new SkySenseError('E_SHAPE', `roiAlignCrops: expected ${p} boxes and regions, got ${boxes.length} and ${regions.length}`);
  const ry = new Float32Array(p * k * fh);
  const rx = new Float32Array(p * k * fw);
  boxes.forEach((b, i) => {
    ry.set(axisWeights(regions[i]!.y, regions[i]!.h, b.y, b.h, fh, k), i * k * fh);
    rx.set(axisWeights(regions[i]!.x, regions[i]!.w, b.x, b.w, fw, k), i * k * fw);
  });
  return tf.tidy(() => {
    const cols = matMul(maps, tf.tensor4d(rx, [p, 1, k, fw]), false, true); // [P, D, fh, k]
    return matMul(tf.tensor4d(ry, [p, 1, k, fh]), cols); // [P, D, k, k]
  });
}
