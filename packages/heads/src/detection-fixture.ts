import { Module, SkySenseError, tf, type FeatureEncoder, type Tensor } from '@skysense/core-tensor';
import type { BoxSampler, SampledBoxes } from './detection-targets';
import type { DetImageMeta, GtBoxes, ScoredBoxes } from './detection-common';
import { FasterRCNN } from './faster-rcnn';
import { bbox2roi } from './roi-head';

/** The `config.json` of a Faster R-CNN parity fixture (made by mmdet's own classes). */
export interface DetectionFixtureConfig {
  num_classes: number;
  in_channels: number[];
  neck_channels: number;
  fc_out_channels: number;
  /** `[h, w]` of the padded batch. */
  batch_shape: [number, number];
  img_shapes: [number, number][];
  pad_shapes: [number, number][];
}

/** An encoder that returns given feature maps (the fixture's backbone outputs). */
class GivenFeatures extends Module implements FeatureEncoder {
  feats: Tensor[] = [];
  constructor(readonly featureChannels: number[]) {
    super();
  }
  forward(): Tensor[] {
    return this.feats.map((f) => tf.clone(f));
  }
}

/** The fixture's detector: a {@link FasterRCNN} whose encoder returns the fixture's `feats_i`. */
export function detectionFixtureModel(config: DetectionFixtureConfig): FasterRCNN {
  return new FasterRCNN({
    backbone: new GivenFeatures(config.in_channels),
    numClasses: config.num_classes,
    neckChannels: config.neck_channels,
    fcOutChannels: config.fc_out_channels,
  });
}

const boxRows = (p: ScoredBoxes & { labels?: Int32Array }) =>
  tf.tidy(() => tf.concat([tf.tensor2d(p.boxes, [p.scores.length, 4]), tf.tensor2d(p.scores, [p.scores.length, 1])], 1));

/** A sampler that returns the indices the reference drew (`<stage>_pos_inds_<image>`, `…_neg_inds_…`). */
function recordedSampler(inputs: Map<string, Tensor>, stage: 'rpn' | 'rcnn'): BoxSampler {
  const of = (kind: string, image: number) => {
    const t = inputs.get(`${stage}_${kind}_inds_${image}`);
    if (!t) throw new SkySenseError('E_DATA', `detection fixture: no ${stage}_${kind}_inds_${image} in the inputs`);
    return Int32Array.from(t.dataSync());
  };
  return { sample: (_, c): SampledBoxes => ({ pos: of('pos', c.image), neg: of('neg', c.image) }) };
}

/**
 * Every output of a Faster R-CNN parity fixture from its inputs (`feats_i`, `gt_bboxes_i`,
 * `gt_labels_i`, the sampled indices): FPN levels, RPN maps, test proposals, RoIs and RoI features
 * (on the reference's proposals), head outputs, final detections, training proposals, the four
 * losses with the reference's samples injected, and the accuracy. The model must hold the fixture's weights.
 */
export function runDetectionFixture(
  model: FasterRCNN,
  config: DetectionFixtureConfig,
  inputs: Map<string, Tensor>,
  reference?: Map<string, Tensor>,
): Map<string, Tensor> {
  const backbone = model.backbone as GivenFeatures;
  backbone.feats = config.in_channels.map((_, i) => inputs.get(`feats_${i}`)!);
  const n = config.img_shapes.length;
  const metas: DetImageMeta[] = config.img_shapes.map((s, i) => ({ imgShape: s, padShape: config.pad_shapes[i] }));
  const images = tf.zeros([n, 3, ...config.batch_shape]);
  const out = new Map<string, Tensor>();
  const { levels } = model.features(images);
  levels.forEach((l, i) => out.set(`fpn_${i}`, l));
  const rpn = model.rpnHead.forward(levels);
  rpn.clsScores.forEach((t, i) => out.set(`rpn_cls_${i}`, t));
  rpn.bboxPreds.forEach((t, i) => out.set(`rpn_reg_${i}`, t));
  const proposals = model.rpnHead.proposals(rpn, metas);
  proposals.forEach((p, i) => out.set(`proposals_${i}`, boxRows(p)));
  // the RoI stage on the reference's proposals, so it is compared on the same boxes
  const onRef = proposals.map((p, i) => {
    const ref = reference?.get(`proposals_${i}`);
    return ref
      ? { boxes: tf.tidy(() => tf.slice(ref, [0, 0], [-1, 4]).dataSync() as Float32Array), scores: new Float32Array(ref.shape[0]!) }
      : p;
  });
  const rois = bbox2roi(onRef.map((p) => p.boxes));
  out.set('rois', rois);
  const kept = reference?.get('roi_feats')?.shape[0] ?? rois.shape[0]!; // a fixture may record the first RoIs' features only
  out.set(
    'roi_feats',
    tf.tidy(() => model.roiHead.extractor.forward(levels, tf.slice(rois, [0, 0], [kept, 5]))),
  );
  const head = model.roiHead.forward(levels, rois);
  out.set('cls_score', head.clsScore);
  out.set('bbox_pred', head.bboxPred);
  model.roiHead.detections(levels, onRef, metas, model.options.test?.rcnn).forEach((d, i) => {
    out.set(`det_bboxes_${i}`, boxRows(d));
    out.set(`det_labels_${i}`, tf.tensor1d(d.labels, 'int32'));
  });
  const train = model.rpnHead.proposals(rpn, metas, { nmsPre: 2000, maxPerImg: 1000 });
  train.forEach((p, i) => out.set(`train_proposals_${i}`, boxRows(p)));
  const gts: GtBoxes[] = Array.from({ length: n }, (_, i) => ({
    boxes: inputs.get(`gt_bboxes_${i}`)!.dataSync() as Float32Array,
    labels: Int32Array.from(inputs.get(`gt_labels_${i}`)!.dataSync()),
  }));
  const l = model.losses(images, gts, { metas, rpnSampler: recordedSampler(inputs, 'rpn'), rcnnSampler: recordedSampler(inputs, 'rcnn') });
  out.set('loss_rpn_cls', tf.reshape(l.lossRpnCls, [1]));
  out.set('loss_rpn_bbox', tf.reshape(l.lossRpnBbox, [1]));
  out.set('loss_cls', tf.reshape(l.lossCls, [1]));
  out.set('loss_bbox', tf.reshape(l.lossBbox, [1]));
  out.set('acc', tf.tensor1d([l.acc]));
  tf.dispose([images, l.loss, l.lossRpnCls, l.lossRpnBbox, l.lossCls, l.lossBbox]);
  backbone.feats = [];
  return out;
}

/**
 * Tolerance of each output of a detection fixture: boxes (proposals, detections) 1e-3 px, losses
 * 1e-5, accuracy 1e-3 %, labels and RoIs exact (the RoIs are the reference's proposals with their
 * batch index: this checks `bbox2roi`), maps and head outputs 1e-4.
 */
export function detectionFixtureTolerance(key: string): number {
  if (/^(det_labels|rois)/.test(key)) return 0;
  if (/^(proposals|train_proposals|det_bboxes)/.test(key)) return 1e-3;
  if (key.startsWith('loss')) return 1e-5;
  if (key === 'acc') return 1e-3;
  return 1e-4;
}
