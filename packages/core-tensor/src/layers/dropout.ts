import { tf, type Tensor } from '../tf';
import { assertInRange } from '../validate';
import { type Generator, defaultRng } from '../rng';
import { UnaryModule } from './containers';

/**
 * Multiplies the input by a random keep-mask scaled by 1/(1−p) in training mode; identity in
 * evaluation mode. Masks come from the seeded generator, so runs are reproducible.
 */
abstract class RandomDrop extends UnaryModule {
  constructor(
    /** Drop probability. */
    readonly p: number,
    private readonly rng?: Generator,
  ) {
    super();
    assertInRange('p', p, 0, 1);
  }

  /** Shape of the mask for input `x` (broadcast against it). */
  protected abstract maskShape(x: Tensor): number[];

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const shape = this.maskShape(x);
    const keep = 1 - this.p;
    const rng = this.rng ?? defaultRng();
    const mask = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < mask.length; i++) mask[i] = rng.random() < keep ? 1 / keep : 0;
    return tf.tidy(() => tf.mul(x, tf.tensor(mask, shape)));
  }
}

/**
 * Element-wise dropout with probability `p` (`nn.Dropout`).
 * @example
 * ```ts
 * import { Dropout, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const drop = new Dropout(0.1);
 * const y = drop.forward(tf.ones([2, 8])); // zeroes 10 % and scales the rest by 1 / 0.9 while training
 * drop.eval(); // identity at inference
 * ```
 */
export class Dropout extends RandomDrop {
  constructor(p = 0.5, rng?: Generator) {
    super(p, rng);
  }

  protected maskShape(x: Tensor): number[] {
    return [...x.shape];
  }
}

/**
 * Stochastic depth (timm's / mmcv's `DropPath`): each sample's whole residual branch is dropped with
 * probability `p`; the batch axis is the first one.
 * @example
 * ```ts
 * import { DropPath, Generator, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const drop = new DropPath(0.2, new Generator(0)); // drops whole samples' residual branches in training
 * console.log(drop.forward(tf.ones([4, 3])).arraySync()); // rows of 0 or 1 / 0.8
 * drop.eval(); // identity at inference
 * ```
 */
export class DropPath extends RandomDrop {
  constructor(p = 0, rng?: Generator) {
    super(p, rng);
  }

  protected maskShape(x: Tensor): number[] {
    return [x.shape[0]!, ...Array<number>(x.rank - 1).fill(1)];
  }
}

/**
 * Channel dropout (`nn.Dropout2d`): whole `[N, C]` feature maps of an NCHW input are zeroed with probability `p`.
 * @example
 * ```ts
 * import { Dropout2d, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const drop = new Dropout2d(0.1); // zeroes whole channels of [N, C, H, W] maps, as mmseg's decode heads
 * console.log(drop.forward(tf.ones([1, 4, 2, 2])).shape);
 * ```
 */
export class Dropout2d extends RandomDrop {
  constructor(p = 0.5, rng?: Generator) {
    super(p, rng);
  }

  protected maskShape(x: Tensor): number[] {
    return [x.shape[0]!, x.shape[1]!, ...Array<number>(x.rank - 2).fill(1)];
  }
}
