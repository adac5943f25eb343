import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { fromFile } from 'geotiff';
import proj4 from 'proj4';
import { SkySenseError, checkDecodeBudget, decodeBudget } from '@skysense/core-tensor';

/** A georeferenced raster read from a GeoTIFF: one float array per band, row-major. */
export interface Raster {
  file: string;
  width: number;
  height: number;
  bands: Float32Array[];
  /** The stored sample type (`uint8`, `uint16`, `int16`, `float32`, …). */
  dtype: string;
  /** The GDAL nodata value, if the file declares one. */
  nodata: number | null;
  /**
   * Per pixel, 1 where it holds data and 0 where it does not: a band equal to `nodata`, a NaN or
   * ±Inf in any band, or an alpha band (`ExtraSamples`) of 0.
   */
  valid: Uint8Array;
  /**
   * Index of the alpha band: one the file declares (`ExtraSamples`) and that holds only 0 and one
   * other value (it stays in `bands`). A declared "alpha" with other values is data (NAIP files
   * label their NIR band so) and is not used as a mask.
   */
  alphaBand: number | null;
  /** EPSG code of the CRS (projected or geographic), if declared. */
  epsg: number | null;
  /** Upper-left corner in CRS units. */
  origin: [number, number];
  /** Pixel size in CRS units (y negative for north-up images). */
  resolution: [number, number];
  /** `[minX, minY, maxX, maxY]` in CRS units. */
  bounds: [number, number, number, number];
  /** TIFF `DateTime` tag (306), if present. */
  tiffDate: string | null;
}

/** A pixel window `[x0, y0, x1, y1)` of a large raster. */
export type PixelWindow = [number, number, number, number];

const DTYPES: Record<string, string> = {
  '1-8': 'uint8',
  '1-16': 'uint16',
  '1-32': 'uint32',
  '2-8': 'int8',
  '2-16': 'int16',
  '2-32': 'int32',
  '3-32': 'float32',
  '3-64': 'float64',
};

/** Options of {@link readGeoTiff}. */
export interface ReadGeoTiffOptions {
  /** Read only this pixel window. */
  window?: PixelWindow;
  /** Most bytes the decoded bands may take. Default: {@link @skysense/core-tensor!decodeBudget} (4 GiB, `SKYSENSE_MAX_DECODE_BYTES`). */
  maxDecodedBytes?: number;
}

type FileDirectory = { hasTag(t: string): boolean; loadValue(t: string): Promise<ArrayLike<number | bigint> | number> };

const TIFF_TYPE_SIZE: Record<number, number> = {
  1: 1,
  2: 1,
  3: 2,
  4: 4,
  5: 8,
  6: 1,
  7: 1,
  8: 2,
  9: 4,
  10: 8,
  11: 4,
  12: 8,
  13: 4,
  16: 8,
  17: 8,
  18: 8,
};

/**
 * Checks the TIFF header and the first image directory before a decoder sees them: the magic
 * number, the directory inside the file, and every tag of a known type whose values lie inside the
 * file. A corrupt count would otherwise make the decoder allocate gigabytes for a tag.
 * @throws SkySenseError `E_FORMAT` naming the problem.
 */
function checkTiffStructure(file: string): void {
  const size = statSync(file).size;
  if (size < 8) throw new SkySenseError('E_FORMAT', `${file}: not a valid TIFF (${size} bytes, shorter than a header)`);
  const fd = openSync(file, 'r');
  const read = (at: number, n: number): Buffer => {
    const b = Buffer.alloc(n);
    if (at + n > size || readSync(fd, b, 0, n, at) !== n) fail(`the image directory reaches past the end (byte ${at + n} of ${size})`);
    return b;
  };
  const fail = (why: string): never => {
    throw new SkySenseError('E_FORMAT', `${file}: not a valid TIFF (${why})`);
  };
  try {
    const head = read(0, 16 <= size ? 16 : 8);
    const le = head.toString('latin1', 0, 2) === 'II';
    if (!le && head.toString('latin1', 0, 2) !== 'MM') fail('no II/MM byte-order mark');
    const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const u64 = (b: Buffer, o: number) => Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
    const magic = u16(head, 2);
    if (magic !== 42 && magic !== 43) fail(`magic number ${magic}, expected 42 (TIFF) or 43 (BigTIFF)`);
    const big = magic === 43;
    if (big && head.length < 16) fail('a BigTIFF header needs 16 bytes');
    const ifd = big ? u64(head, 8) : u32(head, 4);
    const count = big ? u64(read(ifd, 8), 0) : u16(read(ifd, 2), 0);
    const [entrySize, inline, first] = big ? [20, 8, ifd + 8] : [12, 4, ifd + 2];
    const entries = read(first, count * entrySize);
    for (let i = 0; i < count; i++) {
      const e = i * entrySize;
      const [tag, type] = [u16(entries, e), u16(entries, e + 2)];
      const n = big ? u64(entries, e + 4) : u32(entries, e + 4);
      const width = TIFF_TYPE_SIZE[type];
      if (width === undefined) fail(`tag ${tag} has an unknown field type ${type}`);
      const bytes = n * width!;
      if (bytes <= inline) continue;
      const at = big ? u64(entries, e + 12) : u32(entries, e + 8);
      if (at + bytes > size) fail(`tag ${tag} declares ${bytes} bytes of values at byte ${at}, past the end of the ${size}-byte file`);
    }
  } finally {
    closeSync(fd);
  }
}

