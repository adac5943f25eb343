import { requireFinite } from './validate';
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

/**
 * InfoNCE with the same sample as the positive: the mean over rows i of −log softmax(sim_i)[i] for a
 * `[B, B]` similarity matrix (ALBEF's `-sum(log_softmax(sim, 1) * targets, 1).mean()` with one-hot targets).
 */
export function sameSampleCrossEntropy(sim: Tensor): tf.Scalar {
  const n = sim.shape[0]!;
  return tf.tidy(() => tf.neg(tf.div(tf.sum(tf.mul(tf.logSoftmax(sim, 1), tf.eye(n))), n)) as tf.Scalar);
}

/** Options of {@link ContrastiveAlignment} (ALBEF's names: "image" = modality A, "text" = modality B). */
export interface ContrastiveAlignmentOptions {
  /** Width of modality A's tokens (ALBEF's `vision_width`). */
  widthA: number;
  /** Width of modality B's tokens (`text_width`). */
  widthB: number;
  /** Shared embedding width. Default 256. */
  embedDim?: number;
  /** Initial temperature (learnable, clamped to [0.001, 0.5]). Default 0.07. */
  temp?: number;
}

/** Everything {@link ContrastiveAlignment.forward} computes. */
export interface AlignmentOutputs {
  featA: Tensor;
  featB: Tensor;
  simAB: Tensor;
  simBA: Tensor;
  lossAB: tf.Scalar;
  lossBA: tf.Scalar;
  loss: tf.Scalar;
}

/**
 * ALBEF's image-text contrastive loss used as SkySense's cross-modal alignment (Eq. 10) between two
 * modalities: the first token of each sequence is projected (`vision_proj` / `text_proj`),
 * L2-normalised and compared by `feat_A · feat_Bᵀ / temp`; positives are the same sample. Without
 * queue and momentum distillation (ALBEF with alpha 0, queue size 0). Keys `temp`, `vision_proj.*`,
 * `text_proj.*`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { ContrastiveAlignment } from '@skysense/losses';
 * await initBackend();
 * // ALBEF-style symmetric InfoNCE between two modalities' [CLS] tokens, projected to a shared width
 * const align = new ContrastiveAlignment({ widthA: 32, widthB: 24, embedDim: 16 });
 * const { loss, simAB } = align.forward(tf.randomNormal([4, 5, 32]), tf.randomNormal([4, 7, 24]));
 * console.log(loss.dataSync()[0], simAB.shape); // [4, 4] similarities
 * ```
 */
export class ContrastiveAlignment extends Module {
  readonly temp: Parameter;
  readonly visionProj: Linear;
  readonly textProj: Linear;

  constructor(o: ContrastiveAlignmentOptions) {
    super();
    const d = o.embedDim ?? 256;
    this.temp = this.registerParameter('temp', [], constant(o.temp ?? 0.07));
    this.visionProj = this.registerModule('vision_proj', new Linear(o.widthA, d));
    this.textProj = this.registerModule('text_proj', new Linear(o.widthB, d));
  }

  /** @param a `[B, L_A, widthA]` tokens of modality A; @param b `[B, L_B, widthB]` of modality B. */
  forward(a: Tensor, b: Tensor): AlignmentOutputs {
    for (const [name, t, w] of [
      ['A', a, this.visionProj.inFeatures],
      ['B', b, this.textProj.inFeatures],
    ] as const) {
      if (t.rank !== 3 || t.shape[2] !== w)
        throw new SkySenseError('E_SHAPE', `ContrastiveAlignment modality ${name}: expected [B, L, ${w}], got ${formatShape(t.shape)}`);
    }
    if (a.shape[0] !== b.shape[0] || a.shape[0]! < 2)
      throw new SkySenseError(
        'E_SHAPE',
        `ContrastiveAlignment: both modalities need the same batch of at least 2 samples, got ${a.shape[0]} and ${b.shape[0]}`,
      );
    tf.tidy(() => this.temp.assign(tf.clipByValue(this.temp.value, 0.001, 0.5)));
    const out = tf.tidy(() => {
      const first = (t: Tensor) => tf.reshape(tf.slice(t, [0, 0, 0], [-1, 1, -1]), [t.shape[0]!, t.shape[2]!]);
      const featA = l2Normalize(this.visionProj.forward(first(a)));
      const featB = l2Normalize(this.textProj.forward(first(b)));
      const simAB = tf.div(matMul(featA, featB, false, true), this.temp.value);
      const simBA = tf.div(matMul(featB, featA, false, true), this.temp.value);
      const lossAB = sameSampleCrossEntropy(simAB);
      const lossBA = sameSampleCrossEntropy(simBA);
      return [featA, featB, simAB, simBA, lossAB, lossBA, tf.div(tf.add(lossAB, lossBA), 2)];
    });
    requireFinite(
      out[6]!,
      [
        ['modality A', a],
        ['modality B', b],
      ],
      out,
    );
    const [featA, featB, simAB, simBA, lossAB, lossBA, loss] = out as [Tensor, Tensor, Tensor, Tensor, tf.Scalar, tf.Scalar, tf.Scalar];
    return { featA, featB, simAB, simBA, lossAB, lossBA, loss };
  }
}
