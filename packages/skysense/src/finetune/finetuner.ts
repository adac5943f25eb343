import {
  type AdamW, Generator, type GeneratorState, type LoadReport, type LrSchedule, SkySenseError, assertInt, clipGradNorm, defaultRng, disposeGradients, inferPrefix, linearWarmup, openCheckpoint,
  polyLr, stepLr, tf, valueAndGrads, type Tensor,
} from '@skysense/core-tensor';
import { FCNHead, UPerHead } from '@skysense/heads';
import { SwinTransformerV2 } from '@skysense/swin';
import { openTrainingCheckpoint, saveTrainingCheckpoint } from '../training-checkpoint';
import { finetuneOptimizer } from './layer-decay';
import { SEGMENTOR_PRESETS, type SegmentorPresetName } from './presets';
import { Segmentor } from './segmentor';

/** Learning-rate policy after the warm-up (mmcv's `poly` or `step`). */
export type FinetuneSchedule = { policy: 'poly'; power?: number; minLr?: number } | { policy: 'step'; steps: number[]; gamma?: number };

/** Options of {@link SegmentationFinetuner}; unset recipe values come from the preset. */
export interface SegmentationFinetuneOptions {
  /** Default `upernet-skysense-tiny`. */
  preset?: SegmentorPresetName;
  numClasses: number;
  /** Total optimizer steps (the schedule's length). */
  steps: number;
  /** Image bands. Default 3. */
  inChannels?: number;
  lr?: number;
  weightDecay?: number;
  /** 1 = no layer-wise decay. */
  layerDecayRate?: number;
  warmupIters?: number;
  warmupRatio?: number;
  /** Default poly, power 1, min 0 (SkySense's). */
  schedule?: FinetuneSchedule;
  /** Keep the encoder frozen (linear-probe style: only the heads learn). Default `false`. */
  freezeBackbone?: boolean;
  /** Per-class loss weights. */
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
  decode: number;
  aux: number;
  /** Learning rate of the head (the base rate). */
  lr: number;
}

const FORMAT = 'skysense-finetune-seg-1';

/** Builds the segmentor of a preset (seeded). */
export function buildSegmentor(preset: SegmentorPresetName, numClasses: number, options: { inChannels?: number; classWeight?: number[] } = {}): Segmentor {
  const p = SEGMENTOR_PRESETS[preset];
  if (!p) throw new SkySenseError('E_ARG', `preset: expected one of ${Object.keys(SEGMENTOR_PRESETS).join(', ')}, got '${String(preset)}'`);
  assertInt('numClasses', numClasses, 1);
  const backbone = new SwinTransformerV2({ ...p.backbone, inChannels: options.inChannels ?? 3 });
  const widths = [...backbone.stages].map((s) => s.outChannels);
  return new Segmentor({
    backbone,
    decodeHead: new UPerHead({ inChannels: widths, channels: p.decodeHead.channels, poolScales: p.decodeHead.poolScales, numClasses }),
    auxiliaryHead: new FCNHead({ inChannels: widths[p.auxiliaryHead.inIndex]!, inIndex: p.auxiliaryHead.inIndex, channels: p.auxiliaryHead.channels, numConvs: 1, concatInput: false, numClasses }),
    loss: { classWeight: options.classWeight },
  });
}

/**
 * Fine-tunes a UperNet segmentor (Swin V2 encoder + UPerHead + auxiliary FCNHead) with SkySense's
 * recipe: AdamW with layer-wise decay, poly (or step) schedule after a linear warm-up, auxiliary
 * loss weight 0.4. `save` / `resume` continue a run exactly (weights, optimizer moments, RNGs, step).
 */
export class SegmentationFinetuner {
  readonly model: Segmentor;
  readonly optimizer: AdamW;
  readonly options: SegmentationFinetuneOptions & { preset: SegmentorPresetName };
  /** Steps done. */
  step = 0;
  private readonly schedule: LrSchedule;

  constructor(options: SegmentationFinetuneOptions) {
    const preset = options.preset ?? 'upernet-skysense-tiny';
    this.options = { ...options, preset };
    const recipe = SEGMENTOR_PRESETS[preset]?.train;
    assertInt('steps', options.steps, 1);
    defaultRng().setState(new Generator(options.seed ?? 0).getState());
    this.model = buildSegmentor(preset, options.numClasses, options);
    if (options.freezeBackbone) this.model.backbone.freeze();
    this.optimizer = finetuneOptimizer(this.model, { lr: options.lr ?? recipe!.lr, weightDecay: options.weightDecay ?? recipe!.weightDecay, layerDecayRate: options.layerDecayRate ?? recipe!.layerDecayRate }).optimizer;
    const s = options.schedule ?? { policy: 'poly' };
    const after = s.policy === 'step' ? stepLr({ steps: s.steps, gamma: s.gamma }) : polyLr({ maxIters: options.steps, power: s.power ?? 1, minLr: s.minLr ?? 0 });
    this.schedule = linearWarmup(after, { iters: Math.min(options.warmupIters ?? recipe!.warmupIters, options.steps), ratio: options.warmupRatio ?? recipe!.warmupRatio });
  }

