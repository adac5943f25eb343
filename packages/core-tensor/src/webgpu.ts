import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { tf } from './tf';
import { SkySenseError } from './errors';
import { eventLoopPump, withStderrMuted } from './native';
import { fixWebGPUKernels, fixWebGPUPrograms } from './webgpu-fixes';

/**
 * The WebGPU backend: `@tensorflow/tfjs-backend-webgpu` on Dawn (the `webgpu` npm package, which
 * ships `dawn.node` prebuilt for Linux, macOS and Windows — nothing is downloaded at install).
 * Dawn runs on the machine's Vulkan (Linux), Metal (macOS) or D3D12 (Windows) driver; on a machine
 * without a GPU, Mesa's software Vulkan driver (lavapipe) gives a working but slow adapter, used
 * by the tests.
 */

/** The two optional packages behind the webgpu backend, at the versions SkySense is tested with. */
export const WEBGPU_PACKAGES = { dawn: 'webgpu@0.6.2', tfjs: '@tensorflow/tfjs-backend-webgpu@4.22.0' } as const;

/** The GPU adapter Dawn found. */
export interface WebGPUAdapter {
  /** e.g. `nvidia`, `amd`, `intel`, `mesa`. */
  vendor: string;
  /** e.g. `ada-lovelace`, `rdna-3`, `software`. */
  architecture: string;
  /** The device name or id Dawn reports, e.g. `llvmpipe-llvm-15-0-6-256-bits-`. */
  device: string;
  /** The driver's description, e.g. `llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)`. */
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader, WARP): correct but slower than the CPU backends, so never chosen unless forced. */
  software: boolean;
}

/** `vendor architecture device (description)`, the adapter's name in reports. */
export function formatAdapter(a: WebGPUAdapter): string {
  const name = [a.vendor, a.architecture, a.device].filter((s) => s).join(' ') || 'unnamed adapter';
  const software = a.software && a.architecture !== 'software' ? ', software' : '';
  return `${name}${a.description ? ` (${a.description})` : ''}${software}`;
}

const PKG_NAME = { dawn: 'webgpu', tfjs: '@tensorflow/tfjs-backend-webgpu' } as const;
const require = createRequire(import.meta.url);

/** The installed entry of each package, or the line saying what to install. */
function resolvePackages(): { dawn: string; tfjs: string } | string {
  const found: Partial<Record<'dawn' | 'tfjs', string>> = {};
  for (const key of ['dawn', 'tfjs'] as const) {
    try {
      found[key] = require.resolve(PKG_NAME[key]);
    } catch {
      /* reported below */
    }
  }
  if (found.dawn && found.tfjs) return { dawn: found.dawn, tfjs: found.tfjs };
  const missing = (['dawn', 'tfjs'] as const).filter((k) => !found[k]).map((k) => PKG_NAME[k]);
  return `${missing.join(' and ')} not installed (optional: npm install ${WEBGPU_PACKAGES.dawn} ${WEBGPU_PACKAGES.tfjs})`;
}

/**
 * The script a child process runs to find the adapter: Dawn and the Vulkan loader print warnings
 * on stderr from C++ when there is no driver, and a broken driver can crash the process; in a child,
 * both stay out of the user's process and terminal.
 */
const PROBE = `
const { create } = await import(process.argv[1]);
const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
const i = adapter?.info;
process.stdout.write(JSON.stringify(i ? { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, fallback: !!(i.isFallbackAdapter ?? adapter.isFallbackAdapter) } : null));
process.exit(0);
`;

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render/i;

/** What {@link probeWebGPU} found: the adapter, or why there is none. */
export interface WebGPUProbe {
  adapter?: WebGPUAdapter;
  /** Why there is no adapter (packages missing, no driver, Dawn failed). */
  reason?: string;
}
let probed: WebGPUProbe | undefined;

