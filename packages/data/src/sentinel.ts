import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SENTINEL1_BANDS, SENTINEL2_BANDS, SkySenseError, interpolate, tf } from '@skysense/core-tensor';
import { type Raster, readGeoTiff } from './raster';
import { NORMALIZATION } from './normalization';

/** A Sentinel-2 band name in SkySense's order. */
export type S2Band = (typeof SENTINEL2_BANDS)[number];

/** Bands stacked on one grid, `[C][H·W]`, with the grid's georeferencing. */
export interface BandStack {
  bands: Float32Array[];
  names: string[];
  height: number;
  width: number;
  /** The raster that defines the grid (georeferencing, dates). */
  grid: Raster;
}

/** What to do about missing Sentinel-2 bands: refuse (default) or fill with zeros (after normalisation: the band mean). */
export type MissingBands = 'error' | 'mean';

/** Names used in files: `B2` is stored as `B02`, `B8A` as `B8A`. */
function fileBandName(b: string): string {
  return /^B\d$/.test(b) ? `B0${b.slice(1)}` : b;
}

/**
 * Finds per-band files in a folder by their suffix (`…_B02.tif`, `B02.tif`, `…_B8A.tif`), as
 * BigEarthNet stores them. @returns band → path for the bands found.
 */
export function findS2BandFiles(folder: string): Partial<Record<S2Band, string>> {
  if (!existsSync(folder)) throw new SkySenseError('E_IO', `${folder}: no such folder`);
  const files = readdirSync(folder).filter((f) => /\.tiff?$/i.test(f));
  const out: Partial<Record<S2Band, string>> = {};
  for (const b of SENTINEL2_BANDS) {
    const hit = files.find((f) => new RegExp(`(^|_)${fileBandName(b)}\\.tiff?$`, 'i').test(f));
    if (hit) out[b] = join(folder, hit);
  }
  return out;
}

function sameFootprint(a: Raster, b: Raster): boolean {
  const tol = Math.max(Math.abs(a.resolution[0]), Math.abs(b.resolution[0]));
  return a.epsg === b.epsg && a.bounds.every((v, i) => Math.abs(v - b.bounds[i]!) <= tol);
}

/** Bilinear resampling (align_corners false, as PyTorch) of one band to `h × w`. */
function resample(band: Float32Array, fromH: number, fromW: number, h: number, w: number): Float32Array {
  return tf.tidy(
    () =>
      interpolate(tf.tensor4d(band, [1, 1, fromH, fromW]), {
        size: [h, w],
        mode: 'bilinear',
        alignCorners: false,
      }).dataSync() as Float32Array,
  );
}

/**
 * Stacks rasters onto the finest grid among them (bilinear resampling of coarser bands), after
 * checking that they cover the same footprint in the same CRS.
 * @throws SkySenseError `E_GRID` naming the file whose footprint differs.
 */
export function stackOnFinestGrid(rasters: Raster[], names: string[]): BandStack {
  const grid = rasters.reduce((best, r) => (r.width * r.height > best.width * best.height ? r : best));
  const bands = rasters.map((r) => {
    if (!sameFootprint(r, grid)) {
      throw new SkySenseError(
        'E_GRID',
        `${r.file}: footprint [${r.bounds.map((v) => v.toFixed(1))}] (EPSG:${r.epsg}) differs from ${grid.file} [${grid.bounds.map((v) => v.toFixed(1))}] (EPSG:${grid.epsg})`,
      );
    }
    return r.width === grid.width && r.height === grid.height
      ? r.bands[0]!
      : resample(r.bands[0]!, r.height, r.width, grid.height, grid.width);
  });
  return { bands, names, height: grid.height, width: grid.width, grid };
}

/** Sources of one Sentinel-2 frame: per-band files, a folder of them, or one multi-band file with its band order. */
export type S2Source = { bands: Partial<Record<S2Band, string>> } | { folder: string } | { file: string; bandMap: string[] };

/**
 * Loads one Sentinel-2 frame in SkySense's 10-band order (B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12),
 * 20 m bands resampled bilinearly to the 10 m grid. Values stay in the file's units (L2A
 * reflectance ×10000). Missing bands are an error listing them, unless `missing: 'mean'` fills
 * them with the band mean of the normalisation preset (zero after normalisation).
 */
export async function loadSentinel2(
  source: S2Source,
  options: { missing?: MissingBands; fill?: Partial<Record<S2Band, number>> } = {},
): Promise<BandStack & { filled: S2Band[] }> {
  if ('file' in source) {
    const r = await readGeoTiff(source.file);
    if (source.bandMap.length !== r.bands.length) {
      throw new SkySenseError('E_BANDS', `${source.file}: bandMap names ${source.bandMap.length} bands but the file has ${r.bands.length}`);
    }
    const files = Object.fromEntries(source.bandMap.map((b, i) => [b, i])) as Record<string, number>;
    return assemble(
      Object.fromEntries(SENTINEL2_BANDS.filter((b) => files[b] !== undefined).map((b) => [b, { ...r, bands: [r.bands[files[b]!]!] }])),
      options,
      source.file,
    );
  }
  const paths = 'folder' in source ? findS2BandFiles(source.folder) : source.bands;
  const entries = await Promise.all(Object.entries(paths).map(async ([b, p]) => [b, await readGeoTiff(p as string)] as const));
  return assemble(Object.fromEntries(entries), options, 'folder' in source ? source.folder : 'Sentinel-2 frame');
}

