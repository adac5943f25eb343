import type { Tensor } from '../tf';
import { assertInt } from '../validate';
import { adaptiveAvgPool2d, interpolate, pixelShuffle, type InterpolateOptions } from '../ops/resample';
import { UnaryModule } from './containers';

/** `nn.AdaptiveAvgPool2d` (PyTorch's overlapping-bin rule). */
export class AdaptiveAvgPool2d extends UnaryModule {
  constructor(readonly outputSize: number | [number, number]) {
    super();
  }

  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}

/** `nn.PixelShuffle`. */
export class PixelShuffle extends UnaryModule {
  constructor(readonly upscaleFactor: number) {
    super();
    assertInt('upscaleFactor', upscaleFactor, 1);
  }

  forward(x: Tensor): Tensor {
    return pixelShuffle(x, this.upscaleFactor);
  }
}

/** `nn.Upsample`: {@link interpolate} with fixed options. */
export class Upsample extends UnaryModule {
  constructor(readonly options: InterpolateOptions) {
    super();
  }

  forward(x: Tensor): Tensor {
    return interpolate(x, this.options);
  }
}
