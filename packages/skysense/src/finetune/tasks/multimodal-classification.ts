import { join } from 'node:path';
import { tf } from '@skysense/core-tensor';
import { type BigEarthNetNomenclature, type ClassDef, NORMALIZATION, indexBigEarthNet, randomWindow, samplesDir } from '@skysense/data';
import { LinearClsHead } from '@skysense/heads';
import type { SkySenseInputs } from '../../skysense';
import { Classifier } from '../classifier';
import type { FinetuneTaskDef, TaskIndex } from '../task';
import type { FinetuneTask } from '../presets';
import { type SeriesLayout, sampleScores, sentinelInputs } from '../sentinel-inputs';
import { holdOutLast, indexedDataset, multilabelEvaluation, type TaskSample } from '../tasks';

/** The sample BigEarthNet-MM pairs (S2 + S1 patch folders). */
const SAMPLE_PAIRS = () => join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');

/** A BigEarthNet class-list option: a nomenclature name (`ben19`, `ben43`) or a run's class table. */
export function classList(classes?: string | ClassDef[]): BigEarthNetNomenclature | string[] | undefined {
  if (classes === undefined) return undefined;
  return typeof classes === 'string' ? (classes as BigEarthNetNomenclature) : classes.map((c) => c.name);
}

/** BigEarthNet-MM: image 0 is the S2 frame, image 1 (where paired) the S1 frame. */
const BEN_LAYOUT: SeriesLayout = (s) => ({ s2: [0], s1: s.images[1] ? [1] : [] });

/** A BigEarthNet folder as a task index: S2 patches (with `s1`, paired with their S1 patches) on a fixed class list. */
export function bigEarthNetIndex(task: FinetuneTask, dir: string, s1: boolean, classes?: string | ClassDef[]): TaskIndex {
  const index = indexBigEarthNet(dir, { s1, classes: classList(classes) });
  return { task, kind: 'bigearthnet', classes: index.classes, entries: index.entries, stats: NORMALIZATION.s2, left: index.unlabelled };
}

/** The 0/1 targets of samples, `[n, classes]`. */
const multiHot = (picks: readonly TaskSample[]) => tf.tensor2d(picks.map((s) => s.targets!));

/**
 * Multi-modal multi-label classification (`mm-cls`, BigEarthNet-MM, paper Tab. 4): the SkySense
 * model on a patch's Sentinel-2 and Sentinel-1 images (one date each, with their acquisition dates and
 * location), GAP over F_fus (fused ⊕ geo-context) into a sigmoid head, binary cross-entropy; scored by
 * mAP and F1. Classes: the BigEarthNet-19 nomenclature (default) or BigEarthNet-43 (`classes: 'ben43'`),
 * fixed and stored with the model, so any split is scored on the run's class list.
 */
export const mmClassificationTask: FinetuneTaskDef = {
  name: 'mm-cls',
  description:
    'multi-modal multi-label classification of Sentinel-2 + Sentinel-1 patches (BigEarthNet-MM; fused map, sigmoid head; mAP, F1)',
  dataHelp:
    'BigEarthNet v1 with BigEarthNet-S2 and BigEarthNet-S1 patch folders (default: those of the samples); classes ben19 (default) or ben43',
  presetKind: 'mm-cls',
  defaultPreset: 'linear-skysense-tiny-mm',
  defaultHoldOut: 2,
  inputs: 1,
  scaleRange: [1, 1],
  loadDataset: async (data, classes) => indexedDataset(bigEarthNetIndex('mm-cls', data ?? SAMPLE_PAIRS(), true, classes)),
  index: async (data, classes) => bigEarthNetIndex('mm-cls', data ?? SAMPLE_PAIRS(), true, classes),
  stats: () => NORMALIZATION.s2,
  buildModel: (backbone, _preset, numClasses) =>
    new Classifier(backbone, new LinearClsHead({ inChannels: backbone.featureChannels.at(-1)!, numClasses, multiLabel: true })),
  targets: multiHot,
  batch(_d, picks, crop, g) {
    const windows = picks.map((s) => randomWindow(s.images[0]!, { crop, scaleRange: [1, 1] }, g));
    return { images: sentinelInputs(picks, windows, BEN_LAYOUT), targets: multiHot(picks) };
  },
  losses: (model, batch) => ({ loss: (model as Classifier<SkySenseInputs>).loss(batch.images as SkySenseInputs, batch.targets) }),
  splitHoldOut: holdOutLast,
  evaluate: (model, d, samples, o) =>
    multilabelEvaluation(d, samples, (s) => sampleScores(model as Classifier<SkySenseInputs>, s, BEN_LAYOUT), o.onScores),
  predict: (model, _images, _stats, o) => ({ scores: sampleScores(model as Classifier<SkySenseInputs>, o.sample!, BEN_LAYOUT) }),
};
