import {
  AnchorGenerator,
  Conv2d,
  Module,
  SkySenseError,
  assertInRange,
  assertInt,
  batchedNms,
  bbox2delta,
  delta2bbox,
  gatherRows,
  formatShape,
  normal,
  tf,
  zeros,
  type AnchorGeneratorOptions,
  type Tensor,
} from '@skysense/core-tensor';
import { AVG_EPS, checkGt, flattenLevels, type DetImageMeta, type GtBoxes, type ScoredBoxes } from './detection-common';
import { MaxIoUAssigner, checkSample, type BoxSampler } from './detection-targets';
import { sigmoidCrossEntropy } from './losses';

/** Options of {@link RPNHead}, with Faster R-CNN's defaults. */
export interface RPNHeadOptions {
  /** Channels of the FPN levels. Default 256. */
  inChannels?: number;
  /** Channels of `rpn_conv`. Default `inChannels`. */
  featChannels?: number;
  /** Anchors. Default strides 4, 8, 16, 32, 64, ratios 0.5, 1, 2, scale 8. */
  anchorGenerator?: AnchorGeneratorOptions;
}

/** Options of {@link RPNHead.proposals} (mmdet's `rpn` test config / `rpn_proposal` train config). */
export interface ProposalOptions {
  /** Best boxes kept per level before NMS. Default 1000 (training: 2000). */
  nmsPre?: number;
  /** Boxes kept per image after NMS. Default 1000. */
  maxPerImg?: number;
  /** NMS IoU threshold. Default 0.7. */
  iouThreshold?: number;
  /** Boxes not wider and taller than this are dropped. Default 0. */
  minBboxSize?: number;
}

/** The RPN's raw maps per level: objectness logits `[N, A, H, W]` and deltas `[N, 4A, H, W]`. */
export interface RPNOutputs {
  clsScores: Tensor[];
  bboxPreds: Tensor[];
}

/** The RPN training losses (mmdet `loss_rpn_cls`, `loss_rpn_bbox`: sums over the levels). */
export interface RPNLosses {
  lossCls: Tensor;
  lossBbox: Tensor;
}

/** Options of {@link RPNHead.loss} (mmdet's `train_cfg.rpn`). */
export interface RPNLossOptions {
  /** Picks the anchors each image's loss uses (mmdet: `RandomSampler(256, 0.5)`). */
  sampler: BoxSampler;
  /** Default `MaxIoUAssigner(0.7, 0.3, minPosIou 0.3, low-quality matches)`. */
  assigner?: MaxIoUAssigner;
}

export const FASTER_RCNN_ANCHORS: AnchorGeneratorOptions = { strides: [4, 8, 16, 32, 64], ratios: [0.5, 1, 2], scales: [8] };

/**
 * mmdet 2.x's `RPNHead`: a shared 3×3 conv + ReLU (`rpn_conv`), then per anchor an objectness
 * logit (`rpn_cls`, sigmoid) and four deltas (`rpn_reg`) on every FPN level, with the anchors of
 * {@link @skysense/core-tensor!AnchorGenerator}. `proposals` is mmdet's proposal step; `loss` its training loss.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { RPNHead } from '@skysense/heads';
 * await initBackend();
 * const rpn = new RPNHead({ inChannels: 32 });
 * const levels = [64, 32, 16, 8, 4].map((s) => tf.randomNormal([1, 32, s, s]));
 * const out = rpn.forward(levels);
 * const [p] = rpn.proposals(out, [{ imgShape: [256, 256] }], { maxPerImg: 100 });
 * console.log(out.clsScores[0]!.shape, p!.scores.length); // [1, 3, 64, 64] 100
 * ```
 */
export class RPNHead extends Module {
  readonly rpnConv: Conv2d;
  readonly rpnCls: Conv2d;
  readonly rpnReg: Conv2d;
  readonly anchors: AnchorGenerator;
  readonly inChannels: number;
  private anchorCache: { key: string; anchors: Float32Array; counts: number[] } | null = null;

  constructor(options: RPNHeadOptions = {}) {
    super();
    this.inChannels = assertInt('RPNHead inChannels', options.inChannels ?? 256, 1);
    const feat = assertInt('RPNHead featChannels', options.featChannels ?? this.inChannels, 1);
    this.anchors = new AnchorGenerator(options.anchorGenerator ?? FASTER_RCNN_ANCHORS);
    const a = this.anchors.numBaseAnchors[0]!;
    if (this.anchors.numBaseAnchors.some((n) => n !== a))
      throw new SkySenseError(
        'E_ARG',
        `RPNHead anchorGenerator: every level needs the same anchors per location, got ${this.anchors.numBaseAnchors}`,
      );
    const init = { weightInit: normal(0, 0.01), biasInit: zeros };
    this.rpnConv = this.registerModule('rpn_conv', new Conv2d(this.inChannels, feat, 3, { padding: 1, ...init }));
    this.rpnCls = this.registerModule('rpn_cls', new Conv2d(feat, a, 1, init));
    this.rpnReg = this.registerModule('rpn_reg', new Conv2d(feat, 4 * a, 1, init));
  }

