import { tf, type Tensor } from '../tf';
import { withGradient } from './custom-grad';

/**
 * WGSL kernels for the layers the native CPU kernels also fuse — GELU (forward and gradient),
 * LayerNorm over the last axis, and Swin V2's cosine window attention — run by tfjs's webgpu
 * backend. Each `gpu*` function returns null unless the active backend is `webgpu` and the inputs
 * are float32; the public ops in `fused.ts` then use the native kernels or the tfjs composition
 * (the reference these kernels are tested against). Backward passes the kernels do not cover are
 * composed from tfjs ops, which run on the GPU too. Nothing here reads data back to the CPU.
 */

/** What tfjs's webgpu backend runs (`WebGPUProgram` in tfjs-backend-webgpu; not in its public typings). */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  workgroupSize: [number, number, number];
  size?: boolean;
  uniforms?: string;
  getUserCode(): string;
}
type Uniform = { type: 'float32' | 'int32'; data: number[] };
interface WebGPUBackendLike {
  runWebGPUProgram(program: Program, inputs: Tensor[], dtype: 'float32', uniforms?: Uniform[]): tf.TensorInfo;
}

const WORKGROUP = 64;
let kernelCalls = 0;

/** How many SkySense WGSL kernels have run in this process (tests use it to check the WGSL path really ran). */
export function webgpuKernelCount(): number {
  return kernelCalls;
}

function webgpuBackend(...xs: (Tensor | null | undefined)[]): WebGPUBackendLike | null {
  if (tf.getBackend() !== 'webgpu' || xs.some((x) => x && x.dtype !== 'float32')) return null;
  return tf.backend() as unknown as WebGPUBackendLike;
}

/** Runs a program over `invocations` threads (flat, 64 per workgroup) and wraps its output as a tensor. */
function run(
  backend: WebGPUBackendLike,
  program: Omit<Program, 'dispatchLayout' | 'dispatch' | 'workgroupSize'>,
  inputs: Tensor[],
  invocations: number,
  uniforms?: Uniform[],
): Tensor {
  const full: Program = {
    ...program,
    dispatchLayout: { x: program.outputShape.map((_, i) => i) },
    dispatch: [Math.ceil(invocations / WORKGROUP), 1, 1],
    workgroupSize: [WORKGROUP, 1, 1],
  };
  kernelCalls++;
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(full, inputs, 'float32', uniforms));
}

/** erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), the form tfjs's own erf kernels use. */
const ERF = `
fn skysenseErf(v: f32) -> f32 {
  let a = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let y = 1.0 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * exp(-a * a);
  return select(-y, y, v >= 0.0);
}`;

/** An element-wise program over flat float32 inputs of one size; `body` writes `result[index]`. */
function elementwise(backend: WebGPUBackendLike, key: string, names: string[], inputs: Tensor[], body: string): Tensor {
  const n = inputs[0]!.size;
  const flat = inputs.map((t) => tf.reshape(t, [n]));
  const out = run(
    backend,
    {
      outputShape: [n],
      shaderKey: `skysense_${key}`,
      variableNames: names,
      size: true,
      getUserCode: () => `${ERF}
fn main(index: i32) {
  if (index < uniforms.size) {
    ${body}
  }
}`,
    },
    flat,
    n,
  );
  return tf.reshape(out, inputs[0]!.shape);
}

/** The exact GELU `x·Φ(x)` and its gradient `dy·(Φ(x) + x·φ(x))`, one WGSL kernel each way. */
export function gpuGelu(x: Tensor): Tensor | null {
  const backend = webgpuBackend(x);
  if (!backend || x.size === 0) return null;
  return withGradient(
    [x],
    ([v]) =>
      elementwise(
        backend,
        'gelu',
        ['x'],
        [v!],
        'let v = x[index]; result[index] = 0.5 * v * (1.0 + skysenseErf(v * 0.70710678118654752));',
      ),
    (dy, [v]) => [
      elementwise(
        backend,
        'gelu_grad',
        ['x', 'dy'],
        [v!, dy],
        `let v = x[index];
    let cdf = 0.5 * (1.0 + skysenseErf(v * 0.70710678118654752));
    let pdf = 0.3989422804014327 * exp(-0.5 * v * v);
    result[index] = dy[index] * (cdf + v * pdf);`,
      ),
    ],
  );
}

