import { inflateRawSync } from 'node:zlib';
import { checkExpansion } from '../limits';
import { SkySenseError } from '../errors';
import type { ByteSource } from './byte-source';

/** One file of a zip archive. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  /** Absolute offset of the entry's (compressed) data. */
  dataOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_DIRECTORY = 256 * 1024 * 1024;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u64(dv: DataView, at: number, what: string, src: ByteSource): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new SkySenseError('E_CHECKPOINT', `${src.name}: zip ${what} ${v} is impossibly large (corrupt file)`);
  return Number(v);
}

/** Whether the bytes start like a zip file (`PK\x03\x04`). */
export function isZip(head: Uint8Array): boolean {
  return head.length >= 4 && view(head).getUint32(0, true) === LOCAL;
}

function findEndRecord(src: ByteSource): { dv: DataView; at: number; base: number } {
  const tail = Math.min(src.size, 22 + 65535);
  const base = src.size - tail;
  const buf = src.read(base, tail);
  const dv = view(buf);
  for (let i = tail - 22; i >= 0; i--) if (dv.getUint32(i, true) === EOCD) return { dv, at: i, base };
  throw new SkySenseError('E_CHECKPOINT', `${src.name}: no zip end-of-central-directory record (truncated or not a zip file)`);
}

/**
 * Reads a zip archive's central directory (ZIP64 included) without reading any entry data.
 * @throws SkySenseError `E_CHECKPOINT` for truncated or inconsistent archives.
 */
export function readZipDirectory(src: ByteSource): Map<string, ZipEntry> {
  const { dv, at, base } = findEndRecord(src);
  let count = dv.getUint16(at + 10, true);
  let cdSize = dv.getUint32(at + 12, true);
  let cdOffset = dv.getUint32(at + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = at - 20;
    if (loc < 0 || dv.getUint32(loc, true) !== ZIP64_LOCATOR) throw new SkySenseError('E_CHECKPOINT', `${src.name}: zip64 locator missing`);
    const recOffset = u64(dv, loc + 8, 'zip64 record offset', src);
    const rec = view(src.read(recOffset, 56));
    if (rec.getUint32(0, true) !== ZIP64_EOCD) throw new SkySenseError('E_CHECKPOINT', `${src.name}: zip64 end record missing`);
    count = u64(rec, 32, 'entry count', src);
    cdSize = u64(rec, 40, 'directory size', src);
    cdOffset = u64(rec, 48, 'directory offset', src);
  }
  if (cdSize > MAX_DIRECTORY || cdOffset + cdSize > base + at) {
    throw new SkySenseError('E_CHECKPOINT', `${src.name}: zip central directory (${cdSize} bytes at ${cdOffset}) is out of range`);
  }
  if (count > cdSize / 46)
    throw new SkySenseError('E_CHECKPOINT', `${src.name}: zip claims ${count} entries in a ${cdSize}-byte directory`);
  const cd = src.read(cdOffset, cdSize);
  const cdv = view(cd);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cdv.getUint32(p, true) !== CENTRAL)
      throw new SkySenseError('E_CHECKPOINT', `${src.name}: corrupt zip directory entry ${i}`);
    const method = cdv.getUint16(p + 10, true);
    let compressedSize = cdv.getUint32(p + 20, true);
    let size = cdv.getUint32(p + 24, true);
    const nameLen = cdv.getUint16(p + 28, true);
    const extraLen = cdv.getUint16(p + 30, true);
    const commentLen = cdv.getUint16(p + 32, true);
    let localOffset = cdv.getUint32(p + 42, true);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length)
      throw new SkySenseError('E_CHECKPOINT', `${src.name}: zip directory entry ${i} runs past the directory`);
    const name = new TextDecoder().decode(cd.subarray(p + 46, p + 46 + nameLen));
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = cdv.getUint16(e, true);
      const len = cdv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + len) throw new SkySenseError('E_CHECKPOINT', `${src.name}: short zip64 field for '${name}'`);
          const v = u64(cdv, q, 'zip64 field', src);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localOffset === 0xffffffff) localOffset = next();
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, dataOffset: dataOffsetOf(src, name, localOffset, compressedSize) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

function dataOffsetOf(src: ByteSource, name: string, localOffset: number, compressedSize: number): number {
  const local = view(src.read(localOffset, 30));
  if (local.getUint32(0, true) !== LOCAL) throw new SkySenseError('E_CHECKPOINT', `${src.name}: bad local header for '${name}'`);
  const start = localOffset + 30 + local.getUint16(26, true) + local.getUint16(28, true);
  if (start + compressedSize > src.size)
    throw new SkySenseError(
      'E_CHECKPOINT',
      `${src.name}: entry '${name}' (${compressedSize} bytes at ${start}) runs past the end of the file (truncated?)`,
    );
  return start;
}

/**
 * Reads `length` bytes at `offset` inside an entry's uncompressed data. Stored entries are read in
 * place (random access); deflated ones are inflated whole (only small entries are compressed in
 * practice), with the output size capped at the declared size.
 */
export function readZipEntry(src: ByteSource, entry: ZipEntry, offset = 0, length = entry.size - offset): Uint8Array {
  if (offset < 0 || length < 0 || offset + length > entry.size) {
    throw new SkySenseError(
      'E_CHECKPOINT',
      `${src.name}: read of ${length} bytes at ${offset} outside entry '${entry.name}' (${entry.size} bytes)`,
    );
  }
  if (entry.method === 0) return src.read(entry.dataOffset + offset, length);
  if (entry.method !== 8)
    throw new SkySenseError('E_UNSUPPORTED', `${src.name}: entry '${entry.name}' uses zip compression method ${entry.method}`);
  checkExpansion(`${src.name}: entry '${entry.name}'`, entry.compressedSize, entry.size);
  let data: Uint8Array;
  try {
    data = inflateRawSync(src.read(entry.dataOffset, entry.compressedSize), { maxOutputLength: Math.max(entry.size, 1) });
  } catch (e) {
    throw new SkySenseError('E_CHECKPOINT', `${src.name}: entry '${entry.name}' does not inflate (${(e as Error).message})`);
  }
  if (data.length !== entry.size)
    throw new SkySenseError('E_CHECKPOINT', `${src.name}: entry '${entry.name}' inflates to ${data.length} bytes, not ${entry.size}`);
  return data.subarray(offset, offset + length);
}
