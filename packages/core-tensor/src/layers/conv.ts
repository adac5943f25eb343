import type { Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, pair } from '../validate';
import { fanInUniform, kaimingUniform, type Initializer } from '../init';
import type { Parameter } from '../module';
import { conv2d } from '../ops/conv2d';
import { UnaryModule } from './containers';

/** Options of {@link Conv2d}, with PyTorch's defaults. */
export interface Conv2dModuleOptions {
  /** Default 1. */
  stride?: number | [number, number];
  /** Symmetric zero padding. Default 0. */
  padding?: number | [number, number];
  /** Default 1. */
  dilation?: number | [number, number];
  /** Default 1. */
  groups?: number;
  /** Default `true`. */
  bias?: boolean;
  /** Default PyTorch's kaiming-uniform with a = √5. */
  weightInit?: Initializer;
  /** Default uniform ±1/√fan_in. */
  biasInit?: Initializer;
}

/**
 * `nn.Conv2d` on NCHW tensors; weight `[out, in / groups, kh, kw]`, bias `[out]`.
 * @example
 * ```ts
 * import { Conv2d, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const conv = new Conv2d(10, 64, 4, { stride: 4 }); // NCHW in and out, weight [64, 10, 4, 4] as PyTorch
 * console.log(conv.forward(tf.randomNormal([1, 10, 64, 64])).shape); // [1, 64, 16, 16]
 * ```
 */
export class Conv2d extends UnaryModule {
  /** `[outChannels, inChannels / groups, kh, kw]`. */
  readonly weight: Parameter;
  /** `[outChannels]` or null. */
  readonly bias: Parameter | null;
  /** Kernel size `[kh, kw]`. */
  readonly kernelSize: [number, number];

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: number | [number, number],
    private readonly options: Conv2dModuleOptions = {},
  ) {
    super();
    assertInt('inChannels', inChannels, 1);
    assertInt('outChannels', outChannels, 1);
    this.kernelSize = pair('kernelSize', kernelSize, 1);
    const groups = options.groups ?? 1;
    if (!Number.isInteger(groups) || groups < 1 || inChannels % groups || outChannels % groups) {
      throw new SkySenseError(
        'E_ARG',
        `groups: expected a positive divisor of inChannels ${inChannels} and outChannels ${outChannels}, got ${groups}`,
      );
    }
    const shape = [outChannels, inChannels / groups, ...this.kernelSize];
    this.weight = this.registerParameter('weight', shape, options.weightInit ?? kaimingUniform({ a: Math.sqrt(5) }));
    const fanIn = (inChannels / groups) * this.kernelSize[0] * this.kernelSize[1];
    this.bias = options.bias === false ? null : this.registerParameter('bias', [outChannels], options.biasInit ?? fanInUniform(fanIn));
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inChannels) {
      throw new SkySenseError('E_SHAPE', `Conv2d input: expected [N, ${this.inChannels}, H, W], got [${x.shape.join(', ')}]`);
    }
    const { stride, padding, dilation, groups } = this.options;
    return conv2d(x, this.weight.value, this.bias?.value ?? null, { stride, padding, dilation, groups });
  }
}