/**
 * LayerNorm over the last axis in one kernel: a workgroup per row reduces the mean, then the
 * biased variance (two passes over the row, as the composition), and writes the normalised,
 * scaled and shifted row. The backward pass is composed from tfjs ops, with the row statistics
 * recomputed.
 */
export function gpuLayerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor | null {
  const backend = !weight === !bias ? webgpuBackend(x, weight, bias) : null;
  const cols = x.shape[x.rank - 1] ?? 0;
  if (!backend || x.size === 0 || cols === 0) return null;
  const rows = x.size / cols;
  const affine = weight && bias ? [weight, bias] : [];
  return withGradient(
    [x, ...affine],
    ([v, w, b]) => {
      const out = run(
        backend,
        {
          outputShape: [rows, cols],
          shaderKey: `skysense_layer_norm_${w ? 'affine' : 'plain'}`,
          variableNames: w ? ['x', 'w', 'b'] : ['x'],
          uniforms: 'eps : f32,',
          getUserCode: () => layerNormShader(w !== undefined),
        },
        [tf.reshape(v!, [rows, cols]), ...(w ? [w, b!] : [])],
        rows * WORKGROUP,
        [{ type: 'float32', data: [eps] }],
      );
      return tf.reshape(out, v!.shape);
    },
    (dy, [v, w]) => layerNormBackward(v!, w ?? null, dy, eps),
  );
}

function layerNormShader(affine: boolean): string {
  return `
var<workgroup> partial: array<f32, ${WORKGROUP}>;

fn reduce(lane: i32, value: f32) -> f32 {
  partial[lane] = value;
  workgroupBarrier();
  for (var k = ${WORKGROUP / 2}; k > 0; k = k / 2) {
    if (lane < k) { partial[lane] = partial[lane] + partial[lane + k]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

fn main(index: i32) {
  let lane = index % ${WORKGROUP};
  let row = index / ${WORKGROUP};
  let rows = uniforms.xShape.x;
  let cols = uniforms.xShape.y;
  let live = row < rows;
  let base = select(0, row * cols, live);
  let n = select(0, cols, live);
  var s = 0.0;
  for (var c = lane; c < n; c = c + ${WORKGROUP}) { s = s + x[base + c]; }
  let mean = reduce(lane, s) / f32(cols);
  var q = 0.0;
  for (var c = lane; c < n; c = c + ${WORKGROUP}) { let d = x[base + c] - mean; q = q + d * d; }
  let rstd = inverseSqrt(reduce(lane, q) / f32(cols) + uniforms.eps);
  for (var c = lane; c < n; c = c + ${WORKGROUP}) {
    let y = (x[base + c] - mean) * rstd;
    result[base + c] = ${affine ? 'y * w[c] + b[c]' : 'y'};
  }
}`;
}

/** LayerNorm's gradients from tfjs ops: `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` with `g = dy·w`; `dw = Σ dy·x̂`, `db = Σ dy`. */
function layerNormBackward(x: Tensor, w: Tensor | null, dy: Tensor, eps: number): Tensor[] {
  const axis = x.rank - 1;
  const { mean, variance } = tf.moments(x, axis, true);
  const rstd = tf.rsqrt(tf.add(variance, eps));
  const xhat = tf.mul(tf.sub(x, mean), rstd);
  const g = w ? tf.mul(dy, w) : dy;
  const dx = tf.mul(rstd, tf.sub(tf.sub(g, tf.mean(g, axis, true)), tf.mul(xhat, tf.mean(tf.mul(g, xhat), axis, true))));
  if (!w) return [dx];
  const cols = w.shape[0]!;
  const dw = tf.sum(tf.reshape(tf.mul(dy, xhat), [-1, cols]), 0);
  const db = tf.sum(tf.reshape(dy, [-1, cols]), 0);
  return [dx, dw, db];
}

