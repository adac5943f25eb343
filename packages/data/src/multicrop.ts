import { type CropBox, type Generator, SkySenseError, assertInt } from '@skysense/core-tensor';

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
  for (const [name, [lo, hi]] of [
    ['globalScale', r.globalScale],
    ['localScale', r.localScale],
  ] as const) {
    if (!(lo > 0 && lo <= hi && hi <= 1))
      throw new SkySenseError('E_ARG', `multiCrop.${name}: expected 0 < low ≤ high ≤ 1, got [${lo}, ${hi}]`);
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
