import {
  Linear,
  Module,
  ModuleList,
  SkySenseError,
  assertInRange,
  assertInt,
  bbox2delta,
  delta2bbox,
  formatShape,
  gatherRows,
  invertPermutation,
  normal,
  roiAlign,
  tf,
  xavierUniform,
  zeros,
  type Tensor,
} from '@skysense/core-tensor';
import { AVG_EPS, checkGt, type DetImageMeta, type Detections, type GtBoxes, type ScoredBoxes } from './detection-common';
import { MaxIoUAssigner, checkSample, withGtAsProposals, type BoxSampler } from './detection-targets';
import { keepByNms } from './rpn-head';

/** Options of {@link SingleRoIExtractor} (mmdet's Faster R-CNN defaults). */
export interface SingleRoIExtractorOptions {
  /** Stride of each feature level it reads. Default 4, 8, 16, 32. */
  featmapStrides?: readonly number[];
  /** RoIAlign output side. Default 7. */
  outputSize?: number;
  /** RoIAlign sampling ratio (0 = adaptive). Default 0. */
  samplingRatio?: number;
  /** Box scale mapped to the finest level. Default 56. */
  finestScale?: number;
}

/**
 * mmdet 2.x's `SingleRoIExtractor` with `RoIAlign(aligned=True)`: each RoI reads the level
 * `floor(log2(√(w·h) / finestScale + 1e-6))` (clamped to the levels), pooled to
 * `outputSize × outputSize`. It has no weights.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SingleRoIExtractor } from '@skysense/heads';
 * await initBackend();
 * const extractor = new SingleRoIExtractor();
 * const levels = [64, 32, 16, 8].map((s) => tf.randomNormal([1, 16, s, s]));
 * const rois = tf.tensor2d([[0, 10, 10, 40, 40], [0, 0, 0, 250, 200]]); // batch index, x1, y1, x2, y2
 * console.log(extractor.levels(rois.arraySync() as number[][]), extractor.forward(levels, rois).shape); // [0, 1] [2, 16, 7, 7]
 * ```
 */
export class SingleRoIExtractor {
  readonly featmapStrides: number[];
  readonly outputSize: number;
  readonly samplingRatio: number;
  readonly finestScale: number;

  constructor(options: SingleRoIExtractorOptions = {}) {
    this.featmapStrides = [...(options.featmapStrides ?? [4, 8, 16, 32])];
    this.featmapStrides.forEach((s, i) => assertInt(`SingleRoIExtractor featmapStrides[${i}]`, s, 1));
    this.outputSize = assertInt('SingleRoIExtractor outputSize', options.outputSize ?? 7, 1);
    this.samplingRatio = assertInt('SingleRoIExtractor samplingRatio', options.samplingRatio ?? 0, 0);
    this.finestScale = assertInt('SingleRoIExtractor finestScale', options.finestScale ?? 56, 1);
  }

  /** The level each RoI `[batch, x1, y1, x2, y2]` reads. */
  levels(rois: readonly (readonly number[])[] | Float32Array): number[] {
    const flat = rois instanceof Float32Array ? rois : Float32Array.from(rois.flat());
    const f = Math.fround;
    const out: number[] = [];
    for (let i = 0; i < flat.length; i += 5) {
      const scale = f(Math.sqrt(f(f(flat[i + 3]! - flat[i + 1]!) * f(flat[i + 4]! - flat[i + 2]!))));
      const lvl = Math.floor(Math.log2(f(f(scale / this.finestScale) + f(1e-6))));
      out.push(Math.min(Math.max(lvl, 0), this.featmapStrides.length - 1));
    }
    return out;
  }

