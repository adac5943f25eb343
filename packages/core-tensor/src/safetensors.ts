import * as fs from 'node:fs';
import { endianness } from 'node:os';
import { tf, type Tensor } from './tf';
import { SkySenseError } from './errors';
import { formatShape } from './validate';
import { withAtomicFile, writeAll } from './atomic-file';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from './dtype-convert';
import type { Module, StateDictSource } from './module';

/** The safetensors dtypes SkySense reads and writes. */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** A tensor as stored: dtype, shape and little-endian bytes. */
export interface RawTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** Where a tensor lies in a file. */
export interface SafetensorsEntry {
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset of the first byte in the file. */
  offset: number;
  /** Number of bytes. */
  byteLength: number;
}

/** Options of {@link SafetensorsFile.open}. */
export interface SafetensorsOpenOptions {
  /** Largest accepted JSON header. Default 100 MB (the reference implementation's limit). */
  maxHeaderBytes?: number;
}

const DEFAULT_MAX_HEADER = 100_000_000;
const READ_CHUNK = 1 << 30;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function isDtype(v: unknown): v is SafetensorsDType {
  return typeof v === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, v);
}

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new SkySenseError('E_UNSUPPORTED', 'safetensors I/O needs a little-endian machine');
}

/**
 * An open safetensors file. The header is read and validated on open; tensor data is read on
 * demand by byte offset, so files larger than one Node Buffer (the 8 GB 2 B-parameter model) load
 * tensor by tensor. It is a {@link StateDictSource}: pass it straight to `module.loadStateDict`.
 * Close it with {@link SafetensorsFile.close}.
 * @example
 * ```ts
 * import { initBackend, SafetensorsFile } from '@skysense/core-tensor';
 * await initBackend();
 * const file = SafetensorsFile.open('model.safetensors'); // reads the header only
 * for (const name of file.keys()) console.log(name, file.shape(name));
 * const weight = file.read(file.keys()[0]!); // one tensor, when needed
 * file.close();
 * weight.dispose();
 * ```
 */
export class SafetensorsFile implements StateDictSource {
  private fd: number | null;
  private readonly entries: Map<string, SafetensorsEntry>;
  /** The `__metadata__` string map (empty if absent). */
  readonly metadata: Record<string, string>;

  private constructor(
    /** Path of the file. */
    readonly path: string,
    fd: number,
    entries: Map<string, SafetensorsEntry>,
    metadata: Record<string, string>,
  ) {
    this.fd = fd;
    this.entries = entries;
    this.metadata = metadata;
  }

