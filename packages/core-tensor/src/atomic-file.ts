import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { SkySenseError } from './errors';

const FS_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a folder, expected a file',
  ENOTDIR: 'a part of the path is not a folder',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EEXIST: 'already exists',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'busy',
  EXDEV: 'crosses file systems',
  EIO: 'input/output error',
  EFBIG: 'file too large',
  EPIPE: 'broken pipe',
};

/** Whether `e` is a Node file-system error: an errno code (`ENOENT`, `EACCES`, `EIO`, …) or a file too large for a buffer. */
export function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const code = e instanceof Error ? (e as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' && (/^E[A-Z0-9]+$/.test(code) || code === 'ERR_FS_FILE_TOO_LARGE');
}

/**
 * A file-system error as a one-line `E_IO` {@link SkySenseError} naming `what` (the user's path and
 * what was being done with it) and the cause in words: `cannot write out/x.png: permission denied (EACCES)`.
 * Anything that is not a file-system error is returned unchanged.
 */
export function fsError(e: unknown, what: string): unknown {
  if (!isFsError(e)) return e;
  const words =
    FS_ERRORS[e.code!] ??
    (e.code === 'ERR_FS_FILE_TOO_LARGE' ? 'too large to read into memory' : e.message.replace(/^E[A-Z0-9]+: /, '').split(',')[0]);
  return new SkySenseError('E_IO', `${what}: ${words} (${e.code})`, { cause: e });
}

/** Runs `fn`, turning file-system errors into {@link fsError}s about `what`. */
export function withFsErrors<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fsError(e, what);
  }
}

/** Whether a process with this pid runs on this machine (a pid we may not signal counts as running). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const TEMP = /^\..+\.tmp-(\d+)-[0-9a-f]{8}$/;

/**
 * Removes the temporary files that atomic writes of processes that died (a crash, SIGKILL) left in
 * `dir` (`.<name>.tmp-<pid>-<hex>` whose pid no longer runs); those of running processes are kept.
 * `only` limits it to the temporaries of one target name. @returns the names removed.
 */
export function removeStaleTemps(dir: string, only?: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => {
    const m = TEMP.exec(n);
    if (!m || (only !== undefined && !n.startsWith(`.${only}.tmp-`)) || pidAlive(Number(m[1]))) return false;
    fs.rmSync(path.join(dir, n), { force: true });
    return true;
  });
}

/**
 * Where a write to `target` lands, and what is there: a device, FIFO or socket reached through
 * links is used in place (`/dev/stdout` piped); an existing file is its real path (links resolved
 * by the system, so link chains through linked folders land where the kernel would); a dangling
 * link is followed to the file it names.
 */
function resolveTarget(target: string): { file: string; stat: fs.Stats | null } {
  let stat: fs.Stats | null = null;
  try {
    stat = fs.statSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fsError(e, `cannot write ${target}`);
  }
  if (stat) return { file: stat.isFile() ? fs.realpathSync(target) : target, stat };
  let file = path.resolve(target);
  for (let hops = 0; hops < 40; hops++) {
    let link: string;
    try {
      if (!fs.lstatSync(file).isSymbolicLink()) return { file, stat: null };
      link = fs.readlinkSync(file);
    } catch {
      return { file, stat: null };
    }
    let dir = path.dirname(file);
    try {
      dir = fs.realpathSync(dir);
    } catch {
      // a missing folder: reported when the write is attempted
    }
    file = path.resolve(dir, link);
  }
  throw new SkySenseError('E_IO', `cannot write ${target}: too many levels of symbolic links (ELOOP)`);
}

/** Folders whose crashed temporaries this process has removed (once per folder: a folder of N outputs is not listed N times). */
const cleanedDirs = new Set<string>();

/** `/dev/stdout`, `/dev/stderr`, `/dev/fd/N`, `/proc/self/fd/N`. */
const STD_STREAM = /^\/(?:dev\/(stdout|stderr)|(?:dev|proc\/self)\/fd\/(\d+))$/;

