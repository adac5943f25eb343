import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, assertPositive, formatShape } from '../validate';
import { stopGradient } from '../ops/custom-grad';

/** Options of {@link sinkhornKnopp}, with SwAV's defaults. */
export interface SinkhornOptions {
  /** Entropy regularisation ε: scores are divided by it before `exp`. Default 0.05. */
  epsilon?: number;
  /** Number of row/column normalisation rounds. Default 3. */
  iterations?: number;
}

/**
 * Sinkhorn-Knopp equipartition as SwAV's `distributed_sinkhorn` (one process): from scores
 * `[B, K]` (samples × prototypes) returns soft assignments `Q` `[B, K]` whose rows sum to 1 and whose
 * columns tend to B/K. Scores are shifted by their maximum before `exp` (the normalisation cancels
 * the shift), so large scores do not overflow. No gradient flows through the result.
 */
export function sinkhornKnopp(scores: Tensor, options: SinkhornOptions = {}): Tensor {
  if (scores.rank !== 2) throw new SkySenseError('E_SHAPE', `sinkhornKnopp scores: expected [B, K], got ${formatShape(scores.shape)}`);
  const eps = assertPositive('epsilon', options.epsilon ?? 0.05);
  const iters = assertInt('iterations', options.iterations ?? 3, 0);
  const [b, k] = scores.shape as [number, number];
  return tf.tidy(() => {
    const s = stopGradient(scores);
    let q = tf.transpose(tf.exp(tf.div(tf.sub(s, tf.max(s)), eps)));
    q = tf.div(q, tf.sum(q));
    for (let i = 0; i < iters; i++) {
      q = tf.div(tf.div(q, tf.sum(q, 1, true)), k);
      q = tf.div(tf.div(q, tf.sum(q, 0, true)), b);
    }
    const out = tf.transpose(tf.mul(q, b));
    if (!(tf.all(tf.isFinite(out)).dataSync()[0] as number)) {
      throw new SkySenseError('E_ARG', 'sinkhornKnopp: scores produced non-finite assignments (NaN in the scores, or a sample/prototype with no mass: lower epsilon range?)');
    }
    return out;
  });
}
