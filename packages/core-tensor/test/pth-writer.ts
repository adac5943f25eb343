/**
 * Writes synthetic PyTorch zip checkpoints (the layout torch.save uses: `<archive>/data.pkl`,
 * `<archive>/data/<key>` stored entries, `<archive>/version`), always with ZIP64 records, streaming
 * the tensor bytes — for tests and the multi-gigabyte streaming bench. Test code only.
 */
import * as fs from 'node:fs';

/** A float32 tensor of the synthetic checkpoint; `fill(offset, chunk)` writes its bytes in pieces. */
export interface SyntheticTensor {
  name: string;
  shape: number[];
  fill: (byteOffset: number, chunk: Uint8Array) => void;
  /** A view's strides (default contiguous) over a storage of `storageNumel` elements (default the tensor's). */
  stride?: number[];
  storageNumel?: number;
}

function pickle(tensors: SyntheticTensor[]): Uint8Array {
  const out: number[] = [];
  const bytes = (...b: number[]) => out.push(...b);
  const text = (s: string) => out.push(...new TextEncoder().encode(s));
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    bytes(0x58, b.length & 0xff, (b.length >> 8) & 0xff, (b.length >> 16) & 0xff, b.length >>> 24, ...b);
  };
  const int = (v: number) => bytes(0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
  const global = (m: string, n: string) => (bytes(0x63), text(`${m}\n${n}\n`));
  bytes(0x80, 2);
  global('collections', 'OrderedDict');
  bytes(0x29, 0x52, 0x28);
  tensors.forEach((t, i) => {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    str(t.name);
    global('torch._utils', '_rebuild_tensor_v2');
    bytes(0x28, 0x28);
    str('storage');
    global('torch', 'FloatStorage');
    str(String(i));
    str('cpu');
    int(t.storageNumel ?? numel);
    bytes(0x74, 0x51);
    int(0);
    bytes(0x28);
    t.shape.forEach(int);
    bytes(0x74, 0x28);
    let stride = numel;
    t.shape.forEach((d, k) => int(t.stride ? t.stride[k]! : (stride /= d)));
    bytes(0x74, 0x89);
    global('collections', 'OrderedDict');
    bytes(0x29, 0x52, 0x74, 0x52);
  });
  bytes(0x75, 0x2e);
  return Uint8Array.from(out);
}

/** Writes `tensors` as `<archive>/…` into `file` with ZIP64 headers. Returns the file size. */
export function writeSyntheticPth(file: string, tensors: SyntheticTensor[], archive = 'archive'): number {
  const fd = fs.openSync(file, 'w');
  let pos = 0;
  const write = (b: Uint8Array) => {
    fs.writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
  };
  const central: Uint8Array[] = [];
  const entry = (name: string, size: number, body: (write: (b: Uint8Array) => void) => void) => {
    const nameBytes = new TextEncoder().encode(name);
    const local = Buffer.alloc(30 + nameBytes.length + 20);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(45, 4);
    local.writeUInt32LE(0xffffffff, 18);
    local.writeUInt32LE(0xffffffff, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(20, 28);
    local.set(nameBytes, 30);
    local.writeUInt16LE(0x0001, 30 + nameBytes.length);
    local.writeUInt16LE(16, 32 + nameBytes.length);
    local.writeBigUInt64LE(BigInt(size), 34 + nameBytes.length);
    local.writeBigUInt64LE(BigInt(size), 42 + nameBytes.length);
    const offset = pos;
    write(local);
    body(write);
    const cd = Buffer.alloc(46 + nameBytes.length + 28);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(45, 4);
    cd.writeUInt16LE(45, 6);
    cd.writeUInt32LE(0xffffffff, 20);
    cd.writeUInt32LE(0xffffffff, 24);
    cd.writeUInt16LE(nameBytes.length, 28);
    cd.writeUInt16LE(28, 30);
    cd.writeUInt32LE(0xffffffff, 42);
    cd.set(nameBytes, 46);
    const x = 46 + nameBytes.length;
    cd.writeUInt16LE(0x0001, x);
    cd.writeUInt16LE(24, x + 2);
    cd.writeBigUInt64LE(BigInt(size), x + 4);
    cd.writeBigUInt64LE(BigInt(size), x + 12);
    cd.writeBigUInt64LE(BigInt(offset), x + 20);
    central.push(cd);
  };
  const pkl = pickle(tensors);
  entry(`${archive}/data.pkl`, pkl.length, (w) => w(pkl));
  const chunk = new Uint8Array(64 << 20);
  tensors.forEach((t, i) => {
    const bytes = 4 * (t.storageNumel ?? t.shape.reduce((a, b) => a * b, 1));
    entry(`${archive}/data/${i}`, bytes, (w) => {
      for (let off = 0; off < bytes; off += chunk.length) {
        const piece = chunk.subarray(0, Math.min(chunk.length, bytes - off));
        t.fill(off, piece);
        w(piece);
      }
    });
  });
  const version = new TextEncoder().encode('3\n');
  entry(`${archive}/version`, version.length, (w) => w(version));
  const cdStart = pos;
  central.forEach(write);
  const cdSize = pos - cdStart;
  const z64 = Buffer.alloc(56 + 20 + 22);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeUInt16LE(45, 12);
  z64.writeUInt16LE(45, 14);
  z64.writeBigUInt64LE(BigInt(central.length), 24);
  z64.writeBigUInt64LE(BigInt(central.length), 32);
  z64.writeBigUInt64LE(BigInt(cdSize), 40);
  z64.writeBigUInt64LE(BigInt(cdStart), 48);
  z64.writeUInt32LE(0x07064b50, 56);
  z64.writeBigUInt64LE(BigInt(pos), 64);
  z64.writeUInt32LE(1, 72);
  z64.writeUInt32LE(0x06054b50, 76);
  z64.writeUInt16LE(0xffff, 84);
  z64.writeUInt16LE(0xffff, 86);
  z64.writeUInt32LE(0xffffffff, 88);
  z64.writeUInt32LE(0xffffffff, 92);
  write(z64);
  fs.closeSync(fd);
  return pos;
}
