import { SENTINEL1_BANDS, SENTINEL2_BANDS, SkySenseError, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Re-exported from `@skysense/core-tensor` (shared with the loaders of `@skysense/data`). */
export { SENTINEL1_BANDS, SENTINEL2_BANDS };

/** Key of the patch-embedding weight in the released ViT files. */
export const VIT_PATCH_WEIGHT_KEY = 'patch_embed.projection.weight';

/**
 * Reduces a patch-embedding weight `[C, bands, k, k]` to a subset of its bands by selecting the
 * matching input slices, for users who have only some bands (e.g. a 6-band product). The missing
 * bands' contributions are simply dropped, so features shift: fine-tune before trusting them.
 * @param bandNames the names of the weight's input slices, in order.
 * @param subset the bands you have, in the order you will feed them.
 * @throws SkySenseError `E_BANDS` naming any band of `subset` the weight does not have.
 */
export function selectPatchEmbedBands(weight: Tensor, bandNames: readonly string[], subset: readonly string[]): Tensor {
  if (weight.rank !== 4 || weight.shape[1] !== bandNames.length) {
    throw new SkySenseError(
      'E_SHAPE',
      `selectPatchEmbedBands weight: expected [C, ${bandNames.length}, k, k] for bands ${bandNames.join(', ')}, got ${formatShape(weight.shape)}`,
    );
  }
  const unknown = subset.filter((b) => !bandNames.includes(b));
  if (unknown.length || subset.length === 0) {
    throw new SkySenseError(
      'E_BANDS',
      `selectPatchEmbedBands: bands ${unknown.join(', ') || '(none)'} are not among ${bandNames.join(', ')}`,
    );
  }
  return tf.tidy(() =>
    tf.gather(
      weight,
      tf.tensor1d(
        subset.map((b) => bandNames.indexOf(b)),
        'int32',
      ),
      1,
    ),
  );
}
