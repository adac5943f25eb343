/**
 * The output buffers of the native kernels, reused (PyTorch's caching allocator, on the CPU): when a
 * tensor the native kernels wrote is disposed, its float32 array goes back to a pool keyed by length
 * and the next kernel output of that length takes it instead of a fresh allocation. A forward pass
 * allocates the same few sizes layer after layer, so after the first layers it allocates nothing:
 * no page faults, and no external memory for V8 to count — the mark-compact collections that
 * external memory triggers ran on the second core, beside the GEMM's second thread.
 *
 * An array is reused only while nothing outside the backend can see it: reading a tensor
 * (`dataSync`, `data`, `array`, …) gives its array away for good, as does another tensor made on
 * the same memory (a view of it); such arrays are left to the garbage collector as before.
 */
import { SkySenseError } from './errors';

/** Arrays shorter than this are not pooled: small allocations cost V8 little. */
const MIN_POOLED = 4096;
const DEFAULT_LIMIT_MB = 256;

/** An array the pool made: whether a backend holds it yet (it may be stored once, by the kernel that wrote it). */
const made = new WeakMap<ArrayBufferLike, { array: Float32Array; stored: boolean }>();
/** Free arrays by length, the least recently freed length first (Map order). */
const free = new Map<number, Float32Array[]>();
let pooledBytes = 0;
let limitBytes = DEFAULT_LIMIT_MB * 2 ** 20;
let hits = 0;
let misses = 0;

/**
 * Applies `SKYSENSE_BUFFER_POOL_MB` (when set). Internal: called when the native kernels' backend is
 * registered. @throws SkySenseError `E_ARG` for a value that is not a number ≥ 0.
 */
export function bufferPoolLimitFromEnv(): void {
  const raw = process.env.SKYSENSE_BUFFER_POOL_MB?.trim();
  if (!raw) return;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb < 0)
    throw new SkySenseError('E_ARG', `SKYSENSE_BUFFER_POOL_MB: expected a number of MiB ≥ 0, got '${process.env.SKYSENSE_BUFFER_POOL_MB}'`);
  setBufferPoolLimit(mb);
}

/**
 * A float32 array of `n` elements for a kernel that writes every element: a pooled one of that
 * length when there is one, else fresh memory that is not zeroed first (`Buffer.allocUnsafeSlow`).
 */
export function uninitializedF32(n: number): Float32Array {
  if (n === 0) return new Float32Array(0);
  const list = free.get(n);
  let array = list?.pop();
  if (array) {
    if (!list!.length) free.delete(n);
    pooledBytes -= n * 4;
    hits++;
  } else {
    array = new Float32Array(Buffer.allocUnsafeSlow(n * 4).buffer, 0, n);
    if (n >= MIN_POOLED) misses++;
  }
  if (n >= MIN_POOLED) made.set(array.buffer, { array, stored: false });
  return array;
}

/** A backend stores `values`: the first store of a pooled array is its kernel's; any other (a view, a copy of the reference) shares it for good. */
function noteStored(values: unknown): void {
  if (!ArrayBuffer.isView(values)) return;
  const entry = made.get(values.buffer);
  if (entry && entry.array === values && !entry.stored) entry.stored = true;
  else if (entry) made.delete(values.buffer);
}

/** `values` left the backend (read by the user or by tfjs): never reused. */
function noteEscaped(values: unknown): void {
  if (ArrayBuffer.isView(values)) made.delete(values.buffer);
}

/** The backend dropped `values`: back to the pool if the pool made it and nothing else can see it. */
function release(values: unknown): void {
  if (!ArrayBuffer.isView(values)) return;
  const entry = made.get(values.buffer);
  if (entry && entry.array === values && entry.stored) addFree(entry.array);
}

/**
 * Gives back an array from {@link uninitializedF32} that no backend ever held (a kernel's scratch
 * space) once its caller is done with it. Internal.
 */
export function recycleF32(array: Float32Array): void {
  const entry = made.get(array.buffer);
  if (entry && entry.array === array && !entry.stored) addFree(array);
}