  /**
   * Opens and validates a file. Corrupt or hostile files (truncated, header length beyond the file
   * or over the limit, bad JSON, unknown dtype, byte count not matching the shape, out-of-range,
   * overlapping or non-contiguous offsets) throw before any tensor is read.
   * @throws SkySenseError `E_SAFETENSORS` naming the file and the problem, `E_IO` if it cannot be opened.
   */
  static open(path: string, options: SafetensorsOpenOptions = {}): SafetensorsFile {
    assertLittleEndian();
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      throw new SkySenseError('E_IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const { entries, metadata } = readHeader(path, fd, options.maxHeaderBytes ?? DEFAULT_MAX_HEADER);
      return new SafetensorsFile(path, fd, entries, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Tensor names in header order. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Whether the file holds `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** dtype, shape and location of one tensor. @throws SkySenseError `E_SAFETENSORS` if absent. */
  info(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new SkySenseError('E_SAFETENSORS', `${this.path}: no tensor named '${name}'`);
    return e;
  }

  /** Shape of one tensor. */
  shape(name: string): number[] {
    return this.info(name).shape;
  }

  /** Reads one tensor's bytes. */
  readRaw(name: string): RawTensor {
    const e = this.info(name);
    if (this.fd === null) throw new SkySenseError('E_IO', `${this.path} is closed`);
    const data = new Uint8Array(e.byteLength);
    for (let done = 0; done < e.byteLength;) {
      const n = fs.readSync(this.fd, data, done, Math.min(READ_CHUNK, e.byteLength - done), e.offset + done);
      if (n === 0) throw new SkySenseError('E_SAFETENSORS', `${this.path}: file ended while reading '${name}'`);
      done += n;
    }
    return { dtype: e.dtype, shape: e.shape, data };
  }

  /** Reads one tensor as a new tfjs tensor (floats widened to float32, integers to int32). */
  read(name: string): Tensor {
    return rawToTensor(this.readRaw(name), `${this.path}: '${name}'`);
  }

  /** Total number of elements over all tensors. */
  totalElements(): number {
    let n = 0;
    for (const e of this.entries.values()) n += numel(e.shape);
    return n;
  }

  /** Releases the file handle. */
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

function bad(path: string, problem: string): SkySenseError {
  return new SkySenseError('E_SAFETENSORS', `${path}: ${problem}`);
}

function readHeader(
  path: string,
  fd: number,
  maxHeader: number,
): { entries: Map<string, SafetensorsEntry>; metadata: Record<string, string> } {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw bad(path, `file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(maxHeader)) throw bad(path, `header length ${headerLen} exceeds the ${maxHeader}-byte limit`);
  if (headerLen > BigInt(size - 8)) throw bad(path, `header length ${headerLen} exceeds the file size ${size} (truncated file?)`);
  const n = Number(headerLen);
  const headerBuf = Buffer.alloc(n);
  fs.readSync(fd, headerBuf, 0, n, 8);
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    throw bad(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw bad(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const entries = new Map<string, SafetensorsEntry>();
  const spans: [number, number, string][] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(path, raw);
      continue;
    }
    const { dtype, shape, begin, end } = parseEntry(path, name, raw);
    if (end > dataLen) throw bad(path, `tensor '${name}' data_offsets end ${end} is beyond the ${dataLen} data bytes (truncated file?)`);
    spans.push([begin, end, name]);
    entries.set(name, { dtype, shape, offset: dataStart + begin, byteLength: end - begin });
  }
  checkSpans(path, spans, dataLen);
  return { entries, metadata };
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
    throw bad(path, '__metadata__ must map strings to strings');
  }
  return raw as Record<string, string>;
}

function parseEntry(path: string, name: string, raw: unknown): { dtype: SafetensorsDType; shape: number[]; begin: number; end: number } {
  if (typeof raw !== 'object' || raw === null) throw bad(path, `tensor '${name}' has no {dtype, shape, data_offsets} entry`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isDtype(dtype))
    throw bad(path, `tensor '${name}' has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_SIZE).join(', ')})`);
  const isIndex = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!Array.isArray(shape) || !shape.every(isIndex)) throw bad(path, `tensor '${name}' has an invalid shape ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]) {
    throw bad(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = numel(shape) * DTYPE_SIZE[dtype];
  if (end - begin !== expected) {
    throw bad(
      path,
      `tensor '${name}' ${dtype} ${formatShape(shape)} needs ${expected} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { dtype, shape, begin, end };
}

function checkSpans(path: string, spans: [number, number, string][], dataLen: number): void {
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let pos = 0;
  let prev = '';
  for (const [begin, end, name] of spans) {
    if (begin < pos) throw bad(path, `tensor '${name}' (bytes ${begin}-${end}) overlaps tensor '${prev}' (ends at ${pos})`);
    if (begin > pos) throw bad(path, `unused bytes ${pos}-${begin} before tensor '${name}' (offsets must be contiguous)`);
    pos = end;
    prev = name;
  }
  if (pos !== dataLen) throw bad(path, `${dataLen - pos} trailing bytes after the last tensor (offsets must cover the data exactly)`);
}

/** Decodes stored bytes into a tfjs tensor: floats → float32, integers → int32 (I64 range-checked), BOOL → bool. */
export function rawToTensor(raw: RawTensor, what = 'tensor'): Tensor {
  const { dtype, shape, data } = raw;
  const n = numel(shape);
  const view = <T>(C: { new (b: ArrayBufferLike, o: number, l: number): T }): T => {
    const aligned = data.byteOffset % DTYPE_SIZE[dtype] === 0 ? data : data.slice();
    return new C(aligned.buffer, aligned.byteOffset, n);
  };
  switch (dtype) {
    case 'F32':
      return tf.tensor(view(Float32Array), shape, 'float32');
    case 'F64':
      return tf.tensor(Float32Array.from(view(Float64Array)), shape, 'float32');
    case 'F16':
      return tf.tensor(f16BitsToF32(view(Uint16Array)), shape, 'float32');
    case 'BF16':
      return tf.tensor(bf16BitsToF32(view(Uint16Array)), shape, 'float32');
    case 'I64': {
      const big = view(BigInt64Array);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = big[i]!;
        if (v > 2147483647n || v < -2147483648n)
          throw new SkySenseError('E_SAFETENSORS', `${what}: int64 value ${v} does not fit int32 (tfjs has no int64)`);
        out[i] = Number(v);
      }
      return tf.tensor(out, shape, 'int32');
    }
    case 'I32':
      return tf.tensor(view(Int32Array), shape, 'int32');
    case 'I16':
      return tf.tensor(Int32Array.from(view(Int16Array)), shape, 'int32');
    case 'I8':
      return tf.tensor(Int32Array.from(view(Int8Array)), shape, 'int32');
    case 'U8':
      return tf.tensor(Int32Array.from(data.subarray(0, n)), shape, 'int32');
    case 'BOOL':
      return tf.tensor(
        Uint8Array.from(data.subarray(0, n), (b) => (b ? 1 : 0)),
        shape,
        'bool',
      );
  }
}