/** Arguments of {@link gpuCosineAttention} (validated by the caller). */
export interface GpuAttentionArgs {
  qkv: Tensor;
  scale: Tensor;
  bias: Tensor;
  mask: Tensor | null;
  heads: number;
}

/**
 * Swin V2's cosine window attention forward in one kernel: a thread per (window, query, head)
 * normalises its query, streams the window's keys and values once with an online softmax (running
 * maximum and sum, as FlashAttention), and writes its head's slice of the output. The scores are
 * never stored; the backward pass recomputes them with tfjs ops ({@link cosineAttentionBackward}).
 */
export function gpuCosineAttention(a: GpuAttentionArgs): Tensor | null {
  const backend = webgpuBackend(a.qkv, a.scale, a.bias, a.mask);
  if (!backend || a.qkv.size === 0) return null;
  const [b, n, c3] = a.qkv.shape as [number, number, number];
  const c = c3 / 3;
  const d = c / a.heads;
  // the mask is an input too, so that tfjs keeps it for the backward pass (its gradient is zero)
  const inputs = a.mask ? [a.qkv, a.scale, a.bias, a.mask] : [a.qkv, a.scale, a.bias];
  return withGradient(
    inputs,
    (xs) =>
      run(
        backend,
        {
          outputShape: [b, n, c],
          shaderKey: `skysense_cosine_attention_${d}_${a.mask ? 'mask' : 'nomask'}`,
          variableNames: ['qkv', 'scale', 'bias', 'mask'].slice(0, xs.length),
          getUserCode: () => attentionShader(d, a.mask !== null),
        },
        xs,
        b * n * a.heads,
      ),
    (dy, [qkv, scale, bias, mask]) => {
      const grads = cosineAttentionBackward({ qkv: qkv!, scale: scale!, bias: bias!, mask: mask ?? null, heads: a.heads }, dy);
      return mask ? [...grads, tf.zerosLike(mask)] : grads;
    },
  );
}

const EPS2 = 1e-24; // F.normalize's eps (1e-12), squared

/** `x / sqrt(max(Σx², eps²))` over the last axis, its value and the backward map `dy ↦ dx`. */
function normalizeWithGrad(x: Tensor): { y: Tensor; grad: (dy: Tensor) => Tensor } {
  const ss = tf.sum(tf.square(x), -1, true);
  const r = tf.sqrt(tf.maximum(ss, EPS2));
  const y = tf.div(x, r);
  const live = tf.cast(tf.greaterEqual(ss, EPS2), 'float32');
  return { y, grad: (dy) => tf.div(tf.sub(dy, tf.mul(y, tf.mul(live, tf.sum(tf.mul(dy, y), -1, true)))), r) };
}

/**
 * The gradients of cosine window attention with respect to `qkv`, `scale` and `bias`, from tfjs
 * ops with the probabilities recomputed: `dV = Pᵀ·dO`, `dS = P ⊙ (dP − Σ dP ⊙ P)` with
 * `dP = dO·Vᵀ`, `dbias = Σ_windows dS`, `dscale = Σ dS ⊙ q̂k̂ᵀ`, then through the L2 normalisations.
 */
