import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bufferPoolLimitFromEnv, poolBuffersOf, recycleF32, uninitializedF32 } from './buffer-pool';
import { SkySenseError } from './errors';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { tf } from './tf';

/** The compiled addon (`native/skysense_native.cc`): functions working in place on typed arrays. */
export interface NativeAddon {
  /** out[i] = op(a[aIndex[i]])·op(b[bIndex[i]]) for every batch entry i (indices count matrices). */
  gemm(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    aIndex: Int32Array,
    bIndex: Int32Array,
    m: number,
    n: number,
    k: number,
    tA: boolean,
    tB: boolean,
  ): void;
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** `out = op(x)`; the op's code comes from {@link NativeAddon.unaryOps}. */
  unary(op: number, x: Float32Array, out: Float32Array): void;
  /** The element-wise unary ops by name → code (the addon's own table). */
  unaryOps: Record<UnaryOpName, number>;
  /** The broadcasting binary ops by name → code. */
  binaryOps: Record<BinaryOpName, number>;
  geluGrad(x: Float32Array, dy: Float32Array, out: Float32Array): void;
  reduceInner(x: Float32Array, out: Float32Array, outer: number, inner: number, mean: boolean): void;
  reduceOuter(x: Float32Array, out: Float32Array, outer: number, inner: number, mean: boolean): void;
  transpose(x: Float32Array, out: Float32Array, shape: Int32Array, perm: Int32Array): void;
  binary(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    shape: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  slice(x: Float32Array, out: Float32Array, shape: Int32Array, begin: Int32Array, size: Int32Array): void;
  conv2d(x: Float32Array, w: Float32Array, out: Float32Array, geom: Int32Array): void;
  conv2dFilterGrad(x: Float32Array, dy: Float32Array, dw: Float32Array, geom: Int32Array): void;
  conv2dInputGrad(dy: Float32Array, w: Float32Array, dx: Float32Array, geom: Int32Array): void;
  layerNorm(
    x: Float32Array,
    w: Float32Array,
    b: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  layerNormBackward(
    x: Float32Array,
    w: Float32Array,
    dy: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    db: Float32Array,
    rows: number,
    cols: number,
  ): void;
  /** GatherV2 along one axis: `out[o, i] = x[o, ids[i]]` for x `[outer, count, inner]` (ids in range). */
  gather(x: Float32Array, ids: Int32Array, out: Float32Array, outer: number, count: number, inner: number): void;
  /** The revision of the kernels' arguments ({@link KERNEL_REVISION}); a build of another revision is not loaded. */
  kernelRevision: number;
  /** `out = act(x·wᵀ + b)`; `act` 0 = none, 1 = the exact GELU. */
  linear(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, rows: number, outF: number, inF: number, act: number): void;
  cosineAttention(
    qkv: Float32Array,
    scale: Float32Array,
    bias: Float32Array,
    mask: Float32Array,
    out: Float32Array,
    probs: Float32Array,
    b: number,
    n: number,
    h: number,
    d: number,
    nW: number,
    normalize: boolean,
  ): void;
  tuneAllocator(mmapThreshold: number, trimThreshold: number): boolean;
  /** Runs one non-blocking turn of Node's event loop (the webgpu backend's synchronous reads). */
  pumpEvents(): boolean;
  /** Points stderr (fd 2) at /dev/null; returns the saved descriptor, or -1 where it cannot. */
  muteStderr(): number;
  /** Restores stderr from {@link NativeAddon.muteStderr}'s descriptor. */
  restoreStderr(saved: number): void;
  cosineAttentionBackward(
    qkv: Float32Array,
    scale: Float32Array,
    probs: Float32Array,
    dout: Float32Array,
    dqkv: Float32Array,
    dscale: Float32Array,
    dbias: Float32Array,
    b: number,
    n: number,
    h: number,
    d: number,
    nW: number,
  ): void;
  /** The GEMM in use, e.g. `built-in GEMM (avx512, 8x32)` or `OpenBLAS 0.3.21`. */
  gemmName(): string;
  /** Selects the GEMM (see {@link GemmChoice}); false when this CPU or build cannot run it. */
  setGemm(name: GemmChoice): boolean;
  threads: number;
}

/** The revision of the native kernels' arguments this code calls them with (the addon reports its own). */
const KERNEL_REVISION = 3;

/** The addon's element-wise unary ops. */
export type UnaryOpName = 'erf' | 'exp' | 'tanh' | 'square' | 'relu' | 'sigmoid' | 'rsqrt' | 'sqrt' | 'neg' | 'gelu';
/** The addon's broadcasting binary ops. */
export type BinaryOpName = 'add' | 'mul' | 'sub' | 'div';

/** The code of an op in the addon's table. @throws SkySenseError `E_BACKEND` when this build of the addon lacks it. */
export function opCode<K extends string>(table: Record<K, number>, name: K): number {
  const code = table[name];
  if (code === undefined)
    throw new SkySenseError('E_BACKEND', `the native addon has no op '${name}' (rebuild it: npm rebuild @skysense/core-tensor)`);
  return code;
}

/**
 * The GEMM under the native kernels: `auto` (the default: the best built-in micro-kernel for this
 * CPU — faster than OpenBLAS on the models' shapes), `openblas` (where the addon was compiled against
 * it), or one built-in micro-kernel — `avx512`, `avx2` (with FMA) or `baseline` (128-bit SIMD, any
 * CPU). Set with `SKYSENSE_GEMM`.
 */
export type GemmChoice = 'auto' | 'openblas' | 'avx512' | 'avx2' | 'baseline';

/** The values {@link GemmChoice} takes. */
export const GEMM_CHOICES: readonly GemmChoice[] = ['auto', 'openblas', 'avx512', 'avx2', 'baseline'];

type TensorInfo = { dataId: object; shape: number[]; dtype: string };
type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs: Record<string, unknown> };
type KernelFunc = (args: KernelArgs) => TensorInfo | TensorInfo[];
/** A native kernel: its result, or null to leave the call to tfjs's JavaScript kernel (other dtypes, attributes it does not cover). */
type NativeKernel = (args: KernelArgs) => TensorInfo | TensorInfo[] | null;
interface CpuBackend {
  data: { get(id: object): { values: unknown } };
  makeTensorInfo(shape: number[], dtype: string, values: Float32Array): TensorInfo;
}

let addon: NativeAddon | null | undefined;
let addonOrigin = '';
let loadReason = '';

/** The package root (one level above `dist/` or `src/`), where node-gyp-build looks for the binary. */
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The native addon, or null (not built, failed to load, or `SKYSENSE_NATIVE=0`). Internal: its
 * functions trust their arguments, so only the kernels and fused ops (which validate) call them.
 * node-gyp-build
 * finds it: `build/Release` (compiled at install) first, then `prebuilds/<platform>-<arch>/`.
 */
export function nativeAddon(): NativeAddon | null {
  if (addon !== undefined) return addon;
  if (process.env.SKYSENSE_NATIVE === '0') {
    loadReason = 'disabled by SKYSENSE_NATIVE=0';
    return (addon = null);
  }
  const gemm = gemmFromEnv();
  const loaded = addonBinary();
  if (!loaded) {
    loadReason = binaryReason;
    return (addon = null);
  }
  if (gemm && !loaded.setGemm(gemm)) throw cannotRun(gemm, 'SKYSENSE_GEMM', loaded);
  return (addon = loaded);
}

let binary: NativeAddon | null | undefined;
let binaryReason = '';

/**
 * The compiled addon whatever `SKYSENSE_NATIVE` says (that variable turns off the kernels, not
 * the binary: the webgpu backend's synchronous reads need its event-loop pump), or null with
 * `binaryReason` set.
 */
function addonBinary(): NativeAddon | null {
  if (binary !== undefined) return binary;
  if (lacksX8664v2()) {
    binaryReason = 'not loaded: this x86-64 CPU lacks SSE4.2/POPCNT (x86-64-v2), which the addon is compiled for';
    return (binary = null);
  }
  const require = createRequire(import.meta.url);
  let path: string;
  try {
    path = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(packageRoot);
  } catch {
    binaryReason = 'not built (no prebuilt binary for this platform and the install could not compile one: needs a C++ toolchain)';
    return (binary = null);
  }
  let loaded: NativeAddon;
  try {
    loaded = require(path) as NativeAddon;
  } catch (e) {
    binaryReason = `failed to load ${path}: ${(e as Error).message.split('\n')[0]}`;
    return (binary = null);
  }
  if (!loaded.unaryOps || !loaded.binaryOps || loaded.kernelRevision !== KERNEL_REVISION) {
    binaryReason = `${path} is from an older build (rebuild it: npm rebuild @skysense/core-tensor)`;
    return (binary = null);
  }
  addonOrigin = relative(packageRoot, path).split(sep)[0] === 'prebuilds' ? 'prebuilt binary' : 'compiled at install';
  return (binary = loaded);
}

/** The addon's event-loop pump (see {@link NativeAddon.pumpEvents}), or null with the reason the addon is missing. */
export function eventLoopPump(): { pump: (() => boolean) | null; reason: string } {
  const b = addonBinary();
  return b ? { pump: () => b.pumpEvents(), reason: '' } : { pump: null, reason: binaryReason };
}

/**
 * Runs `f` with file descriptor 2 pointed at /dev/null (what C/C++ libraries print there is
 * dropped; so is anything Node writes meanwhile); without the addon, runs it as it is.
 */
export async function withStderrMuted<T>(f: () => Promise<T>): Promise<T> {
  const b = addonBinary();
  const saved = b ? b.muteStderr() : -1;
  try {
    return await f();
  } finally {
    if (saved >= 0) b!.restoreStderr(saved);
  }
}

/** SKYSENSE_GEMM, validated; undefined when unset. */
function gemmFromEnv(): GemmChoice | undefined {
  const v = process.env.SKYSENSE_GEMM?.trim().toLowerCase();
  if (!v) return undefined;
  if (!(GEMM_CHOICES as readonly string[]).includes(v))
    throw new SkySenseError('E_ARG', `SKYSENSE_GEMM: expected one of ${GEMM_CHOICES.join(', ')}, got '${process.env.SKYSENSE_GEMM}'`);
  return v as GemmChoice;
}

/** On Linux x64, whether /proc/cpuinfo lacks what x86-64-v2 code needs (loading would crash the process). */
function lacksX8664v2(): boolean {
  if (process.platform !== 'linux' || process.arch !== 'x64') return false;
  try {
    const flags = new Set(/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/));
    return !['ssse3', 'sse4_1', 'sse4_2', 'popcnt'].every((f) => flags.has(f));
  } catch {
    return false;
  }
}

