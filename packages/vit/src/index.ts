/**
 * `@skysense/vit`: SkySense's Sentinel-2 (10 bands) and Sentinel-1 (VV, VH) ViT-L encoders — the
 * mmseg 0.x `VisionTransformer` with the official key names, presets and band orders.
 * @packageDocumentation
 */
export {
  VisionTransformer,
  VIT_PRESETS,
  VIT_PREFIXES,
  selectBandsStateDict,
  vitOptionsFromConfig,
  type VisionTransformerOptions,
  type VitFeatures,
  type VitPresetName,
  type ResolvedVitOptions,
} from './vision-transformer';
export { SENTINEL2_BANDS, SENTINEL1_BANDS, VIT_PATCH_WEIGHT_KEY, selectPatchEmbedBands } from './bands';
export { VIT_PRETRAINED } from './pretrained';
