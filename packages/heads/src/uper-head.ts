import { AdaptiveAvgPool2d, ConvModule, ModuleList, Sequential, SkySenseError, assertInt, tf, type Tensor } from '@skysense/core-tensor';
import { BaseDecodeHead, type DecodeHeadOptions, decodeHeadOptionsFromConfig } from './decode-head';

/** Options of {@link UPerHead}: the decode-head options plus the PPM's pool scales. */
export interface UPerHeadOptions extends DecodeHeadOptions {
  /** Channels of each input map, one per pyramid level (at least 2). */
  inChannels: number[];
  /** Output sides of the PPM's adaptive average pools. Default [1, 2, 3, 6]. */
  poolScales?: number[];
}

/**
 * mmseg's `UPerHead` (UperNet): a pyramid pooling module on the last level (`psp_modules.i.1`,
 * `bottleneck`), lateral 1×1 ConvModules, a top-down pathway (`laterals[i−1] += resize(laterals[i])`),
 * 3×3 `fpn_convs`, every level resized to the first and concatenated, a 3×3 `fpn_bottleneck`, then
 * `conv_seg`. Keys are mmseg's, so a `decode_head.*` checkpoint loads as is.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { UPerHead } from '@skysense/heads';
 * await initBackend();
 * const swinFeatures = [352, 704, 1408, 2816].map((c, i) => tf.zeros([1, c, 64 >> i, 64 >> i])); // an encoder's four maps
 * const head = new UPerHead({ inChannels: [352, 704, 1408, 2816], channels: 512, numClasses: 16 });
 * const logits = head.eval().forward(swinFeatures); // [N, 16, H/4, W/4]
 * ```
 */
export class UPerHead extends BaseDecodeHead {
  readonly poolScales: number[];
  /** PPM branches: `[AdaptiveAvgPool2d(s), ConvModule 1×1]`. */
  readonly pspModules: ModuleList<Sequential>;
  readonly bottleneck: ConvModule;
  readonly lateralConvs: ModuleList<ConvModule>;
  readonly fpnConvs: ModuleList<ConvModule>;
  readonly fpnBottleneck: ConvModule;

  /** Builds the head from mmseg `UPerHead(**kwargs)` arguments (`pool_scales` and the decode-head ones). */
  static fromConfig(kwargs: Record<string, unknown>): UPerHead {
    return new UPerHead({
      ...(decodeHeadOptionsFromConfig('UPerHead', kwargs) as UPerHeadOptions),
      poolScales: kwargs.pool_scales as number[] | undefined,
    });
  }

  constructor(o: UPerHeadOptions) {
    super('UPerHead', o);
    if (this.inChannels.length < 2)
      throw new SkySenseError('E_ARG', `UPerHead inChannels: expected at least 2 levels, got [${this.inChannels.join(', ')}]`);
    this.poolScales = [...(o.poolScales ?? [1, 2, 3, 6])];
    this.poolScales.forEach((s, i) => assertInt(`UPerHead poolScales[${i}]`, s, 1));
    const c = this.channels;
    const top = this.inChannels.at(-1)!;
    this.pspModules = this.registerModule(
      'psp_modules',
      new ModuleList(this.poolScales.map((s) => new Sequential(new AdaptiveAvgPool2d(s), new ConvModule(top, c, 1)))),
    );
    this.bottleneck = this.registerModule('bottleneck', new ConvModule(top + this.poolScales.length * c, c, 3, { padding: 1 }));
    const lower = this.inChannels.slice(0, -1);
    this.lateralConvs = this.registerModule('lateral_convs', new ModuleList(lower.map((ci) => new ConvModule(ci, c, 1))));
    this.fpnConvs = this.registerModule('fpn_convs', new ModuleList(lower.map(() => new ConvModule(c, c, 3, { padding: 1 }))));
    this.fpnBottleneck = this.registerModule('fpn_bottleneck', new ConvModule(this.inChannels.length * c, c, 3, { padding: 1 }));
  }

  /** PPM + bottleneck on the last level (mmseg `psp_forward`). */
  pspForward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const pooled = [...this.pspModules].map((m) => this.resize(m.forward(x), x.shape));
      return this.bottleneck.forward(tf.concat([x, ...pooled], 1));
    });
  }

  forwardFeature(inputs: readonly Tensor[]): Tensor {
    const xs = this.selectInputs(inputs);
    return tf.tidy(() => {
      const laterals = [...this.lateralConvs].map((conv, i) => conv.forward(xs[i]!));
      laterals.push(this.pspForward(xs.at(-1)!));
      for (let i = laterals.length - 1; i > 0; i--)
        laterals[i - 1] = tf.add(laterals[i - 1]!, this.resize(laterals[i]!, laterals[i - 1]!.shape));
      const outs = [...this.fpnConvs].map((conv, i) => conv.forward(laterals[i]!));
      outs.push(laterals.at(-1)!);
      const size = outs[0]!.shape;
      return this.fpnBottleneck.forward(
        tf.concat(
          outs.map((o) => this.resize(o, size)),
          1,
        ),
      );
    });
  }
}