function cannotRun(name: GemmChoice, what: string, n: NativeAddon): SkySenseError {
  const why = name === 'openblas' ? 'the addon was compiled without OpenBLAS' : 'this CPU lacks the instructions';
  return new SkySenseError('E_BACKEND', `${what}: '${name}' cannot run here (${why}); in use: ${n.gemmName()}`);
}

/** Whether the native kernels can be used here (the addon loaded; `SKYSENSE_NATIVE` is not 0). */
export function nativeKernelsAvailable(): boolean {
  return nativeAddon() !== null;
}

/** Why the addon is or is not available, in one line; names the GEMM in use when it is. */
export function nativeReason(): string {
  const n = nativeAddon();
  return n ? `${n.gemmName()}, ${n.threads} threads, ${addonOrigin}` : loadReason;
}

/**
 * Chooses the GEMM under the native kernels (see {@link GemmChoice}); benchmarks and tests use it
 * to compare the built-in micro-kernels with each other and with OpenBLAS in one process.
 * @returns the GEMM now in use, e.g. `built-in GEMM (avx2, 6x16)`.
 * @throws SkySenseError `E_ARG` for an unknown name, `E_BACKEND` when the addon is not loaded or
 *   this CPU or build cannot run the one asked for.
 */
export function setNativeGemm(name: GemmChoice): string {
  if (!(GEMM_CHOICES as readonly string[]).includes(name))
    throw new SkySenseError('E_ARG', `gemm: expected one of ${GEMM_CHOICES.join(', ')}, got '${name}'`);
  const n = nativeAddon();
  if (!n) throw new SkySenseError('E_BACKEND', `gemm: the native kernels are not loaded (${loadReason})`);
  if (!n.setGemm(name)) throw cannotRun(name, 'gemm', n);
  return n.gemmName();
}

