import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { SkySenseError, ensureDir, writeFileAtomic } from '@skysense/core-tensor';

/** One public sample file: where it goes, its checksum, and where it comes from (a URL, or a member of a `.tar.bz2` archive). */
export interface SampleFile {
  path: string;
  sha256: string;
  bytes: number;
  url?: string;
  archive?: string;
  member?: string;
}

/**
 * The public satellite samples SkySense's tests and demos use, with their original sources
 * (BigEarthNet via kai-tub/bigearthnet_common and Eyobed-Abby/fusion-lora-skysense, NAIP via
 * opengeos/data, eo-learn's test patch, the Dubai aerial set) and SHA-256 checksums.
 */
export const SAMPLE_FILES: readonly SampleFile[] = (createRequire(import.meta.url)('../samples.json') as { files: SampleFile[] }).files;

/** Options of {@link downloadSamples}. */
export interface DownloadSamplesOptions {
  /** Folder to fill. Default: `SKYSENSE_SAMPLES`, else `./samples`. */
  target?: string;
  /** Called after each file with how many are done, out of how many, and the file. Default: none. */
  onProgress?: (done: number, total: number, file: SampleFile) => void;
  /** The fetch to use (tests pass one for a local server). Default: the global `fetch`. */
  fetch?: typeof fetch;
  /** Which files. Default: all of {@link SAMPLE_FILES}. */
  files?: readonly SampleFile[];
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function findFile(dir: string, name: string): string | null {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) {
      const hit = findFile(p, name);
      if (hit) return hit;
    } else if (e === name) return p;
  }
  return null;
}

/**
 * Downloads the sample files that are missing (or whose checksum differs) into `target`, checks
 * each file's SHA-256 and writes it atomically. Files already present with the right checksum are
 * skipped. Needs internet access, and `tar` with bzip2 for the BigEarthNet archives.
 * @returns the target folder and how many files were fetched.
 * @throws SkySenseError `E_IO` naming the URL (HTTP error) or the folder, `E_NETWORK` naming the URL (no connection), `E_FORMAT` naming the file (checksum mismatch).
 */
export async function downloadSamples(options: DownloadSamplesOptions = {}): Promise<{ target: string; fetched: number; present: number }> {
  const target = resolve(options.target ?? process.env.SKYSENSE_SAMPLES ?? 'samples');
  const get = options.fetch ?? fetch;
  const files = options.files ?? SAMPLE_FILES;
  const todo = files.filter((f) => !(existsSync(join(target, f.path)) && sha256(readFileSync(join(target, f.path))) === f.sha256));
  if (todo.length) ensureDir(target, 'sample folder'); // a folder that cannot be written is refused before any download
  let done = 0;
  const place = (f: SampleFile, bytes: Uint8Array) => {
    if (sha256(bytes) !== f.sha256)
      throw new SkySenseError('E_FORMAT', `${f.path}: checksum mismatch (got ${sha256(bytes)}, expected ${f.sha256})`);
    mkdirSync(dirname(join(target, f.path)), { recursive: true });
    writeFileAtomic(join(target, f.path), bytes);
    options.onProgress?.(++done, todo.length, f);
  };
  const bytesOf = async (url: string) => {
    let res: Response;
    try {
      res = await get(url);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new SkySenseError(
        'E_NETWORK',
        `cannot download ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message} (no internet access? copy the samples into ${target} instead)`,
        { cause: e },
      );
    }
    if (!res.ok) throw new SkySenseError('E_IO', `${url}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
  for (const archive of new Set(todo.flatMap((f) => (f.archive ? [f.archive] : [])))) {
    const work = mkdtempSync(join(tmpdir(), 'skysense-samples-'));
    try {
      writeFileSync(join(work, 'a.tar.bz2'), await bytesOf(archive));
      execFileSync('tar', ['-xjf', 'a.tar.bz2'], { cwd: work });
      for (const f of todo.filter((x) => x.archive === archive)) {
        const found = findFile(work, f.member!);
        if (!found) throw new SkySenseError('E_FORMAT', `${archive}: ${f.member} is not in the archive`);
        place(f, readFileSync(found));
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  for (const f of todo.filter((x) => x.url)) place(f, await bytesOf(f.url!));
  return { target, fetched: todo.length, present: files.length - todo.length };
}