  /** RoI features `[K, C, s, s]` in the order of `rois` `[K, 5]`; the first `featmapStrides.length` levels are read. */
  forward(levels: readonly Tensor[], rois: Tensor): Tensor {
    const n = this.featmapStrides.length;
    if (levels.length < n) throw new SkySenseError('E_ARG', `SingleRoIExtractor levels: expected at least ${n} maps, got ${levels.length}`);
    if (rois.rank !== 2 || rois.shape[1] !== 5)
      throw new SkySenseError(
        'E_SHAPE',
        `SingleRoIExtractor rois: expected [K, 5] (batch index, x1, y1, x2, y2), got ${formatShape(rois.shape)}`,
      );
    const lvl = this.levels(rois.dataSync() as Float32Array);
    const s = this.outputSize;
    return tf.tidy(() => {
      const parts: Tensor[] = [];
      const order: number[] = [];
      for (let l = 0; l < n; l++) {
        const idx = lvl.flatMap((v, i) => (v === l ? [i] : []));
        if (!idx.length) continue;
        const sub = tf.gather(rois, tf.tensor1d(idx, 'int32'));
        const opts = { outputSize: s, spatialScale: 1 / this.featmapStrides[l]!, samplingRatio: this.samplingRatio, aligned: true };
        parts.push(roiAlign(levels[l]!, sub, opts));
        order.push(...idx);
      }
      if (!parts.length) return tf.zeros([0, levels[0]!.shape[1]!, s, s]);
      return gatherRows(
        tf.concat(parts, 0),
        Array.from(invertPermutation(Int32Array.from(order), order.length, 'SingleRoIExtractor order')),
      );
    });
  }
}

/** Options of {@link Shared2FCBBoxHead}. */
export interface BBoxHeadOptions {
  /** Object classes (background excluded; DIOR: 20). */
  numClasses: number;
  /** RoI feature channels. Default 256. */
  inChannels?: number;
  /** RoI feature side. Default 7. */
  roiFeatSize?: number;
  /** Width of the two shared fully connected layers. Default 1024. */
  fcOutChannels?: number;
}

/** The RoI head's raw outputs: class logits `[K, C + 1]` (background last) and class-specific deltas `[K, 4C]`. */
export interface BBoxOutputs {
  clsScore: Tensor;
  bboxPred: Tensor;
}

/**
 * mmdet 2.x's `Shared2FCBBoxHead`: the RoI feature flattened, two fully connected layers with ReLU
 * (`shared_fcs.0`, `shared_fcs.1`), then `fc_cls` (C + 1 logits, background last) and `fc_reg`
 * (4 deltas per class, decoded with stds 0.1, 0.1, 0.2, 0.2).
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { Shared2FCBBoxHead } from '@skysense/heads';
 * await initBackend();
 * const head = new Shared2FCBBoxHead({ numClasses: 20, inChannels: 16, fcOutChannels: 64 });
 * const { clsScore, bboxPred } = head.forward(tf.randomNormal([5, 16, 7, 7]));
 * console.log(clsScore.shape, bboxPred.shape); // [5, 21] [5, 80]
 * ```
 */
export class Shared2FCBBoxHead extends Module {
  readonly numClasses: number;
  readonly inChannels: number;
  readonly roiFeatSize: number;
  readonly sharedFcs: ModuleList<Linear>;
  readonly fcCls: Linear;
  readonly fcReg: Linear;
  /** The delta normalisation of the RoI head. */
  readonly targetStds = [0.1, 0.1, 0.2, 0.2] as const;

  constructor(options: BBoxHeadOptions) {
    super();
    this.numClasses = assertInt('Shared2FCBBoxHead numClasses', options.numClasses, 1);
    this.inChannels = assertInt('Shared2FCBBoxHead inChannels', options.inChannels ?? 256, 1);
    this.roiFeatSize = assertInt('Shared2FCBBoxHead roiFeatSize', options.roiFeatSize ?? 7, 1);
    const fc = assertInt('Shared2FCBBoxHead fcOutChannels', options.fcOutChannels ?? 1024, 1);
    const xavier = { weightInit: xavierUniform(), biasInit: zeros };
    const flat = this.inChannels * this.roiFeatSize ** 2;
    this.sharedFcs = this.registerModule('shared_fcs', new ModuleList([new Linear(flat, fc, xavier), new Linear(fc, fc, xavier)]));
    this.fcCls = this.registerModule('fc_cls', new Linear(fc, this.numClasses + 1, { weightInit: normal(0, 0.01), biasInit: zeros }));
    this.fcReg = this.registerModule('fc_reg', new Linear(fc, 4 * this.numClasses, { weightInit: normal(0, 0.001), biasInit: zeros }));
  }