/**
 * Encodes a tfjs tensor for storage. Float tensors may be stored as F32 (default), F16, BF16 or F64;
 * int32 tensors as I32 (default), I64, I16, I8 or U8 (range-checked); bool as BOOL.
 */
export function tensorToRaw(t: Tensor, dtype?: SafetensorsDType): RawTensor {
  const target = dtype ?? (t.dtype === 'float32' ? 'F32' : t.dtype === 'bool' ? 'BOOL' : 'I32');
  const values = t.dataSync();
  const shape = [...t.shape];
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const isFloatTarget = target === 'F32' || target === 'F16' || target === 'BF16' || target === 'F64';
  if ((t.dtype === 'float32') !== isFloatTarget && !(t.dtype === 'bool' && target === 'BOOL')) {
    throw new SkySenseError('E_DTYPE', `cannot store a ${t.dtype} tensor as ${target}`);
  }
  switch (target) {
    case 'F32':
      return { dtype: target, shape, data: bytes(Float32Array.from(values)) };
    case 'F64':
      return { dtype: target, shape, data: bytes(Float64Array.from(values)) };
    case 'F16':
      return { dtype: target, shape, data: bytes(f32ToF16Bits(Float32Array.from(values))) };
    case 'BF16':
      return { dtype: target, shape, data: bytes(f32ToBf16Bits(Float32Array.from(values))) };
    case 'I64':
      return { dtype: target, shape, data: bytes(BigInt64Array.from(values as Int32Array, (v) => BigInt(v))) };
    case 'I32':
      return { dtype: target, shape, data: bytes(Int32Array.from(values)) };
    case 'I16':
    case 'I8':
    case 'U8': {
      const [lo, hi, C] = target === 'I16' ? [-32768, 32767, Int16Array] : target === 'I8' ? [-128, 127, Int8Array] : [0, 255, Uint8Array];
      for (const v of values) if (v < lo || v > hi) throw new SkySenseError('E_DTYPE', `value ${v} does not fit ${target}`);
      return { dtype: target, shape, data: bytes(C.from(values)) };
    }
    case 'BOOL':
      return { dtype: target, shape, data: Uint8Array.from(values, (v) => (v ? 1 : 0)) };
  }
}

/**
 * A tensor to write: its bytes now, a function that produces them when the writer reaches it, or a
 * function that yields them in pieces (each piece is written before the next is asked for).
 */