function addFree(array: Float32Array): void {
  made.delete(array.buffer);
  const bytes = array.length * 4;
  if (bytes > limitBytes) return;
  const list = free.get(array.length) ?? [];
  free.delete(array.length); // re-inserted last: the most recently freed length
  list.push(array);
  free.set(array.length, list);
  pooledBytes += bytes;
  evictTo(limitBytes);
}

/** Drops the least recently freed arrays until the pool holds at most `bytes`. */
function evictTo(bytes: number): void {
  for (const [length, list] of free) {
    if (pooledBytes <= bytes) return;
    while (list.length && pooledBytes > bytes) {
      list.shift();
      pooledBytes -= length * 4;
    }
    if (!list.length) free.delete(length);
  }
}

/** The storage of tfjs's `cpu` backend class, as far as the pool uses it. */
interface CpuStorage {
  data: { get(id: object): { values?: unknown } | undefined; has(id: object): boolean };
  write(values: unknown, shape: number[], dtype: string): object;
  move(dataId: object, values: unknown, shape: number[], dtype: string, refCount: number): void;
  readSync(dataId: object): unknown;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The array a backend holds for `dataId`, or undefined (without `data.get`, which would move data in from another backend). */
const valuesOf = (b: CpuStorage, dataId: object) => (b.data.has(dataId) ? b.data.get(dataId)?.values : undefined);

/**
 * Makes a tfjs `cpu` backend instance return the pool's arrays when it drops them, and give them
 * away when it hands them out (reads) or stores them twice (views). Internal: the native kernels'
 * backend calls it once, when it is created.
 */
export function poolBuffersOf(backend: object): void {
  const b = backend as CpuStorage;
  const { write, move, readSync, disposeData } = b;
  b.write = function (values, shape, dtype) {
    noteStored(values);
    return write.call(this, values, shape, dtype);
  };
  b.move = function (dataId, values, shape, dtype, refCount) {
    noteEscaped(values); // from another backend, where anything may have read it
    move.call(this, dataId, values, shape, dtype, refCount);
  };
  b.readSync = function (dataId) {
    noteEscaped(valuesOf(this, dataId));
    return readSync.call(this, dataId);
  };
  b.disposeData = function (dataId, force) {
    const values = valuesOf(this, dataId);
    const gone = disposeData.call(this, dataId, force);
    if (values !== undefined && !this.data.has(dataId)) release(values);
    return gone;
  };
}

/** What the buffer pool holds and how often it served an output. */
export interface BufferPoolStats {
  /** Bytes held by free arrays. */
  bytes: number;
  /** Free arrays held. */
  buffers: number;
  /** The most it holds (`SKYSENSE_BUFFER_POOL_MB`, default 256 MiB; 0 turns reuse off). */
  limitBytes: number;
  /** Outputs served from the pool / freshly allocated, since the process started. */
  hits: number;
  misses: number;
}

/** The state of the native kernels' buffer pool (see {@link emptyBufferPool}). */
export function bufferPoolStats(): BufferPoolStats {
  let buffers = 0;
  for (const list of free.values()) buffers += list.length;
  return { bytes: pooledBytes, buffers, limitBytes, hits, misses };
}

/**
 * Frees what the native kernels' buffer pool holds (PyTorch's `torch.cuda.empty_cache()`): the
 * memory goes back at the next garbage collection. Tensors are not affected.
 */
export function emptyBufferPool(): void {
  evictTo(0);
}

/**
 * Sets the most the buffer pool may hold, in MiB (0: no reuse); what it holds beyond is freed.
 * The default comes from `SKYSENSE_BUFFER_POOL_MB` (256 when unset).
 */
export function setBufferPoolLimit(mb: number): void {
  if (!Number.isFinite(mb) || mb < 0) throw new SkySenseError('E_ARG', `setBufferPoolLimit: mb: expected a number ≥ 0, got ${mb}`);
  limitBytes = mb * 2 ** 20;
  evictTo(limitBytes);
}
