import { type Generator, SkySenseError, tf, type FeatureEncoder, type Tensor } from '@skysense/core-tensor';
import type { ChannelStats, ClassDef, DecoderKind, PlanarImage } from '@skysense/data';
import type { FinetuneBatch, FinetuneModel } from './finetuner';
import type { FinetunePreset, FinetunePresetName, FinetuneTask } from './presets';
import { type TaskDataset, type TaskEvaluation, type TaskSample, cropBatch } from './tasks';
import { changeTask } from './tasks/change';
import { classificationTask, multilabelTask } from './tasks/classification';
import { s2SegmentationTask, segmentationTask } from './tasks/segmentation';
import { detectionTask } from './tasks/detection';
import { mmClassificationTask } from './tasks/multimodal-classification';
import { temporalClassificationTask } from './tasks/temporal-classification';
import { mmSegmentationTask } from './tasks/multimodal-segmentation';
import type { Detections } from '@skysense/heads';

/**
 * One fine-tuning task as an object: how its data is read, its model built, its batches labelled,
 * its loss taken, its model scored and its predictions made. `Finetuner`, `runFinetune`,
 * `runPredict`, `runEval` and the CLI look a task up by name and never switch on it, so a new task
 * (detection, a multi-modal task) is one new file and one {@link registerTask} call.
 */
export interface FinetuneTaskDef {
  /** The name (`--task`). */
  readonly name: string;
  /** One line for `--help`. */
  readonly description: string;
  /** What the data folder holds (for `--help` and errors). */
  readonly dataHelp: string;
  /** The kind of preset that builds its model (a preset's `task`). */
  readonly presetKind: FinetunePreset['task'];
  /** The preset used when none is given. */
  readonly defaultPreset: FinetunePresetName;
  /** Samples held out for evaluation when `holdOut` is not given. */
  readonly defaultHoldOut: number;
  /** Images per sample (2 for the two dates of a change pair). */
  readonly inputs: 1 | 2;
  /** Range of the random rescaling of training crops. */
  readonly scaleRange: [number, number];
  /** Reads the task's dataset; `data` undefined means the sample data, where the task has some. */
  loadDataset(data: string | undefined, classes?: string | ClassDef[]): Promise<TaskDataset>;
  /**
   * Indexes the task's dataset without decoding it (file lists, labels, dates), for tasks whose
   * samples a {@link @skysense/data!DecodePool} decodes: `runFinetune` then streams them.
   */
  index?(data: string | undefined, classes?: string | ClassDef[]): Promise<TaskIndex>;
  /** Input normalisation for images of `channels` bands. */
  stats(channels: number): ChannelStats;
  /** Reads one input file for `predict` (default: `readImage`; Sentinel-2 tasks map the product's bands). */
  readInput?(file: string): Promise<PlanarImage>;
  /** The model on an encoder, from a preset's head settings. */
  buildModel(backbone: FeatureEncoder, preset: FinetunePreset, numClasses: number, options: { classWeight?: number[] }): FinetuneModel;
  /** The batch's targets from its samples (`masks`: their crops' labels, `[n·crop·crop]`). */
  targets(picks: readonly TaskSample[], masks: Int32Array, crop: number): Tensor;
  /** Makes the whole training batch itself, where the task's targets are not per-pixel (det: boxes moved with the crop). Default: {@link cropBatch} + `targets`. */
  batch?(d: TaskDataset, picks: readonly TaskSample[], crop: number, g: Generator): FinetuneBatch;
  /** The loss terms of a batch (called inside a tidy); `loss` is the total. */
  losses(model: FinetuneModel, batch: FinetuneBatch): Record<string, Tensor> & { loss: Tensor };
  /** The held-out split: the last `n` samples, or per class for classification. */
  splitHoldOut(d: TaskDataset, n: number): { train: TaskSample[]; held: TaskSample[] };
  /** Scores the model on samples; `onMask` receives each predicted mask where the task has masks. */
  evaluate(model: FinetuneModel, d: TaskDataset, samples: readonly TaskSample[], o: EvaluateHooks): TaskEvaluation;
  /** A prediction for one sample's images: a class mask, or class scores. */
  predict(
    model: FinetuneModel,
    images: PlanarImage[],
    stats: ChannelStats,
    o: { crop: number; stride?: number; sample?: TaskSample },
  ): { mask: Int32Array } | { scores: number[] } | { detections: Detections };
}

/** A dataset as an index: what a decoder needs per sample (JSON, sent to worker threads) and the class list. */
export interface TaskIndex {
  task: FinetuneTask;
  /** The built-in decoder of the entries. */
  kind: DecoderKind;
  classes: ClassDef[];
  entries: { name: string; label?: number; targets?: number[] }[];
  stats: ChannelStats;
  /** Samples of the folder left out of the index (e.g. no label of the class list). */
  left?: string[];
}

/** Evaluation settings and what is called with each sample's prediction (to draw it). */
export interface EvaluateHooks {
  crop: number;
  stride?: number;
  /** Each predicted mask (seg, change). */
  onMask?: (s: TaskSample, pred: Int32Array) => void;
  /** Each image's detections (det). */
  onDetections?: (s: TaskSample, dets: Detections) => void;
  /** Each sample's class probabilities (multi-label tasks). */
  onScores?: (s: TaskSample, scores: number[]) => void;
}

const REGISTRY = new Map<string, FinetuneTaskDef>(
  [
    segmentationTask,
    classificationTask,
    multilabelTask,
    changeTask,
    detectionTask,
    mmClassificationTask,
    temporalClassificationTask,
    s2SegmentationTask,
    mmSegmentationTask,
  ].map((t) => [t.name, t]),
);

/** Adds (or replaces) a task under its name. */
export function registerTask(task: FinetuneTaskDef): void {
  REGISTRY.set(task.name, task);
}

/** The registered task names, in registration order. */
export function listTasks(): string[] {
  return [...REGISTRY.keys()];
}

/** The task of a name. @throws SkySenseError `E_ARG` listing the registered names. */
export function getTask(name: string): FinetuneTaskDef {
  const t = REGISTRY.get(name);
  if (!t) throw new SkySenseError('E_ARG', `task: expected one of ${listTasks().join(', ')}, got '${name}'`);
  return t;
}

/** A training batch of a task: random rescaled crops (see `cropBatch`) and the task's targets. */
export function taskBatch(d: TaskDataset, picks: readonly TaskSample[], crop: number, g: Generator): FinetuneBatch {
  const task = getTask(d.task);
  if (task.batch) return task.batch(d, picks, crop, g);
  const { images, masks } = cropBatch(d, picks, crop, task.scaleRange, g);
  let targets: Tensor;
  try {
    targets = task.targets(picks, masks, crop);
  } catch (e) {
    tf.dispose(images);
    throw e;
  }
  return { images: images.length === 2 ? [images[0]!, images[1]!] : images[0]!, targets };
}

/** The held-out split of a dataset, as its task defines it. */
export function splitHoldOut(d: TaskDataset, n: number): { train: TaskSample[]; held: TaskSample[] } {
  return getTask(d.task).splitHoldOut(d, n);
}

/** Scores a model on held-out samples of a dataset, as its task defines it (see {@link FinetuneTaskDef.evaluate}). */
export function evaluateTask(model: FinetuneModel, d: TaskDataset, samples: readonly TaskSample[], o: EvaluateHooks): TaskEvaluation {
  model.eval();
  return getTask(d.task).evaluate(model, d, samples, o);
}
