import { SENSOR_NORMALIZATION, SENTINEL1_BANDS, SENTINEL2_BANDS, SKYSENSE_RELEASE, type PretrainedConfig } from '@skysense/core-tensor';
import type { VitPresetName } from './vision-transformer';

const BIGEARTHNET = 'BigEarthNet v1 band statistics (SkySense publishes no Sentinel statistics)';

/**
 * The released checkpoints a ViT preset loads with `VisionTransformer.fromPretrained`, with what
 * belongs to them: file, key prefix, source, licence and the input they expect (64 px frames).
 */
export const VIT_PRETRAINED: Readonly<Record<VitPresetName, PretrainedConfig>> = {
  'skysense-s2': {
    files: [{ name: 'skysense_model_backbone_s2.pth', prefix: 'backbone.' }],
    ...SKYSENSE_RELEASE,
    input: {
      bands: SENTINEL2_BANDS,
      units: 'Sentinel-2 L2A surface reflectance ×10000',
      mean: SENSOR_NORMALIZATION.s2.mean,
      std: SENSOR_NORMALIZATION.s2.std,
      size: 64,
      normalizationSource: BIGEARTHNET,
    },
  },
  'skysense-s1': {
    files: [{ name: 'skysense_model_backbone_s1.pth', prefix: 'backbone.' }],
    ...SKYSENSE_RELEASE,
    input: {
      bands: SENTINEL1_BANDS,
      units: 'Sentinel-1 GRD backscatter in dB',
      mean: SENSOR_NORMALIZATION.s1.mean,
      std: SENSOR_NORMALIZATION.s1.std,
      size: 64,
      normalizationSource: BIGEARTHNET,
    },
  },
};
