import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInRange, assertInt, assertPositive } from '../validate';

/** Options of {@link AnchorGenerator} (mmdet 2.x `AnchorGenerator`). */
export interface AnchorGeneratorOptions {
  /** Stride of each level in pixels, `[w, h]` or one number (Faster R-CNN + FPN: 4, 8, 16, 32, 64). */
  strides: readonly (number | readonly [number, number])[];
  /** Height / width ratios (Faster R-CNN: 0.5, 1, 2). */
  ratios: readonly number[];
  /** Scales of the base size (Faster R-CNN: [8]). */
  scales: readonly number[];
  /** Base size per level. Default: the level's (smaller) stride. */
  baseSizes?: readonly number[];
  /** Multiply scales first, so anchors of one ratio are adjacent. Default true (mmdet 2.x). */
  scaleMajor?: boolean;
  /** Anchor centre as a fraction of the base size. Default 0. */
  centerOffset?: number;
}

const f = Math.fround;

/**
 * Anchors as mmdet 2.x's `AnchorGenerator` lays them out: per level, the base anchors (ratio-major,
 * then scale, with `scaleMajor`) centred at `centerOffset · baseSize`, repeated over the feature map
 * row by row; at each location all base anchors in order. Computed in float32 like PyTorch.
 * @example
 * ```ts
 * import { AnchorGenerator, initBackend } from '@skysense/core-tensor';
 * await initBackend();
 * const gen = new AnchorGenerator({ strides: [4, 8, 16, 32, 64], ratios: [0.5, 1, 2], scales: [8] });
 * const [level0] = gen.gridPriors([[128, 128], [64, 64], [32, 32], [16, 16], [8, 8]]);
 * console.log(gen.numBaseAnchors, level0!.shape); // [3, 3, 3, 3, 3] [49152, 4]
 * ```
 */
export class AnchorGenerator {
  readonly strides: [number, number][];
  readonly baseSizes: number[];
  /** Base anchors per level, `[A, 4]` as flat x1, y1, x2, y2. */
  readonly baseAnchors: Float32Array[];

  constructor(readonly options: AnchorGeneratorOptions) {
    const o = { scaleMajor: true, centerOffset: 0, ...options };
    assertInRange('AnchorGenerator centerOffset', o.centerOffset, 0, 1);
    if (!o.strides.length || !o.ratios.length || !o.scales.length)
      throw new SkySenseError('E_ARG', 'AnchorGenerator: strides, ratios and scales must each have at least one value');
    [...o.ratios, ...o.scales].forEach((v) => assertPositive('AnchorGenerator ratio / scale', v));
    this.strides = o.strides.map((s) => (typeof s === 'number' ? [s, s] : [s[0], s[1]]));
    this.strides.flat().forEach((s) => assertPositive('AnchorGenerator stride', s));
    this.baseSizes = o.baseSizes ? [...o.baseSizes] : this.strides.map(([w, h]) => Math.min(w, h));
    if (this.baseSizes.length !== this.strides.length)
      throw new SkySenseError(
        'E_ARG',
        `AnchorGenerator baseSizes: expected ${this.strides.length} (one per stride), got ${this.baseSizes.length}`,
      );
    const hRatios = o.ratios.map((r) => f(Math.sqrt(f(r))));
    const wRatios = hRatios.map((r) => f(1 / r));
    const pairs = o.scaleMajor
      ? hRatios.flatMap((hr, i) => o.scales.map((s) => [wRatios[i]!, hr, f(s)] as const))
      : o.scales.flatMap((s) => hRatios.map((hr, i) => [wRatios[i]!, hr, f(s)] as const));
    this.baseAnchors = this.baseSizes.map((size) => {
      const centre = f(o.centerOffset * size);
      const out = new Float32Array(4 * pairs.length);
      pairs.forEach(([wr, hr, s], a) => {
        const [ws, hs] = o.scaleMajor ? [f(f(size * wr) * s), f(f(size * hr) * s)] : [f(f(size * s) * wr), f(f(size * s) * hr)];
        out.set([f(centre - f(0.5 * ws)), f(centre - f(0.5 * hs)), f(centre + f(0.5 * ws)), f(centre + f(0.5 * hs))], 4 * a);
      });
      return out;
    });
  }

  /** Anchors per location on each level. */
  get numBaseAnchors(): number[] {
    return this.baseAnchors.map((b) => b.length / 4);
  }

  /**
   * All anchors of each level for feature maps of the given `[height, width]`.
   * @returns per level `[height · width · A, 4]`.
   */
  gridPriors(featmapSizes: readonly (readonly [number, number])[]): Tensor[] {
    if (featmapSizes.length !== this.strides.length)
      throw new SkySenseError(
        'E_ARG',
        `AnchorGenerator.gridPriors: expected ${this.strides.length} feature map sizes, got ${featmapSizes.length}`,
      );
    return featmapSizes.map(([h, w], level) => {
      assertInt(`AnchorGenerator.gridPriors featmapSizes[${level}] height`, h, 0);
      assertInt(`AnchorGenerator.gridPriors featmapSizes[${level}] width`, w, 0);
      const base = this.baseAnchors[level]!;
      const a = base.length / 4;
      const [sw, sh] = this.strides[level]!;
      const out = new Float32Array(h * w * a * 4);
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++)
          for (let k = 0; k < a; k++) {
            const at = ((y * w + x) * a + k) * 4;
            const [dx, dy] = [x * sw, y * sh];
            out[at] = f(base[4 * k]! + dx);
            out[at + 1] = f(base[4 * k + 1]! + dy);
            out[at + 2] = f(base[4 * k + 2]! + dx);
            out[at + 3] = f(base[4 * k + 3]! + dy);
          }
      return tf.tensor2d(out, [h * w * a, 4]);
    });
  }
}
