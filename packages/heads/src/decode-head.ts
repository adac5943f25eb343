import {
  Conv2d,
  Dropout2d,
  Module,
  SkySenseError,
  assertInRange,
  assertInt,
  formatShape,
  interpolate,
  tf,
  type Tensor,
} from '@skysense/core-tensor';

/** Options every decode head shares (mmseg `BaseDecodeHead`), with mmseg's defaults. */
export interface DecodeHeadOptions {
  /** Channels of the input map(s) the head reads (one per `inIndex` entry). */
  inChannels: number | number[];
  /** Width of the head's hidden layers. */
  channels: number;
  /** Number of classes (`conv_seg` outputs). */
  numClasses: number;
  /** Which of the encoder's maps the head reads. Default: 0…n−1 for a list of `inChannels`, −1 for one. */
  inIndex?: number | number[];
  /** Channel dropout (`Dropout2d`) before `conv_seg`, training only. Default 0.1. */
  dropoutRatio?: number;
  /** Bilinear resizing with `align_corners`. Default `false` (SkySense's configs). */
  alignCorners?: boolean;
}

/**
 * Translates mmseg decode-head kwargs (`in_channels`, `in_index`, `channels`, `num_classes`,
 * `dropout_ratio`, `align_corners`, `norm_cfg`, `act_cfg`) to {@link DecodeHeadOptions}.
 * @throws SkySenseError `E_UNSUPPORTED` for norms other than BN / SyncBN or activations other than ReLU.
 */
export function decodeHeadOptionsFromConfig(what: string, k: Record<string, unknown>): DecodeHeadOptions {
  const norm = (k.norm_cfg as { type?: string } | null | undefined)?.type;
  const act = (k.act_cfg as { type?: string } | null | undefined)?.type;
  if ((norm && !['BN', 'SyncBN'].includes(norm)) || (act && act !== 'ReLU'))
    throw new SkySenseError('E_UNSUPPORTED', `${what}: norm ${norm} / act ${act} (BN or SyncBN with ReLU only)`);
  return {
    inChannels: k.in_channels as number | number[],
    inIndex: k.in_index as number | number[] | undefined,
    channels: k.channels as number,
    numClasses: k.num_classes as number,
    dropoutRatio: k.dropout_ratio as number | undefined,
    alignCorners: k.align_corners as boolean | undefined,
  };
}

/**
 * mmseg's `BaseDecodeHead`: picks its input maps from the encoder's list (`in_index`), computes a
 * feature map, and classifies it with `Dropout2d` + 1×1 `conv_seg` (keys `conv_seg.weight`,
 * `conv_seg.bias`). Logits are at the resolution of the head's first input; no final resize.
 * @example
 * ```ts
 * import { ConvModule, initBackend, tf, type Tensor } from '@skysense/core-tensor';
 * import { BaseDecodeHead } from '@skysense/heads';
 * await initBackend();
 * // a custom mmseg-style head: write forwardFeature; conv_seg, dropout and input selection are inherited
 * class OneConvHead extends BaseDecodeHead {
 *   readonly conv = this.registerModule('conv', new ConvModule(32, 16, 3, { padding: 1 }));
 *   constructor() {
 *     super('OneConvHead', { inChannels: 32, channels: 16, numClasses: 5 });
 *   }
 *   forwardFeature(inputs: readonly Tensor[]): Tensor {
 *     return this.conv.forward(this.selectInputs(inputs)[0]!);
 *   }
 * }
 * console.log(new OneConvHead().forward([tf.randomNormal([1, 32, 8, 8])]).shape); // [1, 5, 8, 8]
 * ```
 */
export abstract class BaseDecodeHead extends Module {
  readonly inChannels: number[];
  readonly inIndex: number[];
  readonly channels: number;
  readonly numClasses: number;
  readonly alignCorners: boolean;
  /** The 1×1 classifier. */
  readonly convSeg: Conv2d;
  private readonly dropout: Dropout2d;

