import { join } from 'node:path';
import { SkySenseError, cacheDir, shapeOnly, type Module, type PretrainedConfig, type PretrainedOptions } from '@skysense/core-tensor';
import { SWIN_V2_PRESETS, SWIN_V2_PRETRAINED, SwinTransformerV2, type SwinV2PresetName } from '@skysense/swin';
import { VIT_PRETRAINED, VisionTransformer } from '@skysense/vit';
import { MultiModalFusion } from '@skysense/temporal-fusion';
import { SkySense } from './skysense';
import { SKYSENSE_PRESETS, type SkySensePresetName } from './presets';
import { buildFinetuneModel } from './finetune/finetuner';
import { FINETUNE_PRESETS, type FinetunePresetName } from './finetune/presets';
import { listTasks, getTask } from './finetune/task';

/** Options of {@link createModel}; only the downstream (`finetune`) models read them. */
export interface CreateModelOptions {
  /** Classes of a downstream model's head. Default: the preset's dataset's (16 for iSAID's `upernet-skysense-hr`), else 2. */
  numClasses?: number;
  /** Input bands of a downstream model's encoder. Default: the preset's. */
  inChannels?: number;
}

/** One entry of the model registry. */
export interface ModelEntry {
  /** What the name builds, in one line. */
  describe: string;
  /** `skysense` (the assembled model), `encoder` (one part of it or a Swin V2 arch) or `finetune` (an encoder with task heads). */
  kind: 'skysense' | 'encoder' | 'finetune';
  build: (options: CreateModelOptions) => Module;
}

/** The downstream task whose preset kind matches a fine-tuning preset (`cls` presets build the single-label classifier). */
const taskOf = (preset: FinetunePresetName) => listTasks().find((t) => getTask(t).presetKind === FINETUNE_PRESETS[preset].task)!;
const PRESET_CLASSES: Partial<Record<FinetunePresetName, number>> = { 'upernet-skysense-hr': 16, 'faster-rcnn-skysense-hr': 20 };

const ENTRIES: Record<string, ModelEntry> = {
  ...Object.fromEntries(
    (Object.keys(SKYSENSE_PRESETS) as SkySensePresetName[]).map((n) => [
      n,
      {
        kind: 'skysense',
        describe:
          n === 'skysense-2b' ? 'the full SkySense model incl. the prototype bank (paper sizes)' : 'SkySense at toy widths (tests, demo)',
        build: () => SkySense.fromPreset(n),
      },
    ]),
  ),
  'skysense-hr': {
    kind: 'encoder',
    describe: "the HR encoder as SkySense's downstream configs build it (Swin V2-H, window 8, all four stage outputs)",
    build: () => SwinTransformerV2.fromPreset('skysense-hr'),
  },
  'skysense-hr-released': {
    kind: 'encoder',
    describe: 'the HR encoder exactly as skysense_model_backbone_hr.pth holds it (Swin V2-H, out_indices [3])',
    build: () => SwinTransformerV2.fromPreset('huge'),
  },
  'skysense-s2': {
    kind: 'encoder',
    describe: 'the Sentinel-2 encoder (ViT-L, 10 bands)',
    build: () => VisionTransformer.fromPreset('skysense-s2'),
  },
  'skysense-s1': {
    kind: 'encoder',
    describe: 'the Sentinel-1 encoder (ViT-L, VV+VH)',
    build: () => VisionTransformer.fromPreset('skysense-s1'),
  },
  'skysense-fusion': { kind: 'encoder', describe: 'up-heads, ctpe and the fusion transformer', build: () => new MultiModalFusion() },
  ...Object.fromEntries(
    (Object.keys(SWIN_V2_PRESETS) as SwinV2PresetName[]).map((n) => [
      `swin-${n}`,
      {
        kind: 'encoder',
        describe: n === 'skysense-hr' ? 'deprecated name of skysense-hr' : `Swin V2 ${n} (mmcls arch)`,
        build: () => SwinTransformerV2.fromPreset(n),
      },
    ]),
  ),
  ...Object.fromEntries(
    (Object.keys(FINETUNE_PRESETS) as FinetunePresetName[]).map((n) => [
      n,
      {
        kind: 'finetune',
        describe: `${FINETUNE_PRESETS[n].task} model for fine-tuning (${taskOf(n)} task)`,
        build: (o: CreateModelOptions) =>
          buildFinetuneModel(taskOf(n), n, o.numClasses ?? PRESET_CLASSES[n] ?? 2, { inChannels: o.inChannels }),
      },
    ]),
  ),
};

/** Every model name of every package, with what it builds: the one registry behind {@link createModel} and `skysense info`. */
export const MODEL_REGISTRY: Readonly<Record<string, ModelEntry>> = ENTRIES;

/**
 * The registered model names (optionally of one kind), in registry order.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { listModels } from '@skysense/skysense';
 * await initBackend();
 * console.log(listModels()); // every name createModel and the CLI accept
 * console.log(listModels('finetune')); // only the task models (segmentation, classification, change)
 * ```
 */
export function listModels(kind?: ModelEntry['kind']): string[] {
  return Object.entries(MODEL_REGISTRY)
    .filter(([, e]) => !kind || e.kind === kind)
    .map(([n]) => n);
}

