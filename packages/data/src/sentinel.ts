import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { SENTINEL1_BANDS, SENTINEL2_BANDS, SkySenseError, allInOrder, interpolate, tf } from '@skysense/core-tensor';
import { type Raster, readGeoTiff } from './raster';
import { NORMALIZATION } from './normalization';
import type { PlanarImage } from './images';

/** A Sentinel-2 band name in SkySense's order. */
export type S2Band = (typeof SENTINEL2_BANDS)[number];

/** Bands stacked on one grid, `[C][H·W]`, with the grid's georeferencing and a validity mask. */
export interface BandStack {
  bands: Float32Array[];
  names: string[];
  height: number;
  width: number;
  /**
   * `[H·W]`, 1 where every band holds data, 0 at nodata (the file's nodata value, NaN/Inf, the
   * product's conventions, a resampled pixel that touches any of those, or one a window filter
   * read them into). Values at 0 are filled (each band's mean over the valid pixels) so that they
   * never reach a model as numbers.
   */
  valid: Uint8Array;
  /** The raster that defines the grid (georeferencing, dates). */
  grid: Raster;
}

/** A band stack as a planar image (bands in order), with its nodata mask where it has nodata. */
export function planarStack(s: BandStack): PlanarImage {
  const hw = s.height * s.width;
  const data = new Float32Array(s.bands.length * hw);
  s.bands.forEach((b, c) => data.set(b, c * hw));
  return { width: s.width, height: s.height, channels: s.bands.length, data, ...(s.valid.includes(0) ? { valid: s.valid } : {}) };
}

/** A true-colour picture (B4, B3, B2; reflectance 0–3000 → 0–255) of a 10-band Sentinel-2 image in SkySense's order, for drawings. */
export function s2TrueColour(s2: PlanarImage): PlanarImage {
  const n = s2.width * s2.height;
  const data = new Float32Array(3 * n);
  [2, 1, 0].forEach((band, c) => {
    for (let i = 0; i < n; i++) data[c * n + i] = Math.min(255, Math.max(0, (s2.data[band * n + i]! * 255) / 3000));
  });
  return { width: s2.width, height: s2.height, channels: 3, data };
}

/** What to do about missing Sentinel-2 bands: refuse (default) or fill with zeros (after normalisation: the band mean). */
export type MissingBands = 'error' | 'mean';

/**
 * Sentinel-2 scene-classification (SCL) classes masked by default: 0 no data, 1 saturated or
 * defective, 3 cloud shadow, 8 cloud (medium probability), 9 cloud (high probability), 10 thin cirrus.
 */
export const SCL_INVALID: readonly number[] = [0, 1, 3, 8, 9, 10];

/** Stored sample types accepted per product; others are refused unless `anyDtype` (an 8-bit rendering is not reflectance). */
export const PRODUCT_DTYPES = {
  s2: ['uint16', 'int16', 'uint32', 'int32', 'float32', 'float64'],
  s1: ['float32', 'float64'],
  hr: ['uint8', 'uint16'],
} as const;

/** Options shared by the Sentinel and HR loaders. */
export interface ProductCheckOptions {
  /** Accept any stored sample type (skip the {@link PRODUCT_DTYPES} check). Default false. */
  anyDtype?: boolean;
}

function checkDtype(r: Raster, product: keyof typeof PRODUCT_DTYPES, o: ProductCheckOptions): void {
  const allowed: readonly string[] = PRODUCT_DTYPES[product];
  if (o.anyDtype || allowed.includes(r.dtype)) return;
  const what = { s2: 'Sentinel-2 reflectance (L2A ×10000)', s1: 'Sentinel-1 backscatter (dB or linear power)', hr: 'an HR image' }[product];
  throw new SkySenseError(
    'E_DTYPE',
    `${r.file}: ${what} is stored as ${allowed.join(', ')}, this file holds ${r.dtype}${r.dtype === 'uint8' ? ' (an 8-bit rendering?)' : ''}; pass anyDtype: true to read it anyway`,
  );
}

