import { ConvModule, ModuleList, SkySenseError, assertInt, tf, type Tensor } from '@skysense/core-tensor';
import { BaseDecodeHead, type DecodeHeadOptions, decodeHeadOptionsFromConfig } from './decode-head';

/** Options of {@link FCNHead}, with mmseg's defaults. */
export interface FCNHeadOptions extends DecodeHeadOptions {
  /** Channels of the one input map. */
  inChannels: number;
  /** 3×3 ConvModules in sequence (`convs.j`); 0 is allowed when `inChannels === channels`. Default 2. */
  numConvs?: number;
  /** Kernel size of the convs. Default 3. */
  kernelSize?: number;
  /** `conv_cat` over `[input, convs(input)]`. Default `true` (SkySense's auxiliary head sets `false`). */
  concatInput?: boolean;
  /** Dilation of the convs (padding = (k // 2) · dilation). Default 1. */
  dilation?: number;
}

/**
 * mmseg's `FCNHead`: `num_convs` ConvModules (`convs.j`), optionally `conv_cat` over the input
 * concatenated (input first) with their output, then `conv_seg`; no resize inside. SkySense's
 * auxiliary head is `{ inChannels: 1408, inIndex: 2, channels: 256, numConvs: 1, concatInput: false }`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { FCNHead } from '@skysense/heads';
 * await initBackend();
 * const aux = new FCNHead({ inChannels: 1408, inIndex: 2, channels: 256, numConvs: 1, concatInput: false, numClasses: 16 });
 * const maps = [352, 704, 1408, 2816].map((c, i) => tf.zeros([1, c, 32 >> i, 32 >> i]));
 * const logits = aux.eval().forward(maps); // [1, 16, 8, 8]
 * ```
 */
export class FCNHead extends BaseDecodeHead {
  readonly convs: ModuleList<ConvModule>;
  readonly convCat: ConvModule | null;

  /** Builds the head from mmseg `FCNHead(**kwargs)` arguments (`num_convs`, `kernel_size`, `concat_input`, `dilation` and the decode-head ones). */
  static fromConfig(kwargs: Record<string, unknown>): FCNHead {
    return new FCNHead({
      ...(decodeHeadOptionsFromConfig('FCNHead', kwargs) as FCNHeadOptions),
      numConvs: kwargs.num_convs as number | undefined,
      kernelSize: kwargs.kernel_size as number | undefined,
      concatInput: kwargs.concat_input as boolean | undefined,
      dilation: kwargs.dilation as number | undefined,
    });
  }

  constructor(o: FCNHeadOptions) {
    super('FCNHead', o);
    const numConvs = assertInt('FCNHead numConvs', o.numConvs ?? 2, 0);
    const k = assertInt('FCNHead kernelSize', o.kernelSize ?? 3, 1);
    const dilation = assertInt('FCNHead dilation', o.dilation ?? 1, 1);
    if (numConvs === 0 && this.channels !== this.inChannels[0]) {
      throw new SkySenseError(
        'E_ARG',
        `FCNHead channels: expected ${this.inChannels[0]} (= inChannels, as numConvs is 0), got ${this.channels}`,
      );
    }
    const padding = Math.floor(k / 2) * dilation;
    const widths = [this.inChannels[0]!, ...Array<number>(numConvs).fill(this.channels)];
    this.convs = this.registerModule(
      'convs',
      new ModuleList(widths.slice(0, -1).map((ci) => new ConvModule(ci, this.channels, k, { padding, dilation }))),
    );
    this.convCat =
      (o.concatInput ?? true)
        ? this.registerModule(
            'conv_cat',
            new ConvModule(this.inChannels[0]! + this.channels, this.channels, k, { padding: Math.floor(k / 2) }),
          )
        : null;
  }

  forwardFeature(inputs: readonly Tensor[]): Tensor {
    const [x] = this.selectInputs(inputs) as [Tensor];
    return tf.tidy(() => {
      const y = [...this.convs].reduce((h, conv) => conv.forward(h), x);
      return this.convCat ? this.convCat.forward(tf.concat([x, y], 1)) : y;
    });
  }
}