  forward(roiFeats: Tensor): BBoxOutputs {
    const [c, s] = [this.inChannels, this.roiFeatSize];
    if (roiFeats.rank !== 4 || roiFeats.shape[1] !== c || roiFeats.shape[2] !== s || roiFeats.shape[3] !== s)
      throw new SkySenseError('E_SHAPE', `Shared2FCBBoxHead input: expected [K, ${c}, ${s}, ${s}], got ${formatShape(roiFeats.shape)}`);
    const [clsScore, bboxPred] = tf.tidy(() => {
      let x = tf.reshape(roiFeats, [roiFeats.shape[0]!, c * s * s]);
      for (const fc of this.sharedFcs) x = tf.relu(fc.forward(x));
      return [this.fcCls.forward(x), this.fcReg.forward(x)];
    });
    return { clsScore: clsScore!, bboxPred: bboxPred! };
  }
}

/** Options of {@link StandardRoIHead.detections} (mmdet's `test_cfg.rcnn`). */
export interface RCNNTestOptions {
  /** Class scores at or below this are dropped. Default 0.05. */
  scoreThr?: number;
  /** Per-class NMS IoU threshold. Default 0.5. */
  iouThreshold?: number;
  /** Detections kept per image. Default 100. */
  maxPerImg?: number;
}

/** Options of {@link StandardRoIHead.loss} (mmdet's `train_cfg.rcnn`). */
export interface RCNNLossOptions {
  /** Picks the proposals each image's loss uses (mmdet: `RandomSampler(512, 0.25)`, gt boxes added as proposals). */
  sampler: BoxSampler;
  /** Default `MaxIoUAssigner(0.5, 0.5, minPosIou 0.5, no low-quality matches)`. */
  assigner?: MaxIoUAssigner;
}

/** The RCNN training losses (`loss_cls`, `loss_bbox`) and the classification accuracy in % (`acc`). */
export interface RCNNLosses {
  lossCls: Tensor;
  lossBbox: Tensor;
  acc: number;
}

/** `[K, 5]` RoIs (batch index, box) of per-image box lists (mmdet's `bbox2roi`). */
export function bbox2roi(boxes: readonly Float32Array[]): Tensor {
  const rows = boxes.flatMap((b, i) => Array.from({ length: b.length / 4 }, (_, k) => [i, ...b.subarray(4 * k, 4 * k + 4)]));
  return tf.tensor2d(rows.flat(), [rows.length, 5]);
}

/**
 * mmdet 2.x's `StandardRoIHead` with its box branch: a {@link SingleRoIExtractor} and a
 * {@link Shared2FCBBoxHead} (`bbox_head.*`), test-time post-processing (softmax, decode, clip,
 * rescale, per-class NMS) and the RCNN training loss.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { StandardRoIHead } from '@skysense/heads';
 * await initBackend();
 * const head = new StandardRoIHead({ numClasses: 3, inChannels: 16, fcOutChannels: 64 });
 * const levels = [64, 32, 16, 8].map((s) => tf.randomNormal([1, 16, s, s]));
 * const proposals = [{ boxes: Float32Array.of(10, 10, 60, 50), scores: Float32Array.of(0.9) }];
 * const [dets] = head.detections(levels, proposals, [{ imgShape: [256, 256] }], { scoreThr: 0 });
 * console.log(dets!.labels.length); // up to 3: one box per class
 * ```
 */
export class StandardRoIHead extends Module {
  readonly bboxHead: Shared2FCBBoxHead;
  readonly extractor: SingleRoIExtractor;

  constructor(options: BBoxHeadOptions & SingleRoIExtractorOptions) {
    super();
    this.extractor = new SingleRoIExtractor(options);
    this.bboxHead = this.registerModule('bbox_head', new Shared2FCBBoxHead({ ...options, roiFeatSize: this.extractor.outputSize }));
  }

