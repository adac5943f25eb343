import { checkExpansion } from '../limits';
import { SkySenseError } from '../errors';
import { formatShape } from '../validate';
import { DTYPE_SIZE, rawToTensor, type RawTensor, type SafetensorsDType } from '../safetensors';
import type { Tensor } from '../tf';
import type { StateDictSource } from '../module';
import { type ByteSource, bufferSource, fileSource } from './byte-source';
import { isZip, readZipDirectory, readZipEntry, type ZipEntry } from './zip';
import { PyDict, PyStorage, PyStorageType, PyTensor, PyTuple, type PyValue, toPlain, unpickle, unpickleAt } from './pickle';

/** Where the state dict sat in the checkpoint. */
export type PthLayout = 'flat' | 'state_dict' | 'model' | 'module';

/** One tensor of a checkpoint, without its data. */
export interface PthTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  stride: number[];
  /** Element offset into the storage. */
  offset: number;
  storageKey: string;
  /** Whether the view is row-major contiguous (read as one block). */
  contiguous: boolean;
}

/** Options of {@link PthFile.open}. */
export interface PthOpenOptions {
  /** Which dict holds the tensors: `auto` (default) picks `state_dict`, then `model`, then `module`, else the top level. */
  layout?: PthLayout | 'auto';
  /** Largest pickle accepted, in bytes. Default 1 GiB. */
  maxPickleBytes?: number;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const DEFAULT_MAX_PICKLE = 1 << 30;

interface Container {
  format: 'zip' | 'legacy';
  root: PyValue;
  /** Reads `length` bytes at byte `offset` of a storage. */
  readStorage(storage: PyStorage, byteOffset: number, byteLength: number): Uint8Array;
  /** Fills `target` from byte `offset` of a storage. */
  readStorageInto(storage: PyStorage, byteOffset: number, target: Uint8Array): Uint8Array;
}

function bad(src: ByteSource, msg: string): SkySenseError {
  return new SkySenseError('E_CHECKPOINT', `${src.name}: ${msg}`);
}

function storageFromPid(src: ByteSource, seen: Map<string, PyStorage>) {
  return (pid: PyValue): PyValue => {
    const items = pid instanceof PyTuple ? pid.items : null;
    if (
      !items ||
      items[0] !== 'storage' ||
      !(items[1] instanceof PyStorageType) ||
      (typeof items[2] !== 'string' && typeof items[2] !== 'number')
    ) {
      throw bad(src, 'unexpected persistent id (not a torch storage)');
    }
    const type = items[1] as PyStorageType;
    const key = String(items[2]);
    const numel = Number(items[4]);
    if (!Number.isSafeInteger(numel) || numel < 0) throw bad(src, `storage ${key} has an invalid size ${String(items[4])}`);
    let s = seen.get(key);
    if (!s) {
      s = new PyStorage(key, type.dtype, numel);
      seen.set(key, s);
    }
    const view = items[5];
    if (view instanceof PyTuple && view.items.length === 3) {
      return new PyStorage(key, type.dtype, Number(view.items[2]), Number(view.items[1]));
    }
    return s;
  };
}

function openZip(src: ByteSource, maxPickle: number): Container {
  const entries = readZipDirectory(src);
  const pkl = [...entries.keys()].find((n) => n.endsWith('/data.pkl') && n.split('/').length === 2);
  if (!pkl) throw bad(src, "zip has no '<archive>/data.pkl': not a PyTorch checkpoint");
  const archive = pkl.slice(0, -'data.pkl'.length);
  const order = entries.get(`${archive}byteorder`);
  if (order && new TextDecoder().decode(readZipEntry(src, order)).trim() !== 'little') {
    throw new SkySenseError('E_UNSUPPORTED', `${src.name}: big-endian checkpoints are not supported`);
  }
  const pklEntry = entries.get(pkl)!;
  if (pklEntry.size > maxPickle) throw bad(src, `data.pkl is ${pklEntry.size} bytes, over the ${maxPickle}-byte limit`);
  const seen = new Map<string, PyStorage>();
  const root = unpickle(readZipEntry(src, pklEntry), `${src.name}:${pkl}`, storageFromPid(src, seen));
  const entryOf = (s: PyStorage): ZipEntry => {
    const e = entries.get(`${archive}data/${s.key}`);
    if (!e) throw bad(src, `storage '${s.key}' has no entry ${archive}data/${s.key}`);
    return e;
  };
  for (const s of seen.values()) {
    const e = entryOf(s);
    if (e.size !== s.numel * DTYPE_SIZE[s.dtype])
      throw bad(src, `storage '${s.key}' holds ${e.size} bytes, expected ${s.numel} ${s.dtype} elements`);
  }
  return {
    format: 'zip',
    root,
    readStorage: (s, off, len) => readZipEntry(src, entryOf(s), off, len),
    readStorageInto: (s, off, target) => {
      const e = entryOf(s);
      if (e.method !== 0 || off + target.length > e.size) target.set(readZipEntry(src, e, off, target.length));
      else src.readInto(e.dataOffset + off, target);
      return target;
    },
  };
}

/** The five pickles at the head of a legacy file, read in growing chunks (they are small; the storages follow). */
function legacyPickles(src: ByteSource, maxPickle: number, load: (pid: PyValue) => PyValue): { values: PyValue[]; end: number } {
  for (let chunk = Math.min(src.size, 1 << 20); ; chunk = Math.min(src.size, chunk * 4)) {
    const head = src.read(0, chunk);
    try {
      const values: PyValue[] = [];
      let pos = 0;
      for (let i = 0; i < 5; i++) {
        const r = unpickleAt(head, pos, src.name, i === 3 ? load : undefined);
        values.push(r.value);
        pos = r.end;
      }
      return { values, end: pos };
    } catch (e) {
      const truncated = e instanceof SkySenseError && (e.details as { truncated?: boolean } | undefined)?.truncated;
      if (!truncated || chunk >= src.size) throw e;
      if (chunk >= maxPickle) throw bad(src, `legacy pickles exceed the ${maxPickle}-byte limit`);
    }
  }
}

function openLegacy(src: ByteSource, maxPickle: number): Container {
  const seen = new Map<string, PyStorage>();
  const { values, end } = legacyPickles(src, maxPickle, storageFromPid(src, seen));
  const [magic, , sysInfo, root, keys] = values as [PyValue, PyValue, PyValue, PyValue, PyValue];
  if ((typeof magic !== 'number' && typeof magic !== 'bigint') || BigInt(magic) !== LEGACY_MAGIC)
    throw bad(src, 'not a PyTorch checkpoint (legacy magic number missing)');
  if (sysInfo instanceof PyDict && sysInfo.get('little_endian') === false)
    throw new SkySenseError('E_UNSUPPORTED', `${src.name}: big-endian checkpoints are not supported`);
  const offsets = new Map<string, number>();
  let p = end;
  for (const key of (Array.isArray(keys) ? keys : []).map(String)) {
    const s = seen.get(key);
    if (!s) throw bad(src, `storage '${key}' is listed but never used`);
    const count = new DataView(src.read(p, 8).slice().buffer).getBigInt64(0, true);
    if (count !== BigInt(s.numel)) throw bad(src, `storage '${key}' holds ${count} elements, the tensors say ${s.numel}`);
    offsets.set(key, p + 8);
    p += 8 + s.numel * DTYPE_SIZE[s.dtype];
    if (p > src.size) throw bad(src, `storage '${key}' runs past the end of the file (truncated?)`);
  }
  const base = (s: PyStorage) => {
    const o = offsets.get(s.key);
    if (o === undefined) throw bad(src, `storage '${s.key}' is not in the file`);
    return o + s.viewOffset * DTYPE_SIZE[s.dtype];
  };
  return {
    format: 'legacy',
    root,
    readStorage: (s, off, len) => src.read(base(s) + off, len),
    readStorageInto: (s, off, target) => src.readInto(base(s) + off, target),
  };
}

function pickLayout(root: PyValue, layout: PthLayout | 'auto', name: string): { dict: PyDict; layout: PthLayout } {
  if (!(root instanceof PyDict)) throw new SkySenseError('E_CHECKPOINT', `${name}: the checkpoint is not a dict of tensors`);
  const candidates: PthLayout[] = layout === 'auto' ? ['state_dict', 'model', 'module'] : layout === 'flat' ? [] : [layout];
  for (const key of candidates) {
    const v = root.get(key);
    if (v instanceof PyDict) return { dict: v, layout: key };
    if (layout !== 'auto') throw new SkySenseError('E_CHECKPOINT', `${name}: no '${key}' dict in the checkpoint`);
  }
  return { dict: root, layout: 'flat' };
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

/**
 * A PyTorch checkpoint (`torch.save`, zip or legacy format) opened safely: the pickle is read with
 * an allow-list unpickler and tensor bytes are read on demand by offset, so multi-gigabyte files
 * never sit in one buffer. It is a {@link StateDictSource}: pass it to `module.loadStateDict`.
 * @example
 * ```ts
 * import { initBackend, PthFile } from '@skysense/core-tensor';
 * await initBackend();
 * const pth = PthFile.open('skysense_model_backbone_s2.pth'); // reads the zip directory and the pickle only
 * console.log(pth.format, pth.keys().length, pth.shape('pos_embed'));
 * const table = pth.read('ctpe'); // one tensor, when needed
 * pth.close();
 * table.dispose();
 * ```
 */
export class PthFile implements StateDictSource {
  private readonly tensors = new Map<string, { t: PyTensor; info: PthTensorInfo }>();
  /** Where the tensors were found. */
  readonly layout: PthLayout;
  /** The checkpoint's other top-level entries (mmcv `meta`, …) as plain JSON-safe data. */
  readonly extra: Record<string, unknown>;

  private constructor(
    private readonly src: ByteSource,
    private readonly container: Container,
    layout: PthLayout | 'auto',
  ) {
    const picked = pickLayout(container.root, layout, src.name);
    this.layout = picked.layout;
    for (const [k, v] of picked.dict.map) {
      if (v instanceof PyTensor) this.tensors.set(String(k), { t: v, info: this.describe(String(k), v) });
    }
    const root = container.root as PyDict;
    this.extra =
      picked.layout === 'flat'
        ? {}
        : Object.fromEntries([...root.map].filter(([k]) => k !== picked.layout).map(([k, v]) => [String(k), toPlain(v)]));
  }

  /**
   * Opens a checkpoint file (or bytes). Refuses unsafe pickles (`E_UNSAFE_PICKLE`), corrupt or
   * truncated files (`E_CHECKPOINT`) and formats it cannot read (`E_UNSUPPORTED`).
   */
  static open(file: string | Uint8Array, options: PthOpenOptions = {}): PthFile {
    const src = typeof file === 'string' ? fileSource(file) : bufferSource(file);
    try {
      const max = options.maxPickleBytes ?? DEFAULT_MAX_PICKLE;
      const head = src.read(0, Math.min(src.size, 512));
      let container: Container;
      if (isZip(head)) container = openZip(src, max);
      else if (head[0] === 0x80) container = openLegacy(src, max);
      else if (head.length >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === 'ustar') {
        throw new SkySenseError(
          'E_UNSUPPORTED',
          `${src.name}: the pre-1.0 tar checkpoint format is not supported; re-save it with a recent torch`,
        );
      } else throw new SkySenseError('E_CHECKPOINT', `${src.name}: not a PyTorch checkpoint (neither zip nor pickle)`);
      return new PthFile(src, container, options.layout ?? 'auto');
    } catch (e) {
      src.close();
      throw e;
    }
  }

  /** `zip` (torch ≥ 1.6 default) or `legacy`. */
  get format(): 'zip' | 'legacy' {
    return this.container.format;
  }

  private describe(name: string, t: PyTensor): PthTensorInfo {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const maxIndex = numel === 0 ? -1 : t.offset + t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, 0);
    if (maxIndex >= t.storage.numel) {
      throw bad(
        this.src,
        `tensor '${name}' ${formatShape(t.shape)} (offset ${t.offset}, stride ${formatShape(t.stride)}) reaches past its ${t.storage.numel}-element storage`,
      );
    }
    return {
      dtype: t.storage.dtype,
      shape: t.shape,
      stride: t.stride,
      offset: t.offset,
      storageKey: t.storage.key,
      contiguous: isContiguous(t.shape, t.stride),
    };
  }

  /** Tensor names in checkpoint order. */
  keys(): string[] {
    return [...this.tensors.keys()];
  }

  /** Layout of one tensor. */
  info(name: string): PthTensorInfo {
    const e = this.tensors.get(name);
    if (!e) throw new SkySenseError('E_CHECKPOINT', `${this.src.name}: no tensor named '${name}'`);
    return e.info;
  }

  /** Shape of one tensor. */
  shape(name: string): number[] {
    return this.info(name).shape;
  }

  /** Reads one tensor's values as contiguous little-endian bytes in its stored dtype (views gathered). */
  readRaw(name: string): RawTensor {
    const info = this.info(name);
    const t = this.tensors.get(name)!.t;
    const size = DTYPE_SIZE[info.dtype];
    const numel = info.shape.reduce((a, b) => a * b, 1);
    if (numel === 0) return { dtype: info.dtype, shape: info.shape, data: new Uint8Array(0) };
    const span = info.shape.reduce((a, d, i) => a + (d - 1) * info.stride[i]!, 0) + 1;
    // a view may repeat its storage (stride 0): bound what a small file can make us allocate
    checkExpansion(`${this.src.name}: tensor '${name}' ${formatShape(info.shape)}`, span * size, numel * size);
    const block = this.container.readStorage(t.storage, info.offset * size, span * size);
    if (info.contiguous)
      return { dtype: info.dtype, shape: info.shape, data: block.length === numel * size ? block : block.slice(0, numel * size) };
    const out = new Uint8Array(numel * size);
    const idx = new Array<number>(info.shape.length).fill(0);
    for (let n = 0; n < numel; n++) {
      const src = idx.reduce((a, v, i) => a + v * info.stride[i]!, 0) * size;
      out.set(block.subarray(src, src + size), n * size);
      for (let d = idx.length - 1; d >= 0; d--) {
        if (++idx[d]! < info.shape[d]!) break;
        idx[d] = 0;
      }
    }
    return { dtype: info.dtype, shape: info.shape, data: out };
  }

  /**
   * Yields a tensor's bytes in pieces of at most `chunkBytes`, through one reused buffer (consume
   * each piece before asking for the next): peak memory is one chunk, whatever the tensor's size.
   */
  *readChunks(name: string, chunkBytes = 64 << 20): Generator<Uint8Array> {
    const info = this.info(name);
    if (!info.contiguous) {
      yield this.readRaw(name).data;
      return;
    }
    const size = DTYPE_SIZE[info.dtype];
    const total = info.shape.reduce((a, b) => a * b, 1) * size;
    const buf = new Uint8Array(Math.min(chunkBytes, total));
    const storage = this.tensors.get(name)!.t.storage;
    for (let off = 0; off < total; off += buf.length) {
      yield this.container.readStorageInto(storage, info.offset * size + off, buf.subarray(0, Math.min(buf.length, total - off)));
    }
  }

  /** Reads one tensor as a tfjs tensor (floats widened to float32, integers to int32). */
  read(name: string): Tensor {
    return rawToTensor(this.readRaw(name), `${this.src.name}: '${name}'`);
  }

  /** Total bytes of tensor data (views counted by their own size). */
  totalBytes(): number {
    return this.keys().reduce((a, k) => a + this.info(k).shape.reduce((x, y) => x * y, 1) * DTYPE_SIZE[this.info(k).dtype], 0);
  }

  /** Releases the file. */
  close(): void {
    this.src.close();
  }
}