/**
 * The float32 values of a tensor on the native kernels' backend, as the kernels read them (the
 * backend's own array: not a read that gives the array away, as `dataSync` does — see
 * buffer-pool.ts); `dataSync` for a tensor held elsewhere. Internal: for the fused ops' inputs.
 */
export function kernelInput(t: tf.Tensor): Float32Array {
  const v = nativeKernelsActive() ? (tf.backend() as unknown as CpuBackend).data.get(t.dataId)?.values : undefined;
  return v instanceof Float32Array ? v : (t.dataSync() as Float32Array);
}

const f32 = (b: CpuBackend, t: TensorInfo): Float32Array | null => {
  const v = b.data.get(t.dataId).values;
  return t.dtype === 'float32' && v instanceof Float32Array ? v : null;
};
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const strides = (s: number[]) => {
  const out = new Array<number>(s.length).fill(1);
  for (let i = s.length - 2; i >= 0; i--) out[i] = out[i + 1]! * s[i + 1]!;
  return out;
};

/** For each entry of the broadcast batch shape `outer`, the index of the matrix it reads in a batch of shape `shape`. */
function broadcastIndex(outer: number[], shape: number[]): Int32Array {
  const full = [...Array<number>(outer.length - shape.length).fill(1), ...shape];
  const st = strides(full);
  const index = new Int32Array(size(outer));
  for (let i = 0; i < index.length; i++) {
    let rest = i;
    for (let d = outer.length - 1; d >= 0; d--) {
      if (full[d] !== 1) index[i]! += (rest % outer[d]!) * st[d]!;
      rest = Math.floor(rest / outer[d]!);
    }
  }
  return index;
}