  /** Objectness logits and deltas of every level. */
  forward(levels: readonly Tensor[]): RPNOutputs {
    const n = this.anchors.strides.length;
    if (levels.length !== n)
      throw new SkySenseError('E_ARG', `RPNHead levels: expected ${n} maps (one per anchor stride), got ${levels.length}`);
    levels.forEach((x, i) => {
      if (x.rank !== 4 || x.shape[1] !== this.inChannels)
        throw new SkySenseError('E_SHAPE', `RPNHead levels[${i}]: expected [N, ${this.inChannels}, H, W], got ${formatShape(x.shape)}`);
    });
    const outs = levels.map((x) =>
      tf.tidy(() => {
        const h = tf.relu(this.rpnConv.forward(x));
        return [this.rpnCls.forward(h), this.rpnReg.forward(h)] as const;
      }),
    );
    return { clsScores: outs.map((o) => o[0]), bboxPreds: outs.map((o) => o[1]) };
  }

  /** The anchors of every level for these outputs, concatenated `[Σ H·W·A, 4]`, and the count per level (kept for the last sizes: a training step asks twice). */
  private anchorsFor(out: RPNOutputs): { anchors: Float32Array; counts: number[] } {
    const sizes = out.clsScores.map((m) => m.shape.slice(2) as [number, number]);
    const key = sizes.join(';');
    if (this.anchorCache?.key === key) return this.anchorCache;
    const per = this.anchors.gridPriors(sizes);
    const counts = per.map((t) => t.shape[0]!);
    const anchors = new Float32Array(4 * counts.reduce((a, b) => a + b, 0));
    let at = 0;
    per.forEach((t, l) => {
      anchors.set(t.dataSync() as Float32Array, 4 * at);
      at += counts[l]!;
      t.dispose();
    });
    this.anchorCache = { key, anchors, counts };
    return this.anchorCache;
  }

  /**
   * mmdet's RPN proposal step per image: on each level the `nmsPre` highest-scoring anchors
   * (sigmoid), their boxes decoded and clipped to `imgShape`, boxes not larger than `minBboxSize`
   * dropped, NMS within each level (`batched_nms` by level), the best `maxPerImg` kept.
   */
  proposals(out: RPNOutputs, metas: readonly DetImageMeta[], options: ProposalOptions = {}): ScoredBoxes[] {
    const nmsPre = assertInt('proposals nmsPre', options.nmsPre ?? 1000, 1);
    const maxPerImg = assertInt('proposals maxPerImg', options.maxPerImg ?? 1000, 1);
    const iou = assertInRange('proposals iouThreshold', options.iouThreshold ?? 0.7, 0, 1);
    const minSize = assertInRange('proposals minBboxSize', options.minBboxSize ?? 0, 0, Infinity);
    const n = out.clsScores[0]!.shape[0]!;
    if (metas.length !== n) throw new SkySenseError('E_ARG', `proposals metas: expected ${n} (one per image), got ${metas.length}`);
    const { anchors, counts } = this.anchorsFor(out);
    const [scores, deltas] = tf.tidy(() => [
      tf.sigmoid(flattenLevels(out.clsScores, 1)).dataSync() as Float32Array,
      flattenLevels(out.bboxPreds, 4).dataSync() as Float32Array,
    ]);
    const total = anchors.length / 4;
    return metas.map((meta, b) => {
      const picked: number[] = [];
      const levelOf: number[] = [];
      let start = 0;
      counts.forEach((count, l) => {
        const idx = Array.from({ length: count }, (_, i) => start + i);
        idx.sort((i, j) => scores[b * total + j]! - scores[b * total + i]! || i - j);
        for (const i of idx.slice(0, nmsPre)) [picked.push(i), levelOf.push(l)];
        start += count;
      });
      const sel = (src: Float32Array, offset: number, k: number) => {
        const v = new Float32Array(picked.length * k);
        picked.forEach((i, r) => v.set(src.subarray((offset + i) * k, (offset + i + 1) * k), r * k));
        return v;
      };
      const boxes = tf.tidy(
        () =>
          delta2bbox(tf.tensor2d(sel(anchors, 0, 4), [picked.length, 4]), tf.tensor2d(sel(deltas, b * total, 4), [picked.length, 4]), {
            maxShape: meta.imgShape,
          }).dataSync() as Float32Array,
      );
      const s = sel(scores, b * total, 1);
      const valid = picked
        .map((_, r) => r)
        .filter((r) => boxes[4 * r + 2]! - boxes[4 * r]! > minSize && boxes[4 * r + 3]! - boxes[4 * r + 1]! > minSize);
      return keepByNms(
        Float32Array.from(valid.flatMap((r) => Array.from(boxes.subarray(4 * r, 4 * r + 4)))),
        Float32Array.from(valid.map((r) => s[r]!)),
        Int32Array.from(valid.map((r) => levelOf[r]!)),
        iou,
        maxPerImg,
      );
    });
  }

