import { Conv2d, Module, PixelShuffle, Sequential, SkySenseError, assertInt, formatShape, type Tensor } from '@skysense/core-tensor';

/**
 * SkySense's `UPHead`: `decoder = [Conv2d(inDim → upScale²·outDim, 1×1, bias), PixelShuffle(upScale)]`,
 * lifting a ViT map (1024 × h × w) to the fusion width on the HR grid (2816 × 4h × 4w). Keys
 * `decoder.0.weight`, `decoder.0.bias`, as `skysense_model_head_{s2,s1}.pth`.
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
    this.decoder = this.registerModule('decoder', new Sequential(new Conv2d(inDim, upScale * upScale * outDim, 1), new PixelShuffle(upScale)));
  }

  /** `[N, inDim, h, w]` → `[N, outDim, h·up, w·up]`. */
  forward(x: Tensor): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.inDim) throw new SkySenseError('E_SHAPE', `UpHead input: expected [N, ${this.inDim}, h, w], got ${formatShape(x.shape)}`);
    return this.decoder.forward(x);
  }
}
