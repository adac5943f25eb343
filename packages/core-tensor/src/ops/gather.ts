import { tf, type Tensor } from '../tf';
import { hasKernel } from '../backend';
import { SkySenseError } from '../errors';
import { formatShape } from '../validate';
import { matMul } from './matmul';
import { withGradient } from './custom-grad';

/**
 * Rows of `table` picked by integer `indices` (`table[indices]` in PyTorch): the output shape is
 * `indices.shape ++ table.shape[1:]`. Differentiable with respect to `table` on every backend (the
 * wasm backend lacks the `UnsortedSegmentSum` kernel tfjs's own gather gradient needs; there the
 * gradient is a one-hot product).
 */
export function gatherRows(table: Tensor, indices: Tensor | number[]): Tensor {
  return tf.tidy(() => {
    const idx = Array.isArray(indices) ? tf.tensor1d(indices, 'int32') : indices;
    if (idx.dtype !== 'int32') throw new SkySenseError('E_DTYPE', `gatherRows: indices must be int32, got ${idx.dtype}`);
    if (table.rank < 1) throw new SkySenseError('E_SHAPE', `gatherRows: table must have rank >= 1, got ${formatShape(table.shape)}`);
    const n = table.shape[0]!;
    const flat = idx.dataSync();
    for (const i of flat) {
      if (i < 0 || i >= n)
        throw new SkySenseError(
          'E_ARG',
          `gatherRows: index ${i} is outside [0, ${n - 1}] for a table of shape ${formatShape(table.shape)}`,
        );
    }
    if (hasKernel('UnsortedSegmentSum')) return tf.gather(table, idx, 0);
    return withGradient(
      [table],
      ([t]) => tf.gather(t!, idx, 0),
      (dy, [t]) => {
        const oneHot = tf.cast(tf.oneHot(tf.tensor1d(flat, 'int32'), n), 'float32');
        const rows = tf.reshape(dy, [oneHot.shape[0]!, -1]);
        return [tf.reshape(matMul(oneHot, rows, true, false), t!.shape)];
      },
    );
  });
}

/**
 * The inverse of a permutation of `0 … n − 1` (`inverse[perm[i]] = i`); anything that is not one
 * (wrong length, repeats, out of range) is refused, naming `what`.
 */
export function invertPermutation(perm: Int32Array, n: number, what = 'invertPermutation'): Int32Array {
  const inverse = new Int32Array(perm.length).fill(-1);
  perm.forEach((p, i) => {
    if (p >= 0 && p < n && inverse[p] === -1) inverse[p] = i;
  });
  if (perm.length !== n || inverse.includes(-1)) {
    throw new SkySenseError(
      'E_ARG',
      `${what}: expected a permutation of 0 … ${n - 1} (${n} indices), got ${perm.length} indices that are not one`,
    );
  }
  return inverse;
}

/**
 * Reorders `x` along `axis`: slice `i` of the result is slice `perm[i]` of `x`, for a permutation
 * `perm` of `0 … x.shape[axis] − 1`. The gradient is the inverse reordering (no scatter-add).
 * Window partitioning, cyclic shifts and their inverses are such reorderings.
 */
export function permuteRows(x: Tensor, perm: Int32Array, axis = 0): Tensor {
  if (!Number.isInteger(axis) || axis < 0 || axis >= x.rank) {
    throw new SkySenseError(
      'E_ARG',
      `permuteRows: axis: expected an integer in [0, ${x.rank - 1}] for a tensor of shape ${formatShape(x.shape)}, got ${axis}`,
    );
  }
  const inverse = invertPermutation(perm, x.shape[axis]!, `permuteRows (axis ${axis} of ${formatShape(x.shape)})`);
  return withGradient(
    [x],
    ([v]) => tf.gather(v!, tf.tensor1d(perm, 'int32'), axis),
    (dy) => [tf.gather(dy, tf.tensor1d(inverse, 'int32'), axis)],
  );
}
