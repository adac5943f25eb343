import {
  type AdamW,
  type FeatureEncoder,
  Generator,
  type LoadReport,
  type LrSchedule,
  type Module,
  SkySenseError,
  assertInt,
  clipGradNorm,
  defaultRng,
  disposeGradients,
  inferPrefix,
  linearWarmup,
  openCheckpoint,
  polyLr,
  resumeTrainer,
  summarizeList,
  saveTrainer,
  stepLr,
  tf,
  valueAndGrads,
  type Tensor,
} from '@skysense/core-tensor';
import { SwinTransformerV2 } from '@skysense/swin';
import { VisionTransformer } from '@skysense/vit';
import type { FasterRCNN, GtBoxes } from '@skysense/heads';
import type { ChangeDetector, Classifier } from './classifier';
import { finetuneOptimizer } from './layer-decay';
import { type EncoderSpec, FINETUNE_PRESETS, type FinetunePreset, type FinetunePresetName, type FinetuneTask } from './presets';
import type { Segmentor } from './segmentor';
import type { FusionSegmentor } from './fusion-segmentor';
import { getTask } from './task';
import { SkySense, SkySenseEncoder, type SkySenseInputs } from '../skysense';
import { batchImages } from './tasks';

/** Learning-rate policy after the warm-up (mmcv's `poly` or `step`). */
export type FinetuneSchedule = { policy: 'poly'; power?: number; minLr?: number } | { policy: 'step'; steps: number[]; gamma?: number };

/** Options of a {@link Finetuner}; unset recipe values come from the preset. */
export interface FinetuneOptions {
  /** `seg`, `cls`, `multilabel` or `change`. Default `seg`. */
  task?: FinetuneTask;
  /** Default: the task's default preset (its task object's `defaultPreset`). */
  preset?: FinetunePresetName;
  numClasses: number;
  /** Total optimizer steps (the schedule's length). */
  steps: number;
  /** Image bands. Default: the encoder preset's (3 for HR, 10 for S2). */
  inChannels?: number;
  lr?: number;
  weightDecay?: number;
  /** 1 = no layer-wise decay. */
  layerDecayRate?: number;
  warmupIters?: number;
  warmupRatio?: number;
  /** Default poly, power 1, min 0 (SkySense's). */
  schedule?: FinetuneSchedule;
  /** Keep the encoder frozen (only the heads learn). Default `false`. */
  freezeBackbone?: boolean;
  /** Per-class loss weights (`seg`). */
  classWeight?: number[];
  /** Clip the global gradient norm (none by default, as SkySense's segmentation configs). */
  clipGrad?: number;
  /** Seed of the initial weights and of the dropout / drop-path masks. Default 0. */
  seed?: number;
}

/** What one training step reports. */
export interface FinetuneStepMetrics {
  step: number;
  loss: number;
  /** Named loss terms (`decode`, `aux` for segmentation). */
  terms: Record<string, number>;
  /** Learning rate of the head (the base rate). */
  lr: number;
}

/** A training batch: `images` (both dates for change detection: `[A, B]`) and `targets`. */
export interface FinetuneBatch {
  /** `[B, C, H, W]` normalised; for `change` the two dates; for multi-modal tasks the SkySense inputs. */
  images: Tensor | [Tensor, Tensor] | SkySenseInputs;
  /** int32 `[B, H, W]` (seg, change), int32 `[B]` (cls), float `[B, classes]` of 0/1 (multilabel), int32 `[B]` boxes per image (det). */
  targets: Tensor;
  /** Per image its gt boxes (det). */
  boxes?: readonly GtBoxes[];
  /** Seed of the batch's own random choices (det: the anchors and proposals sampled for the loss). */
  seed?: number;
}

/** The models the finetuner trains. */
export type FinetuneModel = Segmentor | Classifier | Classifier<SkySenseInputs> | ChangeDetector | FasterRCNN | FusionSegmentor;

const FORMAT = 'skysense-finetune-1';