/** Environment Dawn needs on Linux: Mesa's drivers warn and may fail without `XDG_RUNTIME_DIR`. */
function dawnEnv(): void {
  if (process.platform === 'linux' && !process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = tmpdir();
}

/**
 * Looks for a WebGPU adapter in a child process (about 0.1 s; once per process): the adapter, or
 * why there is none (packages not installed, no driver, Dawn failed).
 */
export function probeWebGPU(): WebGPUProbe {
  if (probed) return probed;
  const pkgs = resolvePackages();
  if (typeof pkgs === 'string') return (probed = { reason: pkgs });
  dawnEnv();
  let out: string;
  try {
    out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE, pathToFileURL(pkgs.dawn).href], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (e) {
    const err = e as { stderr?: string; signal?: string; message: string };
    const line = (err.stderr ?? '').split('\n').find((l) => /error/i.test(l)) ?? err.signal ?? err.message.split('\n')[0];
    return (probed = { reason: `Dawn could not look for an adapter: ${line?.trim()}` });
  }
  let info: { vendor: string; architecture: string; device: string; description: string; fallback: boolean } | null;
  try {
    info = JSON.parse(out.trim() || 'null') as typeof info;
  } catch {
    return (probed = { reason: `Dawn's adapter probe printed something unexpected: ${out.trim().slice(0, 80)}` });
  }
  if (!info) return (probed = { reason: 'no GPU adapter (no Vulkan, Metal or D3D12 driver with WebGPU support)' });
  const software = info.fallback || SOFTWARE.test(`${info.architecture} ${info.device} ${info.description}`);
  const { vendor, architecture, device, description } = info;
  return (probed = { adapter: { vendor, architecture, device, description, software } });
}

/** The parts of tfjs's WebGPUBackend the synchronous read below uses (not in its public typings). */
interface WebGPUBackendInternals {
  tensorMap: { get(id: object): { values: unknown; dtype: string; resource: GpuBuffer } };
  bufferManager: { acquireBuffer(size: number, usage: number): GpuBuffer; releaseBuffer(b: GpuBuffer): void };
  commandEncoder: { copyBufferToBuffer(a: GpuBuffer, ao: number, b: GpuBuffer, bo: number, size: number): void };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(id: object, values: unknown): void;
  readSync(id: object): unknown;
}
interface GpuBuffer {
  size: number;
  mapState: string;
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}

let syncReads = 0;

/**
 * How many tensors the webgpu backend has read back synchronously (`dataSync`, `arraySync`) in this
 * process: each one waits for the GPU. Forward passes make none (tested); reads of values already
 * cached on the CPU are not counted.
 */
export function webgpuSyncReadCount(): number {
  return syncReads;
}

/** How long a synchronous read waits for the GPU before giving up (a lost device never maps). */
const READ_TIMEOUT_MS = 600_000;
const MAP_READ = 0x0001; // GPUBufferUsage.MAP_READ, GPUMapMode.READ
const COPY_DST = 0x0008; // GPUBufferUsage.COPY_DST
const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Replaces tfjs's synchronous read, which needs a browser's OffscreenCanvas, by a copy into a
 * mappable buffer and turns of Node's event loop (the addon's pump) until Dawn has mapped it. The
 * model code reads small values synchronously (shape checks, losses, metrics); bulk results should
 * still be read with `await t.data()`.
 */
function installSyncRead(backend: WebGPUBackendInternals): void {
  const { pump, reason } = eventLoopPump();
  const original = backend.readSync.bind(backend);
  backend.readSync = (id: object) => {
    const d = backend.tensorMap.get(id);
    if (d.values != null || d.dtype === 'string' || d.dtype === 'complex64') return original(id);
    if (!pump) {
      throw new SkySenseError(
        'E_BACKEND',
        `a synchronous read (dataSync, arraySync) on the webgpu backend needs the SkySense native addon (${reason}); read with await data() or array()`,
      );
    }
    syncReads++;
    const staging = backend.bufferManager.acquireBuffer(d.resource.size, COPY_DST | MAP_READ);
    backend.ensureCommandEncoderReady();
    backend.endComputePassEncoder();
    backend.commandEncoder.copyBufferToBuffer(d.resource, 0, staging, 0, d.resource.size);
    backend.submitQueue();
    let failure: unknown;
    staging.mapAsync(MAP_READ).catch((e: unknown) => (failure = e));
    const deadline = Date.now() + READ_TIMEOUT_MS;
    while (staging.mapState !== 'mapped') {
      if (failure !== undefined) throw new SkySenseError('E_BACKEND', `webgpu: reading a tensor back failed: ${String(failure)}`);
      if (Date.now() > deadline) {
        throw new SkySenseError('E_BACKEND', `webgpu: a synchronous read waited ${READ_TIMEOUT_MS / 1000} s for the GPU (device lost?)`);
      }
      pump();
      if (staging.mapState === 'pending') Atomics.wait(nap, 0, 0, 0.05);
    }
    const bytes = staging.getMappedRange().slice(0);
    staging.unmap();
    backend.bufferManager.releaseBuffer(staging);
    const values = tf.util.convertBackendValuesAndArrayBuffer(bytes, d.dtype as 'float32');
    backend.convertAndCacheOnCPU(id, values);
    return values;
  };
}

