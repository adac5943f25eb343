import { SkySenseError } from '../errors';
import { withAtomicFile, writeAll } from '../atomic-file';
import { crc32 } from '../crc32';
import { tensorToRaw, type SafetensorsDType } from '../safetensors';
import type { Module } from '../module';
import type { Tensor } from '../tf';

/** Options of {@link savePth}. */
export interface SavePthOptions {
  /** Prepended to every key, e.g. `'backbone.'` for an mmseg/mmdet config's backbone. Default: none. */
  prefix?: string;
}

/** Our dtypes as PyTorch stores them: float32 → `FloatStorage`, integers → `LongStorage` (int64, as PyTorch's index buffers), bool → `BoolStorage`. */
const STORAGE: Partial<Record<Tensor['dtype'], { storage: string; dtype: SafetensorsDType }>> = {
  float32: { storage: 'FloatStorage', dtype: 'F32' },
  int32: { storage: 'LongStorage', dtype: 'I64' },
  bool: { storage: 'BoolStorage', dtype: 'BOOL' },
};

/** The few pickle (protocol 2) opcodes a flat `OrderedDict` of tensors needs. */
class Pickler {
  private readonly parts: Uint8Array[] = [Uint8Array.of(0x80, 2)];
  op(...bytes: number[]): this {
    this.parts.push(Uint8Array.from(bytes));
    return this;
  }
  global(module: string, name: string): this {
    this.parts.push(new TextEncoder().encode(`c${module}\n${name}\n`));
    return this;
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    const len = new Uint8Array(5);
    len[0] = 0x58; // BINUNICODE
    new DataView(len.buffer).setUint32(1, b.length, true);
    this.parts.push(len, b);
    return this;
  }
  int(v: number): this {
    if (v >= 0 && v < 2 ** 31) {
      const b = new Uint8Array(5);
      b[0] = 0x4a; // BININT
      new DataView(b.buffer).setInt32(1, v, true);
      this.parts.push(b);
      return this;
    }
    const b = new Uint8Array(10);
    b[0] = 0x8a; // LONG1, 8 bytes little-endian two's complement
    b[1] = 8;
    new DataView(b.buffer).setBigInt64(2, BigInt(v), true);
    this.parts.push(b);
    return this;
  }
  tuple(values: readonly number[]): this {
    this.op(0x28); // MARK
    for (const v of values) this.int(v);
    return this.op(0x74); // TUPLE
  }
  emptyOrderedDict(): this {
    return this.global('collections', 'OrderedDict').op(0x29, 0x52); // EMPTY_TUPLE REDUCE
  }
  bytes(): Uint8Array {
    return Buffer.concat([...this.parts, Uint8Array.of(0x2e)]); // STOP
  }
}

function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) strides[i] = strides[i + 1]! * shape[i + 1]!;
  return strides;
}

/** One tensor of `data.pkl`: a view of storage `i` (its index in the list). */
export interface PickledTensor {
  name: string;
  /** `FloatStorage`, `LongStorage`, … */
  storage: string;
  shape: readonly number[];
  /** Default: row-major contiguous. */
  stride?: readonly number[];
  /** Elements of the storage. Default: the view's. */
  storageNumel?: number;
}

/** `data.pkl`: `OrderedDict` of `_rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())`, storage `i` for tensor `i`. */
export function statePickle(tensors: readonly PickledTensor[]): Uint8Array {
  const p = new Pickler().emptyOrderedDict().op(0x28); // MARK for SETITEMS
  tensors.forEach((t, i) => {
    const numel = t.storageNumel ?? t.shape.reduce((a, b) => a * b, 1);
    p.str(t.name).global('torch._utils', '_rebuild_tensor_v2').op(0x28); // MARK
    p.op(0x28).str('storage').global('torch', t.storage).str(String(i)).str('cpu').int(numel).op(0x74, 0x51); // TUPLE BINPERSID
    p.int(0)
      .tuple(t.shape)
      .tuple(t.stride ?? rowMajorStrides(t.shape))
      .op(0x89)
      .emptyOrderedDict(); // NEWFALSE
    p.op(0x74, 0x52); // TUPLE REDUCE
  });
  return p.op(0x75).bytes(); // SETITEMS
}