function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // some file systems cannot fsync a folder; the rename itself is still atomic
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/**
 * Writes a file atomically: `write` fills a temporary file beside the target (same folder, so the
 * rename cannot cross file systems), which is flushed to disk and renamed over it; the folder is
 * then flushed too. If `write` throws or the process dies, the target keeps its old content; the
 * temporary file is removed on a throw, and a crash's leftover is removed by this process's first
 * write into that folder ({@link removeStaleTemps}).
 *
 * The path keeps the user's meaning: a symbolic link is written through (the file it points to is
 * replaced, the link stays); `/dev/stdout`, `/dev/stderr` and `/dev/fd/N` are written on the
 * process's descriptor; a character device or FIFO (`/dev/null`, a named pipe) is written in place,
 * never replaced; an existing file keeps its permission bits. A folder, a block device or a socket
 * is refused.
 * @throws SkySenseError `E_IO` naming `target` (not the temporary file) and the cause.
 */
export function withAtomicFile(target: string, write: (fd: number) => void): void {
  const std = STD_STREAM.exec(target);
  if (std) {
    // this process's own stream (a terminal, pipe or socket): written on its descriptor
    const fd = std[1] === 'stdout' ? 1 : std[1] === 'stderr' ? 2 : Number(std[2]);
    withFsErrors(`cannot write ${target}`, () => write(fd));
    return;
  }
  const { file, stat } = resolveTarget(target);
  if (stat?.isDirectory()) throw new SkySenseError('E_IO', `cannot write ${target}: is a folder, expected a file (EISDIR)`);
  if (stat?.isBlockDevice() || stat?.isSocket())
    throw new SkySenseError('E_IO', `cannot write ${target}: it is a ${stat.isSocket() ? 'socket' : 'block device'}, not a file`);
  if (stat?.isCharacterDevice() || stat?.isFIFO()) {
    const fd = withFsErrors(`cannot write ${target}`, () => fs.openSync(file, 'w'));
    try {
      withFsErrors(`cannot write ${target}`, () => write(fd));
    } finally {
      fs.closeSync(fd);
    }
    return;
  }
  const dir = path.dirname(file);
  if (!fs.existsSync(dir)) throw new SkySenseError('E_IO', `cannot write ${target}: folder ${dir} does not exist`);
  if (!cleanedDirs.has(dir)) {
    cleanedDirs.add(dir);
    removeStaleTemps(dir);
  }
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | null = withFsErrors(`cannot write ${target}`, () => fs.openSync(tmp, 'wx', stat ? stat.mode & 0o7777 : 0o666));
  try {
    withFsErrors(`cannot write ${target}`, () => {
      if (stat) fs.fchmodSync(fd!, stat.mode & 0o7777);
      write(fd!);
      fs.fsyncSync(fd!);
      fs.closeSync(fd!);
      fd = null;
      fs.renameSync(tmp, file);
    });
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/** Writes all of `data` at the current position of `fd`, in chunks a single write call accepts. */
export function writeAll(fd: number, data: Uint8Array): void {
  const CHUNK = 1 << 30;
  for (let off = 0; off < data.byteLength;) {
    off += fs.writeSync(fd, data, off, Math.min(CHUNK, data.byteLength - off));
  }
}

/** `fs.writeFileSync`, atomically and with the path's meaning kept (see {@link withAtomicFile}). */
export function writeFileAtomic(target: string, data: Uint8Array | string): void {
  withAtomicFile(target, (fd) => writeAll(fd, typeof data === 'string' ? new TextEncoder().encode(data) : data));
}

/**
 * Creates a folder (and its parents) for output.
 * @throws SkySenseError `E_IO` when the path is a file or cannot be created (naming it and the cause).
 */
export function ensureDir(dir: string, what = 'output folder'): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory())
    throw new SkySenseError('E_IO', `${what} ${dir}: is a file, expected a folder (ENOTDIR)`);
  withFsErrors(`cannot create ${what} ${dir}`, () => fs.mkdirSync(dir, { recursive: true }));
}
