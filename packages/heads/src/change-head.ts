import { SkySenseError, formatShape, tf, type Tensor } from '@skysense/core-tensor';
import { UPerHead, type UPerHeadOptions } from './uper-head';

/** How the two dates' features of one level are combined. */
export type BitemporalFusion = 'diff' | 'absdiff' | 'concat';

/** Options of {@link ChangeDetectionHead}. */
export interface ChangeDetectionHeadOptions extends Omit<UPerHeadOptions, 'numClasses'> {
  /** Channels of the encoder's maps (per date); the UPerHead sees twice as many with `concat`. */
  inChannels: number[];
  /** Per-level combination of the two dates. Default `absdiff` (|A − B|). */
  fusion?: BitemporalFusion;
  /** Default 2 (no change / change). */
  numClasses?: number;
}

/**
 * Change detection on a shared (Siamese) encoder: the features of date A and date B are combined
 * per level (`absdiff` |A − B|, `diff` A − B, or `concat` [A, B]) and decoded by a UPerHead into a
 * change map. Keys are the UPerHead's.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { ChangeDetectionHead } from '@skysense/heads';
 * await initBackend();
 * // UPerNet over the two dates' features, fused by difference (or 'concat')
 * const head = new ChangeDetectionHead({ inChannels: [8, 16], channels: 16, poolScales: [1, 2] }).eval();
 * const before = [tf.randomNormal([1, 8, 16, 16]), tf.randomNormal([1, 16, 8, 8])];
 * const after = [tf.randomNormal([1, 8, 16, 16]), tf.randomNormal([1, 16, 8, 8])];
 * console.log(head.forwardPair(before, after).shape); // [1, 2, 16, 16]: no change / change
 * ```
 */
export class ChangeDetectionHead extends UPerHead {
  readonly fusion: BitemporalFusion;

  constructor(o: ChangeDetectionHeadOptions) {
    const fusion = o.fusion ?? 'absdiff';
    if (!['diff', 'absdiff', 'concat'].includes(fusion))
      throw new SkySenseError('E_ARG', `ChangeDetectionHead fusion: expected 'diff', 'absdiff' or 'concat', got '${String(fusion)}'`);
    super({ ...o, numClasses: o.numClasses ?? 2, inChannels: o.inChannels.map((c) => (fusion === 'concat' ? 2 * c : c)) });
    this.fusion = fusion;
  }

  /** Combines the two dates' map lists level by level. */
  fuse(a: readonly Tensor[], b: readonly Tensor[]): Tensor[] {
    if (a.length !== b.length)
      throw new SkySenseError(
        'E_ARG',
        `ChangeDetectionHead: expected as many maps for date B as for date A (${a.length}), got ${b.length}`,
      );
    return a.map((x, i) => {
      const y = b[i]!;
      if (x.shape.join() !== y.shape.join())
        throw new SkySenseError(
          'E_SHAPE',
          `ChangeDetectionHead level ${i}: date B ${formatShape(y.shape)} differs from date A ${formatShape(x.shape)}`,
        );
      return tf.tidy(() =>
        this.fusion === 'concat' ? tf.concat([x, y], 1) : this.fusion === 'diff' ? tf.sub(x, y) : tf.abs(tf.sub(x, y)),
      );
    });
  }

  /** Change logits `[N, numClasses, H0, W0]` from the two dates' feature lists. */
  forwardPair(a: readonly Tensor[], b: readonly Tensor[]): Tensor {
    return tf.tidy(() => this.forward(this.fuse(a, b)));
  }
}
