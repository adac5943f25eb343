import { SkySenseError, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Sentinel-2 bands in the order SkySense's S2 encoder expects (10 m and 20 m bands; no B1, B9, B10). */
export const SENTINEL2_BANDS = ['B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B11', 'B12'] as const;

/** Sentinel-1 polarisations in the order SkySense's S1 encoder expects. */
export const SENTINEL1_BANDS = ['VV', 'VH'] as const;

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
    throw new SkySenseError('E_SHAPE', `selectPatchEmbedBands weight: expected [C, ${bandNames.length}, k, k] for bands ${bandNames.join(', ')}, got ${formatShape(weight.shape)}`);
  }
  const unknown = subset.filter((b) => !bandNames.includes(b));
  if (unknown.length || subset.length === 0) {
    throw new SkySenseError('E_BANDS', `selectPatchEmbedBands: bands ${unknown.join(', ') || '(none)'} are not among ${bandNames.join(', ')}`);
  }
  return tf.tidy(() => tf.gather(weight, tf.tensor1d(subset.map((b) => bandNames.indexOf(b)), 'int32'), 1));
}
