import { Module, SkySenseError, formatShape, tf, type Tensor } from '@skysense/core-tensor';
import { type ChangeDetectionHead, type LinearClsHead, binaryCrossEntropyLoss, crossEntropyLoss, resizeTo } from '@skysense/heads';
import type { FeatureEncoder } from '@skysense/core-tensor';

/**
 * mmcls's `ImageClassifier`: encoder (`backbone.*`) → global average pooling → `head.fc`. With a
 * multi-label head the loss is the binary cross-entropy on 0/1 targets, otherwise the softmax
 * cross-entropy on class indices.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { Classifier } from '@skysense/skysense';
 * import { VisionTransformer } from '@skysense/vit';
 * import { LinearClsHead } from '@skysense/heads';
 * await initBackend();
 * // scene classification: an encoder's last map, pooled, into a linear head
 * const encoder = new VisionTransformer({ embedDims: 32, numLayers: 2, numHeads: 2, outIndices: [1] });
 * const clf = new Classifier(encoder, new LinearClsHead({ inChannels: 32, numClasses: 10 })).eval();
 * console.log(clf.forward(tf.randomNormal([2, 10, 64, 64])).shape); // [2, 10] logits
 * ```
 */
export class Classifier<I = Tensor> extends Module {
  readonly backbone: FeatureEncoder<I>;
  readonly head: LinearClsHead;

  constructor(backbone: FeatureEncoder<I>, head: LinearClsHead) {
    super();
    this.backbone = this.registerModule('backbone', backbone);
    this.head = this.registerModule('head', head);
  }

  /** Logits `[N, classes]`. */
  forward(images: I): Tensor {
    return tf.tidy(() => this.head.forward(this.backbone.forward(images)));
  }

  /** Probabilities (softmax, or sigmoid per class for multi-label). */
  predict(images: I): Tensor {
    return tf.tidy(() => this.head.predict(this.backbone.forward(images)));
  }

  /**
   * The training loss.
   * @param targets int32 `[N]` class indices, or for multi-label `[N, classes]` of 0/1.
   */
  loss(images: I, targets: Tensor): Tensor {
    return tf.tidy(() => {
      const logits = this.forward(images);
      return this.head.multiLabel ? binaryCrossEntropyLoss(logits, targets) : crossEntropyLoss(logits, targets);
    });
  }
}

/**
 * Change detection with one shared (Siamese) encoder (`backbone.*`) applied to both dates and a
 * {@link @skysense/heads!ChangeDetectionHead} (`decode_head.*`); change logits are resized to the input size.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { ChangeDetector } from '@skysense/skysense';
 * import { SwinTransformerV2 } from '@skysense/swin';
 * import { ChangeDetectionHead } from '@skysense/heads';
 * await initBackend();
 * // a Siamese HR encoder + change head (bitemporal change detection)
 * const encoder = new SwinTransformerV2({ arch: { embedDims: 8, depths: [2, 2], numHeads: [1, 2], extraNormEveryNBlocks: 0 }, windowSize: 4, outIndices: [0, 1] });
 * const detector = new ChangeDetector(encoder, new ChangeDetectionHead({ inChannels: [8, 16], channels: 16, poolScales: [1, 2] })).eval();
 * const [a, b] = [tf.randomNormal([1, 3, 64, 64]), tf.randomNormal([1, 3, 64, 64])];
 * console.log(detector.forward(a, b).shape); // [1, 2, 64, 64]
 * ```
 */
export class ChangeDetector extends Module {
  readonly backbone: FeatureEncoder;
  readonly decodeHead: ChangeDetectionHead;

  constructor(backbone: FeatureEncoder, head: ChangeDetectionHead) {
    super();
    this.backbone = this.registerModule('backbone', backbone);
    this.decodeHead = this.registerModule('decode_head', head);
  }

  /** Change logits `[N, classes, H, W]` for images of date A and date B (same shape). */
  forward(a: Tensor, b: Tensor): Tensor {
    if (a.shape.join() !== b.shape.join())
      throw new SkySenseError('E_SHAPE', `ChangeDetector: date B ${formatShape(b.shape)} must match date A ${formatShape(a.shape)}`);
    return tf.tidy(() =>
      resizeTo(this.decodeHead.forwardPair(this.backbone.forward(a), this.backbone.forward(b)), a.shape, this.decodeHead.alignCorners),
    );
  }

  /** Cross-entropy against int32 change labels `[N, H, W]` (255 = ignore). */
  loss(a: Tensor, b: Tensor, labels: Tensor): Tensor {
    return tf.tidy(() => crossEntropyLoss(this.forward(a, b), labels));
  }
}
