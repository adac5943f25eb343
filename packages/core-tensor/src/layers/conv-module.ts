import { tf, type Tensor } from '../tf';
import { type ActivationName, makeActivation } from './activation';
import { UnaryModule } from './containers';
import { Conv2d } from './conv';
import { BatchNorm2d } from './norm';

/** Options of {@link ConvModule}, with mmcv's defaults. */
export interface ConvModuleOptions {
  /** Default 1. */
  stride?: number;
  /** Default 0. */
  padding?: number;
  /** Default 1. */
  dilation?: number;
  /** BatchNorm after the convolution (`norm_cfg=dict(type='BN' | 'SyncBN')`), named `bn`. Default `true`. */
  norm?: boolean;
  /** Activation after the norm (`act_cfg`); `identity` = none. Default `relu`. */
  act?: ActivationName;
  /** Convolution bias; mmcv's `'auto'` = only without a norm. Default `'auto'`. */
  bias?: boolean | 'auto';
}

/**
 * mmcv's `ConvModule` (order conv → norm → act): keys `conv.weight` (+ `conv.bias` when there is no
 * norm) and `bn.{weight, bias, running_mean, running_var, num_batches_tracked}`, as in every mmseg
 * decode head and neck.
 * @example
 * ```ts
 * import { ConvModule, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // mmcv ConvModule: conv (no bias) → BatchNorm → ReLU; keys conv.weight, bn.weight, …
 * const block = new ConvModule(16, 32, 3, { padding: 1 });
 * console.log(block.forward(tf.randomNormal([1, 16, 8, 8])).shape); // [1, 32, 8, 8]
 * ```
 */
export class ConvModule extends UnaryModule {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d | null;
  private readonly activation: UnaryModule;

  constructor(inChannels: number, outChannels: number, kernelSize: number, options: ConvModuleOptions = {}) {
    super();
    const norm = options.norm ?? true;
    const bias = options.bias === undefined || options.bias === 'auto' ? !norm : options.bias;
    this.conv = this.registerModule(
      'conv',
      new Conv2d(inChannels, outChannels, kernelSize, {
        stride: options.stride,
        padding: options.padding,
        dilation: options.dilation,
        bias,
      }),
    );
    this.bn = norm ? this.registerModule('bn', new BatchNorm2d(outChannels)) : null;
    this.activation = makeActivation(options.act ?? 'relu');
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const y = this.conv.forward(x);
      return this.activation.forward(this.bn ? this.bn.forward(y) : y);
    });
  }
}
