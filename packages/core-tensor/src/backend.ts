import { createRequire } from 'node:module';
import '@tensorflow/tfjs-backend-wasm';
import { tf } from './tf';
import { SkySenseError } from './errors';
import { enableNativeKernels, nativeAddon, nativeReason } from './native';
import { formatAdapter, probeWebGPU, registerWebGPU, type WebGPUAdapter } from './webgpu';

/**
 * The tensor backends SkySense can run on, fastest first:
 * - `cuda`: `@tensorflow/tfjs-node-gpu` (libtensorflow with CUDA),
 * - `native`: `@tensorflow/tfjs-node` (libtensorflow on the CPU),
 * - `webgpu`: `@tensorflow/tfjs-backend-webgpu` on Dawn (the `webgpu` package): any GPU with a
 *   Vulkan, Metal or D3D12 driver; software adapters (Mesa's lavapipe) only when forced,
 * - `wasm`: `@tensorflow/tfjs-backend-wasm` (XNNPACK, SIMD, one thread in Node; heap capped at 4 GiB),
 * - `cpu`: the pure-JavaScript backend (slowest, but no memory cap: the only one that holds the 2 B model
 *   without a native backend).
 */
export type BackendKind = 'cuda' | 'native' | 'webgpu' | 'wasm' | 'cpu';

/** The default order in which {@link initBackend} tries backends (without the native kernels; see {@link defaultBackendOrder}). */
export const BACKEND_ORDER: readonly BackendKind[] = ['cuda', 'native', 'webgpu', 'wasm', 'cpu'];

/** Outcome of trying one backend. */
export interface BackendAttempt {
  /** The backend tried. */
  kind: BackendKind;
  /** Whether it loaded and was initialised. */
  ok: boolean;
  /** Why it was chosen or skipped, in one line. */
  reason: string;
}

/** What {@link initBackend} chose and why. */
export interface BackendReport {
  /** The chosen backend. */
  kind: BackendKind;
  /** The TensorFlow.js backend name behind it (`tensorflow`, `wasm`, `cpu`, or `cpu-native` for the cpu backend with SkySense's native kernels). */
  tfjsName: string;
  /** Why it was chosen. */
  reason: string;
  /** Every backend tried, in order, with the reason it was chosen or skipped. */
  attempts: BackendAttempt[];
  /** Kernels running natively (the SkySense addon) under the `cpu` backend; empty elsewhere. */
  nativeKernels: string[];
  /** The GEMM under the native kernels (e.g. `built-in GEMM (avx512, 8x32)`, `OpenBLAS 0.3.21`); absent without them. */
  gemm?: string;
  /** The GPU adapter under the `webgpu` backend; absent elsewhere. */
  adapter?: WebGPUAdapter;
}

/** Options of {@link initBackend}. */
export interface InitBackendOptions {
  /**
   * Backend to try first; the others follow in {@link BACKEND_ORDER}. Default: none (plain order).
   * Ignored when `force` or the `SKYSENSE_BACKEND` environment variable names a backend.
   */
  prefer?: BackendKind;
  /**
   * Use exactly this backend and throw `E_BACKEND` if it cannot load. Default: the value of
   * `SKYSENSE_BACKEND` (`cuda`, `native`, `webgpu`, `wasm`, `cpu`; `auto` or unset means no
   * forcing). A forced `webgpu` accepts a software adapter (lavapipe), which the plain order skips.
   */
  force?: BackendKind;
  /** Where to write the one-line report: `true` = `console.error`, a function, or `false`. Default `false`. */
  log?: boolean | ((line: string) => void);
}

const TFJS_NAME: Record<BackendKind, string> = { cuda: 'tensorflow', native: 'tensorflow', webgpu: 'webgpu', wasm: 'wasm', cpu: 'cpu' };
const NATIVE_PACKAGE: Partial<Record<BackendKind, string>> = {
  cuda: '@tensorflow/tfjs-node-gpu',
  native: '@tensorflow/tfjs-node',
};

let current: BackendReport | undefined;

/**
 * Until {@link initBackend} runs, tfjs's highest-priority backend is this placeholder: every
 * tensor or op made before then throws a SkySenseError that says what to do, instead of tfjs's
 * "Make sure to await tf.ready()" (or a silent start on the slowest backend).
 */
