import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Generator, SkySenseError, cacheDir, categoricalColors, fsError, tf } from '@skysense/core-tensor';
import {
  DUBAI_AERIAL_CLASSES,
  type ChannelStats,
  type PlanarImage,
  cutWindow,
  normalizedImage,
  randomWindow,
  readCocoDetection,
  readDetectionFolder,
  type LabelledDataset,
  samplesDir,
  segmentationToDetection,
  windowBoxes,
} from '@skysense/data';
import { FASTER_RCNN_ANCHORS, FasterRCNN, evalMap, type Detections, type GtBoxes } from '@skysense/heads';
import type { FinetuneTaskDef } from '../task';
import { holdOutLast, hrStats, resolveClasses, type TaskSample } from '../tasks';

/**
 * The sample detection set: the Dubai aerial tiles' buildings as boxes (connected components of the
 * Building class, ≥ 64 px), converted once into the cache (`<cache>/dubai-aerial-boxes`). The
 * conversion is written to a temporary folder and renamed into place when complete, so a killed
 * conversion is never mistaken for a finished one and concurrent runs do not mix their files.
 */
async function sampleBoxes(): Promise<string> {
  const out = join(cacheDir(), 'dubai-aerial-boxes');
  if (existsSync(out)) return out;
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  await segmentationToDetection(join(samplesDir(), 'dubai-aerial-segmentation'), tmp, {
    classes: DUBAI_AERIAL_CLASSES,
    boxClasses: ['Building'],
  });
  try {
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (!existsSync(out)) throw fsError(e, `cannot move the converted sample boxes to ${out}`);
  }
  return out;
}

/** A COCO set's labels mapped onto a given class list (a stored run's), so the indices keep their meaning. */
function reorderClasses(d: LabelledDataset, names: readonly string[], file: string): LabelledDataset {
  const to = d.classes.map((c) => names.indexOf(c.name));
  const missing = d.classes.filter((_, k) => to[k]! < 0).map((c) => c.name);
  if (missing.length)
    throw new SkySenseError('E_DATA', `${file}: categories ${missing.join(', ')} are not in the class list (${names.join(', ')})`);
  const colors = categoricalColors(names.length);
  return {
    ...d,
    classes: names.map((name, k) => ({ name, color: colors[k]! })),
    samples: d.samples.map((s) => ({ ...s, boxLabels: Int32Array.from(s.boxLabels!, (l) => to[l]!) })),
  };
}

/** Windows drawn per training crop until one holds an object (images without objects keep the first). */
const MAX_CROP_TRIES = 10;

/** A sample's trainable gt boxes (difficult ones left out, as mmdet's `bboxes_ignore`). */
function trainBoxes(s: TaskSample): { boxes: Float32Array; labels: Int32Array } {
  const keep = Array.from(s.boxLabels ?? [], (_, i) => i).filter((i) => !s.difficult?.[i]);
  return {
    boxes: Float32Array.from(keep.flatMap((i) => Array.from(s.boxes!.subarray(4 * i, 4 * i + 4)))),
    labels: Int32Array.from(keep, (i) => s.boxLabels![i]!),
  };
}

/** Detections of one image (boxes in its pixels). */
function detect(model: FasterRCNN, image: PlanarImage, stats: ChannelStats): Detections {
  const x = normalizedImage(image, stats);
  try {
    return model.predict(x)[0]!;
  } finally {
    x.dispose();
  }
}

/**
 * Object detection (`det`): Faster R-CNN + FPN on the encoder (mmdet 2.x semantics), Pascal VOC /
 * DIOR folders (`Annotations/*.xml` + `JPEGImages/`), random rescaled crops with flips that move the
 * boxes (redrawn up to 10 times until a crop holds an object; mmdet's `RandomCrop` with
 * `allow_negative_crop=False` draws another image instead, which would change the seeded sample order), mAP@0.5 (area mode) with difficult boxes ignored. The sample data is the Dubai aerial
 * tiles' buildings as boxes.
 */
