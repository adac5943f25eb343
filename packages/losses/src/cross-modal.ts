import {
  Linear,
  Module,
  SkySenseError,
  constant,
  formatShape,
  l2Normalize,
  matMul,
  tf,
  type Parameter,
  type Tensor,
} from '@skysense/core-tensor';
import { sameSampleCrossEntropy } from './alignment';
import { requireFinite } from './validate';

/** Options of {@link CrossModalAlignment}. */
export interface CrossModalAlignmentOptions {
  /** Feature width per modality, e.g. `{ hr: 2816, s2: 1024, s1: 1024 }`. */
  widths: Record<string, number>;
  /** Shared embedding width. Default 256. */
  embedDim?: number;
  /** Initial temperature (learnable, clamped to [0.001, 0.5]). Default 0.07. */
  temp?: number;
}

/** L_align and its per-pair terms (`'hr→s2'`: rows are HR samples, columns S2 samples). */
export interface CrossModalValues {
  pairs: Record<string, tf.Scalar>;
  total: tf.Scalar;
}

/**
 * SkySense's cross-modal alignment (Eq. 10) in ALBEF's form: per modality a linear projection
 * (`proj.<name>`) of the space-time-averaged feature to `embedDim`, L2-normalised; for every ordered
 * pair (i, j), i ≠ j, the InfoNCE loss of `z_i · z_jᵀ / temp` with the same sample as the positive; the
 * total is the sum over the ordered pairs (6 terms for three modalities). For two modalities the total
 * is twice ALBEF's `loss_ita`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { CrossModalAlignment } from '@skysense/losses';
 * await initBackend();
 * // SkySense's L_align over every pair of modalities, on features averaged over space and time
 * const align = new CrossModalAlignment({ widths: { hr: 32, s2: 16, s1: 16 }, embedDim: 8 });
 * const { pairs, total } = align.forward({ hr: tf.randomNormal([4, 32]), s2: tf.randomNormal([4, 16]), s1: tf.randomNormal([4, 16]) });
 * console.log(Object.keys(pairs), total.dataSync()[0]);
 * ```
 */
export class CrossModalAlignment extends Module {
  readonly temp: Parameter;
  readonly proj = new Map<string, Linear>();

  constructor(o: CrossModalAlignmentOptions) {
    super();
    const names = Object.keys(o.widths);
    if (names.length < 2)
      throw new SkySenseError('E_ARG', `CrossModalAlignment widths: expected at least 2 modalities, got ${names.length}`);
    this.temp = this.registerParameter('temp', [], constant(o.temp ?? 0.07));
    const linears = names.map((n) => [n, new Linear(o.widths[n]!, o.embedDim ?? 256)] as const);
    this.registerModule(
      'proj',
      new (class extends Module {
        constructor() {
          super();
          for (const [n, lin] of linears) this.registerModule(n, lin);
        }
      })(),
    );
    for (const [n, lin] of linears) this.proj.set(n, lin);
  }

  /** @param features per modality `[B, width]` (already averaged over space and time), same B ≥ 2 for all. */
  forward(features: Record<string, Tensor>): CrossModalValues {
    const batch = new Set<number>();
    for (const [n, lin] of this.proj) {
      const f = features[n];
      if (!f || f.rank !== 2 || f.shape[1] !== lin.inFeatures)
        throw new SkySenseError(
          'E_SHAPE',
          `CrossModalAlignment features.${n}: expected [B, ${lin.inFeatures}], got ${f ? formatShape(f.shape) : 'nothing'}`,
        );
      batch.add(f.shape[0]!);
    }
    if (batch.size !== 1 || [...batch][0]! < 2)
      throw new SkySenseError(
        'E_SHAPE',
        `CrossModalAlignment: every modality needs the same batch of at least 2 samples, got ${[...batch].join(', ')}`,
      );
    tf.tidy(() => this.temp.assign(tf.clipByValue(this.temp.value, 0.001, 0.5)));
    const pairs: Record<string, tf.Scalar> = {};
    const total = tf.tidy(() => {
      const z = new Map([...this.proj].map(([n, lin]) => [n, l2Normalize(lin.forward(features[n]!))]));
      for (const [i, zi] of z)
        for (const [j, zj] of z)
          if (i !== j) pairs[`${i}→${j}`] = tf.keep(sameSampleCrossEntropy(tf.div(matMul(zi, zj, false, true), this.temp.value)));
      return tf.addN(Object.values(pairs)) as tf.Scalar;
    });
    requireFinite(
      total,
      Object.entries(features).map(([k, t]) => [`features.${k}`, t]),
      [total, ...Object.values(pairs)],
    );
    return { pairs, total };
  }
}

/** Options of {@link skySenseObjective}. */
export interface ObjectiveWeights {
  /** Weight α of L_MGCL. Default 1. */
  alpha?: number;
  /** Weight β of L_align. Default 1. */
  beta?: number;
}

/**
 * SkySense's total pre-training loss (Eq. 14): α·L_MGCL + β·L_align.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { skySenseObjective } from '@skysense/losses';
 * await initBackend();
 * // the paper's total: α · L_MGCL + β · L_align
 * const total = skySenseObjective(tf.scalar(2.5), tf.scalar(0.7), { alpha: 1, beta: 0.5 });
 * console.log(total.dataSync()[0]); // 2.85
 * ```
 */
export function skySenseObjective(mgcl: tf.Scalar, align: tf.Scalar, weights: ObjectiveWeights = {}): tf.Scalar {
  return tf.tidy(() => tf.add(tf.mul(mgcl, weights.alpha ?? 1), tf.mul(align, weights.beta ?? 1)) as tf.Scalar);
}
