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
 * columns tend to B/K. Computed in the log domain (each normalisation is a log-sum-exp), which equals
 * SwAV's `exp` form up to rounding but cannot overflow or lose whole rows when scores/ε is large.
 * No gradient flows through the result.
 * @throws SkySenseError `E_ARG` if the scores hold NaN or infinities.
 * @example
 * ```ts
 * import { initBackend, sinkhornKnopp, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // balanced soft assignments of 8 features to 4 prototypes (rows sum to 1, columns share the mass)
 * const q = sinkhornKnopp(tf.randomNormal([8, 4]), { epsilon: 0.05, iterations: 3 });
 * console.log(q.sum(1).arraySync()); // ≈ 1 per row
 * ```
 */
export function sinkhornKnopp(scores: Tensor, options: SinkhornOptions = {}): Tensor {
  if (scores.rank !== 2) throw new SkySenseError('E_SHAPE', `sinkhornKnopp scores: expected [B, K], got ${formatShape(scores.shape)}`);
  const eps = assertPositive('epsilon', options.epsilon ?? 0.05);
  const iters = assertInt('iterations', options.iterations ?? 3, 0);
  const [b, k] = scores.shape as [number, number];
  return tf.tidy(() => {
    if (!(tf.all(tf.isFinite(scores)).dataSync()[0] as number)) {
      throw new SkySenseError('E_ARG', `sinkhornKnopp scores: expected finite values, got NaN or infinity in ${formatShape(scores.shape)}`);
    }
    let logQ = tf.transpose(tf.div(stopGradient(scores), eps));
    logQ = tf.sub(logQ, tf.logSumExp(logQ));
    for (let i = 0; i < iters; i++) {
      logQ = tf.sub(logQ, tf.add(tf.logSumExp(logQ, 1, true), Math.log(k)));
      logQ = tf.sub(logQ, tf.add(tf.logSumExp(logQ, 0, true), Math.log(b)));
    }
    return tf.transpose(tf.mul(tf.exp(logQ), b));
  });
}