export const detectionTask: FinetuneTaskDef = {
  name: 'det',
  description: 'object detection (Faster R-CNN + FPN; mAP@0.5, per-class AP)',
  dataHelp:
    'Annotations/*.xml + JPEGImages/ (Pascal VOC), or annotations.json + images/ (COCO); default: the Dubai aerial buildings as boxes',
  presetKind: 'det',
  defaultPreset: 'faster-rcnn-skysense-tiny',
  defaultHoldOut: 2,
  inputs: 1,
  scaleRange: [0.75, 1.5],
  async loadDataset(data, classes) {
    const dir = data ?? (await sampleBoxes());
    const names = classes === undefined ? undefined : (Array.isArray(classes) ? classes : resolveClasses(classes)).map((c) => c.name);
    const coco = join(dir, 'annotations.json');
    if (existsSync(coco)) {
      const d = await readCocoDetection(coco, join(dir, 'images'));
      return { task: 'det', ...(names ? reorderClasses(d, names, coco) : d) };
    }
    return { task: 'det', ...(await readDetectionFolder(dir, names)) };
  },
  stats: hrStats,
  buildModel(backbone, preset, numClasses) {
    const { neckChannels, fcOutChannels, anchorScales } = preset.detector!;
    const anchorGenerator = { ...FASTER_RCNN_ANCHORS, scales: anchorScales ?? FASTER_RCNN_ANCHORS.scales };
    return new FasterRCNN({ backbone, numClasses, neckChannels, fcOutChannels, rpn: { anchorGenerator } });
  },
  targets: (picks) =>
    tf.tensor1d(
      picks.map((s) => s.boxLabels?.length ?? 0),
      'int32',
    ),
  batch(d, picks, crop, g) {
    const c = picks[0]!.images[0]!.channels;
    const data = new Float32Array(picks.length * c * crop * crop);
    const boxes: GtBoxes[] = picks.map((s, i) => {
      const img = s.images[0]!;
      const gt = trainBoxes(s);
      let w = randomWindow(img, { crop, scaleRange: this.scaleRange }, g);
      let moved = windowBoxes(gt.boxes, img, w);
      // an image with objects is cut where some are (mmdet's RandomCrop draws another image instead)
      for (let tries = 1; tries < MAX_CROP_TRIES && gt.labels.length && !moved.kept.length; tries++) {
        w = randomWindow(img, { crop, scaleRange: this.scaleRange }, g);
        moved = windowBoxes(gt.boxes, img, w);
      }
      data.set(cutWindow(img, new Uint8Array(img.width * img.height), w, d.stats).image, i * c * crop * crop);
      return { boxes: moved.boxes, labels: Int32Array.from(moved.kept, (k) => gt.labels[k]!) };
    });
    const counts = tf.tensor1d(
      boxes.map((b) => b.labels.length),
      'int32',
    );
    return { images: tf.tensor4d(data, [picks.length, c, crop, crop]), targets: counts, boxes, seed: g.nextUint32() };
  },
  losses(model, batch) {
    const l = (model as FasterRCNN).losses(batch.images as tf.Tensor, batch.boxes!, { rng: new Generator(batch.seed ?? 0) });
    return { loss: l.loss, rpn_cls: l.lossRpnCls, rpn_bbox: l.lossRpnBbox, cls: l.lossCls, bbox: l.lossBbox };
  },
  splitHoldOut: holdOutLast,
  evaluate(model, d, samples, o) {
    const k = d.classes.length;
    const results = samples.map((s) => {
      const det = detect(model as FasterRCNN, s.images[0]!, d.stats);
      o.onDetections?.(s, det);
      const perClass: number[][][] = Array.from({ length: k }, () => []);
      det.labels.forEach((label, i) => perClass[label]!.push([...det.boxes.subarray(4 * i, 4 * i + 4), det.scores[i]!]));
      return perClass;
    });
    const annotations = samples.map((s) => {
      const idx = Array.from(s.boxLabels ?? [], (_, i) => i);
      const box = (i: number) => Array.from(s.boxes!.subarray(4 * i, 4 * i + 4));
      const hard = idx.filter((i) => s.difficult?.[i]);
      const easy = idx.filter((i) => !s.difficult?.[i]);
      return {
        bboxes: easy.map(box),
        labels: easy.map((i) => s.boxLabels![i]!),
        bboxesIgnore: hard.map(box),
        labelsIgnore: hard.map((i) => s.boxLabels![i]!),
      };
    });
    const r = evalMap(results, annotations, { iouThr: 0.5, mode: 'area' });
    const ap = Object.fromEntries(d.classes.map((c, i) => [c.name, r.classes[i]!.ap[0]!]));
    return {
      scores: { mAP: r.mAP[0]!, ap, detections: results.map((p) => p.reduce((a, b) => a + b.length, 0)) },
      table: r.table(d.classes.map((c) => c.name)),
    };
  },
  predict: (model, images, stats) => ({ detections: detect(model as FasterRCNN, images[0]!, stats) }),
};
