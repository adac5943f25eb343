import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { formatShape } from '../validate';
import { recycleF32, uninitializedF32 } from '../buffer-pool';
import { recordingGradients } from '../module';
import { countNativeCall, kernelInput, nativeAddon, nativeKernelsActive, opCode, type NativeAddon } from '../native';
import { withGradient } from './custom-grad';
import { matMul } from './matmul';
import { l2Normalize } from './normalize';
import { gpuCosineAttention } from './webgpu-kernels';

/**
 * Fused layer kernels of the native addon, each one kernel forward and one backward instead of a
 * chain of tfjs kernels. The `native*` functions return null when the native kernels are not
 * active or an input is not float32; the public ops (`gelu`, `linear`, `LayerNorm`,
 * {@link cosineWindowAttention}) then compose the same function from tfjs ops — the reference the
 * native kernels are tested against — so no caller chooses between the two.
 */
function fusedAddon(...xs: (Tensor | null | undefined)[]): NativeAddon | null {
  if (!nativeKernelsActive() || xs.some((x) => x && x.dtype !== 'float32')) return null;
  countNativeCall();
  return nativeAddon();
}

const values = kernelInput;
const EMPTY = new Float32Array(0);

/** A float32 tensor of `shape` whose every value `fill` writes (skipped when empty). */
function produce(shape: number[], fill: (out: Float32Array) => void): Tensor {
  const out = uninitializedF32(shape.reduce((a, b) => a * b, 1));
  if (out.length) fill(out);
  return tf.tensor(out, shape, 'float32');
}

/**
 * The exact GELU `x·Φ(x)`, forward and gradient (`dy·(Φ(x) + x·φ(x))`): one kernel each way
 * instead of five element-wise kernels and their gradients.
 */
export function nativeGelu(x: Tensor): Tensor | null {
  const n = fusedAddon(x);
  if (!n) return null;
  return withGradient(
    [x],
    ([v]) => produce(v!.shape, (out) => n.unary(opCode(n.unaryOps, 'gelu'), values(v!), out)),
    (dy, [v]) => [nativeGeluGrad(n, v!, dy)],
  );
}

/**
 * LayerNorm over the last axis (biased variance, `eps` inside the square root), with optional
 * affine `weight` and `bias` (both or neither); the row means and reciprocal deviations of the
 * forward pass are kept for the backward pass.
 */
export function nativeLayerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor | null {
  const n = !weight === !bias ? fusedAddon(x, weight, bias) : null;
  if (!n) return null;
  const cols = x.shape[x.rank - 1] ?? 1;
  const rows = cols ? x.size / cols : 0;
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  const affine = weight && bias ? [weight, bias] : [];
  return withGradient(
    [x, ...affine],
    ([v, w, b]) =>
      produce(v!.shape, (out) => n.layerNorm(values(v!), w ? values(w) : EMPTY, b ? values(b) : EMPTY, out, mean, rstd, rows, cols, eps)),
    (dy, [v, w]) => {
      const dx = new Float32Array(v!.size);
      const dw = new Float32Array(w ? cols : 0);
      const db = new Float32Array(w ? cols : 0);
      if (rows && cols) n.layerNormBackward(values(v!), w ? values(w) : EMPTY, values(dy), mean, rstd, dx, dw, db, rows, cols);
      const dxT = tf.tensor(dx, v!.shape, 'float32');
      return w ? [dxT, tf.tensor(dw, w.shape, 'float32'), tf.tensor(db, w.shape, 'float32')] : [dxT];
    },
  );
}

/**
 * `x·wᵀ + b` for `x [rows, in]`, `w [out, in]`, `b [out]`: the bias is written first and the GEMM
 * accumulates onto it (no separate broadcast add); with `activation` `'gelu'` the exact GELU is
 * applied to the output in the same call. The gradients are two GEMMs and a column sum (after the
 * GELU's, from the pre-activation recomputed: eval mode, which fuses, keeps nothing for them).
 */
