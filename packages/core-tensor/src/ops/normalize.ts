import { tf, type Tensor } from '../tf';

/**
 * `torch.nn.functional.normalize(x, p=2, dim=axis, eps)`: `x / max(‖x‖₂, eps)`. Written as
 * `x / sqrt(max(Σx², eps²))`, which has the same value but a finite gradient at zero vectors
 * (the plain form's `sqrt` has an infinite derivative there and yields NaN gradients).
 */
export function l2Normalize(x: Tensor, axis = -1, eps = 1e-12): Tensor {
  return tf.tidy(() => tf.div(x, tf.sqrt(tf.maximum(tf.sum(tf.square(x), axis, true), eps * eps))));
}
