import { type Generator, SkySenseError, tf, type Tensor } from '@skysense/core-tensor';
import { ConfusionMatrix, meanAveragePrecision } from '@skysense/heads';
import {
  CHANGE_CLASSES,
  type ChannelStats,
  type ClassDef,
  DUBAI_AERIAL_CLASSES,
  IGNORE_INDEX,
  InMemorySamples,
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
import type { SkySenseInputs } from '../skysense';
import type { TaskIndex } from './task';

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

/** A task's dataset decoded whole from its index (what `loadDataset` is for a task that has `index`). */
export async function indexedDataset(index: TaskIndex): Promise<TaskDataset> {
  const { samples } = await InMemorySamples.load(index.kind, index.entries);
  return { task: index.task, classes: index.classes, samples: [...samples], stats: index.stats };
}

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

/** BigEarthNet v1 Sentinel-2 patches as a `multilabel` dataset (BigEarthNet-19 classes unless `ben43`). */
export async function bigEarthNetMultilabelDataset(dir: string, classes: 'ben19' | 'ben43' = 'ben19'): Promise<TaskDataset> {
  return { task: 'multilabel', ...(await readBigEarthNetFolder(dir, { classes })) };
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

/** Every tensor of SkySense inputs (to check or free them). */
export function inputTensors(x: SkySenseInputs): Tensor[] {
  return [x.hr, x.hrValid, x.s2?.frames, x.s2?.pixelValid, x.s1?.frames, x.s1?.pixelValid].filter((t): t is Tensor => t !== undefined);
}

/** The image tensors of a batch: one, both dates, or every tensor of multi-modal inputs. */
export function batchImages(images: FinetuneBatch['images']): Tensor[] {
  if (images instanceof tf.Tensor) return [images];
  return Array.isArray(images) ? images : inputTensors(images);
}

/** Frees a batch's tensors. */
export function disposeBatch(b: FinetuneBatch): void {
  tf.dispose([...batchImages(b.images), b.targets]);
}

/**
 * Scores multi-label predictions: per-class AP and mAP (classes without a positive left out), and F1
 * at probability 0.5, per class, micro (pooled counts) and macro (mean over classes with a positive
 * or a prediction). `onScores` receives each sample's probabilities (to draw them).
 */
export function multilabelEvaluation(
  d: TaskDataset,
  samples: readonly TaskSample[],
  score: (s: TaskSample) => number[],
  onScores?: (s: TaskSample, scores: number[]) => void,
): TaskEvaluation {
  const names = d.classes.map((c) => c.name);
  const scores = samples.map((s) => {
    const p = score(s);
    onScores?.(s, p);
    return p;
  });
  const targets = samples.map((s) => s.targets!);
  const { ap, mAP } = meanAveragePrecision(scores, targets);
  const counts = names.map((_, k) => {
    let [tp, fp, fn] = [0, 0, 0];
    scores.forEach((p, i) => {
      const [yes, truth] = [p[k]! >= 0.5, targets[i]![k] === 1];
      if (yes && truth) tp++;
      else if (yes) fp++;
      else if (truth) fn++;
    });
    return { tp, fp, fn };
  });
  const f1 = counts.map((c) => (c.tp + c.fp + c.fn === 0 ? NaN : (2 * c.tp) / (2 * c.tp + c.fp + c.fn)));
  const sum = counts.reduce((a, c) => ({ tp: a.tp + c.tp, fp: a.fp + c.fp, fn: a.fn + c.fn }), { tp: 0, fp: 0, fn: 0 });
  const microF1 = sum.tp + sum.fp + sum.fn === 0 ? NaN : (2 * sum.tp) / (2 * sum.tp + sum.fp + sum.fn);
  const defined = f1.filter((v) => !Number.isNaN(v));
  const macroF1 = defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : NaN;
  const w = Math.min(48, Math.max(5, ...names.map((n) => n.length)));
  const pct = (v: number) => (Number.isNaN(v) ? '     n/a' : (100 * v).toFixed(2).padStart(8));
  return {
    scores: { ap, mAP, f1, microF1, macroF1 },
    table: [
      `${'class'.padEnd(w)}       AP       F1`,
      ...names.map((n, i) => `${n.slice(0, w).padEnd(w)} ${pct(ap[i]!)} ${pct(f1[i]!)}`),
      `mAP ${pct(mAP).trim()}, micro-F1 ${pct(microF1).trim()}, macro-F1 ${pct(macroF1).trim()} over ${samples.length} samples (AP of classes without a positive left out; F1 at p ≥ 0.5)`,
    ].join('\n'),
  };
}

/** Class probabilities of one image (softmax, or per-class sigmoid). */
export function predictScores(model: Classifier, image: PlanarImage, stats: ChannelStats): number[] {
  const x = normalizedImage(image, stats);
  const p = model.predict(x);
  const out = [...p.dataSync()];
  tf.dispose([x, p]);
  return out;
}
