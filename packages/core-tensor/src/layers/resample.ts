import type { Tensor } from '../tf';
import { assertInt } from '../validate';
import { adaptiveAvgPool2d, interpolate, pixelShuffle, type InterpolateOptions } from '../ops/resample';
import { UnaryModule } from './containers';

/**
 * `nn.AdaptiveAvgPool2d` (PyTorch's overlapping-bin rule).
 * @example
 * ```ts
 * import { AdaptiveAvgPool2d, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const pool = new AdaptiveAvgPool2d(2); // PSP's pooling: any size → 2 × 2, torch's bin edges
 * console.log(pool.forward(tf.randomNormal([1, 8, 7, 5])).shape); // [1, 8, 2, 2]
 * ```
 */
export class AdaptiveAvgPool2d extends UnaryModule {
  constructor(readonly outputSize: number | [number, number]) {
    super();
  }

  forward(x: Tensor): Tensor {
    return adaptiveAvgPool2d(x, this.outputSize);
  }
}

/**
 * `nn.PixelShuffle`.
 * @example
 * ```ts
 * import { initBackend, PixelShuffle, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const shuffle = new PixelShuffle(4); // [N, C·16, H, W] → [N, C, 4H, 4W], torch's channel order
 * console.log(shuffle.forward(tf.randomNormal([1, 32, 4, 4])).shape); // [1, 2, 16, 16]
 * ```
 */
export class PixelShuffle extends UnaryModule {
  constructor(readonly upscaleFactor: number) {
    super();
    assertInt('upscaleFactor', upscaleFactor, 1);
  }

  forward(x: Tensor): Tensor {
    return pixelShuffle(x, this.upscaleFactor);
  }
}

/**
 * `nn.Upsample`: {@link interpolate} with fixed options.
 * @example
 * ```ts
 * import { initBackend, tf, Upsample } from '@skysense/core-tensor';
 * await initBackend();
 * const up = new Upsample({ scaleFactor: 2, mode: 'bilinear' }); // as F.interpolate, align_corners false
 * console.log(up.forward(tf.randomNormal([1, 3, 8, 8])).shape); // [1, 3, 16, 16]
 * ```
 */
export class Upsample extends UnaryModule {
  constructor(readonly options: InterpolateOptions) {
    super();
  }

  forward(x: Tensor): Tensor {
    return interpolate(x, this.options);
  }
}