/** Dawn's GPU objects, kept alive with the backend. */
interface Gpu {
  requestAdapter(o: object): Promise<{
    info: object;
    limits: Record<string, number>;
    features: Set<string>;
    requestDevice(o: object): Promise<object>;
  } | null>;
}

/** The limits raised to the adapter's: what tfjs-backend-webgpu asks for in a browser, and the storage buffers per stage (its programs bind one per input). */
const LIMITS = [
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupSizeX',
  'maxComputeInvocationsPerWorkgroup',
];

let registered = false;

/**
 * `navigator.gpu`, which tfjs's backend checks for (a browser global; Node 20 has no `navigator`,
 * later versions one without `gpu`). Set after the backend module is imported, so that it does not
 * register a second `webgpu` backend of its own on an adapter of its choosing.
 */
function exposeGpu(gpu: Gpu): void {
  const g = globalThis as { navigator?: object };
  if (!g.navigator) Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true, writable: true });
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
}

/**
 * Registers tfjs's `webgpu` backend on Dawn's adapter (once per process). Returns null, or why it
 * cannot run. Dawn's classes and constants (`GPUBufferUsage`, …) become globals, as in a browser:
 * the tfjs backend uses them by those names.
 */
export async function registerWebGPU(): Promise<string | null> {
  if (registered) return null;
  const pkgs = resolvePackages();
  if (typeof pkgs === 'string') return pkgs;
  dawnEnv();
  const dawn = (await import(pathToFileURL(pkgs.dawn).href)) as { create(flags: string[]): Gpu; globals: object };
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) Object.assign(globalThis, { [k]: v });
  const gpu = dawn.create([]);
  // the drivers' start-up warnings (lavapipe prints two) would break one-line CLI output; the report names the adapter
  const adapter = await withStderrMuted(() => gpu.requestAdapter({ powerPreference: 'high-performance' }));
  if (!adapter) return 'Dawn found no adapter in this process';
  const requiredLimits = Object.fromEntries(LIMITS.filter((k) => k in adapter.limits).map((k) => [k, adapter.limits[k]]));
  const requiredFeatures = ['timestamp-query'].filter((f) => adapter.features.has(f));
  const device = await withStderrMuted(() => adapter.requestDevice({ requiredLimits, requiredFeatures }));
  const mod = (await import(pathToFileURL(pkgs.tfjs).href)) as {
    WebGPUBackend?: new (device: object, info: object) => object;
    default?: { WebGPUBackend: new (device: object, info: object) => object };
  };
  const WebGPUBackend = mod.WebGPUBackend ?? mod.default?.WebGPUBackend;
  if (!WebGPUBackend) return `${PKG_NAME.tfjs} exports no WebGPUBackend (expected ${WEBGPU_PACKAGES.tfjs})`;
  fixWebGPUKernels();
  // every op on the GPU: tfjs would run ops on small CPU-resident inputs with its CPU kernels, whose
  // float results differ in the last bits — a resumed run would then not repeat the uninterrupted one
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  exposeGpu(gpu);
  if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  tf.registerBackend(
    'webgpu',
    () => {
      const backend = new WebGPUBackend(device, adapter.info) as unknown as WebGPUBackendInternals;
      installSyncRead(backend);
      fixWebGPUPrograms(backend as unknown as Parameters<typeof fixWebGPUPrograms>[0]);
      return backend as unknown as tf.KernelBackend;
    },
    3,
  );
  registered = true;
  return null;
}
