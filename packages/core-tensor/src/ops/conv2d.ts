import { tf, type Tensor, type Tensor4D } from '../tf';
import { hasKernel } from '../backend';
import { SkySenseError } from '../errors';
import { assertRank, formatShape, pair } from '../validate';
import { matMul } from './matmul';
import { withGradient } from './custom-grad';

/** Options of {@link conv2d}, with PyTorch meanings and defaults. */
export interface Conv2dOptions {
  /** Default 1. */
  stride?: number | [number, number];
  /** Zero padding added on both sides. Default 0. */
  padding?: number | [number, number];
  /** Default 1. */
  dilation?: number | [number, number];
  /** Default 1. `inChannels` and `outChannels` must both be divisible by it. */
  groups?: number;
}

/**
 * 2-D convolution exactly as `torch.nn.functional.conv2d`: input `[N, C, H, W]`, weight
 * `[O, C / groups, kh, kw]`, optional bias `[O]`, output `[N, O, H', W']`. Differentiable for input,
 * weight and bias on every backend (on wasm, which has no `Conv2DBackpropFilter` kernel, the weight
 * gradient is a sum of strided-slice products).
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  assertRank('conv2d input', x, 4);
  assertRank('conv2d weight', weight, 4);
  const stride = pair('stride', options.stride ?? 1, 1);
  const padding = pair('padding', options.padding ?? 0, 0);
  const dilation = pair('dilation', options.dilation ?? 1, 1);
  const groups = options.groups ?? 1;
  const [outC, inPerGroup, kh, kw] = weight.shape as [number, number, number, number];
  const inC = x.shape[1]!;
  if (!Number.isInteger(groups) || groups < 1 || inC % groups !== 0 || outC % groups !== 0 || inPerGroup * groups !== inC) {
    throw new SkySenseError(
      'E_SHAPE',
      `conv2d: input ${formatShape(x.shape)} with groups=${groups} does not fit weight ${formatShape(weight.shape)} (expected input channels ${inPerGroup * groups})`,
    );
  }
  const effH = (kh - 1) * dilation[0] + 1;
  const effW = (kw - 1) * dilation[1] + 1;
  const H = x.shape[2]! + 2 * padding[0];
  const W = x.shape[3]! + 2 * padding[1];
  if (H < effH || W < effW) {
    throw new SkySenseError(
      'E_SHAPE',
      `conv2d: padded input ${H}x${W} is smaller than the (dilated) kernel ${effH}x${effW}; input ${formatShape(x.shape)}`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outC)) {
    throw new SkySenseError('E_SHAPE', `conv2d bias: expected shape [${outC}], got ${formatShape(bias.shape)}`);
  }
  return tf.tidy(() => {
    let xh = tf.transpose(x, [0, 2, 3, 1]) as Tensor4D;
    if (padding[0] || padding[1])
      xh = tf.pad(xh, [
        [0, 0],
        [padding[0], padding[0]],
        [padding[1], padding[1]],
        [0, 0],
      ]);
    let wh = tf.transpose(weight, [2, 3, 1, 0]) as Tensor4D;
    if (dilation[0] > 1 || dilation[1] > 1) wh = dilateKernel(wh, dilation[0], dilation[1]);
    const xs = groups === 1 ? [xh] : tf.split(xh, groups, 3);
    const ws = groups === 1 ? [wh] : tf.split(wh, groups, 3);
    const ys = xs.map((xg, g) => validConv(xg as Tensor4D, ws[g] as Tensor4D, stride));
    let y: Tensor = ys.length === 1 ? ys[0]! : tf.concat(ys, 3);
    if (bias) y = tf.add(y, bias);
    return tf.transpose(y, [0, 3, 1, 2]);
  });
}

/** Inserts `d - 1` zeros between kernel taps so that a dilated convolution becomes a plain one. */
function dilateKernel(w: Tensor4D, dh: number, dw: number): Tensor4D {
  const [kh, kw, ci, co] = w.shape;
  const rows = tf.reshape(
    tf.pad(tf.reshape(w, [kh, 1, kw * ci * co]), [
      [0, 0],
      [0, dh - 1],
      [0, 0],
    ]),
    [kh * dh, kw * ci * co],
  );
  const eh = (kh - 1) * dh + 1;
  const cols = tf.reshape(tf.slice(rows, [0, 0], [eh, -1]), [eh * kw, 1, ci * co]);
  const wide = tf.reshape(
    tf.pad(cols, [
      [0, 0],
      [0, dw - 1],
      [0, 0],
    ]),
    [eh, kw * dw, ci * co],
  );
  const ew = (kw - 1) * dw + 1;
  return tf.reshape(tf.slice(wide, [0, 0, 0], [eh, ew, -1]), [eh, ew, ci, co]);
}

/** Unpadded NHWC convolution; uses tfjs's gradient where the backend has its kernels. */
function validConv(x: Tensor4D, w: Tensor4D, stride: [number, number]): Tensor4D {
  if (hasKernel('Conv2DBackpropFilter')) return tf.conv2d(x, w, stride, 'valid');
  return withGradient(
    [x, w],
    ([xi, wi]) => tf.conv2d(xi as Tensor4D, wi as Tensor4D, stride, 'valid'),
    (dy, [xi, wi]) => {
      const [sx, sw] = [xi as Tensor4D, wi as Tensor4D];
      return [tf.conv2dTranspose(dy as Tensor4D, sw, sx.shape, stride, 'valid'), filterGrad(sx, dy as Tensor4D, sw.shape, stride)];
    },
  ) as Tensor4D;
}

/** dL/dW of a valid NHWC convolution: for each kernel tap, (strided input slice)ᵀ · dy. */
function filterGrad(x: Tensor4D, dy: Tensor4D, wShape: [number, number, number, number], stride: [number, number]): Tensor {
  const [kh, kw, ci, co] = wShape;
  const [n, oh, ow] = dy.shape;
  const dy2 = tf.reshape(dy, [n * oh * ow, co]);
  const taps: Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const end = [n, i + stride[0] * (oh - 1) + 1, j + stride[1] * (ow - 1) + 1, ci];
      const xs = tf.stridedSlice(x, [0, i, j, 0], end, [1, stride[0], stride[1], 1]);
      taps.push(matMul(tf.reshape(xs, [n * oh * ow, ci]), dy2, true, false));
    }
  }
  return tf.reshape(tf.stack(taps), [kh, kw, ci, co]);
}