function checkSingleBand(r: Raster, band: string): void {
  if (r.bands.length !== 1)
    throw new SkySenseError(
      'E_BANDS',
      `${r.file}: given as band ${band}, expected a one-band file, got ${r.bands.length} bands (for a multi-band file give { file, bandMap } naming each band)`,
    );
}

/** Names used in files: `B2` is stored as `B02`, `B8A` as `B8A`. */
function fileBandName(b: string): string {
  return /^B\d$/.test(b) ? `B0${b.slice(1)}` : b;
}

/**
 * Finds per-band files in a folder by their suffix (`…_B02.tif`, `B02.tif`, `…_B8A.tif`, and the
 * scene classification `…_SCL.tif`), as BigEarthNet and L2A exports store them. @returns band → path
 * for the bands found.
 */
export function findS2BandFiles(folder: string): Partial<Record<S2Band | 'SCL', string>> {
  if (!existsSync(folder)) throw new SkySenseError('E_IO', `${folder}: no such folder`);
  const files = readdirSync(folder).filter((f) => /\.tiff?$/i.test(f));
  const out: Partial<Record<S2Band | 'SCL', string>> = {};
  for (const b of [...SENTINEL2_BANDS, 'SCL' as const]) {
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

/** Sets the invalid pixels of a band to the mean of its valid ones (0 when none is valid), in place. */
export function fillInvalid(band: Float32Array, valid: Uint8Array): Float32Array {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < band.length; i++) if (valid[i]) ((sum += band[i]!), n++);
  const mean = n ? sum / n : 0;
  for (let i = 0; i < band.length; i++) if (!valid[i]) band[i] = mean;
  return band;
}

/** One band of a raster on the grid `h × w`, with its validity there (a resampled pixel is valid only if everything it reads from is). */
function onGrid(r: Raster, band: Float32Array, h: number, w: number): { band: Float32Array; valid: Uint8Array } {
  const filled = fillInvalid(band.slice(), r.valid);
  if (r.width === w && r.height === h) return { band: filled, valid: r.valid };
  const weight = resample(Float32Array.from(r.valid), r.height, r.width, h, w);
  return { band: resample(filled, r.height, r.width, h, w), valid: Uint8Array.from(weight, (v) => (v >= 1 - 1e-6 ? 1 : 0)) };
}

/** `a AND b`, in place on `a`. */
function andMask(a: Uint8Array, b: Uint8Array): Uint8Array {
  for (let i = 0; i < a.length; i++) a[i]! &= b[i]!;
  return a;
}

/**
 * Stacks rasters onto the finest grid among them (bilinear resampling of coarser bands, their nodata
 * filled first and their masks carried), after checking that they cover the same footprint in the same CRS.
 * @throws SkySenseError `E_GRID` naming the file whose footprint differs.
 */
export function stackOnFinestGrid(rasters: Raster[], names: string[]): BandStack {
  const grid = rasters.reduce((best, r) => (r.width * r.height > best.width * best.height ? r : best));
  const valid = new Uint8Array(grid.width * grid.height).fill(1);
  const bands = rasters.map((r) => {
    if (!sameFootprint(r, grid)) {
      throw new SkySenseError(
        'E_GRID',
        `${r.file}: footprint [${r.bounds.map((v) => v.toFixed(1))}] (EPSG:${r.epsg}) differs from ${grid.file} [${grid.bounds.map((v) => v.toFixed(1))}] (EPSG:${grid.epsg})`,
      );
    }
    const g = onGrid(r, r.bands[0]!, grid.height, grid.width);
    andMask(valid, g.valid);
    return g.band;
  });
  return refill({ bands, names, height: grid.height, width: grid.width, valid, grid });
}

/** Fills every band at the stack's nodata (whatever band or mask made it) with the band's mean over the stack's valid pixels, in place. */
function refill(stack: BandStack): BandStack {
  for (const b of stack.bands) fillInvalid(b, stack.valid);
  return stack;
}

/** Marks invalid every pixel within `half` pixels (a square window) of an invalid one: what a window filter of that size read from nodata. */
function erode(valid: Uint8Array, height: number, width: number, half: number): Uint8Array {
  const out = valid.slice();
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      if (valid[y * width + x]) continue;
      for (let yy = Math.max(0, y - half); yy <= Math.min(height - 1, y + half); yy++)
        out.fill(0, yy * width + Math.max(0, x - half), yy * width + Math.min(width - 1, x + half) + 1);
    }
  return out;
}