export function nativeLinear(x: Tensor, weight: Tensor, bias: Tensor, activation?: 'gelu'): Tensor | null {
  const n = x.rank === 2 && x.shape[1] !== 0 ? fusedAddon(x, weight, bias) : null;
  if (!n) return null;
  const [rows, inF] = x.shape as [number, number];
  const outF = weight.shape[0]!;
  const run = (v: Tensor, w: Tensor, b: Tensor, act: number) =>
    produce([rows, outF], (out) => n.linear(values(v), values(w), values(b), out, rows, outF, inF, act));
  return withGradient(
    [x, weight, bias],
    ([v, w, b]) => run(v!, w!, b!, activation ? LINEAR_GELU : 0),
    (dy, [v, w, b]) => {
      const dz = activation ? tf.tidy(() => nativeGeluGrad(n, run(v!, w!, b!, 0), dy)) : dy;
      return [tf.matMul(dz, w!), tf.matMul(dz, v!, true, false), tf.sum(dz, 0)];
    },
  );
}

/** The `act` code of the addon's `linear` for the exact GELU. */
const LINEAR_GELU = 1;

const nativeGeluGrad = (n: NativeAddon, z: Tensor, dy: Tensor) => produce(z.shape, (out) => n.geluGrad(values(z), values(dy), out));

/** Arguments of {@link cosineWindowAttention}. */
export interface CosineAttentionArgs {
  /** `[B, N, 3C]`: q, k, v side by side, heads of `C / heads` channels inside each. */
  qkv: Tensor;
  /** `[heads]`: the multiplier of the cosine similarities (Swin V2: `exp(min(logit_scale, log 100))`). */
  scale: Tensor;
  /** `[heads, N, N]`: the additive position bias. */
  bias: Tensor;
  /** `[nW, N, N]`: the additive mask of window `b mod nW` (shifted windows), or null; not differentiated. */
  mask: Tensor | null;
  heads: number;
  /** Dropout on the attention probabilities (training); when given, the composed path runs. Default none. */
  dropout?: (probs: Tensor) => Tensor;
}

const same = (shape: readonly number[], expected: number[]) => shape.length === expected.length && shape.every((d, i) => d === expected[i]);

function checkAttentionArgs({ qkv, scale, bias, mask, heads }: CosineAttentionArgs): void {
  const fail = (what: string, expected: string, got: readonly number[]) => {
    throw new SkySenseError('E_SHAPE', `cosineWindowAttention: ${what}: expected ${expected}, got ${formatShape(got)}`);
  };
  if (!Number.isInteger(heads) || heads < 1)
    throw new SkySenseError('E_ARG', `cosineWindowAttention: heads: expected a positive integer, got ${heads}`);
  if (qkv.rank !== 3 || qkv.shape[2]! % (3 * heads) !== 0) fail('qkv', `[B, N, 3·C] with C divisible by ${heads} heads`, qkv.shape);
  const [b, n] = qkv.shape as [number, number];
  if (!same(scale.shape, [heads])) fail('scale', `[${heads}]`, scale.shape);
  if (!same(bias.shape, [heads, n, n])) fail('bias', `[${heads}, ${n}, ${n}]`, bias.shape);
  if (mask && (mask.rank !== 3 || !same(mask.shape.slice(1), [n, n]) || mask.shape[0] === 0 || b % mask.shape[0]! !== 0)) {
    fail('mask', `[nW, ${n}, ${n}] with nW dividing the ${b} windows`, mask.shape);
  }
}

/**
 * Swin V2's cosine window attention after the qkv projection: `softmax(scale_h · q̂k̂ᵀ + bias_h +
 * mask) · v` with `q̂, k̂` L2-normalised per head (PyTorch's `F.normalize`, eps 1e-12); output
 * `[B, N, C]` with the heads side by side (ready for `proj`). With the native kernels one kernel
 * each way (the probabilities kept for the backward pass); on the webgpu backend one WGSL kernel
 * forward; elsewhere, or with `dropout`, composed from tfjs ops. Differentiable with respect to `qkv`, `scale` and `bias`.
 */
export function cosineWindowAttention(a: CosineAttentionArgs): Tensor {
  checkAttentionArgs(a);
  if (a.dropout) return composedCosineAttention(a);
  return nativeCosineAttention(a) ?? gpuCosineAttention(a) ?? composedCosineAttention(a);
}

/** `[B, N, 3C]` → q, k, v as `[B, heads, N, C / heads]`. */
function splitHeads(qkv: Tensor, h: number): [Tensor, Tensor, Tensor] {
  const [b, n, c3] = qkv.shape as [number, number, number];
  const d = c3 / 3 / h;
  const split = tf.transpose(tf.reshape(qkv, [b, n, 3, h, d]), [2, 0, 3, 1, 4]);
  return tf.split(split, 3, 0).map((t) => tf.reshape(t, [b, h, n, d])) as [Tensor, Tensor, Tensor];
}