/** Builds the encoder of a preset (seeded through the default generator); `inChannels` applies to a single-modality encoder. */
export function buildEncoder(spec: EncoderSpec, inChannels?: number): FeatureEncoder<never> {
  if ('skysense' in spec) return new SkySenseEncoder(new SkySense(spec.skysense), spec.geoContext ?? false);
  return 'swin' in spec
    ? new SwinTransformerV2({ ...spec.swin, ...(inChannels ? { inChannels } : {}) })
    : new VisionTransformer({ ...spec.vit, ...(inChannels ? { inChannels } : {}) });
}

/** The preset of a name, checked against the task. */
export function finetunePreset(name: FinetunePresetName, task: FinetuneTask): FinetunePreset {
  const p = FINETUNE_PRESETS[name];
  if (!p) throw new SkySenseError('E_ARG', `preset: expected one of ${Object.keys(FINETUNE_PRESETS).join(', ')}, got '${String(name)}'`);
  const want = getTask(task).presetKind;
  if (p.task !== want)
    throw new SkySenseError(
      'E_ARG',
      `preset '${name}' is a ${p.task} model, task '${task}' needs a ${want} preset (${Object.entries(FINETUNE_PRESETS)
        .filter(([, v]) => v.task === want)
        .map(([k]) => k)
        .join(', ')})`,
    );
  return p;
}

/** Builds the model of a task and preset: the preset's encoder under the task's heads (e.g. UperNet, a (multi-label) classifier, a Siamese change detector). */
export function buildFinetuneModel(
  task: FinetuneTask,
  preset: FinetunePresetName,
  numClasses: number,
  options: { inChannels?: number; classWeight?: number[] } = {},
): FinetuneModel {
  const p = finetunePreset(preset, task);
  assertInt('numClasses', numClasses, 1);
  return getTask(task).buildModel(buildEncoder(p.encoder, options.inChannels), p, numClasses, options);
}

/**
 * Fine-tunes a downstream model with SkySense's recipe: AdamW with layer-wise decay of the encoder,
 * poly (or step) schedule after a linear warm-up; segmentation adds the auxiliary loss (0.4).
 * `save` / `resume` continue a run exactly (weights, optimizer moments, RNG, step).
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { Finetuner } from '@skysense/skysense';
 * await initBackend();
 * const trainer = new Finetuner({ task: 'seg', preset: 'upernet-skysense-tiny', numClasses: 6, steps: 300 });
 * const metrics = trainer.trainStep({
 *   images: tf.randomNormal([2, 3, 128, 128]), // normalised crops
 *   targets: tf.randomUniform([2, 128, 128], 0, 6, 'int32'), // class per pixel
 * });
 * console.log(metrics.loss, metrics.lr);
 * ```
 */
export class Finetuner {
  readonly model: FinetuneModel;
  readonly optimizer: AdamW;
  readonly options: FinetuneOptions & { task: FinetuneTask; preset: FinetunePresetName };
  /** Steps done. */
  step = 0;
  private readonly schedule: LrSchedule;

  constructor(options: FinetuneOptions) {
    const task = options.task ?? 'seg';
    const preset = options.preset ?? getTask(task).defaultPreset;
    this.options = { ...options, task, preset };
    const recipe = finetunePreset(preset, task).train;
    assertInt('steps', options.steps, 1);
    defaultRng().setState(new Generator(options.seed ?? 0).getState());
    this.model = buildFinetuneModel(task, preset, options.numClasses, options);
    if (options.freezeBackbone) this.model.backbone.freeze();
    this.optimizer = finetuneOptimizer(this.model, {
      lr: options.lr ?? recipe.lr,
      weightDecay: options.weightDecay ?? recipe.weightDecay,
      layerDecayRate: options.layerDecayRate ?? recipe.layerDecayRate,
    }).optimizer;
    const s = options.schedule ?? { policy: 'poly' };
    const after =
      s.policy === 'step'
        ? stepLr({ steps: s.steps, gamma: s.gamma })
        : polyLr({ maxIters: options.steps, power: s.power ?? 1, minLr: s.minLr ?? 0 });
    this.schedule = linearWarmup(after, {
      iters: Math.min(options.warmupIters ?? recipe.warmupIters, options.steps),
      ratio: options.warmupRatio ?? recipe.warmupRatio,
    });
  }

