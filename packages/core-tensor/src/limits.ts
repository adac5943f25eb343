import { readFileSync } from 'node:fs';
import { SkySenseError } from './errors';
import { fsError } from './atomic-file';

/** Default {@link decodeBudget}: 4 GiB, a sixth of a 24 GB machine. */
export const DEFAULT_DECODE_BUDGET = 4 * 1024 ** 3;

/** Data may grow this many times over its stored size (compressed or broadcast) once past {@link EXPANSION_FLOOR}. */
export const MAX_EXPANSION_RATIO = 200;

/** Expansion below this many bytes is never refused. */
export const EXPANSION_FLOOR = 64 * 1024 ** 2;

/** Formats a byte count: `1.2 GB`, `300 MB`, `12 kB`, `7 bytes`. */
export function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} bytes`;
}

/**
 * The most bytes one decoded image, raster or tensor may take: `SKYSENSE_MAX_DECODE_BYTES` (bytes,
 * or with a `K`/`M`/`G` suffix), else {@link DEFAULT_DECODE_BUDGET}. Readers check sizes their
 * headers declare against it before allocating anything.
 * @throws SkySenseError `E_ARG` for an unreadable `SKYSENSE_MAX_DECODE_BYTES`.
 */
export function decodeBudget(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SKYSENSE_MAX_DECODE_BYTES;
  if (raw === undefined || raw === '') return DEFAULT_DECODE_BUDGET;
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(raw.trim());
  const bytes = m ? Math.round(Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase())) : 0;
  if (!(bytes > 0))
    throw new SkySenseError('E_ARG', `SKYSENSE_MAX_DECODE_BYTES: expected a byte count above 0 such as 8G or 500M, got '${raw}'`);
  return bytes;
}

/**
 * Refuses to decode `bytes` (what the header declares: `detail` says how it comes about, e.g.
 * `20000 × 20000 × 3 float32`) when it is over `budget`.
 * @throws SkySenseError `E_LIMIT` naming `what`, the size and the budget.
 */
export function checkDecodeBudget(what: string, bytes: number, detail: string, budget = decodeBudget()): void {
  if (!(bytes <= budget))
    throw new SkySenseError(
      'E_LIMIT',
      `${what}: decoding needs ${formatBytes(bytes)} (${detail}), over the ${formatBytes(budget)} budget (raise SKYSENSE_MAX_DECODE_BYTES to allow it)`,
    );
}

/**
 * Refuses data that would expand from `stored` to `expanded` bytes (a compressed entry, a
 * broadcast tensor) more than {@link MAX_EXPANSION_RATIO} times once past {@link EXPANSION_FLOOR},
 * or past the decode budget.
 * @throws SkySenseError `E_LIMIT`.
 */
export function checkExpansion(what: string, stored: number, expanded: number): void {
  checkDecodeBudget(what, expanded, `expanded from ${formatBytes(stored)}`);
  if (expanded > EXPANSION_FLOOR && expanded > MAX_EXPANSION_RATIO * Math.max(stored, 1))
    throw new SkySenseError(
      'E_LIMIT',
      `${what}: expands ${formatBytes(stored)} to ${formatBytes(expanded)} (${Math.round(expanded / Math.max(stored, 1))}×; at most ${MAX_EXPANSION_RATIO}× beyond ${formatBytes(EXPANSION_FLOOR)}): a decompression bomb or a corrupt file`,
    );
}

/**
 * Reads and parses a JSON file.
 * @param what what the file is, for messages (`class table`, `run settings`).
 * @throws SkySenseError `E_IO` (missing or unreadable, with the cause) or `E_DATA` (not valid JSON, with the parser's position), naming the file.
 */
export function readJsonFile<T = unknown>(file: string, what = 'JSON file'): T {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw fsError(e, `${what} ${file}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new SkySenseError('E_DATA', `${what} ${file}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * A list for a one-line message: all items when there are at most `max`, else the first `max`,
 * the count of the rest and a hint where the full list is.
 */
export function summarizeList(items: readonly string[], max = 5, full = 'error.details / --verbose list them all'): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')}, … and ${items.length - max} more (${full})`;
}

/**
 * A name that comes from input data (a manifest's sample name, an image's) as a safe file name:
 * characters other than letters, digits, `.`, `_` and `-` become `_`, leading dots are removed, at
 * most 120 characters; never empty, never `.`/`..`, so `join(out, safeFileName(n))` stays in `out`.
 */
export function safeFileName(name: string): string {
  const s = name
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[.]+/, '')
    .slice(0, 120);
  return s === '' ? '_' : s;
}

/**
 * File names for outputs named after inputs: each made safe ({@link safeFileName}: it cannot leave
 * the output folder). @returns input name → file name.
 * @throws SkySenseError `E_ARG` when two inputs would write the same file.
 */
export function uniqueFileNames(names: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const by = new Map<string, string>();
  for (const n of names) {
    const safe = safeFileName(n);
    const other = by.get(safe);
    if (other !== undefined)
      throw new SkySenseError('E_ARG', `inputs '${other}' and '${n}' would both be written as ${safe}.*; give them distinct names`);
    by.set(safe, n);
    out.set(n, safe);
  }
  return out;
}

/**
 * Runs file reads concurrently but reports failures in input order: when several reads fail, the
 * error of the first one listed is thrown, so the same bad input always gives the same message.
 */
export async function allInOrder<T>(jobs: Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(jobs);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