function batchMatMul(n: NativeAddon): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const { a, b: bT } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const av = f32(b, a);
    const bv = f32(b, bT);
    if (!av || !bv) return null;
    const ra = a.shape.length;
    const rb = bT.shape.length;
    const m = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
    const k = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
    const nn = transposeB ? bT.shape[rb - 2]! : bT.shape[rb - 1]!;
    if (k !== (transposeB ? bT.shape[rb - 1] : bT.shape[rb - 2])) return null; // tfjs reports the mismatch
    const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), bT.shape.slice(0, -2));
    const out = k ? uninitializedF32(size(outer) * m * nn) : new Float32Array(size(outer) * m * nn);
    if (out.length && k)
      n.gemm(
        av,
        bv,
        out,
        broadcastIndex(outer, a.shape.slice(0, -2)),
        broadcastIndex(outer, bT.shape.slice(0, -2)),
        m,
        nn,
        k,
        transposeA,
        transposeB,
      );
    return b.makeTensorInfo([...outer, m, nn], 'float32', out);
  };
}

/** `_FusedMatMul`: GEMM, then bias (broadcast) and a linear or ReLU activation; anything else falls back. */
function fusedMatMul(n: NativeAddon): NativeKernel {
  const mm = batchMatMul(n);
  return (args) => {
    const b = args.backend as CpuBackend;
    const { bias, preluActivationWeights } = args.inputs as { bias?: TensorInfo; preluActivationWeights?: TensorInfo };
    const activation = (args.attrs.activation as string | undefined) ?? 'linear';
    const biasValues = bias ? f32(b, bias) : null;
    if (preluActivationWeights || !['linear', 'relu'].includes(activation) || (bias && !biasValues)) return null;
    const product = mm({ ...args, inputs: { a: args.inputs.a!, b: args.inputs.b! } }) as TensorInfo | null;
    if (!product) return null;
    const values = b.data.get(product.dataId).values as Float32Array;
    let out = values;
    if (bias && biasValues) {
      const shape = product.shape;
      const aligned = [...Array<number>(shape.length - bias.shape.length).fill(1), ...bias.shape];
      const st = strides(aligned);
      out = uninitializedF32(values.length);
      if (out.length)
        n.binary(
          opCode(n.binaryOps, 'add'),
          values,
          biasValues,
          out,
          Int32Array.from(shape),
          Int32Array.from(strides(shape)),
          Int32Array.from(aligned, (d, i) => (d === 1 ? 0 : st[i]!)),
        );
    }
    if (activation === 'relu') n.unary(opCode(n.unaryOps, 'relu'), out, out);
    if (out === values) return product;
    (b as unknown as { disposeIntermediateTensorInfo(t: TensorInfo): void }).disposeIntermediateTensorInfo(product);
    return b.makeTensorInfo(product.shape, 'float32', out);
  };
}

const SCALAR: Record<BinaryOpName, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  mul: (x, y) => x * y,
  sub: (x, y) => x - y,
  div: (x, y) => x / y,
};

