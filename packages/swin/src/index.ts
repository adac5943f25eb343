/**
 * `@skysense/swin`: Swin Transformer V2 as mmcls 0.25 implements it — SkySense's high-resolution
 * encoder (`skysense-hr`, the huge arch, 655 M parameters) and the mmcls presets.
 * @packageDocumentation
 */
export {
  SwinTransformerV2,
  SwinBlockV2,
  SwinBlockV2Sequence,
  PatchMerging,
  SWIN_V2_PRESETS,
  SWIN_IGNORED_KEYS,
  SWIN_OPTIONAL_KEYS,
  swinOptionsFromConfig,
  type SwinTransformerV2Options,
  type SwinBlockV2Options,
  type SwinV2PresetName,
} from './swin-transformer-v2';
export {
  WindowMSAV2,
  ShiftWindowMSA,
  relativeCoordsTable,
  relativePositionIndex,
  shiftWindowMask,
  windowOrder,
  type WindowMSAV2Options,
  type ShiftWindowMSAOptions,
} from './window-attention';
export { SWIN_V2_ARCHS, archByName, type SwinV2Arch, type SwinV2ArchName } from './presets';
export { widenPatchEmbedToRgbNir, rgbNirStateDict, PATCH_EMBED_WEIGHT_KEY } from './rgb-nir';
export { SWIN_V2_PRETRAINED } from './pretrained';
