import { ConvModule, Module, ModuleList, SkySenseError, assertInt, formatShape, interpolate, tf, type Tensor } from '@skysense/core-tensor';

/** Options of {@link FPN}, with mmdet 2.x's defaults. */
export interface FPNOptions {
  /** Channels of each encoder map, finest first (Swin V2-H: 352, 704, 1408, 2816). */
  inChannels: readonly number[];
  /** Channels of every output level. Default 256. */
  outChannels?: number;
  /** Output levels; those beyond the inputs come from max-pooling the coarsest (k 1, stride 2). Default 5. */
  numOuts?: number;
}

/**
 * mmdet 2.x's `FPN` as Faster R-CNN uses it (`add_extra_convs=False`): a 1×1 conv per input
 * (`lateral_convs.i.conv`), the top-down pathway adding each coarser lateral upsampled by nearest
 * neighbour to the next finer one's size, a 3×3 conv per level (`fpn_convs.i.conv`), then the extra
 * levels by `max_pool2d(kernel 1, stride 2)` of the last output. Every conv has a bias (no norm).
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { FPN } from '@skysense/heads';
 * await initBackend();
 * const fpn = new FPN({ inChannels: [16, 32, 64, 128], outChannels: 32 });
 * const maps = [16, 32, 64, 128].map((c, i) => tf.randomNormal([1, c, 64 >> i, 48 >> i]));
 * console.log(fpn.forward(maps).map((m) => m.shape.slice(2))); // [64,48] [32,24] [16,12] [8,6] [4,3]
 * ```
 */
export class FPN extends Module {
  readonly outChannels: number;
  readonly numOuts: number;
  readonly lateralConvs: ModuleList<ConvModule>;
  readonly fpnConvs: ModuleList<ConvModule>;

  constructor(readonly options: FPNOptions) {
    super();
    if (!options.inChannels.length) throw new SkySenseError('E_ARG', 'FPN inChannels: expected at least one input, got none');
    options.inChannels.forEach((c, i) => assertInt(`FPN inChannels[${i}]`, c, 1));
    this.outChannels = assertInt('FPN outChannels', options.outChannels ?? 256, 1);
    this.numOuts = assertInt('FPN numOuts (at least one per input)', options.numOuts ?? 5, options.inChannels.length);
    const plain = { norm: false, act: 'identity' } as const;
    const out = this.outChannels;
    this.lateralConvs = this.registerModule(
      'lateral_convs',
      new ModuleList(options.inChannels.map((c) => new ConvModule(c, out, 1, plain))),
    );
    this.fpnConvs = this.registerModule(
      'fpn_convs',
      new ModuleList(options.inChannels.map(() => new ConvModule(out, out, 3, { ...plain, padding: 1 }))),
    );
  }

  /** One `[N, outChannels, H_i, W_i]` map per level, finest first. */
  forward(inputs: readonly Tensor[]): Tensor[] {
    const ins = this.options.inChannels;
    if (inputs.length !== ins.length) throw new SkySenseError('E_ARG', `FPN inputs: expected ${ins.length} maps, got ${inputs.length}`);
    inputs.forEach((x, i) => {
      if (x.rank !== 4 || x.shape[1] !== ins[i] || x.shape[0] !== inputs[0]!.shape[0])
        throw new SkySenseError('E_SHAPE', `FPN inputs[${i}]: expected [N, ${ins[i]}, H, W], got ${formatShape(x.shape)}`);
    });
    return tf.tidy(() => {
      const laterals = inputs.map((x, i) => this.lateralConvs.at(i)!.forward(x));
      for (let i = laterals.length - 1; i > 0; i--) {
        const size = laterals[i - 1]!.shape.slice(2) as [number, number];
        laterals[i - 1] = tf.add(laterals[i - 1]!, interpolate(laterals[i]!, { size, mode: 'nearest' }));
      }
      const outs = laterals.map((x, i) => this.fpnConvs.at(i)!.forward(x));
      while (outs.length < this.numOuts) outs.push(everyOther(outs.at(-1)!));
      return outs;
    });
  }
}

/** `max_pool2d(x, kernel 1, stride 2)`: every other row and column from the first (differentiable, unlike a strided slice in tfjs). */
function everyOther(x: Tensor): Tensor {
  return tf.tidy(() => {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const [oh, ow] = [Math.ceil(h / 2), Math.ceil(w / 2)];
    const even = tf.pad(x, [
      [0, 0],
      [0, 0],
      [0, 2 * oh - h],
      [0, 2 * ow - w],
    ]);
    return tf.reshape(tf.slice(tf.reshape(even, [n, c, oh, 2, ow, 2]), [0, 0, 0, 0, 0, 0], [n, c, oh, 1, ow, 1]), [n, c, oh, ow]);
  });
}
