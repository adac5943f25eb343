import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SkySenseError } from './errors';

/**
 * Writes a file atomically: `write` fills a temporary file beside `target` (same folder, so the
 * rename cannot cross file systems), which is flushed to disk and renamed over `target`. If
 * `write` throws or the process dies, `target` keeps its old content and the temporary file is
 * removed (on a throw) or left with a `.tmp-` name (on a crash).
 */
export function withAtomicFile(target: string, write: (fd: number) => void): void {
  const dir = path.dirname(path.resolve(target));
  if (!fs.existsSync(dir)) throw new SkySenseError('E_IO', `cannot write ${target}: folder ${dir} does not exist`);
  const tmp = path.join(dir, `.${path.basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | null = fs.openSync(tmp, 'w');
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes all of `data` at the current position of `fd`, in chunks a single write call accepts. */
export function writeAll(fd: number, data: Uint8Array): void {
  const CHUNK = 1 << 30;
  for (let off = 0; off < data.byteLength;) {
    off += fs.writeSync(fd, data, off, Math.min(CHUNK, data.byteLength - off));
  }
}

/** `fs.writeFileSync`, atomically (see {@link withAtomicFile}). */
export function writeFileAtomic(target: string, data: Uint8Array | string): void {
  withAtomicFile(target, (fd) => writeAll(fd, typeof data === 'string' ? new TextEncoder().encode(data) : data));
}
