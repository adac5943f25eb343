import { join } from 'node:path';
import { tf } from '@skysense/core-tensor';
import {
  type BigEarthNetNomenclature,
  type ClassDef,
  type CropWindow,
  NORMALIZATION,
  type PlanarImage,
  cutWindow,
  indexBigEarthNet,
  randomWindow,
  readBigEarthNetFolder,
  samplesDir,
} from '@skysense/data';
import { LinearClsHead } from '@skysense/heads';
import type { SkySenseInputs } from '../../skysense';
import { Classifier } from '../classifier';
import type { FinetuneTaskDef } from '../task';
import { holdOutLast, inputTensors, multilabelEvaluation, type TaskSample } from '../tasks';

/** The sample BigEarthNet-MM pairs (S2 + S1 patch folders). */
const SAMPLE_PAIRS = () => join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');

/** A BigEarthNet class-list option: a nomenclature name (`ben19`, `ben43`) or a run's class table. */
export function classList(classes?: string | ClassDef[]): BigEarthNetNomenclature | string[] | undefined {
  if (classes === undefined) return undefined;
  return typeof classes === 'string' ? (classes as BigEarthNetNomenclature) : classes.map((c) => c.name);
}

/** One window of every image of a sample: normalised pixels and the validity of each (1 = data). */
function cut(img: PlanarImage, w: CropWindow, stats: typeof NORMALIZATION.s2): { data: Float32Array; valid: Uint8Array } {
  const valid = img.valid ?? new Uint8Array(img.width * img.height).fill(1);
  const v = cutWindow(img, valid, w, stats);
  return { data: v.image, valid: Uint8Array.from(v.mask, (m) => (m === 1 ? 1 : 0)) };
}

/**
 * SkySense inputs of samples (S2 image, optional S1 image, dates, lat/lon), one window each: each
 * modality a series of one frame `[B, 1, bands, n, n]` with its pixel validity (nodata is masked
 * by the fusion, never read as numbers).
 */
export function bigEarthNetInputs(samples: readonly TaskSample[], windows: readonly CropWindow[]): SkySenseInputs {
  const n = windows[0]!.size;
  const series = (k: 0 | 1, stats: typeof NORMALIZATION.s2) => {
    const cuts = samples.map((s, i) => cut(s.images[k]!, windows[i]!, stats));
    const c = samples[0]!.images[k]!.channels;
    const frames = new Float32Array(samples.length * c * n * n);
    const valid = new Float32Array(samples.length * n * n);
    cuts.forEach((x, i) => (frames.set(x.data, i * c * n * n), valid.set(x.valid, i * n * n)));
    return {
      frames: tf.tensor5d(frames, [samples.length, 1, c, n, n]),
      dates: samples.map((s) => [s.dates![k]!]),
      pixelValid: tf.tensor4d(valid, [samples.length, 1, n, n]),
    };
  };
  return {
    s2: series(0, NORMALIZATION.s2),
    ...(samples[0]!.images[1] ? { s1: series(1, NORMALIZATION.s1) } : {}),
    lat: samples.map((s) => s.lat!),
    lon: samples.map((s) => s.lon!),
  };
}

/** The whole (square) image as one window. */
const whole = (img: PlanarImage): CropWindow => ({ scale: 1, y0: 0, x0: 0, size: Math.max(img.width, img.height), flip: false });

/** Class probabilities of one sample's whole patch. */
function mmScores(model: Classifier<SkySenseInputs>, s: TaskSample): number[] {
  const inputs = bigEarthNetInputs([s], [whole(s.images[0]!)]);
  try {
    const p = model.predict(inputs);
    const out = [...p.dataSync()];
    p.dispose();
    return out;
  } finally {
    tf.dispose(inputTensors(inputs));
  }
}

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
  async loadDataset(data, classes) {
    return { task: 'mm-cls', ...(await readBigEarthNetFolder(data ?? SAMPLE_PAIRS(), { s1: true, classes: classList(classes) })) };
  },
  async index(data, classes) {
    const index = indexBigEarthNet(data ?? SAMPLE_PAIRS(), { s1: true, classes: classList(classes) });
    return {
      task: 'mm-cls',
      kind: 'bigearthnet',
      classes: index.classes,
      entries: index.entries,
      stats: NORMALIZATION.s2,
      left: index.unlabelled,
    };
  },
  stats: () => NORMALIZATION.s2,
  buildModel: (backbone, _preset, numClasses) =>
    new Classifier(backbone, new LinearClsHead({ inChannels: backbone.featureChannels.at(-1)!, numClasses, multiLabel: true })),
  targets: (picks) => tf.tensor2d(picks.map((s) => s.targets!)),
  batch(_d, picks, crop, g) {
    const windows = picks.map((s) => randomWindow(s.images[0]!, { crop, scaleRange: [1, 1] }, g));
    return { images: bigEarthNetInputs(picks, windows), targets: tf.tensor2d(picks.map((s) => s.targets!)) };
  },
  losses: (model, batch) => ({ loss: (model as Classifier<SkySenseInputs>).loss(batch.images as SkySenseInputs, batch.targets) }),
  splitHoldOut: holdOutLast,
  evaluate: (model, d, samples, o) => multilabelEvaluation(d, samples, (s) => mmScores(model as Classifier<SkySenseInputs>, s), o.onScores),
  predict: (model, _images, _stats, o) => ({ scores: mmScores(model as Classifier<SkySenseInputs>, o.sample!) }),
};
