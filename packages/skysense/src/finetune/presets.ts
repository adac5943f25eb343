import { SWIN_V2_PRESETS, type SwinTransformerV2Options } from '@skysense/swin';
import { VIT_PRESETS, type VisionTransformerOptions } from '@skysense/vit';
import { SKYSENSE_PRESETS, type SkySenseConfig } from '../presets';

/**
 * A fine-tuning task's name: the built-in `seg`, `cls`, `multilabel` (the `cls` presets with a
 * sigmoid head) and `change`, or any task added with `registerTask`.
 */
export type FinetuneTask = 'seg' | 'cls' | 'multilabel' | 'change' | 'det' | (string & {});

/**
 * The encoder of a preset: a Swin V2 (HR imagery), a ViT (Sentinel-2 / Sentinel-1), or the whole
 * multi-modal SkySense model (its encoders, fusion and prototype bank) whose output is the fused map,
 * with its geo-context half when `geoContext` (F_fus).
 */
export type EncoderSpec =
  { swin: SwinTransformerV2Options } | { vit: VisionTransformerOptions } | { skysense: SkySenseConfig; geoContext?: boolean };

/** The recipe defaults of a preset: AdamW, layer-wise decay, poly schedule after a linear warm-up. */
export interface RecipeDefaults {
  lr: number;
  weightDecay: number;
  layerDecayRate: number;
  warmupIters: number;
  warmupRatio: number;
  /** Training crop side in pixels (also the sliding-window size). */
  crop: number;
}

/** A downstream model and its training recipe, as plain data. */
export interface FinetunePreset {
  /** `seg` (UperNet), `cls` (GAP + linear head; also multi-label), `change` (Siamese UperNet), `det` (Faster R-CNN + FPN) or `mm-cls` (GAP + linear head on the fused map). */
  task: 'seg' | 'cls' | 'change' | 'det' | 'mm-cls' | 'temporal-cls' | 'mm-seg';
  encoder: EncoderSpec;
  /** UPerHead width and pool scales (`seg`, `change`). */
  decodeHead?: { channels: number; poolScales: number[] };
  /** Auxiliary FCNHead on stage `inIndex` (`seg`). */
  auxiliaryHead?: { inIndex: number; channels: number };
  /** FCNHead width where a multi-modal segmentation preset decodes with an FCN instead of UperNet (`mm-seg`). */
  fcnHead?: { channels: number };
  /** mmseg `MultiLevelNeck` between a ViT and the heads (`seg` on Sentinel-2): output width and rescale per level. */
  neck?: { outChannels: number; scales: number[] };
  /** FPN width, box-head width and anchor scales (default [8]: 32 px anchors on the finest level) (`det`). */
  detector?: { neckChannels: number; fcOutChannels: number; anchorScales?: number[] };
  train: RecipeDefaults;
}

const TINY_HR: SwinTransformerV2Options = { ...SKYSENSE_PRESETS['skysense-tiny'].hr, outIndices: [0, 1, 2, 3], dropPathRate: 0.1 };
const TINY_S2: VisionTransformerOptions = { ...SKYSENSE_PRESETS['skysense-tiny'].s2, dropPathRate: 0.1 };
const UPER_TINY = { channels: 32, poolScales: [1, 2, 3, 6] };
const TINY_RECIPE: RecipeDefaults = { lr: 1e-3, weightDecay: 0.01, layerDecayRate: 0.9, warmupIters: 20, warmupRatio: 1e-3, crop: 128 };

