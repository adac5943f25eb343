import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { type Generator, SkySenseError, tf, type Tensor } from '@skysense/core-tensor';
import { ConfusionMatrix } from '@skysense/heads';
import {
  type ChannelStats,
  type ClassDef,
  DUBAI_AERIAL_CLASSES,
  IGNORE_INDEX,
  NORMALIZATION,
  type PlanarImage,
  cutWindow,
  listImages,
  loadSegmentationDataset,
  loadSentinel2,
  normalizedImage,
  randomWindow,
  readClassTable,
  readImage,
} from '@skysense/data';
import type { Classifier } from './classifier';
import type { FinetuneBatch } from './finetuner';
import type { FinetuneTask } from './presets';

/** One training or evaluation sample of any task. */
export interface TaskSample {
  name: string;
  /** One image, or the two dates of a change pair. */
  images: PlanarImage[];
  /** Per-pixel classes (seg, change; 255 = ignore). */
  mask?: Uint8Array;
  /** Class index (cls). */
  label?: number;
  /** 0/1 per class (multilabel). */
  targets?: number[];
}

/** A dataset of one task: its samples, class names (and colours for masks), input statistics. */
export interface TaskDataset {
  task: FinetuneTask;
  classes: ClassDef[];
  samples: TaskSample[];
  stats: ChannelStats;
}

/** Evaluation of a model on samples: the scores and a printable table. */
export interface TaskEvaluation {
  scores: Record<string, unknown>;
  table: string;
}

/** No change (black) / change (white), the binary label colours of change-detection datasets. */
export const CHANGE_CLASSES: readonly ClassDef[] = [
  { name: 'no change', color: [0, 0, 0] },
  { name: 'change', color: [255, 255, 255] },
];

const grey = (n: number): [number, number, number] => [n, n, n];

/** Resolves a class-table option: `dubai-aerial` or a JSON file. */
export function resolveClasses(spec: string): ClassDef[] {
  return spec === 'dubai-aerial' ? [...DUBAI_AERIAL_CLASSES] : readClassTable(spec);
}

/** ImageNet statistics for RGB / RGB-NIR images. */
export function hrStats(channels: number): ChannelStats {
  if (channels === 3) return NORMALIZATION.hr;
  if (channels === 4) return NORMALIZATION['hr-rgbn'];
  throw new SkySenseError('E_BANDS', `images: expected 3 (RGB) or 4 (RGB-NIR) bands, got ${channels}`);
}

/** Segmentation pairs `<dir>/images/*` + `<dir>/masks/*`. */
export async function segmentationDataset(dir: string, classes: readonly ClassDef[]): Promise<TaskDataset> {
  const pairs = await loadSegmentationDataset(dir, classes);
  return {
    task: 'seg',
    classes: [...classes],
    samples: pairs.map((p) => ({ name: p.name, images: [p.image], mask: p.mask })),
    stats: hrStats(pairs[0]!.image.channels),
  };
}

/** Scene classification laid out as `<dir>/<class>/<image>` (torchvision's ImageFolder); classes sorted by name. */
export async function imageFolderDataset(dir: string): Promise<TaskDataset> {
  if (!existsSync(dir)) throw new SkySenseError('E_IO', `${dir}: no such folder`);
  const names = readdirSync(dir)
    .filter((d) => statSync(join(dir, d)).isDirectory())
    .sort();
  if (names.length < 2) throw new SkySenseError('E_DATA', `${dir}: expected one sub-folder per class (at least 2), got ${names.length}`);
  const samples: TaskSample[] = [];
  for (const [label, name] of names.entries()) {
    for (const file of listImages(join(dir, name)))
      samples.push({ name: `${name}/${basename(file, extname(file))}`, images: [await readImage(file)], label });
  }
  return {
    task: 'cls',
    classes: names.map((name, i) => ({ name, color: grey(i) })),
    samples,
    stats: hrStats(samples[0]!.images[0]!.channels),
  };
}

/** BigEarthNet v1 Sentinel-2 patches under `dir` (folders with `*_labels_metadata.json`), 10 bands on the 10 m grid, multi-hot over the labels present. */
export async function bigEarthNetMultilabelDataset(dir: string): Promise<TaskDataset> {
  const folders: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (!statSync(p).isDirectory()) continue;
      if (readdirSync(p).some((f) => f.endsWith('_labels_metadata.json')) && readdirSync(p).some((f) => /_B02\.tif$/.test(f)))
        folders.push(p);
      else if (depth < 4) walk(p, depth + 1);
    }
  };
  if (!existsSync(dir)) throw new SkySenseError('E_IO', `${dir}: no such folder`);
  walk(dir, 0);
  if (folders.length === 0)
    throw new SkySenseError('E_DATA', `${dir}: no BigEarthNet-S2 patch folders (with *_labels_metadata.json and band files)`);
  const labelled = folders.map((f) => {
    const meta = readdirSync(f).find((x) => x.endsWith('_labels_metadata.json'))!;
    const labels = (JSON.parse(readFileSync(join(f, meta), 'utf8')) as { labels?: string[] }).labels;
    if (!Array.isArray(labels)) throw new SkySenseError('E_DATA', `${join(f, meta)}: no "labels" list`);
    return { folder: f, labels };
  });
  const names = [...new Set(labelled.flatMap((l) => l.labels))].sort();
  const samples: TaskSample[] = [];
  for (const l of labelled) {
    const s2 = await loadSentinel2({ folder: l.folder });
    const hw = s2.height * s2.width;
    const data = new Float32Array(10 * hw);
    s2.bands.forEach((b, c) => data.set(b, c * hw));
    samples.push({
      name: basename(l.folder),
      images: [{ width: s2.width, height: s2.height, channels: 10, data }],
      targets: names.map((n) => (l.labels.includes(n) ? 1 : 0)),
    });
  }
  return { task: 'multilabel', classes: names.map((name, i) => ({ name, color: grey(i) })), samples, stats: NORMALIZATION.s2 };
}