function broadcastBinary(n: NativeAddon, op: BinaryOpName): NativeKernel {
  const code = opCode(n.binaryOps, op);
  return (args) => {
    const b = args.backend as CpuBackend;
    const { a, b: bT } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const av = f32(b, a);
    const bv = f32(b, bT);
    if (!av || !bv) return null;
    const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, bT.shape);
    const aligned = (s: number[]) => {
      const full = [...Array<number>(shape.length - s.length).fill(1), ...s];
      const st = strides(full);
      return Int32Array.from(full, (d, i) => (d === 1 ? 0 : st[i]!));
    };
    const out = uninitializedF32(size(shape));
    if (shape.length === 0) out[0] = SCALAR[op](av[0]!, bv[0]!);
    else if (out.length) n.binary(code, av, bv, out, Int32Array.from(shape), aligned(a.shape), aligned(bT.shape));
    return b.makeTensorInfo(shape, 'float32', out);
  };
}

function unary(n: NativeAddon, op: UnaryOpName): NativeKernel {
  const code = opCode(n.unaryOps, op);
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.x!;
    const xv = f32(b, x);
    if (!xv) return null;
    const out = uninitializedF32(xv.length);
    n.unary(code, xv, out);
    return b.makeTensorInfo(x.shape, 'float32', out);
  };
}

function transposeValues(n: NativeAddon, v: Float32Array, shape: number[], perm: number[]): Float32Array {
  const out = uninitializedF32(v.length);
  if (v.length) n.transpose(v, out, Int32Array.from(shape), Int32Array.from(perm));
  return out;
}

function transposeKernel(n: NativeAddon): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.x!;
    const xv = f32(b, x);
    if (!xv) return null;
    const perm = args.attrs.perm as number[];
    return b.makeTensorInfo(
      perm.map((p) => x.shape[p]!),
      'float32',
      transposeValues(n, xv, x.shape, perm),
    );
  };
}

function reduce(n: NativeAddon, mean: boolean): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.x!;
    const xv = f32(b, x);
    if (!xv) return null;
    const rank = x.shape.length;
    const axes = tf.util.parseAxisParam(args.attrs.axis as number | number[], x.shape).sort((p, q) => p - q);
    const kept = [...Array(rank).keys()].filter((d) => !axes.includes(d));
    const reduced = size(axes.map((d) => x.shape[d]!));
    const outer = size(kept.map((d) => x.shape[d]!));
    const out = new Float32Array(outer);
    const leading = axes.every((d, i) => d === i);
    if (reduced === 0) out.fill(mean ? NaN : 0);
    else if (leading && axes.length < rank) n.reduceOuter(xv, out, reduced, outer, mean);
    else {
      const perm = [...kept, ...axes];
      const inner = perm.every((p, i) => p === i) ? xv : transposeValues(n, xv, x.shape, perm);
      n.reduceInner(inner, out, outer, reduced, mean);
      if (inner !== xv) recycleF32(inner);
    }
    const shape = args.attrs.keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : kept.map((d) => x.shape[d]!);
    return b.makeTensorInfo(shape, 'float32', out);
  };
}

function sliceValues(n: NativeAddon, v: Float32Array, shape: number[], begin: number[], sz: number[]): Float32Array {
  const out = uninitializedF32(size(sz));
  if (out.length) {
    if (shape.length === 0) out[0] = v[0]!;
    else n.slice(v, out, Int32Array.from(shape), Int32Array.from(begin), Int32Array.from(sz));
  }
  return out;
}

function sliceKernel(n: NativeAddon): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.x!;
    const xv = f32(b, x);
    if (!xv) return null;
    const [begin, sz] = tf.slice_util.parseSliceParams(x as never, args.attrs.begin as number[], args.attrs.size as number[]);
    return b.makeTensorInfo(sz, 'float32', sliceValues(n, xv, x.shape, begin, sz));
  };
}

function splitKernel(n: NativeAddon): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.x!;
    const xv = f32(b, x);
    if (!xv) return null;
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0]!;
    const sizes = tf.backend_util.prepareSplitSize(x as never, args.attrs.numOrSizeSplits as number[], axis);
    let offset = 0;
    return sizes.map((s) => {
      const begin = x.shape.map((_, d) => (d === axis ? offset : 0));
      const sz = x.shape.map((dim, d) => (d === axis ? s : dim));
      offset += s;
      return b.makeTensorInfo(sz, 'float32', sliceValues(n, xv, x.shape, begin, sz));
    });
  };
}

