import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { SkySenseError, dayOfYear, tf, type Tensor } from '@skysense/core-tensor';
import { NORMALIZATION, normalizeChannels, type ChannelStats } from './normalization';
import { rasterCentre } from './raster';
import { type BandStack, type MissingBands, type S2Source, loadHr, loadSentinel1, loadSentinel2 } from './sentinel';
import { requireAcquisitionDate } from './dates';

/** One Sentinel-2 frame in a manifest: a folder of band files, per-band files, or a multi-band file with `bandMap`; `date` overrides metadata. */
export type S2FrameEntry = ({ folder: string } | { bands: Record<string, string> } | { file: string; bandMap: string[] }) & {
  date?: string;
};

/** One Sentinel-1 frame: a folder with `…_VV.tif` / `…_VH.tif`, or both files; `units` of the values (default dB). */
export type S1FrameEntry = ({ folder: string } | { vv: string; vh: string }) & {
  date?: string;
  units?: 'db' | 'linear';
  speckleFilter?: 'none' | 'lee';
};

/**
 * A sample as a JSON manifest describes it (paths relative to the manifest's folder):
 * `{ "name": "…", "hr": "tile.tif", "s2": [{ "folder": "…" }], "s1": [{ "vv": "…", "vh": "…" }], "lat": …, "lon": … }`.
 * `lat`/`lon` default to the centre of the first raster; dates default to what metadata says.
 */
export interface SampleManifest {
  name?: string;
  hr?: string | { file: string; bands?: 3 | 4 };
  s2?: S2FrameEntry[];
  s1?: S1FrameEntry[];
  lat?: number;
  lon?: number;
  /** Missing Sentinel-2 bands: refuse (default) or fill with the band mean. */
  missingBands?: MissingBands;
  /** Normalisation overrides per modality. */
  normalization?: Partial<Record<'hr' | 's2' | 's1', ChannelStats>>;
}

/** A loaded sample: normalised tensors in model layout (batch of one), dates, location. */
export interface LoadedSample {
  name: string;
  hr?: Tensor;
  s2?: { frames: Tensor; dates: string[] };
  s1?: { frames: Tensor; dates: string[] };
  lat: number;
  lon: number;
  /** Raw (unnormalised) first S2 frame, for pictures. */
  previewS2?: BandStack;
  /** Bands filled by the missing-band policy. */
  filledBands: string[];
}

/** Reads a manifest file: one sample, an array, or `{ samples: [...] }`; paths become absolute. */
export function readManifest(file: string): SampleManifest[] {
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SkySenseError('E_DATA', `${file}: not valid JSON (${(e as Error).message})`);
  }
  const list = Array.isArray(json) ? json : ((json as { samples?: unknown[] }).samples ?? [json]);
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  return (list as SampleManifest[]).map((s, i) => {
    if (typeof s !== 'object' || s === null || (!s.hr && !s.s2 && !s.s1))
      throw new SkySenseError('E_DATA', `${file}: sample ${i} names no hr, s2 or s1 input`);
    const mapPaths = (o: Record<string, unknown>): Record<string, unknown> =>
      Object.fromEntries(
        Object.entries(o).map(([k, v]): [string, unknown] => [
          k,
          typeof v === 'string' && !['date', 'units'].includes(k)
            ? abs(v)
            : k === 'bands' && v && typeof v === 'object'
              ? mapPaths(v as Record<string, unknown>)
              : v,
        ]),
      );
    return {
      ...s,
      hr: typeof s.hr === 'string' ? abs(s.hr) : s.hr ? { ...s.hr, file: abs(s.hr.file) } : undefined,
      s2: s.s2?.map((f) => mapPaths(f as unknown as Record<string, unknown>) as unknown as S2FrameEntry),
      s1: s.s1?.map((f) => mapPaths(f as unknown as Record<string, unknown>) as unknown as S1FrameEntry),
    };
  });
}

function checkLatLon(lat: number, lon: number, what: string): void {
  if (!(Number.isFinite(lat) && lat >= -90 && lat <= 90)) throw new SkySenseError('E_LATLON', `${what}: lat ${lat} is outside [-90, 90]`);
  if (!(Number.isFinite(lon) && lon >= -180 && lon <= 360))
    throw new SkySenseError('E_LATLON', `${what}: lon ${lon} is outside [-180, 360]`);
}

