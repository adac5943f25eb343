import {
  ConvModule,
  Module,
  ModuleList,
  SkySenseError,
  assertInt,
  assertPositive,
  formatShape,
  interpolate,
  tf,
  type Tensor,
} from '@skysense/core-tensor';

/** Options of {@link MultiLevelNeck}, with mmseg's defaults. */
export interface MultiLevelNeckOptions {
  /** Channels of each input map (e.g. 4 × 1024 from ViT-L out_indices 5, 11, 17, 23). */
  inChannels: number[];
  /** Output channels of every level. */
  outChannels: number;
  /** Rescale factor per output level. Default [0.5, 1, 2, 4] (mmseg); SkySense++ uses [1, 1, 1, 1], the SkySense ViT base file [4, 2, 1, 0.5]. */
  scales?: number[];
}

/**
 * mmseg's `MultiLevelNeck` (architecture guide §7): a 1×1 conv per input (`lateral_convs.i.conv`, with
 * bias, no norm or activation), bilinear rescale by `scales[i]` (`align_corners` false), then a 3×3
 * conv (`convs.i.conv`, with bias). With one input and several scales the input is shared.
 * It turns a ViT's same-size maps into a pyramid a UPerHead can read.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { MultiLevelNeck } from '@skysense/heads';
 * await initBackend();
 * // mmseg MultiLevelNeck: ViT maps of one size → a pyramid (×4, ×2, ×1, ×½) for UPerNet
 * const neck = new MultiLevelNeck({ inChannels: [64, 64, 64, 64], outChannels: 32, scales: [4, 2, 1, 0.5] });
 * const maps = [0, 1, 2, 3].map(() => tf.randomNormal([1, 64, 8, 8]));
 * console.log(neck.forward(maps).map((m) => m.shape)); // [1,32,32,32] [1,32,16,16] [1,32,8,8] [1,32,4,4]
 * ```
 */
export class MultiLevelNeck extends Module {
  readonly scales: number[];
  readonly lateralConvs: ModuleList<ConvModule>;
  readonly convs: ModuleList<ConvModule>;

  constructor(readonly options: MultiLevelNeckOptions) {
    super();
    options.inChannels.forEach((c, i) => assertInt(`MultiLevelNeck inChannels[${i}]`, c, 1));
    assertInt('MultiLevelNeck outChannels', options.outChannels, 1);
    this.scales = [...(options.scales ?? [0.5, 1, 2, 4])];
    this.scales.forEach((s, i) => assertPositive(`MultiLevelNeck scales[${i}]`, s));
    if (options.inChannels.length !== 1 && options.inChannels.length !== this.scales.length) {
      throw new SkySenseError(
        'E_ARG',
        `MultiLevelNeck scales: expected one per input (${options.inChannels.length}), got ${this.scales.length}`,
      );
    }
    const plain = { norm: false, act: 'identity' } as const;
    this.lateralConvs = this.registerModule(
      'lateral_convs',
      new ModuleList(options.inChannels.map((c) => new ConvModule(c, options.outChannels, 1, plain))),
    );
    this.convs = this.registerModule(
      'convs',
      new ModuleList(this.scales.map(() => new ConvModule(options.outChannels, options.outChannels, 3, { ...plain, padding: 1 }))),
    );
  }

  /** One `[N, outChannels, H·s_i, W·s_i]` map per scale. */
  forward(inputs: readonly Tensor[]): Tensor[] {
    const n = this.options.inChannels.length;
    if (inputs.length !== n) throw new SkySenseError('E_ARG', `MultiLevelNeck inputs: expected ${n} maps, got ${inputs.length}`);
    inputs.forEach((x, i) => {
      if (x.rank !== 4 || x.shape[1] !== this.options.inChannels[i])
        throw new SkySenseError(
          'E_SHAPE',
          `MultiLevelNeck inputs[${i}]: expected [N, ${this.options.inChannels[i]}, H, W], got ${formatShape(x.shape)}`,
        );
    });
    return tf.tidy(() => {
      const lat = inputs.map((x, i) => this.lateralConvs.at(i)!.forward(x));
      return this.scales.map((s, i) => {
        const x = lat[n === 1 ? 0 : i]!;
        const y = s === 1 ? x : interpolate(x, { scaleFactor: s, mode: 'bilinear', alignCorners: false });
        return this.convs.at(i)!.forward(y);
      });
    });
  }
}
