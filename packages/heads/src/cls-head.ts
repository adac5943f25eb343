import { Linear, Module, SkySenseError, assertInt, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Options of {@link LinearClsHead}. */
export interface LinearClsHeadOptions {
  /** Width of the encoder feature (2816 for Swin V2-H's last stage, 1024 for ViT-L and the fused map). */
  inChannels: number;
  numClasses: number;
  /** Independent sigmoid per class (BigEarthNet-style multi-label) instead of a softmax. Default `false`. */
  multiLabel?: boolean;
}

/**
 * mmcls's `GlobalAveragePooling` neck + `LinearClsHead` (or `MultiLabelLinearClsHead`): the mean
 * over H×W of the encoder's last map, then `fc` (keys `fc.weight`, `fc.bias`; `head.fc.*` in an
 * mmcls classifier checkpoint). `forward` gives logits; `predict` the probabilities.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { LinearClsHead } from '@skysense/heads';
 * await initBackend();
 * // mmpretrain LinearClsHead on pooled features; multiLabel for BigEarthNet-style labels
 * const head = new LinearClsHead({ inChannels: 64, numClasses: 19, multiLabel: true });
 * console.log(head.forward(tf.randomNormal([2, 64])).shape); // [2, 19] logits
 * ```
 */
export class LinearClsHead extends Module {
  readonly fc: Linear;
  readonly multiLabel: boolean;

  constructor(readonly options: LinearClsHeadOptions) {
    super();
    assertInt('LinearClsHead inChannels', options.inChannels, 1);
    assertInt('LinearClsHead numClasses', options.numClasses, 1);
    this.multiLabel = options.multiLabel ?? false;
    this.fc = this.registerModule('fc', new Linear(options.inChannels, options.numClasses));
  }

  /**
   * Logits `[N, numClasses]` from a pooled `[N, C]` feature, a `[N, C, H, W]` map, or a list of
   * maps (the last one is used, as mmcls does with a tuple).
   */
  forward(features: Tensor | readonly Tensor[]): Tensor {
    const x = Array.isArray(features) ? (features as readonly Tensor[]).at(-1) : (features as Tensor);
    const c = this.options.inChannels;
    if (!x || !((x.rank === 2 || x.rank === 4) && x.shape[1] === c)) {
      throw new SkySenseError(
        'E_SHAPE',
        `LinearClsHead input: expected [N, ${c}] or [N, ${c}, H, W], got ${x ? formatShape(x.shape) : 'an empty list'}`,
      );
    }
    return tf.tidy(() => this.fc.forward(x.rank === 4 ? tf.mean(x, [2, 3]) : x));
  }

  /** Class probabilities: softmax, or per-class sigmoid when `multiLabel`. */
  predict(features: Tensor | readonly Tensor[]): Tensor {
    return tf.tidy(() => {
      const logits = this.forward(features);
      return this.multiLabel ? tf.sigmoid(logits) : tf.softmax(logits);
    });
  }
}