/** Refuses a file whose strips or tiles reach past its end (a cut download), before any is decoded. */
async function checkComplete(file: string, dir: FileDirectory): Promise<void> {
  const [offsetsTag, countsTag] = dir.hasTag('StripOffsets') ? ['StripOffsets', 'StripByteCounts'] : ['TileOffsets', 'TileByteCounts'];
  if (!dir.hasTag(offsetsTag) || !dir.hasTag(countsTag))
    throw new SkySenseError('E_FORMAT', `${file}: not a readable GeoTIFF (no ${offsetsTag} / ${countsTag})`);
  const list = async (t: string) => {
    const v = await dir.loadValue(t);
    return typeof v === 'number' ? [v] : Array.from(v, Number);
  };
  const [offsets, counts] = [await list(offsetsTag), await list(countsTag)];
  const size = statSync(file).size;
  for (let i = 0; i < offsets.length; i++) {
    const end = offsets[i]! + (counts[i] ?? 0);
    if (end > size)
      throw new SkySenseError(
        'E_FORMAT',
        `${file}: truncated — ${offsetsTag === 'StripOffsets' ? 'strip' : 'tile'} ${i} of ${offsets.length} ends at byte ${end}, the file has ${size} bytes (an interrupted download or copy?)`,
      );
  }
}

/** Whether a band holds only 0 and one other value (a real alpha mask; 4-band products often mislabel NIR as alpha). */
function isBinaryMask(band: ArrayLike<number>): boolean {
  let on: number | null = null;
  for (let i = 0; i < band.length; i++) {
    const v = band[i]!;
    if (v === 0) continue;
    if (on === null) on = v;
    else if (v !== on) return false;
  }
  return true;
}

const FLT_MAX = 3.4028234663852886e38;

/**
 * The nodata value as stored samples of `dtype` hold it: for float32 the tag's decimal text is
 * rounded to float32, and a value within 1e-5 of ±FLT_MAX (`-3.40282e+38`, as `%g` prints it)
 * means ±FLT_MAX, as GDAL reads it.
 */
function storedNodata(nodata: number, dtype: string): number {
  if (dtype !== 'float32') return nodata;
  const nearMax = Math.abs(Math.abs(nodata) / FLT_MAX - 1) < 1e-5;
  return Math.fround(nearMax ? Math.sign(nodata) * FLT_MAX : nodata);
}

/** Validity of the stored samples (before any conversion): nodata value, NaN/Inf, alpha 0. */
function validity(bands: ArrayLike<number>[], nodata: number | null, dtype: string, alpha: number | null): Uint8Array {
  const n = bands[0]?.length ?? 0;
  const valid = new Uint8Array(n).fill(1);
  const nd = nodata === null ? null : storedNodata(nodata, dtype);
  bands.forEach((b, c) => {
    if (c === alpha) {
      for (let i = 0; i < n; i++) if (b[i] === 0) valid[i] = 0;
      return;
    }
    for (let i = 0; i < n; i++) {
      const v = b[i]!;
      if (!Number.isFinite(v) || v === nd) valid[i] = 0;
    }
  });
  return valid;
}

/**
 * Reads a GeoTIFF (or Cloud-Optimized GeoTIFF): every band (or a pixel window of a large raster) as
 * float32, with its georeferencing and a per-pixel validity mask (nodata value, NaN/Inf, alpha).
 * Before decoding, the size the header declares is checked against the decode budget and every
 * strip or tile against the file's length.
 * @throws SkySenseError `E_IO` for a missing file, `E_FORMAT` for a truncated file, `E_LIMIT` for one
 * over the budget, `E_DATA` for a file that is not a readable GeoTIFF.
 * @example
 * ```ts
 * import { readGeoTiff } from '@skysense/data';
 * const r = await readGeoTiff('tile.tif');
 * console.log(r.width, r.height, r.bands.length, r.dtype, r.epsg);
 * const nodata = r.valid.filter((v) => v === 0).length; // pixels without data (nodata tag, NaN, alpha)
 * ```
 */
