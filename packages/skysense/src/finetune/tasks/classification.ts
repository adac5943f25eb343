import { join } from 'node:path';
import { SkySenseError, tf } from '@skysense/core-tensor';
import { IGNORE_INDEX, NORMALIZATION, samplesDir } from '@skysense/data';
import { bigEarthNetIndex } from './multimodal-classification';
import { ConfusionMatrix, LinearClsHead } from '@skysense/heads';
import { Classifier } from '../classifier';
import type { FinetuneTaskDef } from '../task';
import {
  holdOutLast,
  hrStats,
  imageFolderDataset,
  indexedDataset,
  multilabelEvaluation,
  predictScores,
  type TaskDataset,
  type TaskSample,
} from '../tasks';

/** The classifier head on the encoder's last map (GAP + `head.fc`). */
const classifierOn =
  (multiLabel: boolean): FinetuneTaskDef['buildModel'] =>
  (backbone, _preset, numClasses) =>
    new Classifier(backbone, new LinearClsHead({ inChannels: backbone.featureChannels.at(-1)!, numClasses, multiLabel }));

/**
 * Scene classification (`cls`): GAP + linear head, an ImageFolder (`<dir>/<class>/<image>`),
 * overall accuracy and per-class scores; the held-out images are the last N of each class.
 */
export const classificationTask: FinetuneTaskDef = {
  name: 'cls',
  description: 'scene classification (GAP + linear head; OA and per-class scores)',
  dataHelp: 'one sub-folder of images per class',
  presetKind: 'cls',
  defaultPreset: 'linear-skysense-tiny',
  defaultHoldOut: 1,
  inputs: 1,
  scaleRange: [0.8, 1.25],
  loadDataset(data) {
    if (!data) throw new SkySenseError('E_ARG', `--data: task cls needs a data folder (${classificationTask.dataHelp})`);
    return imageFolderDataset(data);
  },
  stats: hrStats,
  buildModel: classifierOn(false),
  targets: (picks) =>
    tf.tensor1d(
      picks.map((s) => s.label!),
      'int32',
    ),
  losses: (model, batch) => ({ loss: (model as Classifier).loss(batch.images as tf.Tensor, batch.targets) }),
  splitHoldOut(d: TaskDataset, n: number) {
    const held = new Set(d.classes.flatMap((_, c) => d.samples.filter((s) => s.label === c).slice(-n)));
    return { train: d.samples.filter((s) => !held.has(s)), held: [...held] };
  },
  evaluate(model, d, samples) {
    const cm = new ConfusionMatrix(d.classes.length, IGNORE_INDEX);
    for (const s of samples) {
      const p = predictScores(model as Classifier, s.images[0]!, d.stats);
      cm.update([p.indexOf(Math.max(...p))], [s.label!]);
    }
    return { scores: { ...cm.scores(), matrix: [...cm.matrix] }, table: cm.table(d.classes.map((c) => c.name)) };
  },
  predict: (model, images, stats) => ({ scores: predictScores(model as Classifier, images[0]!, stats) }),
};

/** The sample BigEarthNet-S2 patches. */
const S2_PATCHES = () => join(samplesDir(), 'bigearthnet', 'v1-s1s2-example', 'BigEarthNet-S2');

/**
 * Multi-label classification (`multilabel`): the `cls` presets with a sigmoid head and binary
 * cross-entropy on BigEarthNet-S2 patches (10 bands, labels from the metadata), scored by mAP.
 */
export const multilabelTask: FinetuneTaskDef = {
  ...classificationTask,
  name: 'multilabel',
  description: 'multi-label classification of Sentinel-2 patches (sigmoid head, BCE; mAP, F1)',
  dataHelp: 'BigEarthNet-S2 patch folders (default: those of the samples); classes ben19 (default) or ben43',
  defaultPreset: 'linear-skysense-tiny-s2',
  defaultHoldOut: 2,
  loadDataset: async (data, classes) => indexedDataset(bigEarthNetIndex('multilabel', data ?? S2_PATCHES(), false, classes)),
  index: async (data, classes) => bigEarthNetIndex('multilabel', data ?? S2_PATCHES(), false, classes),
  stats: () => NORMALIZATION.s2,
  buildModel: classifierOn(true),
  targets: (picks) => tf.tensor2d(picks.map((s: TaskSample) => s.targets!)),
  splitHoldOut: holdOutLast,
  evaluate: (model, d, samples, o) =>
    multilabelEvaluation(d, samples, (s) => predictScores(model as Classifier, s.images[0]!, d.stats), o.onScores),
};