/** Sources of one Sentinel-2 frame: per-band files (optionally `SCL`), a folder of them, or one multi-band file with its band order. */
export type S2Source =
  { bands: Partial<Record<S2Band | 'SCL', string>> } | { folder: string } | { file: string; bandMap: string[] | 'auto'; scl?: string };

/**
 * Band orders of multi-band Sentinel-2 products, for files that stack them: `l1c` the 13 bands of
 * Level-1C (fMoW-Sentinel stores these), `l2a` the 12 of Level-2A (no B10), `skysense` the encoder's
 * 10. The loaders keep SkySense's 10 and drop B1, B9 and B10 (60 m atmospheric bands the encoder never saw).
 */
export const S2_PRODUCT_BANDS: Readonly<Record<'l1c' | 'l2a' | 'skysense', readonly string[]>> = {
  l1c: ['B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B10', 'B11', 'B12'],
  l2a: ['B1', 'B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B9', 'B11', 'B12'],
  skysense: SENTINEL2_BANDS,
};

/** The band order of a stacked file from its band count (`bandMap: 'auto'`): 13 → L1C, 12 → L2A, 10 → SkySense's. */
function productBands(count: number, file: string): string[] {
  const found = Object.values(S2_PRODUCT_BANDS).find((b) => b.length === count);
  if (!found)
    throw new SkySenseError('E_BANDS', `${file}: ${count} bands; 'auto' knows 13 (L1C), 12 (L2A) and 10 (SkySense's order): give bandMap`);
  return [...found];
}

/** Options of {@link loadSentinel2}. */
export interface Sentinel2Options extends ProductCheckOptions {
  /** Missing bands: refuse (default) or fill. */
  missing?: MissingBands;
  /** Fill values of missing bands (default: the normalisation preset's band mean). */
  fill?: Partial<Record<S2Band, number>>;
  /** SCL classes masked when an SCL band is present. Default {@link SCL_INVALID}. */
  sclInvalid?: readonly number[];
}

/** Marks L2A nodata: 0 in any band (ESA's NO_DATA value of L2A reflectance). */
function maskZeros(r: Raster, bandIndex: number): Raster {
  const b = r.bands[bandIndex]!;
  const valid = r.valid.slice();
  for (let i = 0; i < b.length; i++) if (b[i] === 0) valid[i] = 0;
  return { ...r, bands: [b], valid };
}

/**
 * Loads one Sentinel-2 frame in SkySense's 10-band order (B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12),
 * 20 m bands resampled bilinearly to the 10 m grid. Values stay in the file's units (L2A
 * reflectance ×10000). Missing bands are an error listing them, unless `missing: 'mean'` fills
 * them with the band mean of the normalisation preset (zero after normalisation).
 *
 * Nodata (the `valid` mask): the file's nodata value, NaN/Inf, 0 in any band (L2A's NO_DATA) and,
 * when an SCL band is given or found, the SCL classes of `sclInvalid` (no data, saturated, cloud
 * shadow, clouds, cirrus).
 * @throws SkySenseError `E_BANDS` (missing bands, a multi-band file given as one band), `E_DTYPE`
 * (not a reflectance type, unless `anyDtype`).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { loadSentinel2 } from '@skysense/data';
 * await initBackend(); // the 20 m bands are resampled with tensor ops
 * const s2 = await loadSentinel2({ folder: 'S2A_MSIL2A_20170613T101031_87_48' }); // …_B02.tif … _B12.tif (+ _SCL.tif)
 * console.log(s2.names, s2.height, s2.width); // ['B2', …, 'B12'] on the 10 m grid
 * console.log(s2.valid.filter((v) => v === 0).length, 'nodata pixels (L2A zeros, SCL clouds)');
 * ```
 */
