import { Module, SkySenseError, assertInt, tf, type Tensor } from '@skysense/core-tensor';
import {
  type BaseDecodeHead,
  type CrossEntropyOptions,
  FCNHead,
  MultiLevelNeck,
  UPerHead,
  crossEntropyLoss,
  resizeTo,
} from '@skysense/heads';
import type { SkySense, SkySenseInputs } from '../skysense';

/** Options of {@link FusionSegmentor}. */
export interface FusionSegmentorOptions {
  numClasses: number;
  /** Classify F_fus (fused map ⊕ geo-context, twice as wide) instead of the fused map alone. Default `false`. */
  geoContext?: boolean;
  /**
   * The decoder: `fcn` (an FCNHead on the fused map) or `upernet` (a `MultiLevelNeck` turning the fused
   * map into a 4-level pyramid at scales 4, 2, 1, ½, then a UPerHead; paper Tab. 4's segmentation
   * setting). Default `fcn`.
   */
  decoder?: 'fcn' | 'upernet';
  /** Head width (FCNHead, or neck and UPerHead). Default 256. */
  channels?: number;
  /** UPerHead pyramid pooling scales. Default [1, 2, 3, 6]. */
  poolScales?: number[];
  /** FCNHead convs. Default 1. */
  numConvs?: number;
  /** Cross-entropy options (ignore index, class weights). */
  loss?: Omit<CrossEntropyOptions, 'lossWeight'>;
}

/**
 * Segmentation on SkySense's multi-modal fused map (the paper's PASTIS-MM / Dynamic EarthNet-MM
 * setting): the whole model (`backbone.*`: encoders, fusion, prototype bank) → an FCNHead
 * (`decode_head.*`) on the fused map, or a `MultiLevelNeck` (`neck.*`) and a UPerHead, with or
 * without the geo-context half → logits resized to the label grid.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { FusionSegmentor, SkySense } from '@skysense/skysense';
 * await initBackend();
 * // segmentation on the fused multi-modal features (optionally with the geo-context)
 * const seg = new FusionSegmentor(SkySense.fromPreset('skysense-tiny'), { numClasses: 4, channels: 8, geoContext: true }).eval();
 * const logits = seg.forward(
 *   {
 *     hr: tf.randomNormal([1, 3, 128, 128]),
 *     s2: { frames: tf.randomNormal([1, 2, 10, 4, 4]), dates: [['2021-04-01', '2021-07-01']] },
 *     s1: { frames: tf.randomNormal([1, 1, 2, 4, 4]) },
 *     lat: [43.6],
 *     lon: [1.44],
 *   },
 *   [16, 16],
 * );
 * console.log(logits.shape); // [1, 4, 16, 16]
 * ```
 */
export class FusionSegmentor extends Module {
  readonly backbone: SkySense;
  readonly neck: MultiLevelNeck | null;
  readonly decodeHead: BaseDecodeHead;
  readonly geoContext: boolean;

  constructor(
    model: SkySense,
    private readonly options: FusionSegmentorOptions,
  ) {
    super();
    assertInt('numClasses', options.numClasses, 1);
    this.geoContext = options.geoContext ?? false;
    if (this.geoContext && !model.geo)
      throw new SkySenseError('E_ARG', 'FusionSegmentor geoContext: the model has no prototype bank (build it with a geo config)');
    const width = model.neck.fusion.options.embedDims * (this.geoContext ? 2 : 1);
    this.backbone = this.registerModule('backbone', model);
    const channels = options.channels ?? 256;
    const upernet = (options.decoder ?? 'fcn') === 'upernet';
    if (!upernet && options.decoder !== undefined && options.decoder !== 'fcn')
      throw new SkySenseError('E_ARG', `FusionSegmentor decoder: expected 'fcn' or 'upernet', got '${String(options.decoder)}'`);
    this.neck = upernet
      ? this.registerModule('neck', new MultiLevelNeck({ inChannels: [width], outChannels: channels, scales: [4, 2, 1, 0.5] }))
      : null;
    this.decodeHead = this.registerModule(
      'decode_head',
      upernet
        ? new UPerHead({
            inChannels: [channels, channels, channels, channels],
            channels,
            poolScales: options.poolScales,
            numClasses: options.numClasses,
          })
        : new FCNHead({ inChannels: width, channels, numConvs: options.numConvs ?? 1, concatInput: false, numClasses: options.numClasses }),
    );
  }

  /** Logits `[B, classes, h, w]` at the size `[h, w]` (e.g. the Sentinel grid of the labels). */
  forward(inputs: SkySenseInputs, size: [number, number]): Tensor {
    return tf.tidy(() => {
      const out = this.backbone.forward(inputs);
      if (this.geoContext && !out.withGeoContext)
        throw new SkySenseError('E_ARG', 'FusionSegmentor inputs: geo-context needs lat and lon for every sample');
      const map = this.geoContext ? out.withGeoContext! : out.fused;
      return resizeTo(this.decodeHead.forward(this.neck ? this.neck.forward([map]) : [map]), size, this.decodeHead.alignCorners);
    });
  }

  /** Cross-entropy against int32 labels `[B, h, w]` (255 = ignore). */
  loss(inputs: SkySenseInputs, labels: Tensor): Tensor {
    return tf.tidy(() => crossEntropyLoss(this.forward(inputs, [labels.shape[1]!, labels.shape[2]!]), labels, this.options.loss));
  }
}