  /** The box head on the RoI features of `rois` `[K, 5]`. */
  forward(levels: readonly Tensor[], rois: Tensor): BBoxOutputs {
    return tf.tidy(
      () => this.bboxHead.forward(this.extractor.forward(levels, rois)) as unknown as tf.TensorContainerObject,
    ) as unknown as BBoxOutputs;
  }

  /**
   * Final detections per image (mmdet's `simple_test_bboxes` + `multiclass_nms`): class
   * probabilities by softmax, each class's box decoded from its proposal and clipped to `imgShape`,
   * divided by `scaleFactor`, scores above `scoreThr` kept, NMS within each class, best `maxPerImg`.
   */
  detections(
    levels: readonly Tensor[],
    proposals: readonly ScoredBoxes[],
    metas: readonly DetImageMeta[],
    options: RCNNTestOptions = {},
  ): Detections[] {
    const scoreThr = assertInRange('detections scoreThr', options.scoreThr ?? 0.05, 0, 1);
    const iou = assertInRange('detections iouThreshold', options.iouThreshold ?? 0.5, 0, 1);
    const maxPerImg = assertInt('detections maxPerImg', options.maxPerImg ?? 100, 1);
    if (metas.length !== proposals.length)
      throw new SkySenseError('E_ARG', `detections metas: expected ${proposals.length} (one per image), got ${metas.length}`);
    if (proposals.every((p) => p.boxes.length === 0)) return metas.map(noDetections);
    const rois = bbox2roi(proposals.map((p) => p.boxes));
    const { clsScore, bboxPred } = this.forward(levels, rois);
    let start = 0;
    try {
      const o = { scoreThr, iou, maxPerImg };
      return metas.map((meta, b) =>
        this.imageDetections(clsScore, bboxPred, proposals[b]!, meta, (start += proposals[b]!.boxes.length / 4), o),
      );
    } finally {
      tf.dispose([rois, clsScore, bboxPred]);
    }
  }

  /** One image's detections from its rows (ending at `end`) of the batch's head outputs. */
  private imageDetections(
    clsScore: Tensor,
    bboxPred: Tensor,
    proposals: ScoredBoxes,
    meta: DetImageMeta,
    end: number,
    options: { scoreThr: number; iou: number; maxPerImg: number },
  ): Detections {
    const c = this.bboxHead.numClasses;
    const k = proposals.boxes.length / 4;
    const start = end - k;
    if (k === 0) return noDetections();
    const [probs, boxes] = tf.tidy(() => {
      const p = tf.softmax(tf.slice(clsScore, [start, 0], [k, -1])).dataSync() as Float32Array;
      const d = delta2bbox(tf.tensor2d(proposals.boxes, [k, 4]), tf.slice(bboxPred, [start, 0], [k, -1]), {
        stds: this.bboxHead.targetStds,
        maxShape: meta.imgShape,
      });
      const [sw, sh] = meta.scaleFactor ?? [1, 1];
      return [p, tf.div(d, tf.tile(tf.tensor1d([sw, sh, sw, sh]), [c])).dataSync() as Float32Array];
    });
    const [kept, scores, labels]: [number[], number[], number[]] = [[], [], []];
    for (let r = 0; r < k; r++)
      for (let j = 0; j < c; j++) {
        const s = probs[r * (c + 1) + j]!;
        if (s > options.scoreThr) [kept.push(r * c + j), scores.push(s), labels.push(j)];
      }
    const flat = Float32Array.from(kept.flatMap((i) => Array.from(boxes.subarray(4 * i, 4 * i + 4))));
    const res = keepByNms(flat, Float32Array.from(scores), Int32Array.from(labels), options.iou, options.maxPerImg);
    return { boxes: res.boxes, scores: res.scores, labels: Int32Array.from(res.keep, (i) => labels[i]!) };
  }