  /**
   * Initialises the encoder from a pre-trained file: a SkySense pre-training checkpoint or teacher
   * (`teacher.backbone_gep.*` / `backbone_gep.*` for Swin, `backbone_s2.*` / `backbone_s1.*` for a ViT),
   * a released / mmseg file (`backbone.*`) or a bare state dict. Output norms may be absent.
   */
  loadEncoder(file: string, log?: (text: string) => void): LoadReport {
    const ckpt = openCheckpoint(file);
    try {
      const prefixes = [
        'teacher.backbone_gep.',
        'backbone_gep.',
        'teacher.backbone_s2.',
        'backbone_s2.',
        'teacher.backbone_s1.',
        'backbone_s1.',
        'backbone.',
        'teacher.',
        '',
      ];
      const enc = this.model.backbone;
      const prefix = inferPrefix(ckpt.keys(), enc.stateShapes().keys(), prefixes);
      const report = enc.loadStateDict(ckpt, { prefix });
      log?.(
        `encoder: ${report.loaded.length} tensors from ${file}${prefix ? ` (prefix '${prefix}')` : ''}${report.missing.length ? `; kept initial values for ${report.missing.length} tensor(s): ${summarizeList(report.missing, 5, 'the load report lists them all')}` : ''}`,
      );
      return report;
    } finally {
      ckpt.close();
    }
  }

  /**
   * One optimizer step on a batch.
   * @throws SkySenseError `E_ARG` for non-finite images, `E_NONFINITE` for a non-finite loss (nothing is updated either way).
   */
  trainStep(batch: FinetuneBatch): FinetuneStepMetrics {
    if (this.step >= this.options.steps) throw new SkySenseError('E_ARG', `trainStep: all ${this.options.steps} steps are done`);
    const images = batchImages(batch.images);
    images.forEach((x, i) => {
      if (!(tf.tidy(() => tf.all(tf.isFinite(x)).dataSync()[0]) as number))
        throw new SkySenseError(
          'E_ARG',
          `trainStep images${images.length > 1 ? `[${i}]` : ''}: contains NaN or infinite values (step ${this.step + 1}; nothing was updated)`,
        );
    });
    this.model.train();
    if (this.options.freezeBackbone) this.model.backbone.eval();
    this.optimizer.applySchedule(this.schedule, this.step);
    const terms: Record<string, number> = {};
    const { value, grads } = valueAndGrads(this.model, () => {
      const l = getTask(this.options.task).losses(this.model, batch);
      for (const [k, t] of Object.entries(l)) if (k !== 'loss') terms[k] = t.dataSync()[0]!;
      return l.loss as tf.Scalar;
    });
    const loss = value.dataSync()[0]!;
    value.dispose();
    if (!Number.isFinite(loss)) {
      disposeGradients(grads);
      throw new SkySenseError(
        'E_NONFINITE',
        `step ${this.step + 1}: the loss is ${loss}; nothing was updated (lower the learning rate or check the inputs)`,
      );
    }
    const clipped = this.options.clipGrad ? clipGradNorm(grads, this.options.clipGrad).grads : grads;
    this.optimizer.step(clipped);
    disposeGradients(clipped);
    this.step += 1;
    return { step: this.step, loss, terms, lr: Math.max(...this.optimizer.groups.map((g) => g.lr)) };
  }

  /** The parts of a checkpoint (see `saveTrainer`): the model. */
  checkpointModules(): Record<string, Module> {
    return { model: this.model };
  }

  /** Everything a resume needs, in one safetensors file written atomically. */
  save(file: string): void {
    saveTrainer(file, FORMAT, this);
  }

  /** Continues a run saved by {@link Finetuner.save} exactly where it stopped; `steps` extends (or shortens) its total. */
  static resume(file: string, steps?: number): Finetuner {
    return resumeTrainer(file, FORMAT, 'SkySense fine-tuning', (o: FinetuneOptions) => new Finetuner(o), steps);
  }

  /** Frees the model and optimizer state. */
  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}
