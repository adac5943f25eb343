import { SkySenseError, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Key of the patch-embedding weight in Swin / SkySense HR checkpoints. */
export const PATCH_EMBED_WEIGHT_KEY = 'patch_embed.projection.weight';

/**
 * Widens an RGB patch-embedding weight `[C, 3, k, k]` to RGB-NIR `[C, 4, k, k]` the way SkySense's
 * official converter does: the new 4th (NIR) input slice is a copy of the **red** slice (input
 * channel 0). Load the result into a model built with `inChannels: 4`; feed bands as R, G, B, NIR.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { widenPatchEmbedToRgbNir } from '@skysense/swin';
 * await initBackend();
 * // an RGB patch embedding → RGB+NIR: the NIR filter starts as the mean of the RGB ones
 * const rgb = tf.randomNormal([352, 3, 4, 4]);
 * console.log(widenPatchEmbedToRgbNir(rgb).shape); // [352, 4, 4, 4]
 * ```
 */
export function widenPatchEmbedToRgbNir(weight: Tensor): Tensor {
  if (weight.rank !== 4 || weight.shape[1] !== 3) {
    throw new SkySenseError('E_SHAPE', `widenPatchEmbedToRgbNir weight: expected [C, 3, k, k] (RGB), got ${formatShape(weight.shape)}`);
  }
  return tf.tidy(() => tf.concat([weight, tf.slice(weight, [0, 0, 0, 0], [-1, 1, -1, -1])], 1));
}

/**
 * A copy of a state dict whose patch-embedding weight is widened to RGB-NIR (see
 * {@link widenPatchEmbedToRgbNir}); `prefix` is the key prefix in the dict (e.g. `backbone.`). The
 * caller disposes the new weight tensor (the other entries are the originals).
 */
export function rgbNirStateDict(dict: Map<string, Tensor>, prefix = ''): Map<string, Tensor> {
  const key = prefix + PATCH_EMBED_WEIGHT_KEY;
  const w = dict.get(key);
  if (!w) throw new SkySenseError('E_STATE_DICT', `rgbNirStateDict: the state dict has no '${key}'`);
  return new Map([...dict].map(([k, v]) => [k, k === key ? widenPatchEmbedToRgbNir(v) : v]));
}