const U32_MAX = 0xffffffff;

/**
 * Writes stored (uncompressed) zip entries, ZIP64 where sizes or offsets need it (or always, with
 * `forceZip64`), data aligned to 64 bytes as PyTorch does.
 */
export class ZipWriter {
  private offset = 0;
  private readonly central: Uint8Array[] = [];
  constructor(
    private readonly fd: number,
    private readonly forceZip64 = false,
  ) {}

  private put(b: Uint8Array): void {
    writeAll(this.fd, b);
    this.offset += b.length;
  }

  /** Adds an entry of `size` bytes given in `chunks`, with its CRC-32 computed beforehand (the header comes first). */
  add(name: string, size: number, crc: number, chunks: Iterable<Uint8Array>): void {
    const nameBytes = new TextEncoder().encode(name);
    const big = this.forceZip64 || size >= U32_MAX;
    const zip64 = big ? 20 : 0;
    const pad = (64 - ((this.offset + 30 + nameBytes.length + zip64 + 4) % 64)) % 64;
    const local = new Uint8Array(30 + nameBytes.length + zip64 + 4 + pad);
    const dv = new DataView(local.buffer);
    dv.setUint32(0, 0x04034b50, true);
    dv.setUint16(4, big ? 45 : 20, true);
    dv.setUint32(14, crc, true);
    dv.setUint32(18, big ? U32_MAX : size, true);
    dv.setUint32(22, big ? U32_MAX : size, true);
    dv.setUint16(26, nameBytes.length, true);
    dv.setUint16(28, zip64 + 4 + pad, true);
    local.set(nameBytes, 30);
    let at = 30 + nameBytes.length;
    if (big) {
      dv.setUint16(at, 0x0001, true);
      dv.setUint16(at + 2, 16, true);
      dv.setBigUint64(at + 4, BigInt(size), true);
      dv.setBigUint64(at + 12, BigInt(size), true);
      at += 20;
    }
    dv.setUint16(at, 0x4246, true); // 'FB': PyTorch's alignment padding
    dv.setUint16(at + 2, pad, true);
    const headerAt = this.offset;
    this.put(local);
    let written = 0;
    for (const c of chunks) {
      this.put(c);
      written += c.length;
    }
    if (written !== size) throw new SkySenseError('E_ARG', `zip entry '${name}': ${size} bytes declared, ${written} given`);
    this.central.push(this.centralEntry(nameBytes, crc, size, headerAt));
  }

  private centralEntry(name: Uint8Array, crc: number, size: number, headerAt: number): Uint8Array {
    const big = this.forceZip64 || size >= U32_MAX;
    const farOffset = this.forceZip64 || headerAt >= U32_MAX;
    const fields = [...(big ? [size, size] : []), ...(farOffset ? [headerAt] : [])];
    const extra = fields.length ? 4 + 8 * fields.length : 0;
    const e = new Uint8Array(46 + name.length + extra);
    const dv = new DataView(e.buffer);
    dv.setUint32(0, 0x02014b50, true);
    dv.setUint16(4, 45, true);
    dv.setUint16(6, fields.length ? 45 : 20, true);
    dv.setUint32(16, crc, true);
    dv.setUint32(20, big ? U32_MAX : size, true);
    dv.setUint32(24, big ? U32_MAX : size, true);
    dv.setUint16(28, name.length, true);
    dv.setUint16(30, extra, true);
    dv.setUint32(42, farOffset ? U32_MAX : headerAt, true); // a value in the ZIP64 extra field is marked 0xFFFFFFFF here (APPNOTE 4.5.3)
    e.set(name, 46);
    if (fields.length) {
      dv.setUint16(46 + name.length, 0x0001, true);
      dv.setUint16(48 + name.length, 8 * fields.length, true);
      fields.forEach((v, i) => dv.setBigUint64(50 + name.length + 8 * i, BigInt(v), true));
    }
    return e;
  }