  /**
   * The RCNN loss (mmdet's `StandardRoIHead.forward_train` + `BBoxHead.loss`): each image's
   * proposals assigned to its gt boxes, the gt boxes added as proposals, sampled; softmax
   * cross-entropy over all sampled RoIs (background = class C) divided by their number, and L1 on
   * the positives' deltas of their own class (stds 0.1, 0.1, 0.2, 0.2) divided by the same number.
   */
  loss(levels: readonly Tensor[], proposals: readonly ScoredBoxes[], gts: readonly GtBoxes[], options: RCNNLossOptions): RCNNLosses {
    if (gts.length !== proposals.length)
      throw new SkySenseError('E_ARG', `StandardRoIHead.loss: expected ${proposals.length} gt sets (one per image), got ${gts.length}`);
    const c = this.bboxHead.numClasses;
    gts.forEach((gt, i) => checkGt(`StandardRoIHead.loss gts[${i}]`, gt, c));
    const assigner = options.assigner ?? new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.5, minPosIou: 0.5, matchLowQuality: false });
    const roiBoxes: Float32Array[] = [];
    const [labels, posRows, posCols, posBoxes, posGt]: number[][] = [[], [], [], [], []];
    proposals.forEach((p, b) => {
      const gt = gts[b]!;
      const first = assigner.assign(p.boxes, gt.boxes, gt.labels);
      const { boxes, assign } = withGtAsProposals(p.boxes, first, gt.boxes, gt.labels);
      const { pos, neg } = checkSample(
        `StandardRoIHead.loss sampler (image ${b})`,
        assign,
        options.sampler.sample(assign, { stage: 'rcnn', image: b }),
      );
      const picked = [...pos, ...neg];
      roiBoxes.push(Float32Array.from(picked.flatMap((i) => Array.from(boxes.subarray(4 * i, 4 * i + 4)))));
      for (const i of pos) {
        const g = assign.gtInds[i]! - 1;
        posRows.push(labels.length);
        posCols.push(gt.labels[g]!);
        labels.push(gt.labels[g]!);
        posBoxes.push(...boxes.subarray(4 * i, 4 * i + 4));
        posGt.push(...gt.boxes.subarray(4 * g, 4 * g + 4));
      }
      for (let k = 0; k < neg.length; k++) labels.push(c);
    });
    const total = labels.length;
    let acc = 0;
    // no RoIs at all (no proposals, no gt boxes): nothing to score
    if (total === 0) return { lossCls: tf.scalar(0), lossBbox: tf.scalar(0), acc };
    const losses = tf.tidy(() => {
      const { clsScore, bboxPred } = this.forward(levels, bbox2roi(roiBoxes));
      acc = accuracy(clsScore.dataSync() as Float32Array, labels, c + 1);
      const target = tf.oneHot(tf.tensor1d(labels, 'int32'), c + 1);
      const lossCls = tf.div(tf.neg(tf.sum(tf.mul(tf.logSoftmax(clsScore), target))), Math.max(total, 1) + AVG_EPS);
      const posPred = () =>
        gatherRows(
          tf.reshape(bboxPred, [-1, 4]),
          posRows.map((r, i) => r * c + posCols[i]!),
        );
      const posTarget = () =>
        bbox2delta(tf.tensor2d(posBoxes, [posRows.length, 4]), tf.tensor2d(posGt, [posRows.length, 4]), { stds: this.bboxHead.targetStds });
      const lossBbox = posRows.length
        ? tf.div(tf.sum(tf.abs(tf.sub(posPred(), posTarget()))), total + AVG_EPS)
        : tf.mul(tf.sum(bboxPred), 0);
      return { lossCls, lossBbox } as unknown as tf.TensorContainerObject;
    }) as unknown as Omit<RCNNLosses, 'acc'>;
    return { ...losses, acc };
  }
}

/** Top-1 accuracy in % of logits `[K, C]` (flat) against labels (mmdet's `accuracy`). */
function accuracy(logits: Float32Array, labels: readonly number[], c: number): number {
  if (!labels.length) return 0;
  let hit = 0;
  labels.forEach((y, i) => {
    const row = logits.subarray(i * c, (i + 1) * c);
    let best = 0;
    row.forEach((v, j) => v > row[best]! && (best = j));
    if (best === y) hit += 1;
  });
  return (100 * hit) / labels.length;
}

/** An image without detections. */
const noDetections = (): Detections => ({ boxes: new Float32Array(0), scores: new Float32Array(0), labels: new Int32Array(0) });