  /**
   * Initialises the encoder from a pre-trained file: a SkySense pre-training checkpoint or teacher
   * (`teacher.backbone_gep.*`, `backbone_gep.*`), a released / mmseg file (`backbone.*`) or a bare
   * Swin state dict. The output norms may be absent (they keep their initial values).
   */
  loadEncoder(file: string, log?: (text: string) => void): LoadReport {
    const ckpt = openCheckpoint(file);
    try {
      const prefix = inferPrefix(ckpt.keys(), this.model.backbone.stateShapes().keys(), ['teacher.backbone_gep.', 'backbone_gep.', 'backbone.', '']);
      const report = this.model.backbone.loadStateDict(ckpt, { prefix });
      log?.(`encoder: ${report.loaded.length} tensors from ${file}${prefix ? ` (prefix '${prefix}')` : ''}${report.missing.length ? `; kept initial values for ${report.missing.join(', ')}` : ''}`);
      return report;
    } finally {
      ckpt.close();
    }
  }

  /**
   * One optimizer step on a batch: images `[B, C, H, W]` (normalised), int32 labels `[B, H, W]`.
   * @throws SkySenseError `E_ARG` for non-finite images, `E_NONFINITE` for a non-finite loss (nothing is updated either way).
   */
  trainStep(images: Tensor, labels: Tensor): FinetuneStepMetrics {
    if (this.step >= this.options.steps) throw new SkySenseError('E_ARG', `trainStep: all ${this.options.steps} steps are done`);
    if (!(tf.tidy(() => tf.all(tf.isFinite(images)).dataSync()[0]) as number)) throw new SkySenseError('E_ARG', `trainStep images: contains NaN or infinite values (step ${this.step + 1}; nothing was updated)`);
    this.model.train();
    if (this.options.freezeBackbone) this.model.backbone.eval();
    this.optimizer.applySchedule(this.schedule, this.step);
    const parts: number[] = [];
    const { value, grads } = valueAndGrads(this.model, () => {
      const l = this.model.losses(images, labels);
      parts.push(l.decode.dataSync()[0]!, l.aux?.dataSync()[0] ?? 0);
      return l.loss as tf.Scalar;
    });
    const loss = value.dataSync()[0]!;
    value.dispose();
    if (!Number.isFinite(loss)) {
      disposeGradients(grads);
      throw new SkySenseError('E_NONFINITE', `step ${this.step + 1}: the loss is ${loss}; nothing was updated (lower the learning rate or check the inputs)`);
    }
    const clipped = this.options.clipGrad ? clipGradNorm(grads, this.options.clipGrad).grads : grads;
    this.optimizer.step(clipped);
    disposeGradients(clipped);
    this.step += 1;
    return { step: this.step, loss, decode: parts[0]!, aux: parts[1]!, lr: Math.max(...this.optimizer.groups.map((g) => g.lr)) };
  }

  /** Everything a resume needs, in one safetensors file written atomically. */
  save(file: string): void {
    saveTrainingCheckpoint(file, FORMAT, { model: this.model.stateDict(), optimizer: this.optimizer.stateDict() }, {
      step: this.step,
      optimizer_steps: this.optimizer.stepCount,
      default_rng: defaultRng().getState(),
      options: this.options,
    });
  }

  /** Continues a run saved by {@link SegmentationFinetuner.save} exactly where it stopped. */
  static resume(file: string): SegmentationFinetuner {
    const ckpt = openTrainingCheckpoint(file, FORMAT, 'SkySense fine-tuning');
    try {
      const t = new SegmentationFinetuner(ckpt.json<SegmentationFinetuneOptions>('options'));
      t.model.loadStateDict(ckpt.part('model'));
      t.optimizer.loadStateDict(ckpt.part('optimizer'), ckpt.json<number>('optimizer_steps'));
      defaultRng().setState(ckpt.json<GeneratorState>('default_rng'));
      t.step = assertInt('checkpoint step', ckpt.json<number>('step'), 0, t.options.steps);
      return t;
    } finally {
      ckpt.dispose();
    }
  }

  /** Frees the model and optimizer state. */
  dispose(): void {
    this.optimizer.dispose();
    this.model.dispose();
  }
}
