import { Generator, Module, SkySenseError, assertInt, formatShape, tf, type FeatureEncoder, type Tensor } from '@skysense/core-tensor';
import { checkGt, checkMetas, type DetImageMeta, type Detections, type GtBoxes } from './detection-common';
import { RandomSampler, type BoxSampler } from './detection-targets';
import { FPN } from './fpn';
import { RPNHead, type ProposalOptions, type RPNHeadOptions } from './rpn-head';
import { StandardRoIHead, type RCNNTestOptions, type SingleRoIExtractorOptions } from './roi-head';

/** Options of {@link FasterRCNN}, with mmdet's `faster_rcnn_r50_fpn` defaults. */
export interface FasterRCNNOptions {
  /** Any encoder giving four maps at strides 4, 8, 16, 32 (Swin V2 with `outIndices` 0–3). */
  backbone: FeatureEncoder;
  /** Object classes (DIOR: 20). */
  numClasses: number;
  /** FPN width. Default 256. */
  neckChannels?: number;
  /** Width of the two shared fully connected layers of the box head. Default 1024. */
  fcOutChannels?: number;
  /** RPN anchors and conv width. Default: Faster R-CNN's anchors, `featChannels` = `neckChannels`. */
  rpn?: Omit<RPNHeadOptions, 'inChannels'>;
  /** RoI extraction. Default RoIAlign 7×7, adaptive sampling, strides 4–32, finest scale 56. */
  roiExtractor?: SingleRoIExtractorOptions;
  /** Test settings: the RPN proposals (1000 / 1000 / 0.7) and the final boxes (0.05 / 0.5 / 100). */
  test?: { rpn?: ProposalOptions; rcnn?: RCNNTestOptions };
  /** Training proposals for the RCNN stage. Default nmsPre 2000, maxPerImg 1000, IoU 0.7. */
  trainProposals?: ProposalOptions;
  /** Inputs are padded at the bottom and right to a multiple of this. Default 32. */
  sizeDivisor?: number;
}

/** The Faster R-CNN training losses of a batch; `loss` is their sum (what is minimised). */
export interface FasterRCNNLosses {
  loss: Tensor;
  lossRpnCls: Tensor;
  lossRpnBbox: Tensor;
  lossCls: Tensor;
  lossBbox: Tensor;
  /** RCNN classification accuracy on the sampled RoIs, %. */
  acc: number;
}

/** Options of {@link FasterRCNN.losses}. */
export interface DetectionLossOptions {
  /** Random source of the default samplers (seed it for reproducible runs). */
  rng?: Generator;
  /** Replaces the RPN's `RandomSampler(256, 0.5)`. */
  rpnSampler?: BoxSampler;
  /** Replaces the RCNN's `RandomSampler(512, 0.25)`. */
  rcnnSampler?: BoxSampler;
}

/**
 * mmdet 2.x's `FasterRCNN` (two-stage detector) on any {@link @skysense/core-tensor!FeatureEncoder}:
 * `backbone.*`, an {@link FPN} (`neck.*`), an {@link RPNHead} (`rpn_head.*`) and a
 * {@link StandardRoIHead} (`roi_head.bbox_head.*`), so an mmdet checkpoint (SkySense's DIOR config)
 * loads with its own key names. Inputs are normalised images; they are zero-padded to a multiple of
 * `sizeDivisor` here, as mmdet's `Pad` does.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SwinTransformerV2 } from '@skysense/swin';
 * import { FasterRCNN } from '@skysense/heads';
 * await initBackend();
 * const backbone = new SwinTransformerV2({ arch: { embedDims: 16, depths: [1, 1, 1, 1], numHeads: [1, 1, 2, 2], extraNormEveryNBlocks: 0 }, windowSize: 4, outIndices: [0, 1, 2, 3] });
 * const detector = new FasterRCNN({ backbone, numClasses: 3, neckChannels: 16, fcOutChannels: 32 }).eval();
 * const [dets] = detector.predict(tf.randomNormal([1, 3, 128, 160]));
 * console.log(dets!.boxes.length / 4, dets!.labels); // up to 100 boxes, class per box
 * ```
 */
export class FasterRCNN extends Module {
  readonly backbone: FeatureEncoder;
  readonly neck: FPN;
  readonly rpnHead: RPNHead;
  readonly roiHead: StandardRoIHead;
  readonly numClasses: number;
  readonly sizeDivisor: number;

  constructor(readonly options: FasterRCNNOptions) {
    super();
    this.numClasses = assertInt('FasterRCNN numClasses', options.numClasses, 1);
    this.sizeDivisor = assertInt('FasterRCNN sizeDivisor', options.sizeDivisor ?? 32, 1);
    const width = assertInt('FasterRCNN neckChannels', options.neckChannels ?? 256, 1);
    if (options.backbone.featureChannels.length !== 4)
      throw new SkySenseError(
        'E_ARG',
        `FasterRCNN backbone: expected 4 feature maps (strides 4, 8, 16, 32), got ${options.backbone.featureChannels.length} (for Swin V2 set outIndices [0, 1, 2, 3])`,
      );
    this.backbone = this.registerModule('backbone', options.backbone);
    this.neck = this.registerModule('neck', new FPN({ inChannels: options.backbone.featureChannels, outChannels: width, numOuts: 5 }));
    this.rpnHead = this.registerModule('rpn_head', new RPNHead({ ...options.rpn, inChannels: width }));
    this.roiHead = this.registerModule(
      'roi_head',
      new StandardRoIHead({
        ...options.roiExtractor,
        numClasses: this.numClasses,
        inChannels: width,
        fcOutChannels: options.fcOutChannels,
      }),
    );
  }

