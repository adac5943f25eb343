import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, assertRank, formatShape } from '../validate';
import { matMul } from './matmul';

/** Interpolation modes of {@link interpolate}, as `torch.nn.functional.interpolate`. */
export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic';

/** Options of {@link interpolate}. Give exactly one of `size` and `scaleFactor`. */
export interface InterpolateOptions {
  /** Output `[height, width]`. */
  size?: [number, number];
  /** Output = floor(input × factor); the factor (not the rounded ratio) maps coordinates, as PyTorch. */
  scaleFactor?: number | [number, number];
  /** Default `nearest`, as PyTorch. */
  mode?: InterpolateMode;
  /** Default `false`. Not allowed with `nearest`, as in PyTorch. */
  alignCorners?: boolean;
}

const CUBIC_A = -0.75;
const cubic1 = (x: number) => ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
const cubic2 = (x: number) => ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;

/**
 * The `[outSize, inSize]` matrix that resamples one axis the way PyTorch's `upsample_*` kernels do
 * (`area_pixel_compute_source_index`; bilinear clamps negative source coordinates to 0; bicubic uses
 * A = −0.75 and clamps tap indices to the border; nearest is the legacy `floor(dst · scale)`).
 * @param scaleFactor the user's scale factor, if one was given (PyTorch then maps with 1/factor).
 */
export function resampleMatrix(
  inSize: number,
  outSize: number,
  mode: InterpolateMode,
  alignCorners = false,
  scaleFactor?: number,
): Float32Array {
  const m = new Float64Array(outSize * inSize);
  const scale = alignCorners
    ? outSize > 1
      ? (inSize - 1) / (outSize - 1)
      : 0
    : scaleFactor && scaleFactor > 0
      ? 1 / scaleFactor
      : inSize / outSize;
  const at = (o: number, i: number, w: number) => {
    const c = Math.min(Math.max(i, 0), inSize - 1);
    m[o * inSize + c]! += w;
  };
  for (let o = 0; o < outSize; o++) {
    if (mode === 'nearest') {
      at(o, Math.min(Math.floor(o * scale), inSize - 1), 1);
      continue;
    }
    let src = alignCorners ? scale * o : scale * (o + 0.5) - 0.5;
    if (mode === 'bilinear') {
      if (src < 0) src = 0;
      const i0 = Math.floor(src);
      const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
      const l1 = src - i0;
      at(o, i0, 1 - l1);
      at(o, i1, l1);
    } else {
      const i0 = Math.floor(src);
      const t = src - i0;
      const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
      for (let k = 0; k < 4; k++) at(o, i0 - 1 + k, w[k]!);
    }
  }
  return Float32Array.from(m);
}

/**
 * Adaptive average pooling matrix `[outSize, inSize]` with PyTorch's bins
 * `[floor(i·in/out), ceil((i+1)·in/out))` (bins overlap when `in` is not a multiple of `out`).
 */
export function adaptivePoolMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const start = Math.floor((o * inSize) / outSize);
    const end = Math.ceil(((o + 1) * inSize) / outSize);
    for (let i = start; i < end; i++) m[o * inSize + i] = 1 / (end - start);
  }
  return m;
}

/** Applies `rows` ([oH, H]) to the height axis and `cols` ([oW, W]) to the width axis of an NCHW tensor. */
function separable(x: Tensor, rows: Float32Array, cols: Float32Array, oh: number, ow: number): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const byWidth = matMul(tf.reshape(x, [n * c * h, w]), tf.tensor2d(cols, [ow, w]), false, true);
  const byHeight = matMul(tf.tensor2d(rows, [oh, h]), tf.reshape(byWidth, [n * c, h, ow]));
  return tf.reshape(byHeight, [n, c, oh, ow]);
}

