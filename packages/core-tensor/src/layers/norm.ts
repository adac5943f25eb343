import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, assertPositive, formatShape } from '../validate';
import { ones, zeros } from '../init';
import type { Buffer, Parameter } from '../module';
import { UnaryModule } from './containers';
import { nativeLayerNorm } from '../ops/fused';
import { gpuLayerNorm } from '../ops/webgpu-kernels';

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions {
  /** Added to the (biased) variance inside the square root. Default 1e-5, as PyTorch. */
  eps?: number;
  /** Learnable weight and bias. Default `true`. */
  elementwiseAffine?: boolean;
}

/**
 * `nn.LayerNorm` over the trailing `normalizedShape` axes: biased variance, eps inside the square root.
 * @example
 * ```ts
 * import { initBackend, LayerNorm, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const norm = new LayerNorm(64, { eps: 1e-6 });
 * console.log(norm.forward(tf.randomNormal([2, 17, 64])).shape); // normalised over the last dimension
 * ```
 */
export class LayerNorm extends UnaryModule {
  /** Scale, shaped `normalizedShape`; null without affine. */
  readonly weight: Parameter | null;
  /** Shift, shaped `normalizedShape`; null without affine. */
  readonly bias: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(normalizedShape: number | number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.normalizedShape.forEach((d, i) => assertInt(`normalizedShape[${i}]`, d, 1));
    this.eps = assertPositive('eps', options.eps ?? 1e-5);
    const affine = options.elementwiseAffine ?? true;
    this.weight = affine ? this.registerParameter('weight', this.normalizedShape, ones) : null;
    this.bias = affine ? this.registerParameter('bias', this.normalizedShape, zeros) : null;
  }

  forward(x: Tensor): Tensor {
    const k = this.normalizedShape.length;
    const tail = x.shape.slice(x.rank - k);
    if (x.rank < k || tail.some((d, i) => d !== this.normalizedShape[i])) {
      throw new SkySenseError(
        'E_SHAPE',
        `LayerNorm input: expected trailing shape ${formatShape(this.normalizedShape)}, got ${formatShape(x.shape)}`,
      );
    }
    return tf.tidy(() => {
      const [w, b] = [this.weight?.value ?? null, this.bias?.value ?? null];
      const fused = k === 1 ? (nativeLayerNorm(x, w, b, this.eps) ?? gpuLayerNorm(x, w, b, this.eps)) : null;
      if (fused) return fused;
      const axes = [...Array(k).keys()].map((i) => x.rank - k + i);
      const { mean, variance } = tf.moments(x, axes, true);
      let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      if (this.weight) y = tf.add(tf.mul(y, this.weight.value), this.bias!.value);
      return y;
    });
  }
}

/** Options of {@link BatchNorm2d}, with PyTorch's defaults. */
export interface BatchNormOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Running-average factor; `null` = cumulative average over all batches. Default 0.1. */
  momentum?: number | null;
  /** Learnable weight and bias. Default `true`. */
  affine?: boolean;
}

/**
 * `nn.BatchNorm2d` on NCHW tensors. Training: normalises with the batch's biased variance and
 * updates `running_mean` / `running_var` (unbiased variance) and `num_batches_tracked`.
 * Evaluation: normalises with the running statistics.
 * @example
 * ```ts
 * import { BatchNorm2d, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const bn = new BatchNorm2d(32); // running_mean / running_var / num_batches_tracked as PyTorch
 * const y = bn.forward(tf.randomNormal([4, 32, 8, 8])); // batch statistics while training, updates the running ones
 * bn.eval(); // running statistics at inference
 * ```
 */
export class BatchNorm2d extends UnaryModule {
  readonly weight: Parameter | null;
  readonly bias: Parameter | null;
  readonly runningMean: Buffer;
  readonly runningVar: Buffer;
  readonly numBatchesTracked: Buffer;
  readonly eps: number;
  readonly momentum: number | null;

  constructor(
    readonly numFeatures: number,
    options: BatchNormOptions = {},
  ) {
    super();
    assertInt('numFeatures', numFeatures, 1);
    this.eps = assertPositive('eps', options.eps ?? 1e-5);
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    const affine = options.affine ?? true;
    this.weight = affine ? this.registerParameter('weight', [numFeatures], ones) : null;
    this.bias = affine ? this.registerParameter('bias', [numFeatures], zeros) : null;
    this.runningMean = this.registerBuffer('running_mean', [numFeatures], () => tf.zeros([numFeatures]));
    this.runningVar = this.registerBuffer('running_var', [numFeatures], () => tf.ones([numFeatures]));
    this.numBatchesTracked = this.registerBuffer('num_batches_tracked', [], () => tf.scalar(0, 'int32'), { dtype: 'int32' });
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.numFeatures) {
      throw new SkySenseError('E_SHAPE', `BatchNorm2d input: expected [N, ${this.numFeatures}, H, W], got ${formatShape(x.shape)}`);
    }
    const perChannel = x.shape[0]! * x.shape[2]! * x.shape[3]!;
    if (this.training && perChannel < 2) {
      throw new SkySenseError(
        'E_SHAPE',
        `BatchNorm2d input: expected more than 1 value per channel when training, got input of shape ${formatShape(x.shape)}`,
      );
    }
    return tf.tidy(() => {
      const c = this.numFeatures;
      let mean: Tensor, variance: Tensor;
      if (this.training) {
        ({ mean, variance } = tf.moments(x, [0, 2, 3]));
        this.updateRunningStats(mean, variance, perChannel);
      } else {
        mean = this.runningMean.value;
        variance = this.runningVar.value;
      }
      const scale = tf.rsqrt(tf.add(variance, this.eps));
      let y = tf.mul(tf.sub(x, tf.reshape(mean, [1, c, 1, 1])), tf.reshape(scale, [1, c, 1, 1]));
      if (this.weight) y = tf.add(tf.mul(y, tf.reshape(this.weight.value, [1, c, 1, 1])), tf.reshape(this.bias!.value, [1, c, 1, 1]));
      return y;
    });
  }

  private updateRunningStats(mean: Tensor, variance: Tensor, n: number): void {
    const tracked = this.numBatchesTracked.value.dataSync()[0]! + 1;
    this.numBatchesTracked.assign(tf.scalar(tracked, 'int32'));
    const m = this.momentum ?? 1 / tracked;
    const unbiased = tf.mul(variance, n / (n - 1));
    this.runningMean.assign(tf.add(tf.mul(this.runningMean.value, 1 - m), tf.mul(mean, m)));
    this.runningVar.assign(tf.add(tf.mul(this.runningVar.value, 1 - m), tf.mul(unbiased, m)));
  }
}