/** Concat along any axis as row copies (`TypedArray.set` is a memcpy): no per-element JavaScript. */
function concatKernel(): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const inputs = Object.values(args.inputs).filter((t) => size(t.shape) > 0);
    const values = inputs.map((t) => f32(b, t));
    if (!inputs.length || values.some((v) => !v)) return null;
    const rank = inputs[0]!.shape.length;
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, inputs[0]!.shape)[0]!;
    const outer = size(inputs[0]!.shape.slice(0, axis));
    const inners = inputs.map((t) => size(t.shape.slice(axis)));
    const rowLen = inners.reduce((p, q) => p + q, 0);
    const out = new Float32Array(outer * rowLen);
    for (let o = 0; o < outer; o++) {
      let pos = o * rowLen;
      values.forEach((v, i) => {
        out.set(v!.subarray(o * inners[i]!, (o + 1) * inners[i]!), pos);
        pos += inners[i]!;
      });
    }
    const shape = [...inputs[0]!.shape];
    shape[axis] = inputs.reduce((p, t) => p + t.shape[axis]!, 0);
    return rank === 0 ? null : b.makeTensorInfo(shape, 'float32', out);
  };
}

/** PadV2 (constant padding) as zero-fill plus row copies. */
function padKernel(): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.x!;
    const xv = f32(b, x);
    const pads = args.attrs.paddings as [number, number][];
    if (!xv || x.shape.length === 0) return null;
    const shape = x.shape.map((d, i) => d + pads[i]![0] + pads[i]![1]);
    const out = new Float32Array(size(shape)).fill((args.attrs.constantValue as number) ?? 0);
    const rank = shape.length;
    const last = x.shape[rank - 1]!;
    const outStrides = strides(shape);
    const rows = size(x.shape) / Math.max(last, 1);
    const idx = new Array<number>(rank - 1).fill(0);
    for (let r = 0; r < rows && last > 0; r++) {
      let dst = pads[rank - 1]![0];
      for (let d = 0; d < rank - 1; d++) dst += (idx[d]! + pads[d]![0]) * outStrides[d]!;
      out.set(xv.subarray(r * last, (r + 1) * last), dst);
      for (let d = rank - 2; d >= 0; d--) {
        if (++idx[d]! < x.shape[d]!) break;
        idx[d] = 0;
      }
    }
    return b.makeTensorInfo(shape, 'float32', out);
  };
}

/** GatherV2 (no batch dims) as row copies; indices out of range go to tfjs's kernel, which reports them. */
function gatherKernel(n: NativeAddon): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const { x, indices } = args.inputs as { x: TensorInfo; indices: TensorInfo };
    const xv = f32(b, x);
    const ids = b.data.get(indices.dataId).values;
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0]!;
    const count = x.shape[axis]!;
    if (!xv || !(ids instanceof Int32Array) || ((args.attrs.batchDims as number) ?? 0) !== 0 || ids.some((i) => i < 0 || i >= count)) {
      return null;
    }
    const outer = size(x.shape.slice(0, axis));
    const inner = size(x.shape.slice(axis + 1));
    const out = uninitializedF32(outer * ids.length * inner);
    if (out.length) n.gather(xv, ids, out, outer, count, inner);
    return b.makeTensorInfo([...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)], 'float32', out);
  };
}

/** UnsortedSegmentSum (the gather gradient) as one pass of row additions. */
function segmentSumKernel(): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const xv = f32(b, x);
    const ids = b.data.get(segmentIds.dataId).values as Int32Array;
    const segments = args.attrs.numSegments as number;
    if (!xv || segmentIds.shape.length !== 1 || !(ids instanceof Int32Array)) return null;
    const row = size(x.shape.slice(1));
    const out = new Float32Array(segments * row);
    ids.forEach((s, i) => {
      if (s < 0 || s >= segments) return;
      for (let j = 0; j < row; j++) out[s * row + j]! += xv[i * row + j]!;
    });
    return b.makeTensorInfo([segments, ...x.shape.slice(1)], 'float32', out);
  };
}