  /** Writes the central directory and the end records. */
  finish(): void {
    const start = this.offset;
    for (const c of this.central) this.put(c);
    const size = this.offset - start;
    const count = this.central.length;
    const zip64 = this.forceZip64 || start >= U32_MAX || count >= 0xffff;
    if (zip64) {
      const z = new Uint8Array(56 + 20);
      const dv = new DataView(z.buffer);
      dv.setUint32(0, 0x06064b50, true);
      dv.setBigUint64(4, 44n, true);
      dv.setUint16(12, 45, true);
      dv.setUint16(14, 45, true);
      dv.setBigUint64(24, BigInt(count), true);
      dv.setBigUint64(32, BigInt(count), true);
      dv.setBigUint64(40, BigInt(size), true);
      dv.setBigUint64(48, BigInt(start), true);
      dv.setUint32(56, 0x07064b50, true); // locator
      dv.setBigUint64(64, BigInt(this.offset), true);
      dv.setUint32(72, 1, true);
      this.put(z);
    }
    const end = new Uint8Array(22);
    const dv = new DataView(end.buffer);
    dv.setUint32(0, 0x06054b50, true);
    dv.setUint16(8, zip64 ? 0xffff : count, true);
    dv.setUint16(10, zip64 ? 0xffff : count, true);
    dv.setUint32(12, zip64 ? U32_MAX : size, true);
    dv.setUint32(16, zip64 ? U32_MAX : start, true);
    this.put(end);
  }

  /** Adds a small entry held in memory. */
  addBytes(name: string, data: Uint8Array): void {
    this.add(name, data.length, crc32(data), [data]);
  }
}

/**
 * Saves a model's state dict (or a name → tensor map) as PyTorch does with
 * `torch.save(model.state_dict(), path)`: the zip format of PyTorch ≥ 1.6, a flat `OrderedDict`,
 * loadable by `torch.load` (also with `weights_only=True`) and by mmcv/mmengine's `load_checkpoint`.
 * float32 is stored as `FloatStorage`, integer buffers as `LongStorage` (int64, like PyTorch's index
 * buffers), bool as `BoolStorage`. Written atomically, one tensor at a time.
 * @example
 * ```ts
 * import { initBackend, Linear, PthFile, savePth } from '@skysense/core-tensor';
 * await initBackend();
 * savePth('linear.pth', new Linear(4, 2), { prefix: 'head.' }); // torch.load('linear.pth') in Python
 * const back = PthFile.open('linear.pth');
 * console.log(back.keys()); // ['head.weight', 'head.bias']
 * back.close();
 * ```
 * @throws SkySenseError `E_DTYPE` for a dtype PyTorch checkpoints do not hold here (complex, string); `E_IO` when the file cannot be written.
 */
export function savePth(path: string, state: Module | Map<string, Tensor>, options: SavePthOptions = {}): void {
  const map = state instanceof Map ? state : state.stateDict();
  const entries = [...map].map(([name, t]) => {
    const kind = STORAGE[t.dtype];
    if (!kind) throw new SkySenseError('E_DTYPE', `savePth: tensor '${name}' is ${t.dtype}; expected float32, int32 or bool`);
    return { name: `${options.prefix ?? ''}${name}`, shape: t.shape, t, ...kind };
  });
  withAtomicFile(path, (fd) => {
    const zip = new ZipWriter(fd);
    zip.addBytes('archive/data.pkl', statePickle(entries));
    zip.addBytes('archive/byteorder', new TextEncoder().encode('little'));
    entries.forEach(({ t, dtype }, i) => zip.addBytes(`archive/data/${i}`, tensorToRaw(t, dtype).data));
    zip.addBytes('archive/version', new TextEncoder().encode('3\n'));
    zip.finish();
  });
}