/** Change-detection pairs `<dir>/A/*`, `<dir>/B/*`, `<dir>/label/*` (LEVIR-CD layout; labels > 127 = change). */
export async function changeDataset(dir: string): Promise<TaskDataset> {
  const stem = (f: string) => basename(f, extname(f));
  const find = (sub: string) => new Map(listImages(join(dir, sub)).map((f) => [stem(f), f]));
  const [bs, labels] = [find('B'), find('label')];
  const samples: TaskSample[] = [];
  for (const a of listImages(join(dir, 'A'))) {
    const name = stem(a);
    const b = bs.get(name);
    const l = labels.get(name);
    if (!b || !l)
      throw new SkySenseError('E_DATA', `${a}: no ${!b ? 'B' : 'label'} image named ${name}.* in ${join(dir, !b ? 'B' : 'label')}`);
    const [ia, ib, il] = [await readImage(a), await readImage(b), await readImage(l)];
    for (const [what, img] of [
      ['B', ib],
      ['label', il],
    ] as const) {
      if (img.width !== ia.width || img.height !== ia.height)
        throw new SkySenseError('E_DATA', `${name}: ${what} is ${img.width}×${img.height}, A is ${ia.width}×${ia.height}`);
    }
    samples.push({ name, images: [ia, ib], mask: Uint8Array.from(il.data.subarray(0, il.width * il.height), (v) => (v > 127 ? 1 : 0)) });
  }
  if (samples.length === 0) throw new SkySenseError('E_DATA', `${dir}: no images in ${join(dir, 'A')}`);
  return { task: 'change', classes: [...CHANGE_CLASSES], samples, stats: hrStats(samples[0]!.images[0]!.channels) };
}

/**
 * The images of a training batch: per sample one random crop rescaled within `scaleRange` (the same
 * window for both dates and the mask) and a coin flip. Returns the images per date and the crops' labels.
 */
export function cropBatch(
  d: TaskDataset,
  picks: readonly TaskSample[],
  crop: number,
  scaleRange: [number, number],
  g: Generator,
): { images: Tensor[]; masks: Int32Array } {
  const n = picks.length;
  const dates = picks[0]!.images.length;
  const c = picks[0]!.images[0]!.channels;
  const imgs = Array.from({ length: dates }, () => new Float32Array(n * c * crop * crop));
  const masks = new Int32Array(n * crop * crop);
  picks.forEach((s, i) => {
    s.images.forEach((img) => {
      if (img.channels !== c)
        throw new SkySenseError('E_BANDS', `${s.name}: expected ${c} bands like ${picks[0]!.name}, got ${img.channels}`);
    });
    const w = randomWindow(s.images[0]!, { crop, scaleRange }, g);
    const dummy = s.mask ?? new Uint8Array(s.images[0]!.width * s.images[0]!.height);
    s.images.forEach((img, k) => {
      const v = cutWindow(img, dummy, w, d.stats);
      imgs[k]!.set(v.image, i * c * crop * crop);
      if (k === 0) masks.set(v.mask, i * crop * crop);
    });
  });
  return { images: imgs.map((a) => tf.tensor4d(a, [n, c, crop, crop])), masks };
}

/** The last `n` samples held out. */
export function holdOutLast(d: TaskDataset, n: number): { train: TaskSample[]; held: TaskSample[] } {
  return { train: d.samples.slice(0, d.samples.length - n), held: d.samples.slice(d.samples.length - n) };
}

/** Per-pixel classes from logits `[1, K, H, W]` (freed). */
export function argmaxMask(logits: Tensor): Int32Array {
  const pred = tf.argMax(logits, 1);
  const out = pred.dataSync() as Int32Array;
  tf.dispose([logits, pred]);
  return out;
}

/** Scores masks against ground truth with a confusion matrix (ignore 255). */
export function maskEvaluation(
  d: TaskDataset,
  samples: readonly TaskSample[],
  predict: (s: TaskSample) => Int32Array,
  onMask?: (s: TaskSample, pred: Int32Array) => void,
): ConfusionMatrix {
  const cm = new ConfusionMatrix(d.classes.length, IGNORE_INDEX);
  for (const s of samples) {
    const pred = predict(s);
    cm.update(pred, s.mask!);
    onMask?.(s, pred);
  }
  return cm;
}

/** Frees a batch's tensors. */
export function disposeBatch(b: FinetuneBatch): void {
  tf.dispose([...(Array.isArray(b.images) ? b.images : [b.images]), b.targets]);
}

/** Class probabilities of one image (softmax, or per-class sigmoid). */
export function predictScores(model: Classifier, image: PlanarImage, stats: ChannelStats): number[] {
  const x = normalizedImage(image, stats);
  const p = model.predict(x);
  const out = [...p.dataSync()];
  tf.dispose([x, p]);
  return out;
}
