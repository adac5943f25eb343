import { SkySenseError, tf } from '@skysense/core-tensor';
import { type ClassDef, IGNORE_INDEX, NORMALIZATION, indexSeriesFolder, randomWindow } from '@skysense/data';
import { ConfusionMatrix, LinearClsHead } from '@skysense/heads';
import type { SkySenseInputs } from '../../skysense';
import { Classifier } from '../classifier';
import { type SeriesLayout, sampleScores, sentinelInputs } from '../sentinel-inputs';
import type { FinetuneTaskDef, TaskIndex } from '../task';
import { indexedDataset, type TaskDataset, type TaskSample } from '../tasks';
import { classificationTask } from './classification';

/** Every image of a sample is one S2 frame, in date order. */
const SERIES: SeriesLayout = (s) => ({ s2: s.images.map((_, k) => k), s1: [] });

/** The class names of a run's table; the classes of a series folder are its sub-folders, so a named table is refused. */
function classNames(classes?: string | ClassDef[]): string[] | undefined {
  if (typeof classes === 'string')
    throw new SkySenseError('E_ARG', `classes: task temporal-cls takes its classes from the data's sub-folders, got '${classes}'`);
  return classes?.map((c) => c.name);
}

/** The series folder index of `data` (required: there is no sample data for this task). */
function seriesIndex(data: string | undefined, classes?: string | ClassDef[]): TaskIndex {
  if (!data) throw new SkySenseError('E_ARG', `--data: task temporal-cls needs a data folder (${temporalClassificationTask.dataHelp})`);
  const index = indexSeriesFolder(data, { classes: classNames(classes) });
  return { task: 'temporal-cls', kind: 'series', classes: index.classes, entries: index.entries, stats: NORMALIZATION.s2 };
}

/** The class index of samples, int32 `[n]`. */
const classIndices = (picks: readonly TaskSample[]) =>
  tf.tensor1d(
    picks.map((s) => s.label!),
    'int32',
  );

/** Top-1 (with a confusion matrix) and top-5 accuracy of single-label predictions. */
function topKEvaluation(
  d: TaskDataset,
  samples: readonly TaskSample[],
  score: (s: TaskSample) => number[],
  onScores?: (s: TaskSample, p: number[]) => void,
) {
  const cm = new ConfusionMatrix(d.classes.length, IGNORE_INDEX);
  let top5 = 0;
  for (const s of samples) {
    const p = score(s);
    onScores?.(s, p);
    const order = p.map((v, k) => [v, k] as const).sort((a, b) => b[0] - a[0]);
    cm.update([order[0]![1]], [s.label!]);
    if (order.slice(0, 5).some(([, k]) => k === s.label)) top5++;
  }
  const scores = cm.scores();
  const [t1, t5] = [scores.oa, top5 / samples.length];
  return {
    scores: { ...scores, top1: t1, top5: t5, matrix: [...cm.matrix] },
    table: `${cm.table(d.classes.map((c) => c.name))}\ntop-1 ${(100 * t1).toFixed(2)}, top-5 ${(100 * t5).toFixed(2)} over ${samples.length} series`,
  };
}

/**
 * Temporal scene classification (`temporal-cls`, fMoW-Sentinel style): a Sentinel-2 series of any
 * length (13-band L1C, 12-band L2A or 10-band frames, mapped onto the encoder's 10 bands; B1, B9, B10
 * dropped) through the S2 encoder and the fusion over its dates (calendar encoding, padded frames
 * masked), GAP over the fused map into a softmax head; top-1 / top-5 accuracy and per-class scores.
 * Data: `<dir>/<class>/<sample>/<frame>.tif` with each frame's date in its name.
 */
export const temporalClassificationTask: FinetuneTaskDef = {
  name: 'temporal-cls',
  description:
    'temporal scene classification of Sentinel-2 series (fMoW-Sentinel style; S2 encoder + fusion over the dates, softmax head; top-1 / top-5)',
  dataHelp: '<class>/<sample>/<frame>.tif Sentinel-2 series (13-band L1C, 12-band L2A or 10-band frames; dates in the file names)',
  presetKind: 'temporal-cls',
  defaultPreset: 'linear-skysense-tiny-temporal',
  defaultHoldOut: 2,
  inputs: 1,
  scaleRange: [1, 1],
  loadDataset: async (data, classes) => indexedDataset(seriesIndex(data, classes)),
  index: async (data, classes) => seriesIndex(data, classes),
  stats: () => NORMALIZATION.s2,
  buildModel: (backbone, _preset, numClasses) =>
    new Classifier(backbone, new LinearClsHead({ inChannels: backbone.featureChannels.at(-1)!, numClasses })),
  targets: classIndices,
  batch(_d, picks, crop, g) {
    const windows = picks.map((s) => randomWindow(s.images[0]!, { crop, scaleRange: [1, 1] }, g));
    return {
      images: sentinelInputs(picks, windows, SERIES),
      targets: classIndices(picks),
    };
  },
  losses: (model, batch) => ({ loss: (model as Classifier<SkySenseInputs>).loss(batch.images as SkySenseInputs, batch.targets) }),
  splitHoldOut: (d, n) => classificationTask.splitHoldOut(d, n), // the last n of each class
  evaluate: (model, d, samples, o) =>
    topKEvaluation(d, samples, (s) => sampleScores(model as Classifier<SkySenseInputs>, s, SERIES), o.onScores),
  predict: (model, _images, _stats, o) => ({ scores: sampleScores(model as Classifier<SkySenseInputs>, o.sample!, SERIES) }),
};
