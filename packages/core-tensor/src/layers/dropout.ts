import { tf, type Tensor } from '../tf';
import { assertInRange } from '../validate';
import { type Generator, defaultRng } from '../rng';
import { UnaryModule } from './containers';

function bernoulliScaled(n: number, keep: number, rng: Generator): Float32Array {
  const out = new Float32Array(n);
  const scale = keep > 0 ? 1 / keep : 0;
  for (let i = 0; i < n; i++) out[i] = rng.random() < keep ? scale : 0;
  return out;
}

/**
 * Element-wise dropout with probability `p` in training mode (survivors scaled by 1/(1−p));
 * identity in evaluation mode. Masks come from the seeded generator, so runs are reproducible.
 */
export class Dropout extends UnaryModule {
  constructor(
    readonly p = 0.5,
    private readonly rng?: Generator,
  ) {
    super();
    assertInRange('p', p, 0, 1);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return tf.tidy(() => tf.mul(x, tf.tensor(bernoulliScaled(x.size, 1 - this.p, this.rng ?? defaultRng()), x.shape)));
  }
}

/**
 * Stochastic depth (timm's `DropPath`, mmcv's `DropPath`): in training mode each sample's whole
 * residual branch is dropped with probability `p` and kept samples are scaled by 1/(1−p).
 * The batch axis is the first one.
 */
export class DropPath extends UnaryModule {
  constructor(
    readonly p = 0,
    private readonly rng?: Generator,
  ) {
    super();
    assertInRange('p', p, 0, 1);
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return tf.tidy(() => {
      const shape = [x.shape[0]!, ...Array(x.rank - 1).fill(1)];
      return tf.mul(x, tf.tensor(bernoulliScaled(shape[0]!, 1 - this.p, this.rng ?? defaultRng()), shape));
    });
  }
}