  /** Pads `images` `[N, C, H, W]` to the size divisor and gives the FPN levels and the default metas. */
  features(images: Tensor): { levels: Tensor[]; metas: DetImageMeta[] } {
    if (images.rank !== 4) throw new SkySenseError('E_SHAPE', `FasterRCNN images: expected [N, C, H, W], got ${formatShape(images.shape)}`);
    const [n, , h, w] = images.shape as [number, number, number, number];
    const [ph, pw] = this.paddedSize(h, w);
    const levels = tf.tidy(() => {
      const x =
        ph === h && pw === w
          ? images
          : tf.pad(images, [
              [0, 0],
              [0, 0],
              [0, ph - h],
              [0, pw - w],
            ]);
      return this.neck.forward(this.backbone.forward(x));
    });
    return { levels, metas: Array.from({ length: n }, () => ({ imgShape: [h, w] as const })) };
  }

  /**
   * Detections per image (boxes in the coordinates of each meta's original image).
   * @param metas per image: its size before padding and the resize factor. Default: the whole input, factor 1.
   */
  predict(images: Tensor, metas?: readonly DetImageMeta[]): Detections[] {
    const m = this.metasOf(images, metas);
    const { levels } = this.features(images);
    try {
      const rpnOut = this.rpnHead.forward(levels);
      let proposals;
      try {
        proposals = this.rpnHead.proposals(rpnOut, m, this.options.test?.rpn);
      } finally {
        tf.dispose([...rpnOut.clsScores, ...rpnOut.bboxPreds]);
      }
      return this.roiHead.detections(levels, proposals, m, this.options.test?.rcnn);
    } finally {
      tf.dispose(levels);
    }
  }

  /**
   * The training losses of a batch (mmdet's `TwoStageDetector.forward_train`): the RPN loss, the
   * RPN's proposals (without gradient) assigned and sampled for the RCNN loss.
   * @param gts per image, boxes in input pixels and class indices in [0, numClasses).
   */
  losses(
    images: Tensor,
    gts: readonly GtBoxes[],
    options: DetectionLossOptions & { metas?: readonly DetImageMeta[] } = {},
  ): FasterRCNNLosses {
    const metas = this.metasOf(images, options.metas);
    const n = images.shape[0]!;
    if (gts.length !== n) throw new SkySenseError('E_ARG', `FasterRCNN.losses gts: expected ${n} (one per image), got ${gts.length}`);
    gts.forEach((gt, i) => checkGt(`FasterRCNN.losses gts[${i}]`, gt, this.numClasses, metas[i]!.imgShape));
    const rng = options.rng;
    const rpnSampler = options.rpnSampler ?? new RandomSampler({ num: 256, posFraction: 0.5, rng });
    const rcnnSampler = options.rcnnSampler ?? new RandomSampler({ num: 512, posFraction: 0.25, rng });
    let acc = 0;
    const out = tf.tidy(() => {
      const { levels } = this.features(images);
      const rpnOut = this.rpnHead.forward(levels);
      const rpn = this.rpnHead.loss(rpnOut, gts, metas, { sampler: rpnSampler });
      const proposals = this.rpnHead.proposals(rpnOut, metas, { nmsPre: 2000, maxPerImg: 1000, ...this.options.trainProposals });
      const rcnn = this.roiHead.loss(levels, proposals, gts, { sampler: rcnnSampler });
      acc = rcnn.acc;
      const loss = tf.addN([rpn.lossCls, rpn.lossBbox, rcnn.lossCls, rcnn.lossBbox]);
      return { loss, lossRpnCls: rpn.lossCls, lossRpnBbox: rpn.lossBbox, lossCls: rcnn.lossCls, lossBbox: rcnn.lossBbox };
    });
    return { ...(out as unknown as Omit<FasterRCNNLosses, 'acc'>), acc };
  }

  /** `[height, width]` padded up to the size divisor (mmdet's `Pad`). */
  private paddedSize(h: number, w: number): [number, number] {
    const d = this.sizeDivisor;
    return [Math.ceil(h / d) * d, Math.ceil(w / d) * d];
  }

  /** The given metas checked against the padded batch, or the whole input as one image each. */
  private metasOf(images: Tensor, metas?: readonly DetImageMeta[]): readonly DetImageMeta[] {
    if (images.rank !== 4) throw new SkySenseError('E_SHAPE', `FasterRCNN images: expected [N, C, H, W], got ${formatShape(images.shape)}`);
    const [n, , h, w] = images.shape as [number, number, number, number];
    return checkMetas(
      'FasterRCNN metas',
      metas ?? Array.from({ length: n }, () => ({ imgShape: [h, w] as const })),
      n,
      this.paddedSize(h, w),
    );
  }
}
