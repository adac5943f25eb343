import { tf, type Tensor } from '../tf';
import { assertRank } from '../validate';

/**
 * A validity mask (`[N, H, W]`, 1 = data, 0 = nodata) on a coarser or finer grid `h × w`: a cell is
 * valid only if every input pixel of its footprint is (max-pooling of the nodata when the sizes
 * divide; otherwise bilinear weights that must all come from valid pixels; nearest when enlarging).
 * @returns float32 `[N, h, w]` of 0 and 1.
 */
export function poolValidity(valid: Tensor, h: number, w: number): Tensor {
  assertRank('valid', valid, 3);
  const [, H, W] = valid.shape as [number, number, number];
  return tf.tidy(() => {
    const v = tf.expandDims(tf.cast(valid, 'float32'), 3);
    let out: Tensor;
    if (H === h && W === w) out = v;
    else if (H % h === 0 && W % w === 0) {
      const [fy, fx] = [H / h, W / w];
      out = tf.sub(1, tf.maxPool(tf.sub(1, v) as tf.Tensor4D, [fy, fx], [fy, fx], 'valid'));
    } else if (h >= H && w >= W) out = tf.image.resizeNearestNeighbor(v as tf.Tensor4D, [h, w]);
    else out = tf.cast(tf.greaterEqual(tf.image.resizeBilinear(v as tf.Tensor4D, [h, w]), 1 - 1e-6), 'float32');
    return tf.squeeze(out, [3]);
  });
}

/**
 * Replaces NaN and ±Inf in `x` by 0 and reports where they were: `valid` is `x` without its channel
 * axis, 0 wherever any channel was not finite. `null` (nothing allocated) when every value is finite.
 */
export function nonFiniteMask(x: Tensor, channelAxis = 1): { x: Tensor; valid: Tensor } | null {
  const clean = tf.tidy(() => tf.all(tf.isFinite(x)).dataSync()[0]);
  if (clean) return null;
  return tf.tidy(() => {
    const finite = tf.isFinite(x);
    return { x: tf.where(finite, x, tf.zerosLike(x)), valid: tf.cast(tf.all(finite, channelAxis), 'float32') };
  });
}
