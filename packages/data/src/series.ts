import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { SkySenseError } from '@skysense/core-tensor';
import type { ClassDef, PlanarImage } from './images';
import type { LabelledSample } from './datasets';
import { type Raster, rasterCentre } from './raster';
import { loadSentinel2, planarStack } from './sentinel';

/** One indexed time series: its frames (files and dates, in date order) and class. */
export interface SeriesEntry {
  name: string;
  label: number;
  frames: { file: string; date: string }[];
}

/** Options of {@link indexSeriesFolder}. */
export interface SeriesFolderOptions {
  /** The class list (a run's): sub-folders are matched by name, others refused. Default: the sub-folders, sorted. */
  classes?: readonly string[];
}

const TIF = /\.tiff?$/i;
const grey = (n: number): [number, number, number] => [n, n, n];

/**
 * Indexes Sentinel-2 time series laid out as an ImageFolder of series (fMoW-Sentinel style):
 * `<dir>/<class>/<sample>/<frame>.tif`, each frame one multi-band file (13-band L1C, 12-band L2A or
 * SkySense's 10, told apart by the band count: see `S2_PRODUCT_BANDS`), its
 * date in the file name (`…2017-06-13…`, `…20170613…`); frames sorted by date, series of any length.
 * @throws SkySenseError `E_IO` (no folder), `E_DATA` (no class folders, an empty series, a class not in `classes`), `E_DATE` (a frame without a date).
 */
export function indexSeriesFolder(dir: string, options: SeriesFolderOptions = {}): { classes: ClassDef[]; entries: SeriesEntry[] } {
  if (!existsSync(dir)) throw new SkySenseError('E_IO', `${dir}: no such folder`);
  const sub = (d: string) =>
    readdirSync(d)
      .filter((e) => statSync(join(d, e)).isDirectory())
      .sort();
  const folders = sub(dir);
  const names = options.classes ?? folders;
  if (names.length < 2)
    throw new SkySenseError('E_DATA', `${dir}: expected one sub-folder of series per class (at least 2), got ${names.length}`);
  const entries: SeriesEntry[] = [];
  for (const cls of folders) {
    const label = names.indexOf(cls);
    if (label < 0)
      throw new SkySenseError('E_DATA', `${join(dir, cls)}: class '${cls}' is not among the run's classes (${names.join(', ')})`);
    for (const sample of sub(join(dir, cls))) {
      const files = readdirSync(join(dir, cls, sample)).filter((f) => TIF.test(f));
      if (files.length === 0) throw new SkySenseError('E_DATA', `${join(dir, cls, sample)}: no frame (*.tif) in the series`);
      const frames = files.map((f) => {
        const date = dateInName(basename(f, extname(f)));
        if (!date) throw new SkySenseError('E_DATE', `${join(dir, cls, sample, f)}: no date in the file name (…20170613… or …2017-06-13…)`);
        return { file: join(dir, cls, sample, f), date };
      });
      frames.sort((a, b) => a.date.localeCompare(b.date));
      entries.push({ name: `${cls}/${sample}`, label, frames });
    }
  }
  return { classes: names.map((n, i) => ({ name: n, color: grey(i) })), entries };
}

/** The first real calendar date `YYYY-MM-DD` / `YYYYMMDD` in a file name, or null. */
function dateInName(name: string): string | null {
  for (const m of name.matchAll(/(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)/g)) {
    const iso = `${m[1]}-${m[2]}-${m[3]}`;
    const t = Date.parse(`${iso}T00:00:00Z`);
    if (!Number.isNaN(t) && new Date(t).toISOString().startsWith(iso)) return iso;
  }
  return null;
}

/** The centre of a raster in WGS 84, or nothing where its CRS is unknown or cannot be converted (the location is optional here). */
function centreIfKnown(grid: Raster): { lat?: number; lon?: number } {
  if (grid.epsg === null) return {};
  try {
    return rasterCentre(grid);
  } catch {
    return {};
  }
}

/** Decodes one series: a 10-band planar image per frame (with its nodata mask), dates, the location of the first frame where it is georeferenced. */
export async function decodeSeries(e: SeriesEntry): Promise<LabelledSample> {
  const images: PlanarImage[] = [];
  let where: { lat?: number; lon?: number } = {};
  for (const [k, f] of e.frames.entries()) {
    const s = await loadSentinel2({ file: f.file, bandMap: 'auto' });
    images.push(planarStack(s));
    if (k === 0) where = centreIfKnown(s.grid);
  }
  const size = `${images[0]!.width}×${images[0]!.height}`;
  const other = images.findIndex((img) => `${img.width}×${img.height}` !== size);
  if (other >= 0)
    throw new SkySenseError(
      'E_SHAPE',
      `${e.frames[other]!.file}: frame of ${images[other]!.width}×${images[other]!.height} px, the series' first is ${size}`,
    );
  return { name: e.name, images, label: e.label, dates: e.frames.map((f) => f.date), ...where };
}