function softmax(n: NativeAddon): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const x = args.inputs.logits!;
    const xv = f32(b, x);
    const dim = args.attrs.dim as number;
    if (!xv || (dim !== -1 && dim !== x.shape.length - 1)) return null;
    const cols = x.shape[x.shape.length - 1] ?? 1;
    const out = uninitializedF32(xv.length);
    if (out.length) n.softmax(xv, out, xv.length / cols, cols);
    return b.makeTensorInfo(x.shape, 'float32', out);
  };
}

type ConvInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
function geom(c: ConvInfo): Int32Array {
  return Int32Array.from([
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.filterHeight,
    c.filterWidth,
    c.outChannels,
    c.strideHeight,
    c.strideWidth,
    c.padInfo.top,
    c.padInfo.left,
    c.outHeight,
    c.outWidth,
  ]);
}

type ConvAttrs = {
  strides: number;
  pad: 'valid';
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: number;
  dimRoundingMode?: 'round';
  filterShape?: number[];
  inputShape?: number[];
};

/** tfjs's geometry of an NHWC convolution of `input` with `filter` under the kernel's attributes. */
function channelsLastInfo(input: number[], filter: number[], at: ConvAttrs, dilations: number): ConvInfo {
  return tf.backend_util.computeConv2DInfo(
    input as never,
    filter as never,
    at.strides,
    dilations,
    at.pad,
    at.dimRoundingMode,
    false,
    'channelsLast',
  );
}

function convKernel(n: NativeAddon, kind: 'Conv2D' | 'Conv2DBackpropFilter' | 'Conv2DBackpropInput'): NativeKernel {
  return (args) => {
    const b = args.backend as CpuBackend;
    const at = args.attrs as ConvAttrs;
    if (at.dataFormat === 'NCHW') return null;
    if (kind === 'Conv2D') {
      const { x, filter } = args.inputs as { x: TensorInfo; filter: TensorInfo };
      const [xv, wv] = [f32(b, x), f32(b, filter)];
      const info = channelsLastInfo(x.shape, filter.shape, at, at.dilations ?? 1);
      if (!xv || !wv || info.dilationHeight !== 1 || info.dilationWidth !== 1) return null;
      const out = new Float32Array(size(info.outShape));
      if (out.length) n.conv2d(xv, wv, out, geom(info));
      return b.makeTensorInfo(info.outShape, 'float32', out);
    }
    if (kind === 'Conv2DBackpropFilter') {
      const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
      const [xv, dyv] = [f32(b, x), f32(b, dy)];
      if (!xv || !dyv) return null;
      const info = channelsLastInfo(x.shape, at.filterShape!, at, 1);
      const out = new Float32Array(size(at.filterShape!));
      if (out.length) n.conv2dFilterGrad(xv, dyv, out, geom(info));
      return b.makeTensorInfo(at.filterShape!, 'float32', out);
    }
    const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
    const [dyv, wv] = [f32(b, dy), f32(b, filter)];
    if (!dyv || !wv) return null;
    const info = channelsLastInfo(at.inputShape!, filter.shape, at, 1);
    const out = new Float32Array(size(at.inputShape!));
    if (out.length) n.conv2dInputGrad(dyv, wv, out, geom(info));
    return b.makeTensorInfo(at.inputShape!, 'float32', out);
  };
}

/** The kernels the addon replaces on the `cpu` backend. */
function nativeKernels(n: NativeAddon): Record<string, NativeKernel> {
  return {
    BatchMatMul: batchMatMul(n),
    _FusedMatMul: fusedMatMul(n),
    Add: broadcastBinary(n, 'add'),
    Multiply: broadcastBinary(n, 'mul'),
    Sub: broadcastBinary(n, 'sub'),
    RealDiv: broadcastBinary(n, 'div'),
    Erf: unary(n, 'erf'),
    Exp: unary(n, 'exp'),
    Tanh: unary(n, 'tanh'),
    Square: unary(n, 'square'),
    Relu: unary(n, 'relu'),
    Sigmoid: unary(n, 'sigmoid'),
    Rsqrt: unary(n, 'rsqrt'),
    Sqrt: unary(n, 'sqrt'),
    Neg: unary(n, 'neg'),
    PadV2: padKernel(),
    UnsortedSegmentSum: segmentSumKernel(),
    GatherV2: gatherKernel(n),
    Concat: concatKernel(),
    Transpose: transposeKernel(n),
    Slice: sliceKernel(n),
    SplitV: splitKernel(n),
    Sum: reduce(n, false),
    Mean: reduce(n, true),
    Softmax: softmax(n),
    Conv2D: convKernel(n, 'Conv2D'),
    Conv2DBackpropFilter: convKernel(n, 'Conv2DBackpropFilter'),
    Conv2DBackpropInput: convKernel(n, 'Conv2DBackpropInput'),
  };
}