const UNINITIALISED = 'skysense-uninitialised';
const NOT_INITIALISED =
  'no tensor backend yet: call `await initBackend()` (from @skysense/core-tensor) once, before creating tensors or models';

class UninitialisedBackend extends tf.KernelBackend {
  override write(): never {
    throw new SkySenseError('E_BACKEND', NOT_INITIALISED);
  }
}

function installUninitialisedBackend(): void {
  if (tf.findBackendFactory(UNINITIALISED)) return;
  tf.registerBackend(UNINITIALISED, () => new UninitialisedBackend(), 1000);
  const refuse = (): never => {
    throw new SkySenseError('E_BACKEND', NOT_INITIALISED);
  };
  for (const k of tf.getKernelsForBackend('cpu'))
    tf.registerKernel({ kernelName: k.kernelName, backendName: UNINITIALISED, kernelFunc: refuse });
}
installUninitialisedBackend();

function isBackendKind(v: string): v is BackendKind {
  return (BACKEND_ORDER as readonly string[]).includes(v);
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (
    msg
      .split('\n')
      .find((l) => l.trim().length > 0)
      ?.trim() ?? 'unknown error'
  );
}

/** Reads `SKYSENSE_BACKEND`; `undefined` when unset or `auto`. @throws SkySenseError `E_ARG` for other values. */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendKind | undefined {
  const v = env.SKYSENSE_BACKEND?.trim().toLowerCase();
  if (!v || v === 'auto') return undefined;
  if (!isBackendKind(v)) {
    throw new SkySenseError(
      'E_ARG',
      `SKYSENSE_BACKEND: expected one of ${BACKEND_ORDER.join(', ')} or auto, got '${env.SKYSENSE_BACKEND}'`,
    );
  }
  return v;
}

/** Loads a native tfjs package; any throw means unusable. Returns why it is not usable, or null. */
function loadNative(kind: 'cuda' | 'native'): string | null {
  const pkg = NATIVE_PACKAGE[kind]!;
  const otherLoaded = current && current.tfjsName === 'tensorflow' && current.kind !== kind;
  if (otherLoaded) return `another libtensorflow package is already loaded (${current!.kind})`;
  try {
    createRequire(import.meta.url)(pkg);
  } catch (e) {
    const missing = (e as { code?: string }).code === 'MODULE_NOT_FOUND' && firstLine(e).includes(`'${pkg}'`);
    return missing
      ? `${pkg} is not installed (optional: npm install ${pkg}@4.22.0, where libtensorflow can be downloaded)`
      : `${pkg} is not usable: ${firstLine(e)}`;
  }
  return tf.findBackend('tensorflow') ? null : `${pkg} loaded but registered no 'tensorflow' backend`;
}

/** Finds the adapter and registers the backend; why webgpu cannot run, or null. */
async function loadWebGPU(forced: boolean): Promise<string | null> {
  const { adapter, reason } = probeWebGPU();
  if (!adapter) return reason!;
  if (adapter.software && !forced) {
    return `only a software adapter (${formatAdapter(adapter)}), slower than the CPU backends: force it with SKYSENSE_BACKEND=webgpu`;
  }
  try {
    return await registerWebGPU();
  } catch (e) {
    return `Dawn failed: ${firstLine(e)}`;
  }
}

async function tryBackend(kind: BackendKind, forced: boolean): Promise<string | null> {
  if (kind === 'cuda' || kind === 'native') {
    const why = loadNative(kind);
    if (why) return why;
  }
  if (kind === 'webgpu') {
    const why = await loadWebGPU(forced);
    if (why) return why;
  }
  let ok: boolean;
  try {
    ok = await tf.setBackend(TFJS_NAME[kind]);
  } catch (e) {
    return `initialisation failed: ${firstLine(e)}`;
  }
  if (!ok) return `tf.setBackend('${TFJS_NAME[kind]}') failed`;
  await tf.ready();
  if (kind === 'cpu') silenceCpuBanner();
  return null;
}

/** The default order: CUDA, native CPU, WebGPU, then the faster of wasm and cpu — cpu when the native kernels are built (measured: see the backend guide). */
export function defaultBackendOrder(): BackendKind[] {
  return nativeAddon() ? ['cuda', 'native', 'webgpu', 'cpu', 'wasm'] : [...BACKEND_ORDER];
}