/** `[B, heads, N, D]` → `[B, N, heads·D]`. */
function mergeHeads(x: Tensor): Tensor {
  const [b, h, n, d] = x.shape as [number, number, number, number];
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [b, n, h * d]);
}

/** {@link cosineWindowAttention} from tfjs ops. */
function composedCosineAttention({ qkv, scale, bias, mask, heads: h, dropout }: CosineAttentionArgs): Tensor {
  return tf.tidy(() => {
    const [b, n] = qkv.shape as [number, number];
    const [q, k, v] = splitHeads(qkv, h);
    let attn = tf.add(tf.mul(matMul(l2Normalize(q), l2Normalize(k), false, true), tf.reshape(scale, [h, 1, 1])), bias);
    if (mask) {
      const nw = mask.shape[0]!;
      attn = tf.reshape(tf.add(tf.reshape(attn, [b / nw, nw, h, n, n]), tf.reshape(mask, [1, nw, 1, n, n])), [b, h, n, n]);
    }
    const probs = tf.softmax(attn, -1);
    return mergeHeads(matMul(dropout ? dropout(probs) : probs, v));
  });
}

/** `[B, N]` bool (true = a key to ignore) → the additive `[B, 1, N, N]` mask: −∞ at ignored keys, 0 elsewhere. */
function paddingBias(keyPadding: Tensor, n: number): Tensor {
  return tf.tidy(() => {
    const b = keyPadding.shape[0]!;
    const keys = tf.broadcastTo(tf.reshape(keyPadding, [b, 1, 1, n]), [b, 1, n, n]);
    return tf.where(keys, tf.fill([b, 1, n, n], -Infinity), tf.zeros([b, 1, n, n]));
  });
}

/** softmax(q·kᵀ/√d + padding) per head, `[B, heads, N, N]`, from tfjs ops. */
function attentionProbs(q: Tensor, k: Tensor, keyPadding: Tensor | null): Tensor {
  return tf.tidy(() => {
    const logits = tf.mul(matMul(q, k, false, true), 1 / Math.sqrt(q.shape[3]!));
    return tf.softmax(keyPadding ? tf.add(logits, paddingBias(keyPadding, q.shape[2]!)) : logits, -1);
  });
}

/** {@link selfAttention} from tfjs ops. */
function composedSelfAttention(qkv: Tensor, heads: number, keyPadding: Tensor | null): Tensor {
  return tf.tidy(() => {
    const [q, k, v] = splitHeads(qkv, heads);
    return mergeHeads(matMul(attentionProbs(q, k, keyPadding), v));
  });
}

/**
 * Scaled dot-product self-attention after the qkv projection, `softmax(q·kᵀ/√d)·v` per head: qkv
 * `[B, N, 3C]` (q, k, v side by side, heads of `C / heads` channels inside each) → `[B, N, C]` with
 * the heads side by side (ready for the output projection). With the native kernels one kernel
 * over all heads (no split, transposes or separate softmax); the gradient is the composition's
 * (recomputed: the fused path is for inference). `keyPadding` `[B, N]` bool (true = ignore that key,
 * PyTorch's `key_padding_mask`; every sample must keep a key) or null. No dropout.
 */
export function selfAttention(qkv: Tensor, heads: number, keyPadding: Tensor | null = null): Tensor {
  if (!Number.isInteger(heads) || heads < 1)
    throw new SkySenseError('E_ARG', `selfAttention: heads: expected a positive integer, got ${heads}`);
  if (qkv.rank !== 3 || qkv.shape[2]! % (3 * heads) !== 0)
    throw new SkySenseError(
      'E_SHAPE',
      `selfAttention: qkv: expected [B, N, 3·C] with C divisible by ${heads} heads, got ${formatShape(qkv.shape)}`,
    );
  if (keyPadding) checkKeyPadding(keyPadding, qkv.shape[0]!, qkv.shape[1]!, 'selfAttention: keyPadding');
  return checkedSelfAttention(qkv, heads, keyPadding);
}

/**
 * A key padding mask must be bool `[n, s]` and leave every sample at least one key; `what` names
 * the argument in the error. Internal: {@link selfAttention} and `MultiheadAttention` share it.
 */