/**
 * glibc malloc settings applied with the native kernels: blocks up to 32 MiB (glibc's maximum for
 * this setting) come from its heap, and up to 1 GiB of freed heap is kept for reuse. A training
 * step allocates and frees the same large tensors every iteration; with glibc's defaults many
 * of them are fresh `mmap`s whose pages fault in zeroed on first touch (about 10 ms per 23 MB).
 * `SKYSENSE_MALLOC_TUNE=0` keeps glibc's defaults.
 */
const ALLOCATOR = { mmapThreshold: 32 * 2 ** 20, trimThreshold: 2 ** 30 };

/** The tfjs backend of the native kernels: a `cpu` backend of its own whose hot kernels are native. */
export const NATIVE_BACKEND = 'cpu-native';

let nativeCalls = 0;

/** How many kernel and fused-op calls have run natively in this process (tests use it to check the native path really ran). */
export function nativeCallCount(): number {
  return nativeCalls;
}

/** Counts one native call (the fused ops call it when they take the native path). */
export function countNativeCall(): void {
  nativeCalls++;
}

/** A kernel of {@link NATIVE_BACKEND}: the native implementation, or tfjs's JavaScript kernel where it declines. */
function cpuKernel(name: string, impl: NativeKernel): KernelFunc {
  const js = tf.getKernel(name, 'cpu')!.kernelFunc as unknown as KernelFunc;
  return (args) => {
    const out = impl(args);
    if (out === null) return js(args);
    nativeCalls++;
    return out;
  };
}

/**
 * Registers {@link NATIVE_BACKEND} once: tfjs's `cpu` backend class with every `cpu` kernel copied
 * (`copyRegisteredKernels`), the native ones put over them. The `cpu` backend itself is untouched.
 */
function registerNativeBackend(n: NativeAddon): string[] {
  const kernels = Object.entries(nativeKernels(n)).filter(([name]) => tf.getKernel(name, 'cpu'));
  if (!tf.findBackendFactory(NATIVE_BACKEND)) {
    bufferPoolLimitFromEnv();
    tf.registerBackend(
      NATIVE_BACKEND,
      () => {
        const backend = Object.assign(new MathBackendCPU(), { firstUse: false });
        poolBuffersOf(backend);
        return backend;
      },
      0,
    );
    tf.copyRegisteredKernels('cpu', NATIVE_BACKEND);
    for (const [name, impl] of kernels) {
      tf.unregisterKernel(name, NATIVE_BACKEND);
      tf.registerKernel({ kernelName: name, backendName: NATIVE_BACKEND, kernelFunc: cpuKernel(name, impl) as never });
    }
    if (process.env.SKYSENSE_MALLOC_TUNE !== '0') n.tuneAllocator(ALLOCATOR.mmapThreshold, ALLOCATOR.trimThreshold);
  }
  return kernels.map(([name]) => name);
}

/**
 * Makes {@link NATIVE_BACKEND} the active backend (registering it on first use); a synchronous
 * switch, as the backend needs no asynchronous initialisation. @returns the kernel names that are
 * native, or `[]` when the addon is not available (nothing changes then).
 */
export function enableNativeKernels(): string[] {
  const n = nativeAddon();
  if (!n) return [];
  const names = registerNativeBackend(n);
  if (tf.getBackend() !== NATIVE_BACKEND) void tf.setBackend(NATIVE_BACKEND);
  if (tf.getBackend() !== NATIVE_BACKEND)
    throw new SkySenseError('E_BACKEND', `the ${NATIVE_BACKEND} backend did not become active (tfjs is on '${tf.getBackend()}')`);
  return names;
}

/** Switches from {@link NATIVE_BACKEND} to tfjs's own JavaScript `cpu` backend (tensors move over on use). */
export function disableNativeKernels(): void {
  if (tf.getBackend() === NATIVE_BACKEND) void tf.setBackend('cpu');
}

/** Whether the native kernels' backend is the active one. */
export function nativeKernelsActive(): boolean {
  return tf.getBackend() === NATIVE_BACKEND;
}