function assemble(
  found: Record<string, Raster>,
  options: { missing?: MissingBands; fill?: Partial<Record<S2Band, number>> },
  what: string,
): BandStack & { filled: S2Band[] } {
  const missing = SENTINEL2_BANDS.filter((b) => !found[b]);
  if (missing.length && (options.missing ?? 'error') === 'error') {
    throw new SkySenseError(
      'E_BANDS',
      `${what}: missing Sentinel-2 band(s) ${missing.join(', ')} (SkySense needs ${SENTINEL2_BANDS.join(', ')}; pass missing: 'mean' to fill them)`,
    );
  }
  const present = SENTINEL2_BANDS.filter((b) => found[b]);
  if (present.length === 0) throw new SkySenseError('E_BANDS', `${what}: no Sentinel-2 band found`);
  const stack = stackOnFinestGrid(
    present.map((b) => found[b]!),
    [...present],
  );
  const bands = SENTINEL2_BANDS.map((b, i) => {
    const at = present.indexOf(b);
    if (at >= 0) return stack.bands[at]!;
    return new Float32Array(stack.height * stack.width).fill(options.fill?.[b] ?? NORMALIZATION.s2.mean[i]!);
  });
  return { ...stack, bands, names: [...SENTINEL2_BANDS], filled: missing };
}

/** Options of {@link loadSentinel1}. */
export interface Sentinel1Options {
  /** Units of the stored values. Default `db`. */
  units?: 'db' | 'linear';
  /**
   * Speckle filter: `lee` (Lee 1980, on linear intensity, window `speckleWindow`, ENL 4.4 of
   * Sentinel-1 IW GRDH) or `none` (default: SkySense's own S1 preprocessing is unpublished).
   */
  speckleFilter?: 'none' | 'lee';
  /** Lee window size (odd). Default 5. */
  speckleWindow?: number;
}

/** Lee speckle filter on a dB band, computed in linear intensity, result in dB. */
export function leeFilterDb(band: Float32Array, height: number, width: number, window = 5, enl = 4.4): Float32Array {
  const half = Math.floor(window / 2);
  const lin = Float64Array.from(band, (v) => 10 ** (v / 10));
  const cu2 = 1 / enl;
  const out = new Float32Array(band.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      let sum2 = 0;
      let n = 0;
      for (let dy = -half; dy <= half; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -half; dx <= half; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          const v = lin[yy * width + xx]!;
          sum += v;
          sum2 += v * v;
          n++;
        }
      }
      const mean = sum / n;
      const variance = Math.max(sum2 / n - mean * mean, 0);
      const ci2 = mean > 0 ? variance / (mean * mean) : 0;
      const w = ci2 > 0 ? Math.min(1, Math.max(0, 1 - cu2 / ci2)) : 0;
      out[y * width + x] = 10 * Math.log10(Math.max(mean + w * (lin[y * width + x]! - mean), 1e-10));
    }
  }
  return out;
}

/**
 * Loads one Sentinel-1 frame as VV, VH backscatter in dB (what SkySense's S1 statistics assume).
 * `units: 'linear'` converts linear power with `10 · log10(max(x, 1e-10))`; `speckleFilter: 'lee'`
 * smooths speckle first.
 */
export async function loadSentinel1(
  source: { vv: string; vh: string } | { folder: string },
  options: Sentinel1Options = {},
): Promise<BandStack> {
  let files: { vv: string; vh: string };
  if ('folder' in source) {
    if (!existsSync(source.folder)) throw new SkySenseError('E_IO', `${source.folder}: no such folder`);
    const names = readdirSync(source.folder);
    const pick = (pol: string) => {
      const f = names.find((n) => new RegExp(`(^|_)${pol}\\.tiff?$`, 'i').test(n));
      if (!f)
        throw new SkySenseError(
          'E_BANDS',
          `${source.folder}: no ${pol} file (expected …_${pol}.tif; SkySense's S1 bands are ${SENTINEL1_BANDS.join(', ')})`,
        );
      return join(source.folder, f);
    };
    files = { vv: pick('VV'), vh: pick('VH') };
  } else files = source;
  const rasters = [await readGeoTiff(files.vv), await readGeoTiff(files.vh)];
  const stack = stackOnFinestGrid(rasters, [...SENTINEL1_BANDS]);
  if ((options.units ?? 'db') === 'linear') {
    for (const band of stack.bands) for (let i = 0; i < band.length; i++) band[i] = 10 * Math.log10(Math.max(band[i]!, 1e-10));
  }
  if (options.speckleFilter === 'lee')
    stack.bands = stack.bands.map((b) => leeFilterDb(b, stack.height, stack.width, options.speckleWindow ?? 5));
  return stack;
}

/**
 * Loads an HR image (RGB or RGB-NIR GeoTIFF, 8- or 16-bit) on a 0–255 scale (16-bit values are
 * divided by 257), ready for the ImageNet statistics.
 */
export async function loadHr(file: string, options: { bands?: 3 | 4 } = {}): Promise<BandStack> {
  const r = await readGeoTiff(file);
  const want = options.bands ?? 3;
  if (r.bands.length < want)
    throw new SkySenseError(
      'E_BANDS',
      `${file}: an HR image needs ${want} bands (R, G, B${want === 4 ? ', NIR' : ''}), the file has ${r.bands.length}`,
    );
  const scale = r.dtype === 'uint16' ? 1 / 257 : 1;
  const bands = r.bands.slice(0, want).map((b) => (scale === 1 ? b : b.map((v) => v * scale)));
  return { bands, names: ['R', 'G', 'B', 'NIR'].slice(0, want), height: r.height, width: r.width, grid: r };
}