/**
 * `torch.nn.functional.interpolate` for 4-D NCHW input, bit-for-bit in the index arithmetic and to
 * float32 rounding in the values. Implemented as two small matrix products, so it is differentiable
 * on every backend.
 * @throws SkySenseError `E_ARG` for inconsistent options, `E_SHAPE` for a non-4-D input.
 * @example
 * ```ts
 * import { initBackend, interpolate, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // F.interpolate: nearest, bilinear or bicubic; by size or scale factor; align_corners as PyTorch
 * const x = tf.randomNormal([1, 3, 16, 16]);
 * console.log(interpolate(x, { size: [64, 64], mode: 'bilinear', alignCorners: false }).shape); // [1, 3, 64, 64]
 * ```
 */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  assertRank('interpolate input', x, 4);
  const mode = options.mode ?? 'nearest';
  if (!['nearest', 'bilinear', 'bicubic'].includes(mode))
    throw new SkySenseError('E_ARG', `interpolate: mode must be nearest, bilinear or bicubic, got '${mode}'`);
  if ((options.size === undefined) === (options.scaleFactor === undefined)) {
    throw new SkySenseError('E_ARG', 'interpolate: give exactly one of size and scaleFactor');
  }
  if (mode === 'nearest' && options.alignCorners !== undefined) {
    throw new SkySenseError('E_ARG', 'interpolate: alignCorners is only valid with bilinear or bicubic mode (as in PyTorch)');
  }
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  let oh: number, ow: number, sf: [number, number] | undefined;
  if (options.size) {
    [oh, ow] = options.size;
    assertInt('size[0]', oh, 1);
    assertInt('size[1]', ow, 1);
  } else {
    sf = typeof options.scaleFactor === 'number' ? [options.scaleFactor, options.scaleFactor] : options.scaleFactor!;
    if (!(sf[0] > 0 && sf[1] > 0))
      throw new SkySenseError('E_ARG', `interpolate: scaleFactor must be > 0, got ${String(options.scaleFactor)}`);
    [oh, ow] = [Math.floor(h * sf[0]), Math.floor(w * sf[1])];
    if (oh < 1 || ow < 1)
      throw new SkySenseError('E_ARG', `interpolate: scaleFactor ${String(options.scaleFactor)} turns ${h}x${w} into an empty map`);
  }
  const ac = options.alignCorners ?? false;
  return tf.tidy(() => separable(x, resampleMatrix(h, oh, mode, ac, sf?.[0]), resampleMatrix(w, ow, mode, ac, sf?.[1]), oh, ow));
}

/** `torch.nn.functional.adaptive_avg_pool2d` for NCHW input. */
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | [number, number]): Tensor {
  assertRank('adaptiveAvgPool2d input', x, 4);
  const [oh, ow] = typeof outputSize === 'number' ? [outputSize, outputSize] : outputSize;
  assertInt('outputSize[0]', oh, 1);
  assertInt('outputSize[1]', ow, 1);
  const [h, w] = [x.shape[2]!, x.shape[3]!];
  return tf.tidy(() => separable(x, adaptivePoolMatrix(h, oh), adaptivePoolMatrix(w, ow), oh, ow));
}

/**
 * `torch.nn.functional.pixel_shuffle`: `[N, C·r², H, W]` → `[N, C, H·r, W·r]`, where output pixel
 * `(h·r + i, w·r + j)` of channel `c` comes from input channel `c·r² + i·r + j`.
 */
export function pixelShuffle(x: Tensor, upscaleFactor: number): Tensor {
  assertRank('pixelShuffle input', x, 4);
  const r = assertInt('upscaleFactor', upscaleFactor, 1);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  if (c % (r * r) !== 0) {
    throw new SkySenseError(
      'E_SHAPE',
      `pixelShuffle: channels ${c} of input ${formatShape(x.shape)} are not divisible by upscaleFactor² = ${r * r}`,
    );
  }
  const oc = c / (r * r);
  return tf.tidy(() => tf.reshape(tf.transpose(tf.reshape(x, [n, oc, r, r, h, w]), [0, 1, 4, 2, 5, 3]), [n, oc, h * r, w * r]));
}
