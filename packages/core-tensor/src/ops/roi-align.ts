import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, assertPositive, formatShape } from '../validate';
import { withGradient } from './custom-grad';

/** Options of {@link roiAlign} (mmcv `RoIAlign` / torchvision `roi_align`). */
export interface RoiAlignOptions {
  /** Output bins `[h, w]` (or one number for both), mmdet's `output_size` (7 in Faster R-CNN). */
  outputSize: number | [number, number];
  /** Scale from image to feature-map coordinates (1 / stride). Default 1. */
  spatialScale?: number;
  /** Sample points per bin along each axis; 0 (default) = adaptive, `ceil(roi size / output size)`. */
  samplingRatio?: number;
  /** Shift boxes by −0.5 px so pixel centres line up (mmdet's setting). Default true. */
  aligned?: boolean;
}

/** Where one axis of one RoI samples: for each output bin × grid point, the two neighbours and their weights (0 outside the map). */
interface AxisSamples {
  lo: Int32Array;
  hi: Int32Array;
  wLo: Float32Array;
  wHi: Float32Array;
  grid: number;
}

const f = Math.fround;

/**
 * torchvision's bilinear rule on one axis, in float32 as its kernel computes: outside [−1, size]
 * contributes nothing; below 0 is clamped to 0; at the last pixel both neighbours are it. An
 * inverted RoI with adaptive sampling has no sample points (its bins are 0, as in torchvision).
 */
function axisSamples(start: number, length: number, bins: number, size: number, samplingRatio: number): AxisSamples {
  const bin = f(length / bins);
  const grid = samplingRatio > 0 ? samplingRatio : Math.max(0, Math.ceil(f(length / bins)));
  const n = bins * grid;
  const s: AxisSamples = { lo: new Int32Array(n), hi: new Int32Array(n), wLo: new Float32Array(n), wHi: new Float32Array(n), grid };
  for (let p = 0; p < bins; p++) {
    for (let g = 0; g < grid; g++) {
      const i = p * grid + g;
      let v = f(f(start + f(p * bin)) + f(f((g + 0.5) * bin) / grid));
      if (v < -1 || v > size) continue; // weights stay 0
      if (v <= 0) v = 0;
      let lo = Math.floor(v);
      let hi = lo + 1;
      if (lo >= size - 1) {
        lo = hi = size - 1;
        v = lo;
      }
      const l = f(v - lo);
      s.lo[i] = lo;
      s.hi[i] = hi;
      s.wLo[i] = f(1 - l);
      s.wHi[i] = l;
    }
  }
  return s;
}

interface RoiPlan {
  batch: number;
  y: AxisSamples;
  x: AxisSamples;
  /** 1 / (grid points per bin). */
  norm: number;
}

function planRois(
  rois: Float32Array,
  k: number,
  n: number,
  h: number,
  w: number,
  o: Required<RoiAlignOptions>,
  oh: number,
  ow: number,
): RoiPlan[] {
  const offset = o.aligned ? 0.5 : 0;
  return Array.from({ length: k }, (_, r) => {
    const [b, x1, y1, x2, y2] = rois.subarray(5 * r, 5 * r + 5) as unknown as number[];
    if (!Number.isInteger(b) || b! < 0 || b! >= n)
      throw new SkySenseError('E_ARG', `roiAlign rois[${r}]: batch index ${b} is not an image of the batch (0 … ${n - 1})`);
    if (![x1, y1, x2, y2].every(Number.isFinite))
      throw new SkySenseError('E_ARG', `roiAlign rois[${r}]: expected finite x1, y1, x2, y2, got ${[x1, y1, x2, y2].join(', ')}`);
    const [sx, sy] = [f(f(x1! * o.spatialScale) - offset), f(f(y1! * o.spatialScale) - offset)];
    let [rw, rh] = [f(f(f(x2! * o.spatialScale) - offset) - sx), f(f(f(y2! * o.spatialScale) - offset) - sy)];
    if (!o.aligned) [rw, rh] = [Math.max(rw, 1), Math.max(rh, 1)];
    const y = axisSamples(sy, rh, oh, h, o.samplingRatio);
    const x = axisSamples(sx, rw, ow, w, o.samplingRatio);
    return { batch: b!, y, x, norm: 1 / Math.max(y.grid * x.grid, 1) };
  });
}

/** Every (output bin, input pixel, weight) of one RoI within one channel plane; zero weights left out. */
interface Taps {
  out: Int32Array;
  inp: Int32Array;
  weight: Float32Array;
}

