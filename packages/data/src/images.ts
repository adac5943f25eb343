import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import jpeg from 'jpeg-js';
import { SkySenseError, checkDecodeBudget, decodeBudget, decodePng, formatBytes, readJsonFile } from '@skysense/core-tensor';
import { readGeoTiff } from './raster';
import { fillInvalid } from './sentinel';

/** An image as planar float channels (`channels × height × width`, channel-major), on its file's scale (0–255 for 8-bit). */
export interface PlanarImage {
  width: number;
  height: number;
  channels: number;
  data: Float32Array;
  /**
   * `[height·width]`, 0 at nodata (a GeoTIFF's nodata value or NaN/Inf, a transparent PNG pixel),
   * present only when the image has some; those pixels hold the channel's mean over valid pixels.
   */
  valid?: Uint8Array;
}

/** One class of a segmentation dataset: its name and the colour it has in colour-coded masks. */
export interface ClassDef {
  name: string;
  /** RGB, 0–255. */
  color: [number, number, number];
}

/**
 * The Dubai aerial imagery dataset (Humans in the Loop / MBRSC) as its mask PNGs encode it (the
 * colours of the shipped `classes.json` are the annotation tool's, not the masks'). "Unlabeled" is
 * kept as a class, as in the dataset's 6-class setting.
 */
export const DUBAI_AERIAL_CLASSES: readonly ClassDef[] = [
  { name: 'Building', color: [0x3c, 0x10, 0x98] },
  { name: 'Land (unpaved area)', color: [0x84, 0x29, 0xf6] },
  { name: 'Road', color: [0x6e, 0xc1, 0xe4] },
  { name: 'Vegetation', color: [0xfe, 0xdd, 0x3a] },
  { name: 'Water', color: [0xe2, 0xa9, 0x29] },
  { name: 'Unlabeled', color: [0x9b, 0x9b, 0x9b] },
];

/** The ignore label of masks (mmseg's). */
export const IGNORE_INDEX = 255;

const hex = (c: readonly number[]) =>
  `#${c
    .map((v) => v.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase()}`;

/**
 * Reads a class table: `[{ "name", "color": "#RRGGBB" | [r, g, b] }]`, or a `classes.json` of the
 * `{ "classes": [{ "title", "color" }] }` form.
 * @throws SkySenseError `E_DATA` naming the entry that has no name or a malformed colour.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { readClassTable } from '@skysense/data';
 * await initBackend();
 * // [{ "name": "Water", "color": "#E2A929" }, …] or { "classes": [...] } with "title" (Supervisely)
 * const classes = readClassTable('my-tiles/classes.json');
 * console.log(classes.map((c) => c.name));
 * ```
 */
export function readClassTable(file: string): ClassDef[] {
  const raw = readJsonFile(file, 'class table');
  const list = (Array.isArray(raw) ? raw : (raw as { classes?: unknown } | null)?.classes) as
    (Record<string, unknown> | null)[] | undefined;
  if (!Array.isArray(list) || list.length === 0)
    throw new SkySenseError(
      'E_DATA',
      `${file}: expected a list of classes (or { "classes": [...] }), got ${JSON.stringify(raw).slice(0, 80)}`,
    );
  return list.map((e, i) => {
    const name = (e?.name ?? e?.title) as string | undefined;
    const c = e?.color;
    const rgb =
      typeof c === 'string' && /^#[0-9a-f]{6}$/i.test(c)
        ? [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16))
        : Array.isArray(c) && c.length === 3 && c.every((v) => Number.isInteger(v) && v >= 0 && v < 256)
          ? (c as number[])
          : null;
    if (typeof name !== 'string' || !rgb)
      throw new SkySenseError('E_DATA', `${file} class ${i}: expected { name, color: "#RRGGBB" or [r, g, b] }, got ${JSON.stringify(e)}`);
    return { name, color: rgb as [number, number, number] };
  });
}

/** Interleaved 8-bit pixels → planar float channels; an alpha channel (`channels > keep`) of 0 marks nodata. */
function planar(data: Uint8Array, width: number, height: number, channels: number, keep: number, fill: boolean): PlanarImage {
  const n = width * height;
  const out = new Float32Array(keep * n);
  for (let c = 0; c < keep; c++) for (let i = 0; i < n; i++) out[c * n + i] = data[i * channels + c]!;
  const image: PlanarImage = { width, height, channels: keep, data: out };
  if (channels === keep) return image;
  const valid = Uint8Array.from({ length: n }, (_, i) => (data[i * channels + keep] === 0 ? 0 : 1));
  return withValidity(image, valid, fill);
}