export async function loadSentinel2(source: S2Source, options: Sentinel2Options = {}): Promise<BandStack & { filled: S2Band[] }> {
  let found: Record<string, Raster>;
  let what: string;
  let sclFile: string | undefined;
  if ('file' in source) {
    const r = await readGeoTiff(source.file);
    const bandMap = source.bandMap === 'auto' ? productBands(r.bands.length, source.file) : source.bandMap;
    if (bandMap.length !== r.bands.length) {
      throw new SkySenseError('E_BANDS', `${source.file}: bandMap names ${bandMap.length} bands but the file has ${r.bands.length}`);
    }
    checkDtype(r, 's2', options);
    const at = Object.fromEntries(bandMap.map((b, i) => [b, i])) as Record<string, number>;
    found = Object.fromEntries(SENTINEL2_BANDS.filter((b) => at[b] !== undefined).map((b) => [b, maskZeros(r, at[b]!)]));
    if (at.SCL !== undefined) found.SCL = { ...r, bands: [r.bands[at.SCL]!] };
    [what, sclFile] = [source.file, source.scl];
  } else {
    const paths: Partial<Record<string, string>> = 'folder' in source ? findS2BandFiles(source.folder) : source.bands;
    sclFile = paths.SCL;
    const entries = await allInOrder(
      SENTINEL2_BANDS.filter((b) => paths[b]).map(async (b) => {
        const r = await readGeoTiff(paths[b]!);
        checkSingleBand(r, b);
        checkDtype(r, 's2', options);
        return [b, maskZeros(r, 0)] as const;
      }),
    );
    found = Object.fromEntries(entries);
    what = 'folder' in source ? source.folder : 'Sentinel-2 frame';
  }
  if (sclFile) {
    const r = await readGeoTiff(sclFile);
    checkSingleBand(r, 'SCL');
    found.SCL = r;
  }
  return assemble(found, options, what);
}

/** The SCL band as a validity raster (classes of `invalid` → 0). */
function sclMask(scl: Raster, invalid: readonly number[]): Raster {
  const bad = new Set(invalid);
  const b = scl.bands[0]!;
  const valid = Uint8Array.from(b, (v, i) => (scl.valid[i] && !bad.has(v) ? 1 : 0));
  return { ...scl, bands: [Float32Array.from(valid)], valid: new Uint8Array(valid.length).fill(1) };
}

function assemble(found: Record<string, Raster>, options: Sentinel2Options, what: string): BandStack & { filled: S2Band[] } {
  const missing = SENTINEL2_BANDS.filter((b) => !found[b]);
  if (missing.length && (options.missing ?? 'error') === 'error') {
    throw new SkySenseError(
      'E_BANDS',
      `${what}: missing Sentinel-2 band(s) ${missing.join(', ')} (SkySense needs ${SENTINEL2_BANDS.join(', ')}; pass missing: 'mean' to fill them)`,
    );
  }
  const present = SENTINEL2_BANDS.filter((b) => found[b]);
  if (present.length === 0) throw new SkySenseError('E_BANDS', `${what}: no Sentinel-2 band found`);
  const scl = found.SCL ? sclMask(found.SCL, options.sclInvalid ?? SCL_INVALID) : undefined;
  const stack = stackOnFinestGrid([...present.map((b) => found[b]!), ...(scl ? [scl] : [])], [...present, ...(scl ? ['SCL'] : [])]);
  if (scl) {
    // the SCL band's values are its validity: resampled, a pixel is valid only where all it reads is
    const v = stack.bands.pop()!;
    for (let i = 0; i < v.length; i++) if (v[i]! < 1 - 1e-6) stack.valid[i] = 0;
    stack.names.pop();
    refill(stack);
  }
  const bands = SENTINEL2_BANDS.map((b, i) => {
    const at = present.indexOf(b);
    if (at >= 0) return stack.bands[at]!;
    return new Float32Array(stack.height * stack.width).fill(options.fill?.[b] ?? NORMALIZATION.s2.mean[i]!);
  });
  return { ...stack, bands, names: [...SENTINEL2_BANDS], filled: missing };
}

