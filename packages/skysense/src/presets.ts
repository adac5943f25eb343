import type { SwinTransformerV2Options } from '@skysense/swin';
import type { VisionTransformerOptions } from '@skysense/vit';
import type { MultiModalFusionOptions } from '@skysense/temporal-fusion';
import type { PrototypeBankOptions } from '@skysense/geo-prototypes';

/** How to build each part of a {@link SkySense} model; leave a modality out to build without it. */
export interface SkySenseConfig {
  /** HR encoder (Swin V2); its last stage (after `norm3`) is the HR input of the fusion. */
  hr?: SwinTransformerV2Options;
  /** Sentinel-2 encoder (ViT). */
  s2?: VisionTransformerOptions;
  /** Sentinel-1 encoder (ViT). */
  s1?: VisionTransformerOptions;
  /** Up-heads, calendar encoding and fusion transformer. */
  fusion?: MultiModalFusionOptions;
  /** Geo-context prototype bank; omit for a model without geo-context. */
  geo?: PrototypeBankOptions;
}

/** Preset names. */
export type SkySensePresetName = 'skysense-2b' | 'skysense-tiny';

/**
 * Presets as plain data.
 * - `skysense-2b`: the paper's / released model — Swin V2-H (HR), ViT-L (S2, 10 bands), ViT-L
 *   (S1, VV+VH), up-heads 1024 → 2816 ×4, 24-layer fusion at 1024, a 4096 × 100 × 1024 bank.
 *   Inputs line up as in SkySense++: a 512 px HR tile with 16 × 16 px Sentinel frames.
 * - `skysense-tiny`: the same structure at toy widths, for tests and demos: 128 px HR, 4 × 4 px
 *   Sentinel frames.
 */
export const SKYSENSE_PRESETS: Readonly<Record<SkySensePresetName, SkySenseConfig>> = {
  'skysense-2b': {
    hr: { arch: 'huge', windowSize: 8, outIndices: [3], dropPathRate: 0.2 },
    s2: { inChannels: 10 },
    s1: { inChannels: 2 },
    fusion: {},
    geo: {},
  },
  'skysense-tiny': {
    hr: {
      arch: { embedDims: 8, depths: [2, 2, 2, 2], numHeads: [1, 2, 2, 4], extraNormEveryNBlocks: 2 },
      windowSize: 4,
      outIndices: [3],
      dropPathRate: 0,
    },
    s2: { inChannels: 10, imgSize: 16, embedDims: 16, numLayers: 2, numHeads: 2, dropPathRate: 0 },
    s1: { inChannels: 2, imgSize: 16, embedDims: 16, numLayers: 2, numHeads: 2, dropPathRate: 0 },
    fusion: { vitDims: 16, tokenDims: 64, fusion: { embedDims: 32, numLayers: 2, numHeads: 4, dropPathRate: 0 } },
    geo: { grid: { rows: 8, cols: 8 }, prototypesPerRegion: 10, dims: 32 },
  },
};