/** The JS backend prints a "use tfjs-node" banner on first use; SkySense reports the backend itself. */
function silenceCpuBanner(): void {
  const backend = tf.findBackend('cpu') as unknown as { firstUse?: boolean } | null;
  if (backend) backend.firstUse = false;
}

const REASON: Record<BackendKind, string> = {
  cuda: 'libtensorflow with CUDA',
  native: 'libtensorflow on the CPU',
  webgpu: 'WebGPU on Dawn',
  wasm: 'WebAssembly with SIMD (one thread; 4 GiB heap)',
  cpu: 'pure JavaScript (slowest; no memory cap)',
};

/**
 * Chooses and initialises the tensor backend: CUDA, then native CPU, then wasm, then pure JS, the
 * first that loads wins. `SKYSENSE_BACKEND` (or `force`) names exactly one backend and makes a
 * failure to load it an error. The report lists every backend tried and why it was skipped.
 *
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * const report = await initBackend({ log: true });
 * // [skysense] backend wasm: WebAssembly with SIMD (...) (skipped cuda: ..., native: ...)
 * ```
 * @throws SkySenseError `E_BACKEND` when a forced backend cannot load, `E_ARG` for a bad `SKYSENSE_BACKEND`.
 */
export async function initBackend(options: InitBackendOptions = {}): Promise<BackendReport> {
  const forced = options.force ?? backendFromEnv();
  if (options.prefer !== undefined && !isBackendKind(options.prefer)) {
    throw new SkySenseError('E_ARG', `prefer: expected one of ${BACKEND_ORDER.join(', ')}, got '${String(options.prefer)}'`);
  }
  const base = defaultBackendOrder();
  const order: BackendKind[] = forced ? [forced] : options.prefer ? [options.prefer, ...base.filter((k) => k !== options.prefer)] : base;
  const attempts: BackendAttempt[] = [];
  for (const kind of order) {
    const why = await tryBackend(kind, forced !== undefined);
    if (why === null) {
      const nativeKernels = kind === 'cpu' ? enableNativeKernels() : [];
      const gemm = nativeKernels.length ? nativeAddon()!.gemmName() : undefined;
      const adapter = kind === 'webgpu' ? probeWebGPU().adapter : undefined;
      const what =
        kind === 'webgpu'
          ? `${REASON.webgpu}, adapter ${formatAdapter(adapter!)}`
          : kind !== 'cpu'
            ? REASON[kind]
            : nativeKernels.length
              ? `JavaScript with native kernels (${nativeReason()}), no memory cap`
              : `${REASON.cpu}; native kernels ${nativeReason()}`;
      const reason = forced ? `forced by ${options.force ? 'force' : 'SKYSENSE_BACKEND'}; ${what}` : what;
      attempts.push({ kind, ok: true, reason });
      current = {
        kind,
        tfjsName: tf.getBackend(),
        reason,
        attempts,
        nativeKernels,
        ...(gemm ? { gemm } : {}),
        ...(adapter ? { adapter } : {}),
      };
      logReport(current, options.log);
      return current;
    }
    attempts.push({ kind, ok: false, reason: why });
  }
  const detail = attempts.map((a) => `${a.kind}: ${a.reason}`).join('; ');
  throw new SkySenseError(
    'E_BACKEND',
    forced ? `backend '${forced}' was forced but cannot load (${detail})` : `no backend could load (${detail})`,
    {
      details: attempts,
    },
  );
}

/** Formats a report as one line, e.g. for logs. */
export function formatBackendReport(r: BackendReport): string {
  const skipped = r.attempts.filter((a) => !a.ok).map((a) => `${a.kind}: ${a.reason}`);
  return `[skysense] backend ${r.kind}: ${r.reason}${skipped.length ? ` (skipped ${skipped.join('; ')})` : ''}`;
}

function logReport(r: BackendReport, log: InitBackendOptions['log']): void {
  if (!log) return;
  const line = formatBackendReport(r);
  if (typeof log === 'function') log(line);
  else console.error(line);
}

/**
 * The report of the last successful {@link initBackend}, or `undefined` if it has not run.
 */
export function currentBackend(): BackendReport | undefined {
  return current && tf.getBackend() === current.tfjsName ? current : undefined;
}

/** Whether the active tfjs backend implements the named kernel (e.g. `Conv2DBackpropFilter`). */
export function hasKernel(kernelName: string): boolean {
  return tf.getKernel(kernelName, tf.getBackend()) !== undefined;
}
