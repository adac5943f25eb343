import { dirname, isAbsolute, resolve } from 'node:path';
import { SkySenseError, allInOrder, dayOfYear, readJsonFile, tf, type Tensor } from '@skysense/core-tensor';
import { NORMALIZATION, normalizeChannels, type ChannelStats } from './normalization';
import { rasterCentre } from './raster';
import { type BandStack, type MissingBands, type S2Source, loadHr, loadSentinel1, loadSentinel2 } from './sentinel';
import { requireAcquisitionDate } from './dates';

/** One Sentinel-2 frame in a manifest: a folder of band files, per-band files, or a multi-band file with `bandMap` (band names, or `auto`: 13 = L1C, 12 = L2A, 10 = SkySense's order); `date` overrides metadata. */
export type S2FrameEntry = ({ folder: string } | { bands: Record<string, string> } | { file: string; bandMap: string[] | 'auto' }) & {
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
  /** A Sentinel frame with more than this fraction of nodata pixels is dropped from the series (its `frameValid` flag false). Default 0.5. */
  maxInvalid?: number;
  /** Accept any stored sample type (see `PRODUCT_DTYPES`). Default false. */
  anyDtype?: boolean;
  /** Normalisation overrides per modality. */
  normalization?: Partial<Record<'hr' | 's2' | 's1', ChannelStats>>;
}

/** A Sentinel series of a loaded sample. */
export interface LoadedSeries {
  /** `[1, T, bands, H, W]`, normalised; nodata pixels hold their band's valid mean (never NaN). */
  frames: Tensor;
  dates: string[];
  /** `[T·H·W]`: 1 where a frame holds data, 0 at nodata (what SkySense's `pixelValid` takes). */
  pixelValid: Uint8Array;
  /** Per frame: false when more than `maxInvalid` of it is nodata (the fusion then leaves it out). */
  frameValid: boolean[];
}

/** How much of a sample is nodata: the fraction of pixels per input, and the frames dropped. */
export interface NodataSummary {
  hr?: number;
  /** Per S2 frame. */
  s2?: number[];
  /** Per S1 frame. */
  s1?: number[];
  /** Indices of the frames left out of the series (over `maxInvalid`). */
  dropped: { s2: number[]; s1: number[] };
}

/** A loaded sample: normalised tensors in model layout (batch of one), nodata masks, dates, location. */
export interface LoadedSample {
  name: string;
  hr?: Tensor;
  /** `[H·W]` validity of the HR image (1 = data), when it has nodata. */
  hrValid?: Uint8Array;
  s2?: LoadedSeries;
  s1?: LoadedSeries;
  /** Nodata fractions and dropped frames. */
  nodata: NodataSummary;
  lat: number;
  lon: number;
  /** Raw (unnormalised) first S2 frame, for pictures. */
  previewS2?: BandStack;
  /** Bands filled by the missing-band policy. */
  filledBands: string[];
}

/**
 * Reads a manifest file: one sample, an array, or `{ samples: [...] }`; paths become absolute.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { readManifest } from '@skysense/data';
 * await initBackend();
 * // one sample, a list, or { samples: [...] }; paths relative to the manifest's folder
 * const samples = readManifest('samples.json');
 * console.log(samples.length, samples[0]?.s2?.length);
 * ```
 */
