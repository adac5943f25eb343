import * as fs from 'node:fs';
import { SkySenseError } from '../errors';

/** Random-access bytes: a file read by offset (never whole), or a buffer. */
export interface ByteSource {
  /** For messages: the file path or a label. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Reads `length` bytes at `offset`. @throws SkySenseError `E_CHECKPOINT` past the end. */
  read(offset: number, length: number): Uint8Array;
  /** Fills `target` with the bytes at `offset` (no allocation). */
  readInto(offset: number, target: Uint8Array): Uint8Array;
  /** Releases the file handle. */
  close(): void;
}

const CHUNK = 1 << 30;

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= size)) {
    throw new SkySenseError(
      'E_CHECKPOINT',
      `${name}: read of ${length} bytes at ${offset} is outside the ${size}-byte file (truncated or corrupt?)`,
    );
  }
}

/** A file opened for random access. @throws SkySenseError `E_IO` if it cannot be opened. */
export function fileSource(path: string): ByteSource {
  let fd: number | null;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    throw new SkySenseError('E_IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  const size = fs.fstatSync(fd).size;
  return {
    name: path,
    size,
    read(offset, length) {
      return this.readInto(offset, new Uint8Array(length));
    },
    readInto(offset, out) {
      checkRange(path, size, offset, out.length);
      if (fd === null) throw new SkySenseError('E_IO', `${path} is closed`);
      for (let done = 0; done < out.length;) {
        const n = fs.readSync(fd, out, done, Math.min(CHUNK, out.length - done), offset + done);
        if (n === 0) throw new SkySenseError('E_CHECKPOINT', `${path}: file ended early`);
        done += n;
      }
      return out;
    },
    close() {
      if (fd !== null) fs.closeSync(fd);
      fd = null;
    },
  };
}

/** Bytes already in memory (tests, small files). */
export function bufferSource(bytes: Uint8Array, name = '<buffer>'): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    read(offset, length) {
      checkRange(name, bytes.byteLength, offset, length);
      return bytes.subarray(offset, offset + length);
    },
    readInto(offset, target) {
      checkRange(name, bytes.byteLength, offset, target.length);
      target.set(bytes.subarray(offset, offset + target.length));
      return target;
    },
    close() {},
  };
}