export async function readGeoTiff(file: string, options: ReadGeoTiffOptions = {}): Promise<Raster> {
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file`);
  checkTiffStructure(file);
  try {
    const tiff = await fromFile(file);
    const image = await tiff.getImage();
    const width = image.getWidth();
    const height = image.getHeight();
    const window = options.window;
    const samples = image.getSamplesPerPixel();
    const pixels = window ? (window[2] - window[0]) * (window[3] - window[1]) : width * height;
    checkDecodeBudget(
      file,
      pixels * samples * 8,
      `${width} × ${height} px × ${samples} band(s), stored and as float32`,
      options.maxDecodedBytes ?? decodeBudget(),
    );
    await checkComplete(file, image.fileDirectory as unknown as FileDirectory);
    if (
      window &&
      !(window[0] >= 0 && window[1] >= 0 && window[2] <= width && window[3] <= height && window[0] < window[2] && window[1] < window[3])
    ) {
      throw new SkySenseError('E_DATA', `${file}: window [${window}] is outside the ${width}×${height} raster`);
    }
    const rasters = (await image.readRasters({ window, interleave: false })) as unknown as ArrayLike<number>[];
    const origin = image.getOrigin() as number[];
    const resolution = image.getResolution() as number[];
    const keys = (image.getGeoKeys() ?? {}) as Record<string, number | undefined>;
    const fmt = String(image.getSampleFormat?.() ?? 1);
    const bits = String(image.getBitsPerSample());
    const [x0, y0] = window ? [window[0], window[1]] : [0, 0];
    const w = window ? window[2] - window[0] : width;
    const h = window ? window[3] - window[1] : height;
    const ox = origin[0]! + x0 * resolution[0]!;
    const oy = origin[1]! + y0 * resolution[1]!;
    const ex = ox + w * resolution[0]!;
    const ey = oy + h * resolution[1]!;
    const fileDir = image.getFileDirectory() as unknown as Record<string, unknown>;
    const tags = image.fileDirectory as unknown as { hasTag(t: string): boolean; getValue(t: string): unknown };
    const extra = ((tags.hasTag('ExtraSamples') ? tags.getValue('ExtraSamples') : []) as ArrayLike<number> | number) ?? [];
    const extras = typeof extra === 'number' ? [extra] : Array.from(extra);
    const declared = extras[0] === 1 || extras[0] === 2 ? samples - extras.length : null;
    const alphaBand = declared !== null && isBinaryMask(rasters[declared]!) ? declared : null;
    const nodata = image.getGDALNoData();
    const dtype = DTYPES[`${fmt}-${bits}`] ?? `format ${fmt}, ${bits} bit`;
    const valid = validity(rasters, nodata, dtype, alphaBand);
    return {
      file,
      width: w,
      height: h,
      bands: Array.from(rasters, (b) => Float32Array.from(b)),
      dtype,
      nodata,
      valid,
      alphaBand,
      epsg: keys.ProjectedCSTypeGeoKey ?? keys.GeographicTypeGeoKey ?? null,
      origin: [ox, oy],
      resolution: [resolution[0]!, resolution[1]!],
      bounds: [Math.min(ox, ex), Math.min(oy, ey), Math.max(ox, ex), Math.max(oy, ey)],
      tiffDate: typeof fileDir.DateTime === 'string' ? fileDir.DateTime : null,
    };
  } catch (e) {
    if (e instanceof SkySenseError) throw e;
    const why = e instanceof Error ? e.message : String(e);
    throw new SkySenseError('E_DATA', `${file}: not a readable GeoTIFF (${why || (e as Error).name || 'unknown decoder error'})`, {
      cause: e,
    });
  }
}

/** A proj4 definition for an EPSG code: WGS 84, UTM north/south zones (326xx / 327xx), Web Mercator, or one proj4 knows. */
export function crsDefinition(epsg: number): string {
  if (epsg === 4326) return 'EPSG:4326';
  const zone = epsg % 100;
  if (epsg >= 32601 && epsg <= 32660) return `+proj=utm +zone=${zone} +datum=WGS84 +units=m +no_defs`;
  if (epsg >= 32701 && epsg <= 32760) return `+proj=utm +zone=${zone} +south +datum=WGS84 +units=m +no_defs`;
  if (epsg >= 26901 && epsg <= 26923) return `+proj=utm +zone=${zone} +ellps=GRS80 +towgs84=0,0,0,0,0,0,0 +units=m +no_defs`;
  const known = proj4.defs(`EPSG:${epsg}`);
  if (known) return `EPSG:${epsg}`;
  throw new SkySenseError(
    'E_DATA',
    `EPSG:${epsg} is not a CRS SkySense can project (WGS 84, UTM 326xx/327xx, NAD83 UTM 269xx, Web Mercator)`,
  );
}

/** Converts CRS coordinates to `[lat, lon]` (WGS 84). */
export function toLatLon(x: number, y: number, epsg: number): [number, number] {
  const [lon, lat] = epsg === 4326 ? [x, y] : (proj4(crsDefinition(epsg), 'EPSG:4326', [x, y]) as [number, number]);
  return [lat, lon];
}

/** Latitude and longitude of a raster's centre. @throws SkySenseError `E_DATA` without a CRS. */
export function rasterCentre(r: Raster): { lat: number; lon: number } {
  if (r.epsg === null) throw new SkySenseError('E_DATA', `${r.file}: no CRS in the GeoTIFF keys; give lat/lon explicitly`);
  const [lat, lon] = toLatLon((r.bounds[0] + r.bounds[2]) / 2, (r.bounds[1] + r.bounds[3]) / 2, r.epsg);
  return { lat, lon };
}