export function checkKeyPadding(mask: Tensor, n: number, s: number, what: string): void {
  if (mask.dtype !== 'bool' || !same(mask.shape, [n, s]))
    throw new SkySenseError('E_SHAPE', `${what}: expected bool [${n}, ${s}], got ${mask.dtype} ${formatShape(mask.shape)}`);
  const allMasked = tf.tidy(() => tf.any(tf.all(mask, 1)).dataSync()[0]);
  if (allMasked) throw new SkySenseError('E_ARG', `${what}: a sample has every key masked; its attention would be NaN (as in PyTorch)`);
}

/** {@link selfAttention} on arguments already checked (`MultiheadAttention` checks them with its own names). */
export function checkedSelfAttention(qkv: Tensor, heads: number, keyPadding: Tensor | null): Tensor {
  const [b, tokens, c3] = qkv.shape as [number, number, number];
  const n = fusedAddon(qkv);
  if (!n || qkv.size === 0) return composedSelfAttention(qkv, heads, keyPadding);
  const c = c3 / 3;
  const d = c / heads;
  const scale = new Float32Array(heads).fill(1 / Math.sqrt(d));
  const mask = keyPadding ? paddingBias(keyPadding, tokens) : null; // [B, 1, N, N]: sample b's mask in the kernel
  const probs = uninitializedF32(b * heads * tokens * tokens);
  const out = withGradient(
    [qkv],
    ([x]) =>
      produce([b, tokens, c], (o) =>
        n.cosineAttention(values(x!), scale, EMPTY, mask ? values(mask) : EMPTY, o, probs, b, tokens, heads, d, b, false),
      ),
    (dy, [x]) => [selfAttentionGrad(x!, dy, heads, keyPadding)],
  );
  mask?.dispose();
  recycleF32(probs); // the gradient recomputes the probabilities
  return out;
}

/** The gradient of {@link selfAttention} with respect to qkv, from tfjs ops (the probabilities recomputed). */
function selfAttentionGrad(qkv: Tensor, dy: Tensor, heads: number, keyPadding: Tensor | null): Tensor {
  return tf.tidy(() => {
    const [b, n, c3] = qkv.shape as [number, number, number];
    const [q, k, v] = splitHeads(qkv, heads);
    const alpha = 1 / Math.sqrt(q.shape[3]!);
    const p = attentionProbs(q, k, keyPadding);
    const dOut = tf.transpose(tf.reshape(dy, [b, n, heads, -1]), [0, 2, 1, 3]);
    const dP = matMul(dOut, v, false, true);
    const dS = tf.mul(tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true))), alpha);
    const grads = [matMul(dS, k), matMul(dS, q, true, false), matMul(p, dOut, true, false)]; // dq, dk, dv
    return tf.reshape(tf.transpose(tf.stack(grads), [1, 3, 0, 2, 4]), [b, n, c3]);
  });
}

/**
 * The native kernel of {@link cosineWindowAttention}, or null when the native kernels are not
 * active or an input is not float32.
 * @deprecated call {@link cosineWindowAttention}, which falls back to the composition itself.
 */
export function nativeCosineAttention(a: CosineAttentionArgs): Tensor | null {
  checkAttentionArgs(a);
  const n = fusedAddon(a.qkv, a.scale, a.bias, a.mask);
  if (!n) return null;
  const [b, tokens, c3] = a.qkv.shape as [number, number, number];
  const c = c3 / 3;
  const d = c / a.heads;
  const nW = a.mask ? a.mask.shape[0]! : 1;
  const probs = uninitializedF32(b * a.heads * tokens * tokens);
  const geom = [b, tokens, a.heads, d, nW] as const;
  const out = withGradient(
    [a.qkv, a.scale, a.bias],
    ([qkv, scale, bias]) =>
      produce([b, tokens, c], (out) =>
        n.cosineAttention(values(qkv!), values(scale!), values(bias!), a.mask ? values(a.mask) : EMPTY, out, probs, ...geom, true),
      ),
    (dy, [qkv, scale, bias]) => {
      const dqkv = new Float32Array(qkv!.size);
      const dscale = new Float32Array(a.heads);
      const dbias = new Float32Array(bias!.size);
      if (dqkv.length) n.cosineAttentionBackward(values(qkv!), values(scale!), probs, values(dy), dqkv, dscale, dbias, ...geom);
      return [tf.tensor(dqkv, qkv!.shape, 'float32'), tf.tensor(dscale, scale!.shape, 'float32'), tf.tensor(dbias, bias!.shape, 'float32')];
    },
  );
  if (!recordingGradients()) recycleF32(probs); // no backward pass will read them
  return out;
}
