import { type Generator, SkySenseError, tf, type Tensor } from '@skysense/core-tensor';
import { ConfusionMatrix } from '@skysense/heads';
import {
  CHANGE_CLASSES,
  type ChannelStats,
  type ClassDef,
  DUBAI_AERIAL_CLASSES,
  IGNORE_INDEX,
  type LabelledSample,
  type PlanarImage,
  cutWindow,
  imageStats,
  normalizedImage,
  randomWindow,
  readBigEarthNetFolder,
  readChangeFolder,
  readClassTable,
  readImageFolder,
  readSegmentationFolder,
} from '@skysense/data';
import type { Classifier } from './classifier';
import type { FinetuneBatch } from './finetuner';
import type { FinetuneTask } from './presets';

/** One training or evaluation sample of any task (`@skysense/data`'s labelled sample). */
export type TaskSample = LabelledSample;

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

/** `@skysense/data`'s, re-exported for 0.1 code. @deprecated import `CHANGE_CLASSES` from `@skysense/data`. */
export { CHANGE_CLASSES };

/** Resolves a class-table option: `dubai-aerial` or a JSON file. */
export function resolveClasses(spec: string): ClassDef[] {
  return spec === 'dubai-aerial' ? [...DUBAI_AERIAL_CLASSES] : readClassTable(spec);
}

/** ImageNet statistics for RGB / RGB-NIR images (`@skysense/data`'s `imageStats`). */
export const hrStats = imageStats;

/** Segmentation pairs `<dir>/images/*` + `<dir>/masks/*` as a `seg` dataset. */
export async function segmentationDataset(dir: string, classes: readonly ClassDef[]): Promise<TaskDataset> {
  return { task: 'seg', ...(await readSegmentationFolder(dir, classes)) };
}

/** An ImageFolder (`<dir>/<class>/<image>`) as a `cls` dataset. */
export async function imageFolderDataset(dir: string): Promise<TaskDataset> {
  return { task: 'cls', ...(await readImageFolder(dir)) };
}

/** BigEarthNet v1 Sentinel-2 patches as a `multilabel` dataset. */
export async function bigEarthNetMultilabelDataset(dir: string): Promise<TaskDataset> {
  return { task: 'multilabel', ...(await readBigEarthNetFolder(dir)) };
}

/** Change pairs (`A/`, `B/`, `label/`) as a `change` dataset. */
export async function changeDataset(dir: string): Promise<TaskDataset> {
  return { task: 'change', ...(await readChangeFolder(dir)) };
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