export function readManifest(file: string): SampleManifest[] {
  const json = readJsonFile(file, 'manifest');
  const list = Array.isArray(json) ? json : ((json as { samples?: unknown[] } | null)?.samples ?? [json]);
  if (!Array.isArray(list))
    throw new SkySenseError('E_DATA', `manifest ${file}: "samples" must be a list, got ${JSON.stringify(list).slice(0, 60)}`);
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  return (list as SampleManifest[]).map((s, i) => {
    if (typeof s !== 'object' || s === null || (!s.hr && !s.s2 && !s.s1))
      throw new SkySenseError('E_DATA', `${file}: sample ${i} names no hr, s2 or s1 input`);
    checkEntries(s, `${file}: sample ${i}${typeof s.name === 'string' ? ` (${s.name})` : ''}`);
    const mapPaths = (o: Record<string, unknown>): Record<string, unknown> =>
      Object.fromEntries(
        Object.entries(o).map(([k, v]): [string, unknown] => [
          k,
          typeof v === 'string' && !['date', 'units', 'bandMap', 'speckleFilter'].includes(k)
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

const isPath = (v: unknown) => typeof v === 'string' && v !== '';

/** Checks the form of a manifest sample's entries, so that a typo is named instead of failing later as `undefined`. */
function checkEntries(s: SampleManifest, what: string): void {
  const bad = (key: string, expected: string, got: unknown): never => {
    throw new SkySenseError('E_DATA', `${what}: ${key}: expected ${expected}, got ${JSON.stringify(got) ?? 'nothing'}`);
  };
  if (s.name !== undefined && (typeof s.name !== 'string' || s.name === '')) bad('name', 'a non-empty string', s.name);
  if (s.hr !== undefined && !isPath(s.hr) && !(typeof s.hr === 'object' && s.hr !== null && isPath(s.hr.file)))
    bad('hr', 'a file path or { "file": … }', s.hr);
  for (const key of ['s2', 's1'] as const) {
    const frames = s[key];
    if (frames === undefined) continue;
    if (!Array.isArray(frames)) bad(key, 'a list of frames', frames);
    frames!.forEach((f, j) => {
      const e = f as Record<string, unknown> | null;
      const ok =
        typeof e === 'object' &&
        e !== null &&
        (isPath(e.folder) ||
          (key === 's2'
            ? (typeof e.bands === 'object' && e.bands !== null && Object.values(e.bands).every(isPath)) ||
              (isPath(e.file) && (e.bandMap === 'auto' || (Array.isArray(e.bandMap) && e.bandMap.every((b) => typeof b === 'string'))))
            : isPath(e.vv) && isPath(e.vh)));
      if (!ok)
        bad(
          `${key}[${j}]`,
          key === 's2'
            ? '{ "folder" }, { "bands": { "B02": …, … } } or { "file", "bandMap" } (band names or "auto")'
            : '{ "folder" } or { "vv", "vh" } (both files)',
          f,
        );
      if (e!.date !== undefined && typeof e!.date !== 'string') bad(`${key}[${j}].date`, 'a date string (YYYY-MM-DD)', e!.date);
    });
  }
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

/** Fraction of 0s in a validity mask. */
function invalidFraction(valid: Uint8Array): number {
  let bad = 0;
  for (const v of valid) bad += 1 - v;
  return valid.length ? bad / valid.length : 0;
}

function series(
  stacks: BandStack[],
  dates: string[],
  maxInvalid: number,
  what: string,
): { series: LoadedSeries; fractions: number[]; dropped: number[] } {
  const fractions = stacks.map((s) => invalidFraction(s.valid));
  const frameValid = fractions.map((f) => f <= maxInvalid);
  const pixelValid = new Uint8Array(stacks.reduce((a, s) => a + s.valid.length, 0));
  stacks.reduce((o, s) => (pixelValid.set(s.valid, o), o + s.valid.length), 0);
  return {
    series: { frames: framesTensor(stacks, what), dates, pixelValid, frameValid },
    fractions,
    dropped: frameValid.flatMap((v, i) => (v ? [] : [i])),
  };
}

/**
 * Loads and normalises every input of a sample, with its nodata: masks per pixel (`pixelValid`,
 * `hrValid`), frames over `maxInvalid` flagged out of the series (`frameValid`), and the fractions in
 * `nodata`. Nodata values are filled (the band's mean over the frame's valid pixels) before
 * normalisation, so no NaN, Inf or nodata number reaches a model.
 * @throws SkySenseError `E_DATA` when nothing usable is left (every frame over `maxInvalid`, an HR image without data).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { loadSample, readManifest } from '@skysense/data';
 * await initBackend();
 * const [manifest] = readManifest('samples.json');
 * const sample = await loadSample(manifest!);
 * console.log(sample.s2?.frames.shape, sample.s2?.dates, sample.nodata); // [1, T, 10, H, W], dates, masked fractions
 * ```
 */
export async function loadSample(m: SampleManifest): Promise<LoadedSample> {
  const name = m.name ?? 'sample';
  checkChoice(`${name}: missingBands`, m.missingBands, ['error', 'mean']);
  (m.s1 ?? []).forEach((f, i) => {
    checkChoice(`${name}: s1[${i}].units`, f.units, ['db', 'linear']);
    checkChoice(`${name}: s1[${i}].speckleFilter`, f.speckleFilter, ['none', 'lee']);
  });
  const maxInvalid = m.maxInvalid ?? 0.5;
  if (!(typeof maxInvalid === 'number' && maxInvalid >= 0 && maxInvalid <= 1))
    throw new SkySenseError('E_ARG', `${name}: maxInvalid: expected a fraction in [0, 1], got ${JSON.stringify(maxInvalid)}`);
  if (m.anyDtype !== undefined && typeof m.anyDtype !== 'boolean')
    throw new SkySenseError('E_ARG', `${name}: anyDtype: expected true or false, got ${JSON.stringify(m.anyDtype)}`);
  const anyDtype = m.anyDtype === true;
  const norm = { ...NORMALIZATION, ...m.normalization };
  const s2 = await allInOrder((m.s2 ?? []).map((f) => loadSentinel2(f as S2Source, { missing: m.missingBands, anyDtype })));
  const s1 = await allInOrder((m.s1 ?? []).map((f) => loadSentinel1(f, { units: f.units, speckleFilter: f.speckleFilter, anyDtype })));
  const hrEntry = typeof m.hr === 'string' ? { file: m.hr } : m.hr;
  const hr = hrEntry ? await loadHr(hrEntry.file, { bands: hrEntry.bands, anyDtype }) : undefined;
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
  const hrInvalid = hr ? invalidFraction(hr.valid) : undefined;
  const a = s2.length ? series(s2, s2Dates, maxInvalid, `${name} s2`) : undefined;
  let b: ReturnType<typeof series> | undefined;
  try {
    b = s1.length ? series(s1, s1Dates, maxInvalid, `${name} s1`) : undefined;
  } catch (e) {
    a?.series.frames.dispose();
    throw e;
  }
  const usable = (hr && hrInvalid! < 1) || a?.series.frameValid.some(Boolean) || b?.series.frameValid.some(Boolean);
  if (!usable) {
    tf.dispose([a?.series.frames, b?.series.frames].filter((t): t is Tensor => t !== undefined));
    throw new SkySenseError(
      'E_DATA',
      `${name}: nothing usable — ${[
        hr ? `the HR image is ${(100 * hrInvalid!).toFixed(0)}% nodata` : '',
        a ? `S2 frames are ${a.fractions.map((f) => `${(100 * f).toFixed(0)}%`).join(', ')} nodata` : '',
        b ? `S1 frames are ${b.fractions.map((f) => `${(100 * f).toFixed(0)}%`).join(', ')} nodata` : '',
      ]
        .filter(Boolean)
        .join('; ')} (frames over maxInvalid ${maxInvalid} are dropped)`,
    );
  }
  return {
    name,
    hr: hr ? tf.tensor4d(Float32Array.from(hr.bands.flatMap((x) => Array.from(x))), [1, hr.bands.length, hr.height, hr.width]) : undefined,
    hrValid: hr && hrInvalid! > 0 ? hr.valid : undefined,
    s2: a?.series,
    s1: b?.series,
    nodata: {
      ...(hr ? { hr: hrInvalid } : {}),
      ...(a ? { s2: a.fractions } : {}),
      ...(b ? { s1: b.fractions } : {}),
      dropped: { s2: a?.dropped ?? [], s1: b?.dropped ?? [] },
    },
    lat: centre.lat,
    lon: centre.lon,
    previewS2: preview,
    filledBands: s2.flatMap((s) => s.filled),
  };
}

/**
 * The sample folder: `SKYSENSE_SAMPLES`, else `./samples`.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { samplesDir } from '@skysense/data';
 * await initBackend();
 * console.log(samplesDir()); // SKYSENSE_SAMPLES, else ./samples (where downloadSamples puts them)
 * ```
 */
export function samplesDir(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.SKYSENSE_SAMPLES ?? 'samples');
}