  constructor(
    protected readonly headName: string,
    o: DecodeHeadOptions,
  ) {
    super();
    this.inChannels = Array.isArray(o.inChannels) ? [...o.inChannels] : [o.inChannels];
    this.inIndex =
      o.inIndex === undefined
        ? Array.isArray(o.inChannels)
          ? this.inChannels.map((_, i) => i)
          : [-1]
        : Array.isArray(o.inIndex)
          ? [...o.inIndex]
          : [o.inIndex];
    if (this.inIndex.length !== this.inChannels.length) {
      throw new SkySenseError(
        'E_ARG',
        `${headName} inIndex: expected ${this.inChannels.length} entries (one per inChannels), got ${this.inIndex.length}`,
      );
    }
    this.inChannels.forEach((c, i) => assertInt(`${headName} inChannels[${i}]`, c, 1));
    this.inIndex.forEach((k, i) => assertInt(`${headName} inIndex[${i}]`, k));
    this.channels = assertInt(`${headName} channels`, o.channels, 1);
    this.numClasses = assertInt(`${headName} numClasses`, o.numClasses, 1);
    this.alignCorners = o.alignCorners ?? false;
    this.dropout = this.registerModule('dropout', new Dropout2d(assertInRange(`${headName} dropoutRatio`, o.dropoutRatio ?? 0.1, 0, 1)));
    this.convSeg = this.registerModule('conv_seg', new Conv2d(this.channels, this.numClasses, 1));
  }

  /** The head's feature map before `conv_seg` (mmseg `_forward_feature`), `[N, channels, H0, W0]`. */
  abstract forwardFeature(inputs: readonly Tensor[]): Tensor;

  /** Logits `[N, numClasses, H0, W0]` at the resolution of the head's first input. */
  forward(inputs: readonly Tensor[]): Tensor {
    return tf.tidy(() => this.clsSeg(this.forwardFeature(inputs)));
  }

  /** Dropout (training only) and `conv_seg`. */
  clsSeg(feat: Tensor): Tensor {
    return tf.tidy(() => this.convSeg.forward(this.dropout.forward(feat)));
  }

  /** The maps the head reads (`in_index`), each checked for rank 4 and its channel count. */
  protected selectInputs(inputs: readonly Tensor[]): Tensor[] {
    return this.inIndex.map((k, i) => {
      const t = inputs.at(k);
      if (!t)
        throw new SkySenseError(
          'E_ARG',
          `${this.headName} inputs: expected a map at index ${k} (inIndex[${i}]), got a list of ${inputs.length}`,
        );
      if (t.rank !== 4 || t.shape[1] !== this.inChannels[i]) {
        throw new SkySenseError(
          'E_SHAPE',
          `${this.headName} inputs[${k}]: expected [N, ${this.inChannels[i]}, H, W], got ${formatShape(t.shape)}`,
        );
      }
      return t;
    });
  }

  /** Bilinear resize to `[h, w]` with the head's `alignCorners` (a no-op at the same size). */
  protected resize(x: Tensor, size: readonly number[]): Tensor {
    return resizeTo(x, size, this.alignCorners);
  }
}

/**
 * Bilinear resize of an NCHW map to `size` (`[h, w]`, or a shape whose last two entries are used); returns `x` itself when the size already matches.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { resizeTo } from '@skysense/heads';
 * await initBackend();
 * // mmseg's resize of logits to the label size (bilinear)
 * console.log(resizeTo(tf.randomNormal([1, 5, 32, 32]), [128, 128]).shape); // [1, 5, 128, 128]
 * ```
 */
export function resizeTo(x: Tensor, size: readonly number[], alignCorners = false): Tensor {
  const [h, w] = size.slice(-2) as [number, number];
  if (x.shape[2] === h && x.shape[3] === w) return x;
  return interpolate(x, { size: [h, w], mode: 'bilinear', alignCorners });
}
