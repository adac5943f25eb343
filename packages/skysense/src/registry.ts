import { SkySenseError, shapeOnly, type Module } from '@skysense/core-tensor';
import { SWIN_V2_PRESETS, SwinTransformerV2, type SwinV2PresetName } from '@skysense/swin';
import { VisionTransformer } from '@skysense/vit';
import { MultiModalFusion } from '@skysense/temporal-fusion';
import { SkySense } from './skysense';
import { SKYSENSE_PRESETS, type SkySensePresetName } from './presets';

/** Every model preset `skysense info` knows, with a one-line description. */
export const MODEL_PRESETS: Readonly<Record<string, { describe: string; build: () => Module }>> = {
  'skysense-2b': { describe: 'the full SkySense model incl. the prototype bank (paper sizes)', build: () => SkySense.fromPreset('skysense-2b') },
  'skysense-tiny': { describe: 'SkySense at toy widths (tests, demo)', build: () => SkySense.fromPreset('skysense-tiny') },
  'skysense-hr': { describe: 'the HR encoder as in skysense_model_backbone_hr.pth (Swin V2-H, out_indices [3])', build: () => SwinTransformerV2.fromPreset('huge') },
  'skysense-s2': { describe: 'the Sentinel-2 encoder (ViT-L, 10 bands)', build: () => VisionTransformer.fromPreset('skysense-s2') },
  'skysense-s1': { describe: 'the Sentinel-1 encoder (ViT-L, VV+VH)', build: () => VisionTransformer.fromPreset('skysense-s1') },
  'skysense-fusion': { describe: 'up-heads, ctpe and the fusion transformer', build: () => new MultiModalFusion() },
  ...Object.fromEntries(
    (Object.keys(SWIN_V2_PRESETS) as SwinV2PresetName[]).map((n) => [`swin-${n}`, { describe: `Swin V2 ${n} (mmcls arch)`, build: () => SwinTransformerV2.fromPreset(n) }]),
  ),
};

/** What `skysense info --json` prints. */
export interface ModelInfo {
  preset: string;
  parameters: number;
  /** Per part (top-level key prefix): parameters, and buffer values where there are some. */
  modules: Record<string, number>;
  tensors: { name: string; shape: number[] }[];
}

/** Shape-only description of a preset. @throws SkySenseError `E_ARG` for an unknown name. */
export function modelInfo(preset: string): ModelInfo {
  const entry = MODEL_PRESETS[preset];
  if (!entry) throw new SkySenseError('E_ARG', `unknown preset '${preset}'; see 'skysense info --list'`);
  const model = shapeOnly(entry.build);
  const modules: Record<string, number> = {};
  const tensors = [...model.stateShapes()].map(([name, shape]) => {
    const part = name.split('.')[0]!;
    modules[part] = (modules[part] ?? 0) + shape.reduce((a, b) => a * b, 1);
    return { name, shape: [...shape] };
  });
  return { preset, parameters: model.parameterCount(), modules, tensors };
}

export type { SkySensePresetName };
export { SKYSENSE_PRESETS };
