import { SENSOR_NORMALIZATION, SKYSENSE_RELEASE, type PretrainedConfig } from '@skysense/core-tensor';
import type { SwinV2PresetName } from './swin-transformer-v2';

/**
 * The released checkpoints a Swin V2 preset loads with `SwinTransformerV2.fromPretrained`, with
 * what belongs to them: file, key prefix, source, licence and the input they expect.
 */
export const SWIN_V2_PRETRAINED: Readonly<Partial<Record<SwinV2PresetName, PretrainedConfig>>> = {
  'skysense-hr': {
    files: [{ name: 'skysense_model_backbone_hr.pth', prefix: 'backbone.' }],
    ...SKYSENSE_RELEASE,
    input: {
      bands: ['R', 'G', 'B'],
      units: '0–255 (8-bit RGB; 16-bit imagery divided by 257)',
      mean: SENSOR_NORMALIZATION.hr.mean,
      std: SENSOR_NORMALIZATION.hr.std,
      normalizationSource: "ImageNet statistics, as SkySense's official downstream configs",
    },
  },
};