/**
 * Builds a model by name (timm's `create_model`): the assembled SkySense presets, its encoders,
 * the Swin V2 archs and the downstream presets. Wrap in `shapeOnly(() => createModel(name))` to
 * inspect a large one without allocating it.
 * @throws SkySenseError `E_ARG` for an unknown name (listing the known ones).
 * @example
 * ```ts
 * import { initBackend, shapeOnly } from '@skysense/core-tensor';
 * import { createModel, listModels } from '@skysense/skysense';
 * await initBackend();
 * console.log(listModels()); // skysense-2b, skysense-tiny, skysense-hr, …
 * const big = shapeOnly(() => createModel('skysense-2b')); // shapes only, no memory
 * console.log(big.parameterCount());
 * const seg = createModel('upernet-skysense-tiny', { numClasses: 6 });
 * ```
 */
export function createModel(name: string, options: CreateModelOptions = {}): Module {
  const entry = MODEL_REGISTRY[name];
  if (!entry)
    throw new SkySenseError('E_ARG', `unknown model '${name}'; expected one of ${listModels().join(', ')} (skysense info --list)`);
  return entry.build(options);
}

/** @deprecated use {@link MODEL_REGISTRY}, {@link listModels} and {@link createModel}. */
export const MODEL_PRESETS = MODEL_REGISTRY;

/** What `skysense info --json` prints: counts that add up (`total = parameters + bufferValues`, each the sum over `modules`). */
export interface ModelInfo {
  preset: string;
  /** Learnable parameters. */
  parameters: number;
  /** Values held in buffers (the prototype bank, running statistics): loaded from checkpoints, not trained by gradients. */
  bufferValues: number;
  /** `parameters + bufferValues`. */
  total: number;
  /** Per part (top-level key prefix). */
  modules: Record<string, { parameters: number; bufferValues: number }>;
  /** Every tensor in registration order; `buffer: true` for buffers. */
  tensors: { name: string; shape: number[]; buffer?: true }[];
}

/**
 * Shape-only description of a registered model. @throws SkySenseError `E_ARG` for an unknown name.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { modelInfo } from '@skysense/skysense';
 * await initBackend();
 * // parameter counts per part from shapes alone (no memory): what `skysense info` prints
 * const info = modelInfo('skysense-2b');
 * console.log(info.parameters, Object.keys(info.modules));
 * ```
 */
export function modelInfo(preset: string): ModelInfo {
  const model = shapeOnly(() => createModel(preset));
  const learnable = new Set(model.namedParameters().map(([n]) => n));
  const modules: ModelInfo['modules'] = {};
  let [parameters, bufferValues] = [0, 0];
  const tensors = [...model.stateShapes()].map(([name, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const part = (modules[name.split('.')[0]!] ??= { parameters: 0, bufferValues: 0 });
    if (learnable.has(name)) {
      part.parameters += n;
      parameters += n;
      return { name, shape: [...shape] };
    }
    part.bufferValues += n;
    bufferValues += n;
    return { name, shape: [...shape], buffer: true as const };
  });
  return { preset, parameters, bufferValues, total: parameters + bufferValues, modules, tensors };
}

/** Each registered model with released weights: its config and how it loads them. */
const PRETRAINED_LOADERS: Record<string, { config: PretrainedConfig; load: (o: PretrainedOptions) => Promise<Module> }> = {
  'skysense-hr': { config: SWIN_V2_PRETRAINED['skysense-hr']!, load: (o) => SwinTransformerV2.fromPretrained('skysense-hr', o) },
  'skysense-s2': { config: VIT_PRETRAINED['skysense-s2'], load: (o) => VisionTransformer.fromPretrained('skysense-s2', o) },
  'skysense-s1': { config: VIT_PRETRAINED['skysense-s1'], load: (o) => VisionTransformer.fromPretrained('skysense-s1', o) },
};

/**
 * The registered models that have released weights, with their configs (file, prefix, source,
 * licence, input bands, units and normalisation): the encoders of the official release. The full
 * model loads its six files with `SkySense.loadReleased` (`skysense embed --weights-dir`).
 */
export const PRETRAINED: Readonly<Record<string, PretrainedConfig>> = Object.fromEntries(
  Object.entries(PRETRAINED_LOADERS).map(([name, e]) => [name, e.config]),
);

function pretrainedEntry(name: string) {
  const entry = PRETRAINED_LOADERS[name];
  if (!entry) throw new SkySenseError('E_ARG', `no released weights for '${name}'; these have some: ${Object.keys(PRETRAINED).join(', ')}`);
  return entry;
}

/**
 * Builds a registered model and loads its released weights (timm's `pretrained=True`): from
 * `options.weights`, else the cache (`SKYSENSE_CACHE`, `~/.cache/skysense`), else downloaded from
 * `options.url` with a checksum, resumable, atomically.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { fromPretrained } from '@skysense/skysense';
 * await initBackend();
 * const s2 = await fromPretrained('skysense-s2', { weights: 'skysense_model_backbone_s2.pth' });
 * ```
 * @throws SkySenseError `E_ARG` for a name without released weights, `E_WEIGHTS` when the file is neither given, cached nor downloadable.
 */
export function fromPretrained(name: string, options: PretrainedOptions = {}): Promise<Module> {
  return pretrainedEntry(name).load(options);
}

/** Where a pretrained model's files are (or would be) cached. */
export function pretrainedPaths(name: string, dir = cacheDir()): string[] {
  return pretrainedEntry(name).config.files.map((f) => join(dir, f.name));
}

export type { SkySensePresetName };
export { SKYSENSE_PRESETS };