/** Attaches a validity mask when it has nodata, filling those pixels with each channel's valid mean unless `fill` is false. */
function withValidity(image: PlanarImage, valid: Uint8Array, fill: boolean): PlanarImage {
  if (valid.every((v) => v === 1)) return image;
  const n = image.width * image.height;
  if (fill) for (let c = 0; c < image.channels; c++) fillInvalid(image.data.subarray(c * n, (c + 1) * n), valid);
  return { ...image, valid };
}

/** Options of {@link readImage}. */
export interface ReadImageOptions {
  /** Fill nodata pixels with their channel's mean over valid pixels (images for a model). `false` keeps the stored values (label masks). Default true. */
  fill?: boolean;
}

/**
 * Reads a PNG, JPEG or (Geo)TIFF image by its content (not its extension) into planar channels;
 * alpha is dropped (alpha 0 is nodata). TIFFs keep every band and their stored values. Nodata
 * (`valid`) is filled unless `fill: false`.
 * @throws SkySenseError `E_IO` for a missing file, `E_FORMAT` for an unreadable one, `E_LIMIT` for one over the decode budget.
 * @example
 * ```ts
 * import { readImage } from '@skysense/data';
 * const image = await readImage('tile.png'); // PNG, JPEG or GeoTIFF, by content
 * console.log(image.channels, image.width, image.height, image.valid ? 'has nodata' : 'complete');
 * ```
 */
export async function readImage(file: string, options: ReadImageOptions = {}): Promise<PlanarImage> {
  if (!existsSync(file)) throw new SkySenseError('E_IO', `${file}: no such file`);
  const fill = options.fill ?? true;
  const budget = decodeBudget();
  const head = readHead(file, 24);
  const tiff = (head[0] === 0x49 && head[1] === 0x49) || (head[0] === 0x4d && head[1] === 0x4d);
  if (tiff) {
    const r = await readGeoTiff(file);
    const data = new Float32Array(r.bands.length * r.width * r.height);
    r.bands.forEach((b, c) => data.set(b, c * r.width * r.height));
    return withValidity({ width: r.width, height: r.height, channels: r.bands.length, data }, r.valid, fill);
  }
  // PNG and JPEG are decoded from memory: the file must fit the budget and a Node buffer (2 GiB)
  checkDecodeBudget(file, statSync(file).size, 'the compressed file itself', Math.min(budget, 2 ** 31 - 1));
  const bytes = readFileSync(file);
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    if (bytes.length >= 24) {
      const [w, h] = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
      checkDecodeBudget(file, w * h * 4 * 5, `${w} × ${h} px, decoded and as float32 planes`, budget);
    }
    const img = decodePng(bytes, file);
    return planar(
      img.data,
      img.width,
      img.height,
      img.channels,
      img.channels === 2 || img.channels === 4 ? img.channels - 1 : img.channels,
      fill,
    );
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    let img: { width: number; height: number; data: Uint8Array };
    try {
      // RGBA bytes plus three float32 planes per pixel: 16 bytes
      img = jpeg.decode(bytes, {
        useTArray: true,
        formatAsRGBA: true,
        maxMemoryUsageInMB: Math.max(1, Math.floor(budget / 2 ** 20)),
        maxResolutionInMP: budget / 16 / 1e6,
      });
    } catch (e) {
      const why = (e as Error).message ?? String(e);
      if (/maxResolutionInMP|maxMemoryUsageInMB/.test(why))
        throw new SkySenseError(
          'E_LIMIT',
          `${file}: decoding exceeds the ${formatBytes(budget)} budget (${why}; raise SKYSENSE_MAX_DECODE_BYTES to allow it)`,
        );
      throw new SkySenseError('E_FORMAT', `${file}: not a valid JPEG (${why})`, { cause: e });
    }
    return planar(img.data, img.width, img.height, 4, 3, false);
  }
  throw new SkySenseError(
    'E_FORMAT',
    `${file}: expected a PNG, JPEG or TIFF image, got a file starting with bytes ${[...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}`,
  );
}

