import { SkySenseError, tf } from '@skysense/core-tensor';
import { type ChannelStats, type PlanarImage, normalizedImage } from '@skysense/data';
import { ChangeDetectionHead } from '@skysense/heads';
import { ChangeDetector } from '../classifier';
import type { FinetuneTaskDef } from '../task';
import { argmaxMask, changeDataset, holdOutLast, hrStats, maskEvaluation } from '../tasks';

/**
 * Change detection (`change`): the shared encoder on both dates, |A − B| per level, UperNet; pairs
 * laid out as `A/`, `B/`, `label/` (LEVIR-CD); precision, recall, F1 and IoU of the change class.
 */
export const changeTask: FinetuneTaskDef = {
  name: 'change',
  description: 'change detection of image pairs (Siamese encoder, UperNet; change-class P/R/F1/IoU)',
  dataHelp: 'A/, B/ and label/ with images of the same names',
  presetKind: 'change',
  defaultPreset: 'upernet-cd-skysense-tiny',
  defaultHoldOut: 2,
  inputs: 2,
  scaleRange: [0.5, 2],
  loadDataset(data) {
    if (!data) throw new SkySenseError('E_ARG', `--data: task change needs a data folder (${changeTask.dataHelp})`);
    return changeDataset(data);
  },
  stats: hrStats,
  buildModel: (backbone, preset, numClasses) =>
    new ChangeDetector(
      backbone,
      new ChangeDetectionHead({
        inChannels: [...backbone.featureChannels],
        channels: preset.decodeHead!.channels,
        poolScales: preset.decodeHead!.poolScales,
        numClasses,
      }),
    ),
  targets: (picks, masks, crop) => tf.tensor3d(masks, [picks.length, crop, crop], 'int32'),
  losses(model, batch) {
    if (!Array.isArray(batch.images)) throw new SkySenseError('E_ARG', 'batch.images: change detection needs the two dates [A, B]');
    return { loss: (model as ChangeDetector).loss(batch.images[0], batch.images[1], batch.targets) };
  },
  splitHoldOut: holdOutLast,
  evaluate(model, d, samples, o) {
    const cm = maskEvaluation(d, samples, (s) => changeMask(model as ChangeDetector, s.images, d.stats), o.onMask);
    const c = cm.changeScores();
    const line = `change: precision ${(100 * c.precision).toFixed(2)}  recall ${(100 * c.recall).toFixed(2)}  F1 ${(100 * c.f1).toFixed(2)}  IoU ${(100 * c.iou).toFixed(2)}`;
    return { scores: { ...c, matrix: [...cm.matrix] }, table: `${cm.table(d.classes.map((k) => k.name))}\n${line}` };
  },
  predict: (model, images, stats) => ({ mask: changeMask(model as ChangeDetector, images, stats) }),
};

/** Per-pixel change classes of one pair (the full images). */
function changeMask(model: ChangeDetector, images: readonly PlanarImage[], stats: ChannelStats): Int32Array {
  const [a, b] = images.map((im) => normalizedImage(im, stats));
  try {
    return argmaxMask(model.forward(a!, b!));
  } finally {
    tf.dispose([a!, b!]);
  }
}