function cosineAttentionBackward({ qkv, scale, bias, mask, heads: h }: GpuAttentionArgs, dy: Tensor): Tensor[] {
  const [b, n, c3] = qkv.shape as [number, number, number];
  const c = c3 / 3;
  const split = tf.transpose(tf.reshape(qkv, [b, n, 3, h, c / h]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.split(split, 3, 0).map((t) => tf.reshape(t, [b, h, n, c / h])) as [Tensor, Tensor, Tensor];
  const qn = normalizeWithGrad(q);
  const kn = normalizeWithGrad(k);
  const cos = tf.matMul(qn.y, kn.y, false, true);
  const scaleB = tf.reshape(scale, [1, h, 1, 1]);
  let s = tf.add(tf.mul(cos, scaleB), bias);
  if (mask) {
    const nw = mask.shape[0]!;
    s = tf.reshape(tf.add(tf.reshape(s, [b / nw, nw, h, n, n]), tf.reshape(mask, [1, nw, 1, n, n])), [b, h, n, n]);
  }
  const p = tf.softmax(s, -1);
  const dO = tf.transpose(tf.reshape(dy, [b, n, h, c / h]), [0, 2, 1, 3]);
  const dv = tf.matMul(p, dO, true, false);
  const dp = tf.matMul(dO, v, false, true);
  const ds = tf.mul(p, tf.sub(dp, tf.sum(tf.mul(dp, p), -1, true)));
  const dcos = tf.mul(ds, scaleB);
  const dq = qn.grad(tf.matMul(dcos, kn.y));
  const dk = kn.grad(tf.matMul(dcos, qn.y, true, false));
  const dqkv = tf.reshape(tf.transpose(tf.stack([dq, dk, dv]), [1, 3, 0, 2, 4]), [b, n, c3]);
  return [dqkv, tf.sum(tf.mul(ds, cos), [0, 2, 3]), tf.sum(ds, 0)];
}

function attentionShader(d: number, masked: boolean): string {
  return `
const D = ${d};
fn main(index: i32) {
  let N = uniforms.qkvShape.y;
  let C3 = uniforms.qkvShape.z;
  let C = C3 / 3;
  let H = uniforms.scaleShape;
  if (index >= uniforms.qkvShape.x * N * H) { return; }
  let head = index % H;
  let row = index / H;
  let b = row / N;
  let i = row % N;
  var q: array<f32, D>;
  var acc: array<f32, D>;
  let qOff = row * C3 + head * D;
  var qq = 0.0;
  for (var k = 0; k < D; k = k + 1) { q[k] = qkv[qOff + k]; qq = qq + q[k] * q[k]; acc[k] = 0.0; }
  let qScale = scale[head] / max(sqrt(qq), 1e-12);
  let biasRow = (head * N + i) * N;
  ${masked ? 'let maskRow = ((b % uniforms.maskShape.x) * N + i) * N;' : ''}
  var m = -3.402823e38;
  var l = 0.0;
  for (var j = 0; j < N; j = j + 1) {
    let kOff = (b * N + j) * C3 + C + head * D;
    var dot = 0.0;
    var kk = 0.0;
    for (var k = 0; k < D; k = k + 1) { let kv = qkv[kOff + k]; dot = dot + q[k] * kv; kk = kk + kv * kv; }
    let s = dot * qScale / max(sqrt(kk), 1e-12) + bias[biasRow + j]${masked ? ' + mask[maskRow + j]' : ''};
    let mNew = max(m, s);
    let carry = exp(m - mNew);
    let p = exp(s - mNew);
    l = l * carry + p;
    let vOff = kOff + C;
    for (var k = 0; k < D; k = k + 1) { acc[k] = acc[k] * carry + p * qkv[vOff + k]; }
    m = mNew;
  }
  let outOff = row * C + head * D;
  for (var k = 0; k < D; k = k + 1) { result[outOff + k] = acc[k] / l; }
}`;
}

/**
 * `x·wᵀ + b` as tfjs's fused matrix product (`tf.fused.matMul`: the bias is added in the GEMM's
 * epilogue, one WGSL kernel), differentiable; null off the webgpu backend.
 */
export function gpuLinear(x: Tensor, weight: Tensor, bias: Tensor): Tensor | null {
  if (!webgpuBackend(x, weight, bias)) return null;
  kernelCalls++;
  return tf.fused.matMul({ a: x, b: weight, transposeB: true, bias });
}
