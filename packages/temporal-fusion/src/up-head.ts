import {
  Conv2d,
  Module,
  PixelShuffle,
  Sequential,
  SkySenseError,
  assertInt,
  fanInUniform,
  formatShape,
  kaimingUniform,
  type Initializer,
  type Tensor,
} from '@skysense/core-tensor';

/**
 * ICNR initialisation (Aitken et al., 2017, "Checkerboard artifact free sub-pixel convolution"): the
 * r² conv channels that PixelShuffle spreads over one output channel's sub-positions share one
 * kernel drawn with `base`, so a freshly initialised head upsamples without checkerboard artefacts.
 */
export function icnr(base: Initializer, r2: number): Initializer {
  return (shape, rng) => {
    const [rows, ...rest] = shape as number[];
    const inner = rest.reduce((a, b) => a * b, 1);
    const seed = base([rows! / r2, ...rest], rng);
    const out = new Float32Array(rows! * inner);
    for (let c = 0; c < rows! / r2; c++)
      for (let k = 0; k < r2; k++) out.set(seed.subarray(c * inner, (c + 1) * inner), (c * r2 + k) * inner);
    return out;
  };
}

/**
 * SkySense's `UPHead`: `decoder = [Conv2d(inDim → upScale²·outDim, 1×1, bias), PixelShuffle(upScale)]`,
 * lifting a ViT map (1024 × h × w) to the fusion width on the HR grid (2816 × 4h × 4w). Keys
 * `decoder.0.weight`, `decoder.0.bias`, as `skysense_model_head_{s2,s1}.pth`. A fresh head is
 * ICNR-initialised ({@link icnr}); loaded weights replace that.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { UpHead } from '@skysense/temporal-fusion';
 * await initBackend();
 * // SkySense's up-head: 1×1 conv to 16× channels, PixelShuffle(4): ViT maps onto the HR grid
 * const up = new UpHead(16, 32, 4);
 * console.log(up.forward(tf.randomNormal([1, 16, 4, 4])).shape); // [1, 32, 16, 16]
 * ```
 */
export class UpHead extends Module {
  readonly decoder: Sequential;

  constructor(
    readonly inDim = 1024,
    readonly outDim = 2816,
    readonly upScale = 4,
  ) {
    super();
    assertInt('inDim', inDim, 1);
    assertInt('outDim', outDim, 1);
    assertInt('upScale', upScale, 1);
    const r2 = upScale * upScale;
    const conv = new Conv2d(inDim, r2 * outDim, 1, {
      weightInit: icnr(kaimingUniform({ a: Math.sqrt(5) }), r2),
      biasInit: icnr(fanInUniform(inDim), r2),
    });
    this.decoder = this.registerModule('decoder', new Sequential(conv, new PixelShuffle(upScale)));
  }

  /** `[N, inDim, h, w]` → `[N, outDim, h·up, w·up]`. */
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inDim)
      throw new SkySenseError('E_SHAPE', `UpHead input: expected [N, ${this.inDim}, h, w], got ${formatShape(x.shape)}`);
    return this.decoder.forward(x);
  }
}