function framesTensor(stacks: BandStack[], what: string): Tensor {
  const [first] = stacks;
  for (const s of stacks) {
    if (s.height !== first!.height || s.width !== first!.width) {
      throw new SkySenseError(
        'E_GRID',
        `${what}: frame ${s.grid.file} is ${s.width}×${s.height}, the first frame ${first!.width}×${first!.height}`,
      );
    }
  }
  const c = first!.bands.length;
  const data = new Float32Array(stacks.length * c * first!.height * first!.width);
  let o = 0;
  for (const s of stacks) for (const b of s.bands) (data.set(b, o), (o += b.length));
  return tf.tensor5d(data, [1, stacks.length, c, first!.height, first!.width]);
}

/** A manifest option that, when given, must be one of `allowed` (a typo must not silently mean the default). */
function checkChoice(what: string, value: unknown, allowed: readonly string[]): void {
  if (value !== undefined && !allowed.includes(value as string))
    throw new SkySenseError('E_ARG', `${what}: expected ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(value)}`);
}

/** Loads and normalises every input of a sample. */
export async function loadSample(m: SampleManifest): Promise<LoadedSample> {
  const name = m.name ?? 'sample';
  checkChoice(`${name}: missingBands`, m.missingBands, ['error', 'mean']);
  (m.s1 ?? []).forEach((f, i) => {
    checkChoice(`${name}: s1[${i}].units`, f.units, ['db', 'linear']);
    checkChoice(`${name}: s1[${i}].speckleFilter`, f.speckleFilter, ['none', 'lee']);
  });
  const norm = { ...NORMALIZATION, ...m.normalization };
  const s2 = await Promise.all((m.s2 ?? []).map((f) => loadSentinel2(f as S2Source, { missing: m.missingBands })));
  const s1 = await Promise.all((m.s1 ?? []).map((f) => loadSentinel1(f, { units: f.units, speckleFilter: f.speckleFilter })));
  const hrEntry = typeof m.hr === 'string' ? { file: m.hr } : m.hr;
  const hr = hrEntry ? await loadHr(hrEntry.file, { bands: hrEntry.bands }) : undefined;
  const dates = (stacks: BandStack[], entries: { date?: string }[]) =>
    stacks.map((s, i) => {
      const d = entries[i]!.date ?? requireAcquisitionDate(s.grid.file, s.grid.tiffDate);
      dayOfYear(d, `${name}: date of ${s.grid.file}`);
      return d;
    });
  const s2Dates = dates(s2, m.s2 ?? []);
  const s1Dates = dates(s1, m.s1 ?? []);
  const preview = s2[0] ? { ...s2[0], bands: s2[0].bands.map((b) => b.slice()) } : undefined;
  const first = (hr ?? s2[0] ?? s1[0])!;
  const centre = m.lat !== undefined && m.lon !== undefined ? { lat: m.lat, lon: m.lon } : rasterCentre(first.grid);
  checkLatLon(centre.lat, centre.lon, name);
  s2.forEach((s) => normalizeChannels(s.bands, norm.s2, `${name} s2`));
  s1.forEach((s) => normalizeChannels(s.bands, norm.s1, `${name} s1`));
  if (hr) normalizeChannels(hr.bands, hr.bands.length === 4 ? NORMALIZATION['hr-rgbn'] : norm.hr, `${name} hr`);
  return {
    name,
    hr: hr ? tf.tensor4d(Float32Array.from(hr.bands.flatMap((b) => Array.from(b))), [1, hr.bands.length, hr.height, hr.width]) : undefined,
    s2: s2.length ? { frames: framesTensor(s2, `${name} s2`), dates: s2Dates } : undefined,
    s1: s1.length ? { frames: framesTensor(s1, `${name} s1`), dates: s1Dates } : undefined,
    lat: centre.lat,
    lon: centre.lon,
    previewS2: preview,
    filledBands: s2.flatMap((s) => s.filled),
  };
}

/** The sample folder: `SKYSENSE_SAMPLES`, else `./samples`. */
export function samplesDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.SKYSENSE_SAMPLES ?? 'samples');
}