/** Preset names. */
export type FinetunePresetName =
  | 'upernet-skysense-hr'
  | 'upernet-skysense-tiny'
  | 'linear-skysense-hr'
  | 'linear-skysense-tiny'
  | 'linear-skysense-s2'
  | 'linear-skysense-tiny-s2'
  | 'upernet-cd-skysense-hr'
  | 'upernet-cd-skysense-tiny'
  | 'faster-rcnn-skysense-hr'
  | 'faster-rcnn-skysense-tiny'
  | 'linear-skysense-mm'
  | 'linear-skysense-tiny-mm'
  | 'linear-skysense-temporal'
  | 'linear-skysense-tiny-temporal'
  | 'upernet-skysense-s2'
  | 'upernet-skysense-tiny-s2'
  | 'upernet-skysense-mm'
  | 'upernet-skysense-tiny-mm'
  | 'fcn-skysense-tiny-mm';

/**
 * Fine-tuning presets. The `*-skysense-hr` / `-s2` ones use the released encoders' architectures;
 * the `*-tiny*` ones the `skysense-tiny` encoders (so a tiny `skysense pretrain` teacher initialises
 * them), small enough to train on a CPU in minutes.
 * - `upernet-skysense-hr`: SkySense's iSAID config (architecture guide §7): Swin V2-H, UPerHead 512 wide, FCN
 *   auxiliary head on stage 2 (256 wide, weight 0.4), AdamW 6e-5 / wd 0.01, layer decay 0.9, poly
 *   after a 1500-iteration linear warm-up from 1e-6, 512 px crops.
 * - `linear-*`: scene classification (mmcls convention, architecture guide §7): GAP + `head.fc`; the paper
 *   publishes no recipe, so AdamW 1e-4 / wd 0.05 / layer decay 0.9 / 100 warm-up iterations (our choice).
 * - `upernet-cd-*`: change detection: the shared encoder on both dates, |A − B| per level, UPerHead.
 * - `faster-rcnn-skysense-hr`: SkySense's DIOR config (architecture guide §6.4): Swin V2-H with all
 *   four stage outputs, FPN 256 wide with 5 levels, RPN, `Shared2FCBBoxHead` 1024 wide; the paper
 *   publishes no recipe, so AdamW 1e-4 / wd 0.05 / layer decay 0.9, 800 px crops (DIOR's size; our choice).
 * - `faster-rcnn-skysense-tiny`: the tiny encoder under the same heads at 32 / 64 wide, anchors of
 *   half the size (scale 4: 16 px on the finest level, for small objects like the sample buildings,
 *   median 28 px), 256 px crops.
 * - `linear-skysense-mm`: BigEarthNet-MM (paper Tab. 4): the S2 and S1 ViT-L encoders, fusion and
 *   prototype bank of `skysense-2b` (no HR branch), GAP over F_fus (fused ⊕ geo-context, 2 × 1024) into
 *   a multi-label `head.fc`; AdamW 1e-4 / wd 0.05, no layer-wise decay (it is defined per encoder, not
 *   for the fused model), 100 warm-up iterations, 64 px crops of the 120 px patches (our choices).
 * - `linear-skysense-tiny-mm`: the same on `skysense-tiny`'s Sentinel branches, 32 px crops.
 * - `linear-skysense-temporal`: fMoW-Sentinel style temporal classification: `skysense-2b`'s S2 ViT-L and
 *   fusion over the series' dates (no HR, S1 or geo-context: the series folders carry no location
 *   guarantee), GAP over the fused map into a softmax `head.fc`; recipe as `linear-skysense-mm`.
 * - `linear-skysense-tiny-temporal`: the same on `skysense-tiny`, 32 px crops.
 * - `upernet-skysense-s2`: Sentinel-2 segmentation as SkySense++ (architecture guide §6.5): the S2 ViT-L
 *   with out_indices 5, 11, 17, 23, a `MultiLevelNeck` to 512 at scales 1, 1, 1, 1, UPerHead 512 wide
 *   and the FCN auxiliary head on level 2; recipe as `upernet-skysense-hr`, 128 px crops (our choice).
 * - `upernet-skysense-tiny-s2`: `skysense-tiny`'s S2 ViT (its last layer), a neck to 16 at scales
 *   4, 2, 1, 0.5 (mmseg's ViT base file), UPerHead 32 wide; 32 px crops.
 * - `upernet-skysense-mm`: multi-modal segmentation (paper Tab. 4, Dynamic EarthNet-MM / PASTIS-MM):
 *   the whole `skysense-2b` (HR, S2, S1, fusion, prototype bank), F_fus (2 × 1024) → `MultiLevelNeck`
 *   (scales 4, 2, 1, ½) → UPerHead 512 wide; AdamW 6e-5 / wd 0.01, no layer-wise decay, 1500 warm-up
 *   iterations, 16 Sentinel-pixel crops (512 HR pixels) (our choices: no config is published).
 * - `upernet-skysense-tiny-mm` / `fcn-skysense-tiny-mm`: the same on `skysense-tiny` with a 32-wide
 *   UperNet or FCN head, 4 Sentinel-pixel crops (128 HR pixels, the tiny Swin's smallest input).
 */
