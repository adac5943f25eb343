import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { formatShape } from '../validate';
import { withGradient } from './custom-grad';
import { nativeKernelsActive } from '../native';

/** Swaps the last two axes (an explicit, materialised transpose). */
export function transposeLast2(t: Tensor): Tensor {
  const perm = [...Array(t.rank).keys()];
  perm[t.rank - 1] = t.rank - 2;
  perm[t.rank - 2] = t.rank - 1;
  return tf.transpose(t, perm);
}

/**
 * Sums a broadcast gradient back to the shape of the input it belongs to (leading axes that were
 * added and axes of size 1 that were expanded).
 */
export function sumToShape(grad: Tensor, shape: readonly number[]): Tensor {
  if (grad.shape.length === shape.length && grad.shape.every((d, i) => d === shape[i])) return grad;
  const lead = grad.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) axes.push(i);
  }
  return tf.reshape(axes.length ? tf.sum(grad, axes) : grad, shape as number[]);
}

/**
 * tfjs's kernels pair batch i of the output with batch i mod n of each operand, which is right only
 * when an operand's batch shape (leading 1s aside) ends the output's; otherwise both operands are
 * broadcast to the output's batch shape first (the gradient sums them back).
 */
function broadcastForTfjs(x: Tensor, y: Tensor): [Tensor, Tensor] {
  const [bx, by] = [x.shape.slice(0, -2), y.shape.slice(0, -2)];
  const batch = tf.broadcast_util.assertAndGetBroadcastShape(bx, by);
  const endsBatch = (s: number[]) => {
    const core = s.slice(s.findIndex((d) => d !== 1) < 0 ? s.length : s.findIndex((d) => d !== 1));
    return core.every((d, i) => d === batch[batch.length - core.length + i]);
  };
  if (endsBatch(bx) && endsBatch(by)) return [x, y];
  return [tf.broadcastTo(x, [...batch, ...x.shape.slice(-2)]), tf.broadcastTo(y, [...batch, ...y.shape.slice(-2)])];
}

/**
 * Batched matrix product with PyTorch `matmul` broadcasting of batch dimensions. Transposes are
 * materialised before the product and the gradient uses no transposed-operand kernels: on the
 * wasm backend `matMul(…, transposeA)` is ~40× slower than an explicit transpose, and tfjs's own
 * matMul gradient relies on it.
 */
export function matMul(a: Tensor, b: Tensor, transposeA = false, transposeB = false): Tensor {
  if (a.rank < 2 || b.rank < 2) {
    throw new SkySenseError(
      'E_SHAPE',
      `matMul: expected tensors of rank >= 2, got a ${formatShape(a.shape)} and b ${formatShape(b.shape)}`,
    );
  }
  const k1 = a.shape[transposeA ? a.rank - 2 : a.rank - 1];
  const k2 = b.shape[transposeB ? b.rank - 1 : b.rank - 2];
  if (k1 !== k2) {
    throw new SkySenseError(
      'E_SHAPE',
      `matMul: inner dimensions differ: a ${formatShape(a.shape)}${transposeA ? 'ᵀ' : ''} and b ${formatShape(b.shape)}${transposeB ? 'ᵀ' : ''} (${k1} vs ${k2})`,
    );
  }
  if (nativeKernelsActive()) return flaggedMatMul(a, b, transposeA, transposeB);
  const orient = (x: Tensor, y: Tensor) => [transposeA ? transposeLast2(x) : x, transposeB ? transposeLast2(y) : y] as const;
  return withGradient(
    [a, b],
    ([x, y]) => tf.matMul(...broadcastForTfjs(...orient(x!, y!))),
    (dy, [x, y]) => {
      const [A, B] = orient(x!, y!);
      const [wideA, wideB] = broadcastForTfjs(A, B);
      const dA = sumToShape(tf.matMul(dy, transposeLast2(wideB)), A.shape);
      const dB = sumToShape(tf.matMul(transposeLast2(wideA), dy), B.shape);
      return [transposeA ? transposeLast2(dA) : dA, transposeB ? transposeLast2(dB) : dB];
    },
  );
}

/**
 * matMul with the transpose flags passed to the kernel (free with a BLAS); the gradient uses flags
 * too: for C = op(A)·op(B), dA and dB are the four textbook products.
 */
function flaggedMatMul(a: Tensor, b: Tensor, tA: boolean, tB: boolean): Tensor {
  return withGradient(
    [a, b],
    ([x, y]) => tf.matMul(x!, y!, tA, tB),
    (dy, [x, y]) => {
      const [dA, dB] =
        !tA && !tB
          ? [tf.matMul(dy, y!, false, true), tf.matMul(x!, dy, true, false)]
          : !tA && tB
            ? [tf.matMul(dy, y!, false, false), tf.matMul(dy, x!, true, false)]
            : tA && !tB
              ? [tf.matMul(y!, dy, false, true), tf.matMul(x!, dy, false, false)]
              : [tf.matMul(y!, dy, true, true), tf.matMul(dy, x!, true, true)];
      return [sumToShape(dA!, x!.shape), sumToShape(dB!, y!.shape)];
    },
  );
}
