import type { Tensor } from '../tf';
import { assertInt } from '../validate';
import { normal, type Initializer } from '../init';
import { Module, type Parameter } from '../module';
import { gatherRows } from '../ops/gather';

/**
 * `nn.Embedding`: a `[numEmbeddings, embeddingDim]` table indexed by int32 tensors; N(0, 1) init as PyTorch.
 * @example
 * ```ts
 * import { Embedding, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const days = new Embedding(365, 16); // a learned row per day of year
 * console.log(days.forward(tf.tensor1d([0, 180], 'int32')).shape); // [2, 16]
 * ```
 */
export class Embedding extends Module {
  readonly weight: Parameter;

  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    init: Initializer = normal(0, 1),
  ) {
    super();
    assertInt('numEmbeddings', numEmbeddings, 1);
    assertInt('embeddingDim', embeddingDim, 1);
    this.weight = this.registerParameter('weight', [numEmbeddings, embeddingDim], init);
  }

  /** Rows for `indices` (int32, any shape) → `[...indices.shape, embeddingDim]`; out-of-range indices are an error. */
  forward(indices: Tensor | number[]): Tensor {
    return gatherRows(this.weight.value, indices);
  }
}
