import { join } from 'node:path';
import { SkySenseError, tf } from '@skysense/core-tensor';
import {
  type ChannelStats,
  NORMALIZATION,
  type PlanarImage,
  normalizedImage,
  readSentinel2SegmentationFolder,
  samplesDir,
  loadSentinel2,
  planarStack,
} from '@skysense/data';
import { FCNHead, MultiLevelNeck, UPerHead } from '@skysense/heads';
import { Segmentor } from '../segmentor';
import type { FinetuneTaskDef } from '../task';
import { argmaxMask, holdOutLast, hrStats, maskEvaluation, resolveClasses, segmentationDataset } from '../tasks';

/**
 * Semantic segmentation (`seg`): UperNet with an FCN auxiliary head on the encoder, images with
 * colour masks (`images/` + `masks/` and a class table), mIoU / mF1 / OA with sliding-window
 * inference. The sample data is the Dubai aerial set.
 */
export const segmentationTask: FinetuneTaskDef = {
  name: 'seg',
  description: 'semantic segmentation (UperNet + FCN auxiliary head; mIoU, mF1, OA)',
  dataHelp: 'images/ + masks/ and classes.json (default: the Dubai aerial samples)',
  presetKind: 'seg',
  defaultPreset: 'upernet-skysense-tiny',
  defaultHoldOut: 2,
  inputs: 1,
  scaleRange: [0.5, 2],
  loadDataset(data, classes) {
    const dir = data ?? join(samplesDir(), 'dubai-aerial-segmentation');
    const spec = classes ?? (data ? join(dir, 'classes.json') : 'dubai-aerial');
    return segmentationDataset(dir, Array.isArray(spec) ? spec : resolveClasses(spec));
  },
  stats: hrStats,
  buildModel(backbone, preset, numClasses, options) {
    const neck = preset.neck && new MultiLevelNeck({ inChannels: [...backbone.featureChannels], ...preset.neck });
    const widths = neck ? preset.neck!.scales.map(() => preset.neck!.outChannels) : [...backbone.featureChannels];
    const aux = preset.auxiliaryHead!;
    return new Segmentor({
      backbone,
      ...(neck ? { neck } : {}),
      decodeHead: new UPerHead({
        inChannels: widths,
        channels: preset.decodeHead!.channels,
        poolScales: preset.decodeHead!.poolScales,
        numClasses,
      }),
      auxiliaryHead: new FCNHead({
        inChannels: widths[aux.inIndex]!,
        inIndex: aux.inIndex,
        channels: aux.channels,
        numConvs: 1,
        concatInput: false,
        numClasses,
      }),
      loss: { classWeight: options.classWeight },
    });
  },
  targets: (picks, masks, crop) => tf.tensor3d(masks, [picks.length, crop, crop], 'int32'),
  losses(model, batch) {
    const l = (model as Segmentor).losses(batch.images as tf.Tensor, batch.targets);
    const terms: Record<string, tf.Tensor> & { loss: tf.Tensor } = { loss: l.loss, decode: l.decode };
    if (l.aux) terms.aux = l.aux;
    return terms;
  },
  splitHoldOut: holdOutLast,
  evaluate(model, d, samples, o) {
    const cm = maskEvaluation(d, samples, (s) => slideMask(model as Segmentor, s.images[0]!, d.stats, o), o.onMask);
    return { scores: { ...cm.scores(), matrix: [...cm.matrix] }, table: cm.table(d.classes.map((c) => c.name)) };
  },
  predict: (model, images, stats, o) => ({ mask: slideMask(model as Segmentor, images[0]!, stats, o) }),
};

/** Per-pixel classes of one image by sliding-window inference. */
function slideMask(model: Segmentor, image: PlanarImage, stats: ChannelStats, o: { crop: number; stride?: number }): Int32Array {
  const x = normalizedImage(image, stats);
  try {
    return argmaxMask(model.slideInference(x, { crop: o.crop, stride: o.stride }));
  } finally {
    x.dispose();
  }
}

/**
 * Sentinel-2 segmentation (`s2-seg`): the S2 ViT → `MultiLevelNeck` → UperNet (+ FCN auxiliary head),
 * on `images/*.tif` multi-band S2 files (13-band L1C, 12-band L2A or 10 bands, mapped onto the
 * encoder's; nodata ignored in the loss and the scores) with `masks/` and `classes.json`.
 */
export const s2SegmentationTask: FinetuneTaskDef = {
  ...segmentationTask,
  name: 's2-seg',
  description: 'Sentinel-2 semantic segmentation (ViT + multi-level neck + UperNet; mIoU, mF1, OA)',
  dataHelp: 'images/*.tif (multi-band Sentinel-2) + masks/ and classes.json',
  defaultPreset: 'upernet-skysense-tiny-s2',
  async loadDataset(data, classes) {
    if (!data) throw new SkySenseError('E_ARG', `--data: task s2-seg needs a data folder (${s2SegmentationTask.dataHelp})`);
    const spec = classes ?? join(data, 'classes.json');
    return { task: 's2-seg', ...(await readSentinel2SegmentationFolder(data, Array.isArray(spec) ? spec : resolveClasses(spec))) };
  },
  stats: () => NORMALIZATION.s2,
  readInput: async (file) => planarStack(await loadSentinel2({ file, bandMap: 'auto' })),
};
