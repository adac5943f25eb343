import type { SwinTransformerV2Options } from '@skysense/swin';
import { SWIN_V2_PRESETS } from '@skysense/swin';
import { SKYSENSE_PRESETS } from '../presets';

/** A segmentation model and its training recipe, as plain data. */
export interface SegmentorPreset {
  /** The HR encoder (all four stage outputs). */
  backbone: SwinTransformerV2Options;
  /** UPerHead width and pool scales. */
  decodeHead: { channels: number; poolScales: number[] };
  /** Auxiliary FCNHead on stage `inIndex`. */
  auxiliaryHead: { inIndex: number; channels: number };
  /** Recipe defaults: AdamW, layer decay, poly schedule with linear warm-up. */
  train: { lr: number; weightDecay: number; layerDecayRate: number; warmupIters: number; warmupRatio: number; crop: number };
}

/** Preset names. */
export type SegmentorPresetName = 'upernet-skysense-hr' | 'upernet-skysense-tiny';

/**
 * Segmentation presets.
 * - `upernet-skysense-hr`: SkySense's iSAID config (ARCH-SPEC §6): Swin V2-H, UPerHead 512 wide,
 *   FCN auxiliary head on stage 2 (256 wide, weight 0.4), AdamW 6e-5 / wd 0.01, layer decay 0.9,
 *   poly with a 1500-iteration linear warm-up from 1e-6, 512 px crops.
 * - `upernet-skysense-tiny`: the HR encoder of the `skysense-tiny` preset (so a tiny pre-training
 *   checkpoint initialises it) with a 32-wide UPerHead — small enough to train on a CPU in minutes.
 */
export const SEGMENTOR_PRESETS: Readonly<Record<SegmentorPresetName, SegmentorPreset>> = {
  'upernet-skysense-hr': {
    backbone: SWIN_V2_PRESETS['skysense-hr'],
    decodeHead: { channels: 512, poolScales: [1, 2, 3, 6] },
    auxiliaryHead: { inIndex: 2, channels: 256 },
    train: { lr: 6e-5, weightDecay: 0.01, layerDecayRate: 0.9, warmupIters: 1500, warmupRatio: 1e-6, crop: 512 },
  },
  'upernet-skysense-tiny': {
    backbone: { ...SKYSENSE_PRESETS['skysense-tiny'].hr, outIndices: [0, 1, 2, 3], dropPathRate: 0.1 },
    decodeHead: { channels: 32, poolScales: [1, 2, 3, 6] },
    auxiliaryHead: { inIndex: 2, channels: 16 },
    train: { lr: 1e-3, weightDecay: 0.01, layerDecayRate: 0.9, warmupIters: 20, warmupRatio: 1e-3, crop: 128 },
  },
};
