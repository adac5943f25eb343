import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, formatShape, pair } from '../validate';
import { Conv2d } from './conv';
import { LayerNorm } from './norm';
import { UnaryModule } from './containers';

/** Options of {@link PatchEmbed}, with mmcv 1.x defaults where they apply. */
export interface PatchEmbedOptions {
  /** Input bands. Default 3. */
  inChannels?: number;
  /** Output width. Default 768. */
  embedDims?: number;
  /** Patch (kernel) size. Default 16. */
  kernelSize?: number | [number, number];
  /** Default: the kernel size. */
  stride?: number | [number, number];
  /**
   * `'corner'` (default): zero-pad at the bottom/right so every pixel is covered (mmcv
   * `AdaptivePadding`); a number: symmetric conv padding.
   */
  padding?: 'corner' | number;
  /** Conv bias. Default `true`. */
  bias?: boolean;
  /** LayerNorm (eps 1e-5) on the tokens, registered as `norm`. Default `false`. */
  norm?: boolean;
}

/**
 * mmcv's `PatchEmbed`: (corner padding) → `projection` Conv2d → optional `norm`. Keys
 * `projection.weight`, `projection.bias`, `norm.weight`, `norm.bias` as mmcv names them.
 * Returns the tokens as a channels-last map `[B, h, w, embedDims]` (reshape to `[B, h·w, C]` for a
 * token sequence; the memory order is the same).
 * @example
 * ```ts
 * import { initBackend, PatchEmbed, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // 4 × 4 patches of a 10-band Sentinel-2 frame → 256 tokens of 64 (keys projection.weight/bias)
 * const embed = new PatchEmbed({ inChannels: 10, embedDims: 64, kernelSize: 4 });
 * console.log(embed.forward(tf.randomNormal([1, 10, 64, 64])).shape); // [1, 256, 64]
 * ```
 */
export class PatchEmbed extends UnaryModule {
  readonly projection: Conv2d;
  readonly norm: LayerNorm | null;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  private readonly corner: boolean;
  private readonly pad: number;

  constructor(options: PatchEmbedOptions = {}) {
    super();
    const inC = assertInt('inChannels', options.inChannels ?? 3, 1);
    const dims = assertInt('embedDims', options.embedDims ?? 768, 1);
    this.kernelSize = pair('kernelSize', options.kernelSize ?? 16, 1);
    this.stride = pair('stride', options.stride ?? this.kernelSize, 1);
    const padding = options.padding ?? 'corner';
    this.corner = padding === 'corner';
    this.pad = this.corner ? 0 : assertInt('padding', padding, 0);
    this.projection = this.registerModule(
      'projection',
      new Conv2d(inC, dims, this.kernelSize, { stride: this.stride, padding: this.pad, bias: options.bias ?? true }),
    );
    this.norm = options.norm ? this.registerModule('norm', new LayerNorm(dims)) : null;
  }

  /** Token grid `[h, w]` for an input of `height × width` pixels. */
  outputSize(height: number, width: number): [number, number] {
    if (this.corner) return [Math.ceil(height / this.stride[0]), Math.ceil(width / this.stride[1])];
    const out = (size: number, i: 0 | 1) => Math.floor((size + 2 * this.pad - this.kernelSize[i]) / this.stride[i]) + 1;
    return [out(height, 0), out(width, 1)];
  }

  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.projection.inChannels) {
      throw new SkySenseError(
        'E_SHAPE',
        `PatchEmbed input: expected [N, ${this.projection.inChannels}, H, W], got ${formatShape(x.shape)}`,
      );
    }
    return tf.tidy(() => {
      let input = x;
      if (this.corner) {
        const [h, w] = this.outputSize(x.shape[2]!, x.shape[3]!);
        const padH = Math.max((h - 1) * this.stride[0] + this.kernelSize[0] - x.shape[2]!, 0);
        const padW = Math.max((w - 1) * this.stride[1] + this.kernelSize[1] - x.shape[3]!, 0);
        if (padH || padW)
          input = tf.pad(x, [
            [0, 0],
            [0, 0],
            [0, padH],
            [0, padW],
          ]);
      }
      const map = tf.transpose(this.projection.forward(input), [0, 2, 3, 1]);
      return this.norm ? this.norm.forward(map) : map;
    });
  }
}
