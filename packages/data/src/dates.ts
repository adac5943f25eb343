import { existsSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SkySenseError, readJsonFile } from '@skysense/core-tensor';

/**
 * Finds an acquisition date (ISO `YYYY-MM-DD`) for a file, from, in order: a BigEarthNet
 * `*_labels_metadata.json` beside it (`acquisition_date` / `acquisition_time`), the file or folder
 * name (`…20170613T101031…`, `…_20090818.tif`), or the TIFF `DateTime` tag. Returns null when none.
 */
export function findAcquisitionDate(file: string, tiffDate: string | null = null): string | null {
  const dir = file.replace(/[^/\\]*$/, '') || '.';
  if (existsSync(dir)) {
    const meta = readdirSync(dir).find((f) => f.endsWith('_labels_metadata.json'));
    if (meta) {
      const json = readJsonFile<{ acquisition_date?: string; acquisition_time?: string } | null>(join(dir, meta), 'labels metadata') ?? {};
      const raw = json.acquisition_date ?? json.acquisition_time;
      if (raw) return raw.slice(0, 10);
    }
  }
  const m = /(?:^|[_\-/\\])(\d{4})(\d{2})(\d{2})(?:T\d{6}|[_.\-/\\]|$)/.exec(`${basename(dir)}/${basename(file)}`);
  if (m && Number(m[2]) >= 1 && Number(m[2]) <= 12 && Number(m[3]) >= 1 && Number(m[3]) <= 31) return `${m[1]}-${m[2]}-${m[3]}`;
  const t = tiffDate && /^(\d{4}):(\d{2}):(\d{2})/.exec(tiffDate);
  return t ? `${t[1]}-${t[2]}-${t[3]}` : null;
}

/** {@link findAcquisitionDate}, or an error saying the date must be given. */
export function requireAcquisitionDate(file: string, tiffDate: string | null = null): string {
  const d = findAcquisitionDate(file, tiffDate);
  if (!d)
    throw new SkySenseError('E_DATE', `${file}: no acquisition date in metadata, file name or TIFF tags; give "date" in the manifest`);
  return d;
}