/** The first `n` bytes of a file (fewer if it is shorter). */
function readHead(file: string, n: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a label mask: a one-channel image holds class indices (255 = ignore); an RGB image is
 * colour-coded and decoded through `classes`. Nodata pixels of the mask file (its nodata value,
 * alpha 0) are ignored.
 * @throws SkySenseError `E_DATA` for a colour that is not in the class table (named with its pixel),
 * or an index ≥ the number of classes.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { DUBAI_AERIAL_CLASSES, readMask } from '@skysense/data';
 * await initBackend();
 * // a colour (or index) mask → class indices; colours outside the table are refused, nodata → 255
 * const labels = await readMask('my-tiles/masks/tile1_image_part_001.png', DUBAI_AERIAL_CLASSES);
 * console.log(labels.length, labels[0]);
 * ```
 */
export async function readMask(file: string, classes: readonly ClassDef[]): Promise<Uint8Array> {
  const img = await readImage(file, { fill: false });
  const n = img.width * img.height;
  const out = new Uint8Array(n).fill(IGNORE_INDEX);
  if (img.channels === 1) {
    for (let i = 0; i < n; i++) {
      if (img.valid && !img.valid[i]) continue;
      const v = img.data[i]!;
      if (v !== IGNORE_INDEX && !(Number.isInteger(v) && v >= 0 && v < classes.length))
        throw new SkySenseError(
          'E_DATA',
          `${file}: pixel (${i % img.width}, ${Math.floor(i / img.width)}) has class ${v}, expected an integer in [0, ${classes.length}) or ${IGNORE_INDEX}`,
        );
      out[i] = v;
    }
    return out;
  }
  const lookup = new Map(classes.map((c, k) => [(c.color[0] << 16) | (c.color[1] << 8) | c.color[2], k]));
  for (let i = 0; i < n; i++) {
    if (img.valid && !img.valid[i]) continue;
    const key = (img.data[i]! << 16) | (img.data[n + i]! << 8) | img.data[2 * n + i]!;
    const k = lookup.get(key);
    if (k === undefined) {
      const rgb = [0, 1, 2].map((c) => img.data[c * n + i]!);
      throw new SkySenseError(
        'E_DATA',
        `${file}: pixel (${i % img.width}, ${Math.floor(i / img.width)}) has colour ${hex(rgb)}, which is not in the class table (${classes.map((c) => `${c.name} ${hex(c.color)}`).join(', ')})`,
      );
    }
    out[i] = k;
  }
  return out;
}

/**
 * Sets the labels of pixels that are nodata to {@link IGNORE_INDEX} (in place), so that nodata is
 * neither trained on nor scored, and is drawn black in pictures: nodata in `any` of the images (the
 * default: an image and its other date), or in `all` of them (the frames of a series, where the fusion
 * reads a location from whichever frames have data).
 */
export function ignoreNodata<M extends { [i: number]: number; length: number }>(
  mask: M,
  images: readonly PlanarImage[],
  mode: 'any' | 'all' = 'any',
): M {
  if (mode === 'any') {
    for (const img of images) if (img.valid) for (let i = 0; i < mask.length; i++) if (!img.valid[i]) mask[i] = IGNORE_INDEX;
    return mask;
  }
  for (let i = 0; i < mask.length; i++) if (images.every((img) => img.valid && !img.valid[i])) mask[i] = IGNORE_INDEX;
  return mask;
}

/** An image with its label mask. */
export interface LabelledImage {
  name: string;
  file: string;
  image: PlanarImage;
  mask: Uint8Array;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff']);

/** Image files of a folder, sorted. */
export function listImages(dir: string): string[] {
  if (!existsSync(dir)) throw new SkySenseError('E_IO', `${dir}: no such folder`);
  return readdirSync(dir)
    .filter((f) => IMAGE_EXT.has(extname(f).toLowerCase()))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Loads a segmentation dataset laid out as `<dir>/images/*` and `<dir>/masks/*`, paired by file
 * name without extension (`a.jpg` ↔ `a.png`).
 * @throws SkySenseError `E_DATA` for an image without a mask or a mask of another size.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { loadSegmentationDataset, readClassTable } from '@skysense/data';
 * await initBackend();
 * // images/ and masks/ paired by file name
 * const pairs = await loadSegmentationDataset('my-tiles', readClassTable('my-tiles/classes.json'));
 * console.log(pairs.length, pairs[0]?.name, pairs[0]?.image.width);
 * ```
 */
export async function loadSegmentationDataset(
  dir: string,
  classes: readonly ClassDef[],
  read: (file: string) => Promise<PlanarImage> = (f) => readImage(f),
): Promise<LabelledImage[]> {
  const stem = (f: string) => basename(f, extname(f));
  const masks = new Map(listImages(join(dir, 'masks')).map((f) => [stem(f), f]));
  const out: LabelledImage[] = [];
  for (const file of listImages(join(dir, 'images'))) {
    const maskFile = masks.get(stem(file));
    if (!maskFile) throw new SkySenseError('E_DATA', `${file}: no mask named ${stem(file)}.* in ${join(dir, 'masks')}`);
    const image = await read(file);
    const mask = await readMask(maskFile, classes);
    if (mask.length !== image.width * image.height) {
      const m = await readImage(maskFile);
      throw new SkySenseError('E_DATA', `${maskFile}: mask is ${m.width}×${m.height}, its image ${image.width}×${image.height}`);
    }
    out.push({ name: stem(file), file, image, mask: ignoreNodata(mask, [image]) });
  }
  if (out.length === 0) throw new SkySenseError('E_DATA', `${dir}: no images in ${join(dir, 'images')}`);
  return out;
}