export const FINETUNE_PRESETS: Readonly<Record<FinetunePresetName, FinetunePreset>> = {
  'upernet-skysense-hr': {
    task: 'seg',
    encoder: { swin: SWIN_V2_PRESETS['skysense-hr'] },
    decodeHead: { channels: 512, poolScales: [1, 2, 3, 6] },
    auxiliaryHead: { inIndex: 2, channels: 256 },
    train: { lr: 6e-5, weightDecay: 0.01, layerDecayRate: 0.9, warmupIters: 1500, warmupRatio: 1e-6, crop: 512 },
  },
  'upernet-skysense-tiny': {
    task: 'seg',
    encoder: { swin: TINY_HR },
    decodeHead: UPER_TINY,
    auxiliaryHead: { inIndex: 2, channels: 16 },
    train: TINY_RECIPE,
  },
  'linear-skysense-hr': {
    task: 'cls',
    encoder: { swin: { ...SWIN_V2_PRESETS['skysense-hr'], outIndices: [3] } },
    train: { lr: 1e-4, weightDecay: 0.05, layerDecayRate: 0.9, warmupIters: 100, warmupRatio: 1e-3, crop: 256 },
  },
  'linear-skysense-tiny': { task: 'cls', encoder: { swin: { ...TINY_HR, outIndices: [3] } }, train: TINY_RECIPE },
  'linear-skysense-s2': {
    task: 'cls',
    encoder: { vit: VIT_PRESETS['skysense-s2'] },
    train: { lr: 1e-4, weightDecay: 0.05, layerDecayRate: 0.9, warmupIters: 100, warmupRatio: 1e-3, crop: 120 },
  },
  'linear-skysense-tiny-s2': { task: 'cls', encoder: { vit: TINY_S2 }, train: { ...TINY_RECIPE, crop: 120 } },
  'upernet-cd-skysense-hr': {
    task: 'change',
    encoder: { swin: SWIN_V2_PRESETS['skysense-hr'] },
    decodeHead: { channels: 512, poolScales: [1, 2, 3, 6] },
    train: { lr: 6e-5, weightDecay: 0.01, layerDecayRate: 0.9, warmupIters: 1500, warmupRatio: 1e-6, crop: 256 },
  },
  'upernet-cd-skysense-tiny': { task: 'change', encoder: { swin: TINY_HR }, decodeHead: UPER_TINY, train: TINY_RECIPE },
  'faster-rcnn-skysense-hr': {
    task: 'det',
    encoder: { swin: SWIN_V2_PRESETS['skysense-hr'] },
    detector: { neckChannels: 256, fcOutChannels: 1024 },
    train: { lr: 1e-4, weightDecay: 0.05, layerDecayRate: 0.9, warmupIters: 500, warmupRatio: 1e-3, crop: 800 },
  },
  'faster-rcnn-skysense-tiny': {
    task: 'det',
    encoder: { swin: TINY_HR },
    detector: { neckChannels: 32, fcOutChannels: 64, anchorScales: [4] },
    train: { ...TINY_RECIPE, crop: 256 },
  },
  'linear-skysense-mm': {
    task: 'mm-cls',
    encoder: { skysense: { ...SKYSENSE_PRESETS['skysense-2b'], hr: undefined }, geoContext: true },
    train: { lr: 1e-4, weightDecay: 0.05, layerDecayRate: 1, warmupIters: 100, warmupRatio: 1e-3, crop: 64 },
  },
  'linear-skysense-tiny-mm': {
    task: 'mm-cls',
    encoder: { skysense: { ...SKYSENSE_PRESETS['skysense-tiny'], hr: undefined }, geoContext: true },
    train: { ...TINY_RECIPE, layerDecayRate: 1, crop: 32 },
  },
  'upernet-skysense-s2': {
    task: 'seg',
    encoder: { vit: { ...VIT_PRESETS['skysense-s2'], outIndices: [5, 11, 17, 23] } },
    neck: { outChannels: 512, scales: [1, 1, 1, 1] },
    decodeHead: { channels: 512, poolScales: [1, 2, 3, 6] },
    auxiliaryHead: { inIndex: 2, channels: 256 },
    train: { lr: 6e-5, weightDecay: 0.01, layerDecayRate: 0.9, warmupIters: 1500, warmupRatio: 1e-6, crop: 128 },
  },
  'upernet-skysense-tiny-s2': {
    task: 'seg',
    encoder: { vit: TINY_S2 },
    neck: { outChannels: 16, scales: [4, 2, 1, 0.5] },
    decodeHead: UPER_TINY,
    auxiliaryHead: { inIndex: 2, channels: 16 },
    train: { ...TINY_RECIPE, crop: 32 },
  },
  'upernet-skysense-mm': {
    task: 'mm-seg',
    encoder: { skysense: SKYSENSE_PRESETS['skysense-2b'], geoContext: true },
    decodeHead: { channels: 512, poolScales: [1, 2, 3, 6] },
    train: { lr: 6e-5, weightDecay: 0.01, layerDecayRate: 1, warmupIters: 1500, warmupRatio: 1e-6, crop: 16 },
  },
  'upernet-skysense-tiny-mm': {
    task: 'mm-seg',
    encoder: { skysense: SKYSENSE_PRESETS['skysense-tiny'], geoContext: true },
    decodeHead: UPER_TINY,
    train: { ...TINY_RECIPE, layerDecayRate: 1, crop: 4 },
  },
  'fcn-skysense-tiny-mm': {
    task: 'mm-seg',
    encoder: { skysense: SKYSENSE_PRESETS['skysense-tiny'], geoContext: true },
    fcnHead: { channels: 32 },
    train: { ...TINY_RECIPE, layerDecayRate: 1, crop: 4 },
  },
  'linear-skysense-temporal': {
    task: 'temporal-cls',
    encoder: { skysense: { ...SKYSENSE_PRESETS['skysense-2b'], hr: undefined, s1: undefined, geo: undefined } },
    train: { lr: 1e-4, weightDecay: 0.05, layerDecayRate: 1, warmupIters: 100, warmupRatio: 1e-3, crop: 64 },
  },
  'linear-skysense-tiny-temporal': {
    task: 'temporal-cls',
    encoder: { skysense: { ...SKYSENSE_PRESETS['skysense-tiny'], hr: undefined, s1: undefined, geo: undefined } },
    train: { ...TINY_RECIPE, layerDecayRate: 1, crop: 32 },
  },
};

/** The default preset of each built-in task. @deprecated use `getTask(name).defaultPreset`. */
export const DEFAULT_PRESETS: Readonly<Record<'seg' | 'cls' | 'multilabel' | 'change', FinetunePresetName>> = {
  seg: 'upernet-skysense-tiny',
  cls: 'linear-skysense-tiny',
  multilabel: 'linear-skysense-tiny-s2',
  change: 'upernet-cd-skysense-tiny',
};
