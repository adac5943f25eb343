import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import {
  SkySenseError,
  allInOrder,
  assertInt,
  categoricalColors,
  ensureDir,
  readJsonFile,
  withFsErrors,
  writeFileAtomic,
} from '@skysense/core-tensor';
import { type ClassDef, listImages, loadSegmentationDataset, readImage } from './images';
import { imageStats, type LabelledDataset } from './datasets';

/** One object of a detection annotation: class name, box `[x1, y1, x2, y2]` in pixels, and VOC's `difficult` flag. */
export interface DetectionObject {
  name: string;
  bbox: [number, number, number, number];
  /** Evaluated as "ignore" (mmdet's `bboxes_ignore`). */
  difficult: boolean;
}

/** A Pascal VOC / DIOR annotation file. */
export interface VocAnnotation {
  filename: string;
  width: number;
  height: number;
  objects: DetectionObject[];
}

/** The contents of every `<tag>` element inside `xml`, in order (VOC files are flat enough for this; comments are removed first). */
function elements(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}(?:\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]!);
}

/** Element text: a CDATA section verbatim, else with the XML entities (named and numeric) decoded. */
function text(raw: string): string {
  const cdata = /^\s*<!\[CDATA\[([\s\S]*?)\]\]>\s*$/.exec(raw);
  if (cdata) return cdata[1]!;
  return raw
    .trim()
    .replace(/&#x([0-9a-f]+);/gi, (_, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

const DECIMAL = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

/**
 * Reads a Pascal VOC XML annotation (the DIOR layout): file name, image size and the objects, with
 * coordinates read as mmdet's `XMLDataset` reads them (`int(float(text))`). Boxes reaching past the
 * image are clipped to it; a box with no area left is refused.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { readVocAnnotation } from '@skysense/data';
 * await initBackend();
 * const ann = readVocAnnotation('dubai-boxes/Annotations/tile1_image_part_001.xml');
 * console.log(ann.width, ann.height, ann.objects.length, ann.objects[0]); // { name: 'Building', bbox: [...], difficult: false }
 * ```
 * @throws SkySenseError `E_DATA` naming the file and the object for an empty file, a missing or non-numeric field, or a degenerate box.
 */
export function readVocAnnotation(file: string): VocAnnotation {
  const xml = withFsErrors(`cannot read annotation ${file}`, () => readFileSync(file, 'utf8')).replace(/<!--[\s\S]*?-->/g, '');
  const bad = (why: string) => new SkySenseError('E_DATA', `${file}: ${why}`);
  if (!xml.trim()) throw bad('empty file (expected a Pascal VOC <annotation>)');
  const [root] = elements(xml, 'annotation');
  if (root === undefined) throw bad('no <annotation> element (not a Pascal VOC file)');
  const number = (raw: string | undefined, what: string) => {
    const t = raw === undefined ? undefined : text(raw);
    if (t === undefined || !DECIMAL.test(t))
      throw bad(`${what}: expected a number, got ${t === undefined ? 'nothing' : JSON.stringify(t)}`);
    return Number(t);
  };
  const [size] = elements(root, 'size');
  if (size === undefined) throw bad('no <size> (width, height)');
  const width = number(elements(size, 'width')[0], '<size><width>');
  const height = number(elements(size, 'height')[0], '<size><height>');
  if (!(width > 0 && height > 0)) throw bad(`<size>: expected a positive width and height, got ${width} × ${height}`);
  const objects = elements(root, 'object').map((whole, i): DetectionObject => {
    const o = whole.replace(/<part(?:\s[^>]*)?>[\s\S]*?<\/part>/g, ''); // VOC person parts have their own name and box
    const name = text(elements(o, 'name')[0] ?? '');
    if (!name) throw bad(`object ${i}: no <name>`);
    const [box] = elements(o, 'bndbox');
    if (box === undefined) throw bad(`object ${i} (${name}): no <bndbox>`);
    const [x1, y1, x2, y2] = ['xmin', 'ymin', 'xmax', 'ymax'].map((k) =>
      Math.trunc(number(elements(box, k)[0], `object ${i} (${name}) <${k}>`)),
    );
    const clipped: [number, number, number, number] = [
      Math.min(Math.max(x1!, 0), width),
      Math.min(Math.max(y1!, 0), height),
      Math.min(Math.max(x2!, 0), width),
      Math.min(Math.max(y2!, 0), height),
    ];
    if (!(clipped[2] > clipped[0] && clipped[3] > clipped[1]))
      throw bad(`object ${i} (${name}): box [${x1}, ${y1}, ${x2}, ${y2}] has no area inside the ${width} × ${height} image`);
    const difficult = elements(o, 'difficult')[0];
    return { name, bbox: clipped, difficult: difficult !== undefined && number(difficult, `object ${i} (${name}) <difficult>`) !== 0 };
  });
  return { filename: text(elements(root, 'filename')[0] ?? ''), width, height, objects };
}

/** A detection dataset item: the image file and its annotation, with labels as indices into the class list. */
export interface DetectionSample {
  name: string;
  image: string;
  annotation: VocAnnotation;
  /** Class index per object (same order as `annotation.objects`). */
  labels: number[];
}

/**
 * Reads a VOC/DIOR-style folder: `Annotations/*.xml` and the images they name (`JPEGImages/`, else
 * `images/`). Images without objects are kept (negatives).
 * @param classes the label map: object names outside it are refused (naming the file and the class).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { readVocFolder } from '@skysense/data';
 * await initBackend();
 * const samples = readVocFolder('dubai-boxes', ['Building']);
 * console.log(samples.length, samples[0]?.labels);
 * ```
 * @throws SkySenseError `E_IO` for a folder without annotations or a missing image, `E_DATA` for a class not in `classes`.
 */
export function readVocFolder(dir: string, classes: readonly string[]): DetectionSample[] {
  const annDir = join(dir, 'Annotations');
  if (!existsSync(annDir)) throw new SkySenseError('E_IO', `${dir}: no Annotations/ folder (expected the Pascal VOC / DIOR layout)`);
  const imageDir = ['JPEGImages', 'images'].map((d) => join(dir, d)).find((d) => existsSync(d));
  if (!imageDir) throw new SkySenseError('E_IO', `${dir}: no JPEGImages/ or images/ folder`);
  const images = new Map(listImages(imageDir).map((f) => [basename(f, extname(f)), f]));
  const files = readdirSync(annDir)
    .filter((f) => f.endsWith('.xml'))
    .sort();
  if (!files.length) throw new SkySenseError('E_IO', `${annDir}: no .xml annotation files`);
  return files.map((f) => {
    const annotation = readVocAnnotation(join(annDir, f));
    const name = basename(f, '.xml');
    const image = images.get(name) ?? images.get(basename(annotation.filename, extname(annotation.filename)));
    if (!image) throw new SkySenseError('E_IO', `${join(annDir, f)}: no image ${name}.* in ${imageDir}`);
    const labels = annotation.objects.map((o) => {
      const k = classes.indexOf(o.name);
      if (k < 0) throw new SkySenseError('E_DATA', `${join(annDir, f)}: class '${o.name}' is not in the label map (${classes.join(', ')})`);
      return k;
    });
    return { name, image, annotation, labels };
  });
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Writes a Pascal VOC annotation (atomically), readable by {@link readVocAnnotation} and mmdet's `XMLDataset`. */
export function writeVocAnnotation(file: string, annotation: VocAnnotation): void {
  const objects = annotation.objects
    .map(
      (o) =>
        `  <object>\n    <name>${escapeXml(o.name)}</name>\n    <difficult>${o.difficult ? 1 : 0}</difficult>\n    <bndbox>\n` +
        ['xmin', 'ymin', 'xmax', 'ymax'].map((k, i) => `      <${k}>${o.bbox[i]}</${k}>\n`).join('') +
        '    </bndbox>\n  </object>\n',
    )
    .join('');
  writeFileAtomic(
    file,
    `<annotation>\n  <filename>${escapeXml(annotation.filename)}</filename>\n  <size>\n    <width>${annotation.width}</width>\n    <height>${annotation.height}</height>\n    <depth>3</depth>\n  </size>\n${objects}</annotation>\n`,
  );
}

/** Options of {@link boxesFromMask}. */
export interface BoxesFromMaskOptions {
  /** Class indices to turn into boxes (one box per connected component, 4-connectivity). */
  classes: readonly number[];
  /** Components with fewer pixels are dropped. Default 64. */
  minPixels?: number;
}

/**
 * Boxes from a label mask: each 4-connected component of a chosen class becomes one box
 * `[x1, y1, x2 + 1, y2 + 1]` (pixel edges, so a one-pixel component is 1 × 1); components smaller
 * than `minPixels` are dropped. How the Dubai aerial masks become a small real detection set.
 * @param labels `[height · width]` class indices (e.g. from `readMask`).
 * @returns per component its class index and box, in scan order.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { boxesFromMask } from '@skysense/data';
 * await initBackend();
 * const mask = Uint8Array.from([0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1]); // 3 rows × 4 columns
 * console.log(boxesFromMask(mask, 4, 3, { classes: [1], minPixels: 1 })); // [{ label: 1, bbox: [1, 0, 3, 2], pixels: 4 }, { label: 1, bbox: [3, 2, 4, 3], pixels: 1 }]
 * ```
 */
export function boxesFromMask(
  labels: ArrayLike<number>,
  width: number,
  height: number,
  options: BoxesFromMaskOptions,
): { label: number; bbox: [number, number, number, number]; pixels: number }[] {
  if (labels.length !== width * height)
    throw new SkySenseError(
      'E_SHAPE',
      `boxesFromMask: ${labels.length} labels for a ${width} × ${height} mask (expected ${width * height})`,
    );
  const minPixels = assertInt('boxesFromMask minPixels', options.minPixels ?? 64, 1);
  const wanted = new Set(options.classes);
  const seen = new Uint8Array(width * height);
  const out: { label: number; bbox: [number, number, number, number]; pixels: number }[] = [];
  const stack: number[] = [];
  for (let start = 0; start < labels.length; start++) {
    const label = labels[start]!;
    if (seen[start] || !wanted.has(label)) continue;
    let [x1, y1, x2, y2, n] = [width, height, -1, -1, 0];
    seen[start] = 1;
    stack.push(start);
    while (stack.length) {
      const p = stack.pop()!;
      const [x, y] = [p % width, Math.floor(p / width)];
      [x1, y1, x2, y2, n] = [Math.min(x1, x), Math.min(y1, y), Math.max(x2, x), Math.max(y2, y), n + 1];
      for (const q of [x > 0 ? p - 1 : -1, x + 1 < width ? p + 1 : -1, y > 0 ? p - width : -1, y + 1 < height ? p + width : -1]) {
        if (q >= 0 && !seen[q] && labels[q] === label) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    if (n >= minPixels) out.push({ label, bbox: [x1, y1, x2 + 1, y2 + 1], pixels: n });
  }
  return out;
}

/** Options of {@link segmentationToDetection}. */
export interface SegmentationToDetectionOptions {
  /** The masks' class table (e.g. `DUBAI_AERIAL_CLASSES`). */
  classes: readonly ClassDef[];
  /** Names of the classes that become boxes (e.g. `['Building']`). */
  boxClasses: readonly string[];
  /** Components with fewer pixels are dropped. Default 64. */
  minPixels?: number;
}

/**
 * Turns a segmentation folder (`images/`, `masks/`) into a Pascal VOC detection folder
 * (`JPEGImages/`, `Annotations/`): each connected component of a box class becomes an object
 * ({@link boxesFromMask}). Images are copied, annotations written atomically; an existing
 * annotation is replaced, other files in `out` are left alone.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { DUBAI_AERIAL_CLASSES, segmentationToDetection } from '@skysense/data';
 * await initBackend();
 * const summary = await segmentationToDetection('my-tiles', 'my-boxes', { classes: DUBAI_AERIAL_CLASSES, boxClasses: ['Building'] });
 * console.log(summary); // { images: 9, objects: …, dropped: … }
 * ```
 * @throws SkySenseError `E_ARG` for a box class not in `classes`.
 */
export async function segmentationToDetection(
  segDir: string,
  out: string,
  options: SegmentationToDetectionOptions,
): Promise<{ images: number; objects: number; dropped: number }> {
  const minPixels = assertInt('minPixels', options.minPixels ?? 64, 1);
  const names = options.classes.map((c) => c.name);
  const boxClasses = options.boxClasses.map((n) => {
    const k = names.indexOf(n);
    if (k < 0) throw new SkySenseError('E_ARG', `boxClasses: '${n}' is not a class of the masks (${names.join(', ')})`);
    return k;
  });
  const pairs = await loadSegmentationDataset(segDir, options.classes);
  for (const d of ['Annotations', 'JPEGImages']) ensureDir(join(out, d));
  let [objects, dropped] = [0, 0];
  for (const p of pairs) {
    const all = boxesFromMask(p.mask, p.image.width, p.image.height, { classes: boxClasses, minPixels: 1 });
    const kept = all.filter((b) => b.pixels >= minPixels);
    [objects, dropped] = [objects + kept.length, dropped + all.length - kept.length];
    const image = join(out, 'JPEGImages', basename(p.file));
    writeFileAtomic(
      image,
      withFsErrors(`cannot read ${p.file}`, () => readFileSync(p.file)),
    );
    writeVocAnnotation(join(out, 'Annotations', `${p.name}.xml`), {
      filename: basename(p.file),
      width: p.image.width,
      height: p.image.height,
      objects: kept.map((b) => ({ name: names[b.label]!, bbox: b.bbox, difficult: false })),
    });
  }
  return { images: pairs.length, objects, dropped };
}

/**
 * A VOC/DIOR-style folder as a detection dataset: each image decoded, its boxes (`boxes`,
 * `boxLabels`, `difficult`) beside it. The class list is `classes`, else every object name found,
 * sorted. Boxes are read as {@link readVocAnnotation} reads them (clipped to the image; boxes
 * without area inside it refused, naming the file); an annotation whose size differs from its
 * image's is refused; images without objects are kept (they train the background).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { readDetectionFolder } from '@skysense/data';
 * await initBackend();
 * const d = await readDetectionFolder('dubai-boxes');
 * console.log(d.classes.map((c) => c.name), d.samples[0]!.boxes!.length / 4);
 * ```
 */
export async function readDetectionFolder(dir: string, classes?: readonly string[]): Promise<LabelledDataset> {
  const names = classes ? [...classes] : uniqueClassNames(dir);
  const items = readVocFolder(dir, names);
  const images = await allInOrder(items.map((s) => readImage(s.image)));
  const samples = items.map((s, i) => {
    const img = images[i]!;
    const { objects, width, height } = s.annotation;
    if (width !== img.width || height !== img.height)
      throw new SkySenseError(
        'E_DATA',
        `${s.name}.xml: the annotation is for a ${width}×${height} image, ${s.image} is ${img.width}×${img.height}`,
      );
    return {
      name: s.name,
      images: [img],
      boxes: Float32Array.from(objects.flatMap((o) => o.bbox)),
      boxLabels: Int32Array.from(s.labels),
      difficult: Uint8Array.from(objects, (o) => (o.difficult ? 1 : 0)),
    };
  });
  if (!samples.length) throw new SkySenseError('E_DATA', `${dir}: no images`);
  const colors = categoricalColors(names.length);
  return { classes: names.map((name, k) => ({ name, color: colors[k]! })), samples, stats: imageStats(samples[0]!.images[0]!.channels) };
}

/** Every object name in a VOC folder's annotations, sorted. */
function uniqueClassNames(dir: string): string[] {
  const annDir = join(dir, 'Annotations');
  if (!existsSync(annDir)) throw new SkySenseError('E_IO', `${dir}: no Annotations/ folder (expected the Pascal VOC / DIOR layout)`);
  const names = new Set<string>();
  for (const f of readdirSync(annDir).filter((n) => n.endsWith('.xml')))
    for (const o of readVocAnnotation(join(annDir, f)).objects) names.add(o.name);
  if (!names.size) throw new SkySenseError('E_DATA', `${annDir}: no objects in any annotation; give the class list`);
  return [...names].sort();
}

/** The parts of a COCO detection file that are read (`images`, `annotations`, `categories`). */
interface CocoFile {
  images?: { id: number; file_name: string; width?: number; height?: number }[];
  annotations?: { image_id: number; category_id: number; bbox: number[]; iscrowd?: number }[];
  categories?: { id: number; name: string }[];
}

/**
 * A COCO-style detection set (`instances_*.json` + an image folder) as a detection dataset, as
 * mmdet's `CocoDataset` reads it: classes in `categories` order, `bbox` `[x, y, w, h]` → x1, y1,
 * x2, y2 (clipped to the image), `iscrowd` boxes kept as ignored (`difficult`), boxes without area
 * skipped, images without annotations kept.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { readCocoDetection } from '@skysense/data';
 * await initBackend();
 * const d = await readCocoDetection('coco-boxes/annotations.json', 'coco-boxes/images');
 * console.log(d.classes.map((c) => c.name), d.samples.length);
 * ```
 * @throws SkySenseError `E_DATA` naming the file and the entry for a missing image, an unknown category or a malformed box.
 */
export async function readCocoDetection(file: string, imageDir: string): Promise<LabelledDataset> {
  const coco = readJsonFile<CocoFile>(file, 'COCO annotation file');
  const fail = (what: string) => new SkySenseError('E_DATA', `${file}: ${what}`);
  if (!Array.isArray(coco?.images) || !Array.isArray(coco.categories))
    throw fail('expected a COCO detection file (arrays "images", "annotations", "categories")');
  const cats = new Map(coco.categories.map((c, k) => [c.id, k]));
  const byImage = new Map<number, { box: number[]; label: number; crowd: boolean }[]>();
  (coco.annotations ?? []).forEach((a, i) => {
    const k = cats.get(a.category_id);
    if (k === undefined) throw fail(`annotations[${i}]: category_id ${a.category_id} is not in "categories"`);
    if (!Array.isArray(a.bbox) || a.bbox.length !== 4 || !a.bbox.every(Number.isFinite))
      throw fail(`annotations[${i}].bbox: expected [x, y, width, height], got ${JSON.stringify(a.bbox)}`);
    const [x, y, w, h] = a.bbox as [number, number, number, number];
    if (w < 1 || h < 1) return; // mmdet's CocoDataset skips boxes under a pixel
    (byImage.get(a.image_id) ?? byImage.set(a.image_id, []).get(a.image_id)!).push({
      box: [x, y, x + w, y + h],
      label: k,
      crowd: a.iscrowd === 1,
    });
  });
  const images = await allInOrder(coco.images.map((im) => readImage(join(imageDir, im.file_name))));
  const samples = coco.images.map((im, i) => {
    const img = images[i]!;
    const objs = (byImage.get(im.id) ?? []).map((o) => ({
      ...o,
      box: [Math.max(o.box[0]!, 0), Math.max(o.box[1]!, 0), Math.min(o.box[2]!, img.width), Math.min(o.box[3]!, img.height)],
    }));
    const kept = objs.filter((o) => o.box[2]! > o.box[0]! && o.box[3]! > o.box[1]!);
    return {
      name: basename(im.file_name, extname(im.file_name)),
      images: [img],
      boxes: Float32Array.from(kept.flatMap((o) => o.box)),
      boxLabels: Int32Array.from(kept, (o) => o.label),
      difficult: Uint8Array.from(kept, (o) => (o.crowd ? 1 : 0)),
    };
  });
  if (!samples.length) throw fail('no images');
  const colors = categoricalColors(coco.categories.length);
  return {
    classes: coco.categories.map((c, k) => ({ name: c.name, color: colors[k]! })),
    samples,
    stats: imageStats(samples[0]!.images[0]!.channels),
  };
}