/** Options of {@link loadSentinel1}. */
export interface Sentinel1Options extends ProductCheckOptions {
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
 * `units: 'linear'` converts linear power with `10 · log10(x)`; `speckleFilter: 'lee'` smooths
 * speckle first. Nodata (the `valid` mask): the file's nodata value, NaN/Inf, pixels where VV and VH
 * are both 0 (the zero borders of GRD scenes) and, in linear units, values ≤ 0.
 * @throws SkySenseError `E_BANDS` (a file with more than one band), `E_DTYPE` (not float, unless `anyDtype`).
 * @example
 * ```ts
 * import { loadSentinel1 } from '@skysense/data';
 * const s1 = await loadSentinel1({ vv: 'scene_VV.tif', vh: 'scene_VH.tif' }, { speckleFilter: 'lee' }); // units: 'linear' for linear power
 * console.log(s1.names, s1.bands[0]![0]); // ['VV', 'VH'], dB
 * ```
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
  const linear = (options.units ?? 'db') === 'linear';
  const rasters = await allInOrder(
    (['vv', 'vh'] as const).map(async (pol) => {
      const r = await readGeoTiff(files[pol]);
      checkSingleBand(r, pol.toUpperCase());
      checkDtype(r, 's1', options);
      if (linear) {
        const b = r.bands[0]!;
        const valid = r.valid.slice();
        for (let i = 0; i < b.length; i++) if (!(b[i]! > 0)) valid[i] = 0;
        return { ...r, valid };
      }
      return r;
    }),
  );
  const [vv, vh] = [rasters[0]!.bands[0]!, rasters[1]!.bands[0]!];
  if (vv.length === vh.length) {
    for (const r of rasters) {
      r.valid = r.valid.slice();
      for (let i = 0; i < vv.length; i++) if (vv[i] === 0 && vh[i] === 0) r.valid[i] = 0;
    }
  }
  const stack = stackOnFinestGrid(rasters, [...SENTINEL1_BANDS]);
  if (linear) for (const band of stack.bands) for (let i = 0; i < band.length; i++) band[i] = 10 * Math.log10(Math.max(band[i]!, 1e-10));
  if (options.speckleFilter === 'lee') {
    const window = options.speckleWindow ?? 5;
    stack.bands = stack.bands.map((b) => leeFilterDb(b, stack.height, stack.width, window));
    // the filter spreads the fill into its window: those pixels are nodata too
    if (stack.valid.includes(0)) stack.valid = erode(stack.valid, stack.height, stack.width, Math.floor(window / 2));
  }
  return stack;
}

/**
 * Loads an HR image (RGB or RGB-NIR GeoTIFF, 8- or 16-bit) on a 0–255 scale (16-bit values are
 * divided by 257), ready for the ImageNet statistics; the first `bands` bands are taken (a 4-band
 * R, G, B, NIR file read as RGB drops NIR). Nodata: the file's nodata value, NaN/Inf, a real alpha band.
 * @throws SkySenseError `E_BANDS` (too few bands), `E_DTYPE` (not 8/16-bit, unless `anyDtype`).
 */
export async function loadHr(file: string, options: { bands?: 3 | 4 } & ProductCheckOptions = {}): Promise<BandStack> {
  const r = await readGeoTiff(file);
  const want = options.bands ?? 3;
  const data = r.bands.filter((_, i) => i !== r.alphaBand);
  if (data.length < want)
    throw new SkySenseError(
      'E_BANDS',
      `${file}: an HR image needs ${want} bands (R, G, B${want === 4 ? ', NIR' : ''}), the file has ${data.length}${r.alphaBand !== null ? ' and an alpha band' : ''}`,
    );
  checkDtype(r, 'hr', options);
  const scale = r.dtype === 'uint16' ? 1 / 257 : 1;
  const bands = data.slice(0, want).map((b) => fillInvalid(scale === 1 ? b.slice() : b.map((v) => v * scale), r.valid));
  return { bands, names: ['R', 'G', 'B', 'NIR'].slice(0, want), height: r.height, width: r.width, valid: r.valid, grid: r };
}
