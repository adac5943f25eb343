import { Module, SkySenseError, assertInt, formatShape, tf, type FeatureEncoder, type Tensor } from '@skysense/core-tensor';
import { type BaseDecodeHead, type CrossEntropyOptions, type MultiLevelNeck, crossEntropyLoss, resizeTo } from '@skysense/heads';

/** The encoder contract, now in `@skysense/core-tensor` (re-exported for 0.1 code). */
export type { FeatureEncoder };

/** Options of {@link Segmentor}. */
export interface SegmentorOptions {
  /** The encoder (registered as `backbone`). */
  backbone: FeatureEncoder;
  /** Optional neck between encoder and heads (`neck`), e.g. the ViT {@link @skysense/heads!MultiLevelNeck}. */
  neck?: MultiLevelNeck;
  /** The main head (`decode_head`). */
  decodeHead: BaseDecodeHead;
  /** The auxiliary head (`auxiliary_head`), used for the training loss only. */
  auxiliaryHead?: BaseDecodeHead;
  /** Weight of the auxiliary loss. Default 0.4 (SkySense's iSAID config). */
  auxWeight?: number;
  /** Cross-entropy options of both heads (ignore index 255, class weights, averaging). */
  loss?: Omit<CrossEntropyOptions, 'lossWeight'>;
}

/** Options of {@link Segmentor.slideInference} (mmseg's `test_cfg=dict(mode='slide', …)`). */
export interface SlideOptions {
  /** Window side in pixels (square). */
  crop: number;
  /** Step between windows. Default: `crop` × 2/3, rounded (one third overlap). */
  stride?: number;
}

/** The training losses of one batch. */
export interface SegmentationLosses {
  /** decode + auxWeight · aux. */
  loss: Tensor;
  decode: Tensor;
  aux: Tensor | null;
}

/**
 * mmseg's `EncoderDecoder`: encoder (`backbone.*`), optional `neck.*`, `decode_head.*` and
 * `auxiliary_head.*`, so an mmseg segmentor checkpoint loads with its own key names. Logits are
 * resized bilinearly (align_corners false) to the input size.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { VisionTransformer } from '@skysense/vit';
 * import { FCNHead } from '@skysense/heads';
 * import { Segmentor } from '@skysense/skysense';
 * await initBackend();
 * const backbone = new VisionTransformer({ inChannels: 10, embedDims: 64, numLayers: 2, numHeads: 4 });
 * const model = new Segmentor({
 *   backbone,
 *   decodeHead: new FCNHead({ inChannels: backbone.featureChannels[0]!, channels: 32, numClasses: 4 }),
 * });
 * const logits = model.eval().forward(tf.randomNormal([1, 10, 64, 64])); // [1, 4, 64, 64]
 * ```
 */
export class Segmentor extends Module {
  readonly backbone: FeatureEncoder;
  readonly neck: MultiLevelNeck | null;
  readonly decodeHead: BaseDecodeHead;
  readonly auxiliaryHead: BaseDecodeHead | null;
  readonly auxWeight: number;

  constructor(private readonly options: SegmentorOptions) {
    super();
    this.backbone = this.registerModule('backbone', options.backbone);
    this.neck = options.neck ? this.registerModule('neck', options.neck) : null;
    this.decodeHead = this.registerModule('decode_head', options.decodeHead);
    this.auxiliaryHead = options.auxiliaryHead ? this.registerModule('auxiliary_head', options.auxiliaryHead) : null;
    this.auxWeight = options.auxWeight ?? 0.4;
  }

  /** Number of classes of the decode head. */
  get numClasses(): number {
    return this.decodeHead.numClasses;
  }

  /** Encoder (and neck) feature maps. */
  features(images: Tensor): Tensor[] {
    if (images.rank !== 4) throw new SkySenseError('E_SHAPE', `Segmentor images: expected [N, C, H, W], got ${formatShape(images.shape)}`);
    return tf.tidy(() => {
      const feats = this.backbone.forward(images);
      return this.neck ? this.neck.forward(feats) : feats;
    });
  }