  /**
   * The RPN loss of a batch (mmdet's `AnchorHead.loss`): anchors inside each image's padded area are
   * assigned to the gt boxes, sampled, and scored by sigmoid cross-entropy (positives vs sampled
   * negatives) and L1 on the deltas of the positives, both summed and divided by the number of
   * sampled anchors (at least one positive and one negative counted per image).
   */
  loss(out: RPNOutputs, gts: readonly GtBoxes[], metas: readonly DetImageMeta[], options: RPNLossOptions): RPNLosses {
    const n = out.clsScores[0]!.shape[0]!;
    if (gts.length !== n || metas.length !== n)
      throw new SkySenseError(
        'E_ARG',
        `RPNHead.loss: expected ${n} gt sets and metas (one per image), got ${gts.length} and ${metas.length}`,
      );
    gts.forEach((gt, i) => checkGt(`RPNHead.loss gts[${i}]`, gt, Infinity));
    const assigner = options.assigner ?? new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.3 });
    const { anchors } = this.anchorsFor(out);
    const total = anchors.length / 4;
    const sizes = out.clsScores.map((m) => m.shape.slice(2) as [number, number]);
    const batchShape = [
      out.clsScores[0]!.shape[2]! * this.anchors.strides[0]![1],
      out.clsScores[0]!.shape[3]! * this.anchors.strides[0]![0],
    ];
    const sampled: number[] = [];
    const targets: number[] = [];
    const posFlat: number[] = [];
    const posAnchors: number[] = [];
    const posGt: number[] = [];
    let avg = 0;
    gts.forEach((gt, b) => {
      const inside = this.validAnchors(sizes, metas[b]!.padShape ?? (batchShape as [number, number]));
      const boxes = Float32Array.from(inside.flatMap((i) => Array.from(anchors.subarray(4 * i, 4 * i + 4))));
      const assign = assigner.assign(boxes, gt.boxes, new Int32Array(gt.labels.length));
      const { pos, neg } = checkSample(
        `RPNHead.loss sampler (image ${b})`,
        assign,
        options.sampler.sample(assign, { stage: 'rpn', image: b }),
      );
      for (const r of pos) {
        const i = inside[r]!;
        [sampled.push(b * total + i), targets.push(1), posFlat.push(b * total + i)];
        posAnchors.push(...anchors.subarray(4 * i, 4 * i + 4));
        posGt.push(...gt.boxes.subarray(4 * (assign.gtInds[r]! - 1), 4 * assign.gtInds[r]!));
      }
      for (const r of neg) [sampled.push(b * total + inside[r]!), targets.push(0)];
      avg += Math.max(pos.length, 1) + Math.max(neg.length, 1);
    });
    return tf.tidy(() => {
      const logits = gatherRows(tf.reshape(flattenLevels(out.clsScores, 1), [-1, 1]), sampled).reshape([-1]);
      const lossCls = tf.div(tf.sum(sigmoidCrossEntropy(logits, tf.tensor1d(targets))), avg + AVG_EPS);
      const lossBbox = posFlat.length
        ? tf.div(
            tf.sum(
              tf.abs(
                tf.sub(
                  gatherRows(tf.reshape(flattenLevels(out.bboxPreds, 4), [-1, 4]), posFlat),
                  bbox2delta(tf.tensor2d(posAnchors, [posFlat.length, 4]), tf.tensor2d(posGt, [posFlat.length, 4])),
                ),
              ),
            ),
            avg + AVG_EPS,
          )
        : tf.mul(tf.sum(out.bboxPreds[0]!), 0);
      return { lossCls, lossBbox } as unknown as tf.TensorContainerObject;
    }) as unknown as RPNLosses;
  }

  /** Indices of the anchors whose location lies inside the padded image (mmdet's `valid_flags`). */
  private validAnchors(sizes: readonly [number, number][], padShape: readonly [number, number]): number[] {
    const a = this.anchors.numBaseAnchors[0]!;
    const out: number[] = [];
    let start = 0;
    sizes.forEach(([h, w], l) => {
      const [sw, sh] = this.anchors.strides[l]!;
      const [vh, vw] = [Math.min(Math.ceil(padShape[0] / sh), h), Math.min(Math.ceil(padShape[1] / sw), w)];
      for (let y = 0; y < vh; y++) for (let x = 0; x < vw; x++) for (let k = 0; k < a; k++) out.push(start + (y * w + x) * a + k);
      start += h * w * a;
    });
    return out;
  }
}

/** `batched_nms` of scored boxes grouped by `ids`, the best `max` kept, highest score first. */
export function keepByNms(
  boxes: Float32Array,
  scores: Float32Array,
  ids: Int32Array,
  iou: number,
  max: number,
): ScoredBoxes & { keep: Int32Array } {
  if (!scores.length) return { boxes, scores, keep: new Int32Array(0) };
  const keep = tf.tidy(() =>
    (
      batchedNms(tf.tensor2d(boxes, [scores.length, 4]), tf.tensor1d(scores), tf.tensor1d(ids, 'int32'), iou).dataSync() as Int32Array
    ).slice(0, max),
  );
  return {
    boxes: Float32Array.from(Array.from(keep).flatMap((i) => Array.from(boxes.subarray(4 * i, 4 * i + 4)))),
    scores: Float32Array.from(keep, (i) => scores[i]!),
    keep,
  };
}