export interface WritableTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array | (() => Uint8Array) | { chunks: () => Iterable<Uint8Array> };
}

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Stored as `__metadata__` (strings only). */
  metadata?: Record<string, string>;
}

/**
 * Writes a safetensors file atomically (temp file + rename), streaming tensor by tensor: entries
 * whose `data` is a function are produced only when written, so a file larger than memory can be
 * written from a lazy source. Tensors are stored in the given order; the header is space-padded to
 * an 8-byte boundary.
 */
export function writeSafetensors(
  path: string,
  tensors: Iterable<[string, WritableTensor]> | Record<string, WritableTensor>,
  options: WriteSafetensorsOptions = {},
): void {
  assertLittleEndian();
  const list = Symbol.iterator in tensors ? [...(tensors as Iterable<[string, WritableTensor]>)] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (options.metadata) header.__metadata__ = parseMetadata(path, options.metadata);
  let offset = 0;
  for (const [name, t] of list) {
    if (name === '__metadata__' || name in header)
      throw new SkySenseError('E_ARG', `writeSafetensors: duplicate or reserved tensor name '${name}'`);
    if (!isDtype(t.dtype)) throw new SkySenseError('E_ARG', `writeSafetensors: tensor '${name}' has unknown dtype '${String(t.dtype)}'`);
    const len = numel(t.shape) * DTYPE_SIZE[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  withAtomicFile(path, (fd) => {
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const [name, t] of list) {
      const pieces = typeof t.data === 'function' ? [t.data()] : t.data instanceof Uint8Array ? [t.data] : t.data.chunks();
      const expected = numel(t.shape) * DTYPE_SIZE[t.dtype];
      const wrongSize = (got: string) =>
        new SkySenseError(
          'E_ARG',
          `writeSafetensors: tensor '${name}' ${t.dtype} ${formatShape(t.shape)} needs ${expected} bytes, got ${got}`,
        );
      let written = 0;
      for (const piece of pieces) {
        written += piece.byteLength;
        if (written > expected) throw wrongSize(`more`);
        writeAll(fd, piece);
      }
      if (written !== expected) throw wrongSize(String(written));
    }
  });
}

/**
 * Saves a module's state dict (or any name → tensor map) as safetensors, atomically, one tensor at
 * a time. Float tensors are stored as `floatDtype` (default F32), int32 buffers as I64 (PyTorch's
 * dtype for `num_batches_tracked`).
 * @example
 * ```ts
 * import { initBackend, Linear, saveSafetensors } from '@skysense/core-tensor';
 * await initBackend();
 * const model = new Linear(4, 2);
 * saveSafetensors('linear.safetensors', model, { metadata: { note: 'an example' } }); // atomic
 * ```
 */
export function saveSafetensors(
  path: string,
  state: Module | Map<string, Tensor>,
  options: WriteSafetensorsOptions & { floatDtype?: 'F32' | 'F16' | 'BF16' } = {},
): void {
  const map = state instanceof Map ? state : state.stateDict();
  const entries: [string, WritableTensor][] = [...map].map(([name, t]) => {
    const dtype: SafetensorsDType = t.dtype === 'float32' ? (options.floatDtype ?? 'F32') : t.dtype === 'bool' ? 'BOOL' : 'I64';
    return [name, { dtype, shape: [...t.shape], data: () => tensorToRaw(t, dtype).data }];
  });
  writeSafetensors(path, entries, options);
}

/**
 * Reads every tensor of a file into memory (for small files; use {@link SafetensorsFile} for large ones).
 * @example
 * ```ts
 * import { initBackend, loadSafetensors } from '@skysense/core-tensor';
 * await initBackend();
 * const tensors = loadSafetensors('skysense_model_backbone_s2.safetensors'); // Map name → tensor
 * console.log(tensors.size, tensors.get('pos_embed')?.shape);
 * ```
 */
export function loadSafetensors(path: string): Map<string, Tensor> {
  const f = SafetensorsFile.open(path);
  try {
    return new Map(f.keys().map((k) => [k, f.read(k)]));
  } finally {
    f.close();
  }
}