  /** Logits `[N, classes, H, W]` at the input size (mmseg `encode_decode`). */
  forward(images: Tensor): Tensor {
    return tf.tidy(() => resizeTo(this.decodeHead.forward(this.features(images)), images.shape, this.decodeHead.alignCorners));
  }

  /** Class index per pixel, int32 `[N, H, W]`. */
  predict(images: Tensor): Tensor {
    return tf.tidy(() => tf.argMax(this.forward(images), 1));
  }

  /** Cross-entropy of the decode head plus `auxWeight` × that of the auxiliary head, on logits resized to the labels. */
  losses(images: Tensor, labels: Tensor): SegmentationLosses {
    const n = images.shape[0];
    if (labels.rank !== 3 || labels.shape[0] !== n)
      throw new SkySenseError('E_SHAPE', `Segmentor labels: expected [${n}, H, W], got ${formatShape(labels.shape)}`);
    return tf.tidy(() => {
      const feats = this.features(images);
      const size = labels.shape;
      const decode = crossEntropyLoss(
        resizeTo(this.decodeHead.forward(feats), size, this.decodeHead.alignCorners),
        labels,
        this.options.loss,
      );
      const aux = this.auxiliaryHead
        ? crossEntropyLoss(resizeTo(this.auxiliaryHead.forward(feats), size, this.auxiliaryHead.alignCorners), labels, {
            ...this.options.loss,
            lossWeight: this.auxWeight,
          })
        : null;
      return { loss: aux ? tf.add(decode, aux) : tf.clone(decode), decode, aux } as unknown as tf.TensorContainerObject;
    }) as unknown as SegmentationLosses;
  }

  /**
   * mmseg's sliding-window inference: windows of `crop` every `stride` pixels (the last ones moved
   * back inside the image), logits of each window added into the full map and divided by how many
   * windows cover each pixel. An image smaller than the window is run whole.
   * @returns logits `[N, classes, H, W]`.
   */
  slideInference(images: Tensor, options: SlideOptions): Tensor {
    const crop = assertInt('slide crop', options.crop, 1);
    const stride = assertInt(
      'slide stride (at most the crop, so every pixel is covered)',
      options.stride ?? Math.max(1, Math.round((crop * 2) / 3)),
      1,
      crop,
    );
    if (images.rank !== 4) throw new SkySenseError('E_SHAPE', `Segmentor images: expected [N, C, H, W], got ${formatShape(images.shape)}`);
    const [n, , h, w] = images.shape as [number, number, number, number];
    const k = this.numClasses;
    const sum = new Float32Array(n * k * h * w);
    const count = new Uint16Array(h * w);
    for (const [y1, x1, y2, x2] of slideWindows(h, w, crop, stride)) {
      const logits = tf.tidy(() => this.forward(tf.slice(images, [0, 0, y1, x1], [-1, -1, y2 - y1, x2 - x1])));
      const v = logits.dataSync();
      logits.dispose();
      const wh = y2 - y1,
        ww = x2 - x1;
      for (let b = 0; b < n * k; b++)
        for (let y = 0; y < wh; y++) for (let x = 0; x < ww; x++) sum[(b * h + y1 + y) * w + x1 + x]! += v[(b * wh + y) * ww + x]!;
      for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) count[y * w + x]! += 1;
    }
    for (let i = 0; i < sum.length; i++) sum[i]! /= count[i % (h * w)]!;
    return tf.tensor4d(sum, [n, k, h, w]);
  }
}

/** The windows `[y1, x1, y2, x2)` of mmseg's slide mode. */
export function slideWindows(h: number, w: number, crop: number, stride: number): [number, number, number, number][] {
  const grids = (size: number) => Math.floor(Math.max(size - crop + stride - 1, 0) / stride) + 1;
  const out: [number, number, number, number][] = [];
  for (let i = 0; i < grids(h); i++) {
    for (let j = 0; j < grids(w); j++) {
      const y2 = Math.min(i * stride + crop, h),
        x2 = Math.min(j * stride + crop, w);
      out.push([Math.max(y2 - crop, 0), Math.max(x2 - crop, 0), y2, x2]);
    }
  }
  return out;
}