function taps(p: RoiPlan, oh: number, ow: number, w: number): Taps {
  const { y, x, norm } = p;
  const out: number[] = [];
  const inp: number[] = [];
  const weight: number[] = [];
  for (let py = 0; py < oh; py++)
    for (let gy = 0; gy < y.grid; gy++) {
      const iy = py * y.grid + gy;
      for (let px = 0; px < ow; px++)
        for (let gx = 0; gx < x.grid; gx++) {
          const ix = px * x.grid + gx;
          for (const [yy, wy] of [
            [y.lo[iy]!, y.wLo[iy]!],
            [y.hi[iy]!, y.wHi[iy]!],
          ])
            for (const [xx, wx] of [
              [x.lo[ix]!, x.wLo[ix]!],
              [x.hi[ix]!, x.wHi[ix]!],
            ]) {
              const wt = f(wy! * wx!) * norm;
              if (wt === 0) continue;
              out.push(py * ow + px);
              inp.push(yy! * w + xx!);
              weight.push(wt);
            }
        }
    }
  return { out: Int32Array.from(out), inp: Int32Array.from(inp), weight: Float32Array.from(weight) };
}

function resolve(options: RoiAlignOptions): { o: Required<RoiAlignOptions>; oh: number; ow: number } {
  const [oh, ow] = typeof options.outputSize === 'number' ? [options.outputSize, options.outputSize] : options.outputSize;
  assertInt('roiAlign outputSize[0]', oh, 1);
  assertInt('roiAlign outputSize[1]', ow, 1);
  const o = { spatialScale: 1, samplingRatio: 0, aligned: true, ...options };
  o.spatialScale = Math.fround(o.spatialScale);
  assertPositive('roiAlign spatialScale', o.spatialScale);
  assertInt('roiAlign samplingRatio', o.samplingRatio, 0);
  return { o, oh, ow };
}

/**
 * RoIAlign as mmcv's `RoIAlign` and torchvision's `roi_align` compute it: each RoI
 * `(batch index, x1, y1, x2, y2)` in image coordinates is scaled by `spatialScale`, split into
 * `outputSize` bins, and each bin is the mean of bilinear samples on a regular grid (the
 * `samplingRatio`, or adaptive). Differentiable with respect to `input` (the RoIs get no gradient,
 * as in mmdet).
 * @param input `[N, C, H, W]` feature maps.
 * @param rois `[K, 5]`.
 * @returns `[K, C, outputSize h, outputSize w]`.
 * @example
 * ```ts
 * import { initBackend, roiAlign, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const features = tf.randomNormal([1, 256, 64, 64]); // an FPN level at stride 8
 * const rois = tf.tensor2d([[0, 32, 40, 200, 120]]); // one box in image pixels
 * const pooled = roiAlign(features, rois, { outputSize: 7, spatialScale: 1 / 8, samplingRatio: 0 });
 * console.log(pooled.shape); // [1, 256, 7, 7]
 * ```
 * @throws SkySenseError `E_SHAPE` for inputs of the wrong rank, `E_ARG` for a RoI naming an image outside the batch.
 */
export function roiAlign(input: Tensor, rois: Tensor, options: RoiAlignOptions): Tensor {
  if (input.rank !== 4) throw new SkySenseError('E_SHAPE', `roiAlign input: expected [N, C, H, W], got ${formatShape(input.shape)}`);
  if (rois.rank !== 2 || rois.shape[1] !== 5)
    throw new SkySenseError('E_SHAPE', `roiAlign rois: expected [K, 5] (batch index, x1, y1, x2, y2), got ${formatShape(rois.shape)}`);
  const { o, oh, ow } = resolve(options);
  const [n, c, h, w] = input.shape as [number, number, number, number];
  const k = rois.shape[0]!;
  const plans = planRois(rois.dataSync() as Float32Array, k, n, h, w, o, oh, ow);
  const tapsOf = plans.map((p) => taps(p, oh, ow, w));
  const sweep = (from: Float32Array, to: Float32Array, backward: boolean) =>
    plans.forEach((p, r) => {
      const t = tapsOf[r]!;
      for (let ch = 0; ch < c; ch++) {
        const map = (p.batch * c + ch) * h * w;
        const bins = (r * c + ch) * oh * ow;
        if (backward) for (let i = 0; i < t.out.length; i++) to[map + t.inp[i]!] += t.weight[i]! * from[bins + t.out[i]!]!;
        else for (let i = 0; i < t.out.length; i++) to[bins + t.out[i]!] += t.weight[i]! * from[map + t.inp[i]!]!;
      }
    });
  return withGradient(
    [input],
    ([x]) => {
      const out = new Float32Array(k * c * oh * ow);
      sweep(x!.dataSync() as Float32Array, out, false);
      return tf.tensor4d(out, [k, c, oh, ow]);
    },
    (dy) => {
      const dx = new Float32Array(n * c * h * w);
      sweep(dy.dataSync() as Float32Array, dx, true); // the same taps, transposed
      return [tf.tensor4d(dx, [n, c, h, w])];
    },
  );
}
