import { type Generator, SkySenseError, assertInt, matMul, tf, type Tensor } from '@skysense/core-tensor';

/** A crop of an HR tile in its pixels: rows `[y, y + h)`, columns `[x, x + w)` (fractional allowed). */
export interface CropBox {
  y: number;
  x: number;
  h: number;
  w: number;
}

/** Options of HR multi-crop (DINO's global and local crops, with their geometry tracked). */
export interface MultiCropOptions {
  /** Local crops per sample (the student only). Default 4. */
  localCrops?: number;
  /** Side of the global views in pixels. Default: the tile side. */
  globalSize?: number;
  /** Side of the local views. Default: the global side (the HR encoder's smallest input may forbid less). */
  localSize?: number;
  /** Area fraction of the tile a global crop covers. Default [0.4, 1] (DINO). */
  globalScale?: [number, number];
  /** Area fraction of a local crop. Default [0.05, 0.4] (DINO). */
  localScale?: [number, number];
  /** Side of the common grid on which a student crop and a teacher global crop are compared over their overlap. Default 4. */
  grid?: number;
  /** Smallest overlap, as a fraction of the student crop's area, for a pair to count. Default 0.1. */
  minOverlap?: number;
}

/** {@link MultiCropOptions} with every default filled in for a tile of side `side`. */
export type ResolvedMultiCrop = Required<MultiCropOptions>;

/** Fills in the defaults and checks the options. */
export function resolveMultiCrop(o: MultiCropOptions, side: number): ResolvedMultiCrop {
  const r: ResolvedMultiCrop = {
    localCrops: o.localCrops ?? 4,
    globalSize: o.globalSize ?? side,
    localSize: o.localSize ?? o.globalSize ?? side,
    globalScale: o.globalScale ?? [0.4, 1],
    localScale: o.localScale ?? [0.05, 0.4],
    grid: o.grid ?? 4,
    minOverlap: o.minOverlap ?? 0.1,
  };
  assertInt('multiCrop.localCrops', r.localCrops, 0);
  assertInt('multiCrop.globalSize', r.globalSize, 1);
  assertInt('multiCrop.localSize', r.localSize, 1);
  assertInt('multiCrop.grid', r.grid, 1);
  for (const [name, [lo, hi]] of [['globalScale', r.globalScale], ['localScale', r.localScale]] as const) {
    if (!(lo > 0 && lo <= hi && hi <= 1)) throw new SkySenseError('E_ARG', `multiCrop.${name}: expected 0 < low ≤ high ≤ 1, got [${lo}, ${hi}]`);
  }
  return r;
}

/** torchvision's RandomResizedCrop box: area fraction in `scale`, aspect ratio log-uniform in [3/4, 4/3], inside the tile (10 tries, then the centred largest box). */
export function randomResizedBox(h: number, w: number, scale: [number, number], g: Generator): CropBox {
  const area = h * w;
  for (let i = 0; i < 10; i++) {
    const a = area * g.uniform(scale[0], scale[1]);
    const ratio = Math.exp(g.uniform(Math.log(3 / 4), Math.log(4 / 3)));
    const bw = Math.round(Math.sqrt(a * ratio));
    const bh = Math.round(Math.sqrt(a / ratio));
    if (bw > 0 && bh > 0 && bw <= w && bh <= h) return { y: g.randint(h - bh + 1), x: g.randint(w - bw + 1), h: bh, w: bw };
  }
  const s = Math.min(h, w);
  return { y: Math.floor((h - s) / 2), x: Math.floor((w - s) / 2), h: s, w: s };
}

/**
 * Cuts one box per sample out of `[B, C, H, W]` tiles and resizes it (bilinear) to `size × size`,
 * sampling at the box's cell centres — the same geometry {@link roiAlign} assumes.
 */
export function cropResize(tiles: Tensor, boxes: readonly CropBox[], size: number): Tensor {
  const [b, , H, W] = tiles.shape as [number, number, number, number];
  if (boxes.length !== b) throw new SkySenseError('E_SHAPE', `cropResize: expected ${b} boxes (one per tile), got ${boxes.length}`);
  const norm = (start: number, len: number, full: number) => [(start + (0.5 * len) / size - 0.5) / Math.max(full - 1, 1), (start + len - (0.5 * len) / size - 0.5) / Math.max(full - 1, 1)];
  const coords = boxes.map((bx) => {
    const [y1, y2] = norm(bx.y, bx.h, H);
    const [x1, x2] = norm(bx.x, bx.w, W);
    return [y1!, x1!, y2!, x2!];
  });
  return tf.tidy(() => {
    const nhwc = tf.transpose(tiles, [0, 2, 3, 1]) as tf.Tensor4D;
    const out = tf.image.cropAndResize(nhwc, tf.tensor2d(coords), tf.tensor1d(boxes.map((_, i) => i), 'int32'), [size, size], 'bilinear');
    return tf.transpose(out, [0, 3, 1, 2]);
  });
}

/** The intersection of two boxes, or null if they do not overlap. */
export function intersect(a: CropBox, b: CropBox): CropBox | null {
  const y = Math.max(a.y, b.y), x = Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - y, w = Math.min(a.x + a.w, b.x + b.w) - x;
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
    const i0 = Math.floor(u), i1 = Math.min(i0 + 1, f - 1), t = u - i0;
    w[a * f + i0]! += 1 - t;
    w[a * f + i1]! += t;
  }
  return w;
}

/**
 * RoIAlign of feature maps over regions: for pair p, the map `maps[p]` `[D, f, f]` covering `boxes[p]`
 * is sampled (bilinear, differentiable) on a `k × k` grid over `regions[p]`.
 * @returns `[P, D, k, k]`.
 */
export function roiAlign(maps: Tensor, boxes: readonly CropBox[], regions: readonly CropBox[], k: number): Tensor {
  const [p, , fh, fw] = maps.shape as [number, number, number, number];
  if (boxes.length !== p || regions.length !== p) throw new SkySenseError('E_SHAPE', `roiAlign: expected ${p} boxes and regions, got ${boxes.length} and ${regions.length}`);
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
