import { SkySenseError, type Tensor, tf } from '@skysense/core-tensor';
import { type ClassDef, type CropWindow, NORMALIZATION, cutMask, indexManifestSegmentation, randomWindow } from '@skysense/data';
import { FusionSegmentor } from '../fusion-segmentor';
import type { SkySenseEncoder, SkySenseInputs } from '../../skysense';
import { bySource, onWholeSample, sentinelInputs } from '../sentinel-inputs';
import type { FinetuneTaskDef, TaskIndex } from '../task';
import { argmaxMask, holdOutLast, indexedDataset, maskEvaluation, resolveClasses, type TaskSample } from '../tasks';

/** The manifest index of `data` (required: the sample folder holds no labelled multi-modal masks). */
function manifestIndex(data: string | undefined, classes?: string | ClassDef[]): TaskIndex {
  if (!data) throw new SkySenseError('E_ARG', `--data: task mm-seg needs a data folder (${mmSegmentationTask.dataHelp})`);
  const table = Array.isArray(classes) ? classes : classes ? resolveClasses(classes) : undefined;
  const index = indexManifestSegmentation(data, { classes: table });
  return { task: 'mm-seg', kind: 'manifest', classes: index.classes, entries: index.entries, stats: NORMALIZATION.s2 };
}

/** Per-pixel classes of one whole sample on its Sentinel grid (run on the square window covering it, then cut to the sample). */
function fusedMask(model: FusionSegmentor, s: TaskSample): Int32Array {
  const { width: w, height: h } = s.images[0]!;
  return onWholeSample(s, bySource, (inputs, win) =>
    argmaxMask(tf.tidy(() => tf.slice(model.forward(inputs, [win.size, win.size]), [0, 0, 0, 0], [-1, -1, h, w]))),
  );
}

/** Labels of samples' windows, int32 `[n, crop, crop]`. */
function windowLabels(picks: readonly TaskSample[], windows: readonly CropWindow[], crop: number): Tensor {
  const masks = new Int32Array(picks.length * crop * crop);
  picks.forEach((s, i) => masks.set(cutMask(s.mask!, s.images[0]!.width, s.images[0]!.height, windows[i]!), i * crop * crop));
  return tf.tensor3d(masks, [picks.length, crop, crop], 'int32');
}

/**
 * Multi-modal segmentation (`mm-seg`, paper Tab. 4: Dynamic EarthNet-MM, PASTIS-MM): co-registered HR
 * + Sentinel-2 + Sentinel-1 series (any subset, any lengths, with dates and location) through SkySense's
 * fusion, F_fus (or the fused map alone) → `MultiLevelNeck` + UperNet, or an FCN head; labels on the
 * Sentinel grid; mIoU / mF1 / OA. Data: `samples.json` (manifest samples with a `mask`) + `classes.json`.
 */
export const mmSegmentationTask: FinetuneTaskDef = {
  name: 'mm-seg',
  description: 'multi-modal semantic segmentation of HR + S2 + S1 series (PASTIS-MM style; fused map → UperNet or FCN; mIoU, mF1, OA)',
  dataHelp: 'samples.json (manifest samples: hr, s2 / s1 series with dates, and "mask" on the Sentinel grid) + classes.json',
  presetKind: 'mm-seg',
  defaultPreset: 'upernet-skysense-tiny-mm',
  defaultHoldOut: 1,
  inputs: 1,
  scaleRange: [1, 1],
  loadDataset: async (data, classes) => indexedDataset(manifestIndex(data, classes)),
  index: async (data, classes) => manifestIndex(data, classes),
  stats: () => NORMALIZATION.s2,
  buildModel(backbone, preset, numClasses, options) {
    const enc = backbone as unknown as SkySenseEncoder;
    return new FusionSegmentor(enc.model, {
      numClasses,
      geoContext: enc.geoContext,
      decoder: preset.decodeHead ? 'upernet' : 'fcn',
      channels: preset.decodeHead?.channels ?? preset.fcnHead!.channels,
      poolScales: preset.decodeHead?.poolScales,
      loss: { classWeight: options.classWeight },
    });
  },
  targets: (picks, masks, crop) => tf.tensor3d(masks, [picks.length, crop, crop], 'int32'),
  batch(_d, picks, crop, g) {
    const windows = picks.map((s) => randomWindow(s.images[0]!, { crop, scaleRange: [1, 1] }, g));
    const images = sentinelInputs(picks, windows, bySource);
    return { images, targets: windowLabels(picks, windows, crop) };
  },
  losses: (model, batch) => ({ loss: (model as FusionSegmentor).loss(batch.images as SkySenseInputs, batch.targets) }),
  splitHoldOut: holdOutLast,
  evaluate(model, d, samples, o) {
    const cm = maskEvaluation(d, samples, (s) => fusedMask(model as FusionSegmentor, s), o.onMask);
    return { scores: { ...cm.scores(), matrix: [...cm.matrix] }, table: cm.table(d.classes.map((c) => c.name)) };
  },
  predict: (model, _images, _stats, o) => ({ mask: fusedMask(model as FusionSegmentor, o.sample!) }),
};
