import {
  AdamW,
  Generator,
  SkySenseError,
  assertInRange,
  assertInt,
  assertPositive,
  buildParamGroups,
  clipGradNorm,
  cosineLr,
  cosineMomentum,
  disposeGradients,
  emaUpdate,
  linearWarmup,
  cropResize,
  gatherRows,
  intersect,
  resumeTrainer,
  roiAlignCrops,
  saveTrainer,
  stopGradient,
  tf,
  valueAndGrads,
  type CropBox,
  type Gradients,
  type Module,
  type Parameter,
  type Tensor,
} from '@skysense/core-tensor';
import { CrossModalAlignment, MGCL, disposeMGCLValues, skySenseObjective, type FGCLOptions } from '@skysense/losses';
import { SkySense } from './skysense';
import type { SkySenseConfig } from './presets';
import { type MultiCropOptions, randomResizedBox, resolveMultiCrop } from '@skysense/data';

const FORMAT = 'skysense-pretrain-1';

/** Options of {@link Pretrainer}; defaults follow DINO / architecture guide §5 where the paper is silent. */
export interface PretrainOptions {
  /** The model to pre-train (student and EMA teacher are both built from it). */
  config: SkySenseConfig;
  /** Total optimisation steps (schedules run over them). */
  steps: number;
  /** Seed of weights and augmentations. Default 0. */
  seed?: number;
  /** Peak learning rate (AdamW). Default 5e-4. */
  lr?: number;
  /** Final learning rate of the cosine decay. Default 1e-6. */
  minLr?: number;
  /** Linear warm-up steps. Default 10 % of `steps`. */
  warmupSteps?: number;
  /** Weight decay (norms, biases, tokens and position tables excluded). Default 0.04. */
  weightDecay?: number;
  /** Global-norm gradient clipping. Default 3. */
  clipGrad?: number;
  /** Teacher EMA momentum at step 0 (cosine to 1). Default 0.996. */
  momentum?: number;
  /** DINO's last-layer freezing: `last_layer` gets no update for this many steps. Default 0. */
  freezeLastLayerSteps?: number;
  /** Weight α of L_MGCL. Default 1. */
  alpha?: number;
  /** Weight β of L_align. Default 1. */
  beta?: number;
  /** Projection heads: widths of the image/object and pixel heads and the MLP. Default 65,536 / 8,192, hidden 2048, bottleneck 256. */
  heads?: { outDim?: number; pixelOutDim?: number; hiddenDim?: number; bottleneckDim?: number };
  /** Teacher-temperature warm-up (0.04 → 0.07) in steps. Default 30 % of `steps`. */
  teacherTempWarmupSteps?: number;
  /** Largest date disturbance of the student's Sentinel dates, in days. Default 7. */
  dateJitterDays?: number;
  /**
   * Random fixed-length sub-sequences: per sample this many frames (in date order, the same for teacher
   * and student) when the series is longer. Default: every frame (the paper uses 20 S2 and 10 S1).
   */
  frames?: { s2?: number; s1?: number };
  /**
   * HR multi-crop (DINO): per sample two global and several local crops, the teacher encoding the
   * globals, the student every crop; the HR pixel/object/image terms compare each student crop with
   * each other global crop over their overlap (RoIAlign on a common grid), so they compare the same
   * ground. Default: off (the student sees one flipped, jittered view of the teacher's crop).
   */
  multiCrop?: MultiCropOptions;
  /**
   * The fusion term's feature: `geo-context` = F_fus, the fused map ⊕ its geo-context (paper Eq. 4, so
   * the prototypes enter L_MGCL; the fusion heads are twice as wide), or `fused` = F_fus^mm alone (0.2
   * behaviour). Default `geo-context` for a model with a prototype bank.
   */
  fusionFeature?: 'geo-context' | 'fused';
  /** The teacher sees its own augmented view (photometric draws and date jitter, no flip) as DINO's teacher does; `false`: the raw batch (0.2 behaviour). Default `true`. */
  teacherAugment?: boolean;
  /** Brightness, blur and solarisation drawn per image (`true`) or once per micro-batch (`false`, 0.2 behaviour). Default `true`. */
  augmentPerImage?: boolean;
  /**
   * Ablation switches (paper Tab. 5b), each default `true`: the pixel, object and image terms of every
   * FGCL, the fusion source of MGCL, the cross-modal alignment, and geo-context prototype learning
   * (`gcpl: false`: no prototype update and the fusion term on F_fus^mm).
   */
  terms?: PretrainTerms;
}

/** Which parts of the objective are on (see {@link PretrainOptions.terms}); unset = on. */
export interface PretrainTerms {
  pixel?: boolean;
  object?: boolean;
  image?: boolean;
  fusion?: boolean;
  align?: boolean;
  gcpl?: boolean;
}

/** Photometric draws of one image: brightness factor, blur σ (0 = none), solarisation. */
interface Photometric {
  scale: number;
  sigma: number;
  solarize: boolean;
}

/** One pre-training batch: the modalities the model has, co-registered, with each sample's location. */
export interface PretrainBatch {
  /** `[B, 3, H, W]` normalised HR tiles. */
  hr?: Tensor;
  /** `[B, T, 10, h, w]` frames and their dates per sample. */
  s2?: { frames: Tensor; dates: string[][] };
  /** `[B, T, 2, h, w]` frames and dates. */
  s1?: { frames: Tensor; dates: string[][] };
  lat: number[];
  lon: number[];
}

/** What one step measured (plain numbers). */
export interface StepMetrics {
  step: number;
  loss: number;
  mgcl: number;
  align: number;
  /** Every term: `hr.pixel`, `s2.object`, `fusion.image`, `align.s2→s1`, … */
  terms: Record<string, number>;
  lr: number;
  momentum: number;
  gradNorm: number;
}

type Source = 'hr' | 's2' | 's1' | 'fusion';

/** HR multi-crop views of one micro-batch (see {@link PretrainOptions.multiCrop}). */
interface HrCrops {
  /** Global crops first (two), then the local ones: per crop the boxes per sample, view size, flip and the student's view. */
  views: { boxes: CropBox[]; size: number; flip: boolean; view: Tensor }[];
  /** The teacher's last-stage maps of the two global crops. */
  teacherMaps: Tensor[];
  grid: number;
  minOverlap: number;
}

/** One micro-batch's forward/backward result. */
interface MicroResult {
  loss: number;
  mgcl: number;
  align: number;
  terms: Record<string, number>;
  grads: Gradients;
  fused: Tensor;
}

/** `n` distinct indices of `[0, t)` in increasing order (partial Fisher-Yates). */
function randomSubset(t: number, n: number, g: Generator): number[] {
  const all = Array.from({ length: t }, (_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + g.randint(t - i);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, n).sort((a, b) => a - b);
}

/** The element-wise mean of several gradient maps (new tensors; the inputs are left alone). */
function averageGradients(all: Gradients[]): Gradients {
  const out: Gradients = new Map();
  for (const [p, g] of all[0]!)
    out.set(
      p,
      tf.tidy(() => tf.div(tf.addN(all.map((m) => m.get(p) ?? tf.zerosLike(g))), all.length)),
    );
  return out;
}

/**
 * SkySense pre-training (paper §3.3, architecture guide §4–5): a student and its EMA teacher; per step the
 * teacher encodes the batch, the student a flipped, colour- and date-jittered view whose feature maps
 * are flipped back so every location compares the same ground; loss α·L_MGCL(HR, S2, S1, fusion) +
 * β·L_align(ordered modality pairs); AdamW with warm-up + cosine, clipping, then the teacher EMA and
 * the geo-prototype update (Sinkhorn + EMA) from the student's fused features. The teacher is the
 * model to use downstream.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { Pretrainer, SKYSENSE_PRESETS } from '@skysense/skysense';
 * await initBackend();
 * const p = SKYSENSE_PRESETS['skysense-tiny'];
 * // Sentinel-only pre-training; small projection heads (the paper's have 65,536 prototypes)
 * const heads = { outDim: 256, pixelOutDim: 64, hiddenDim: 64, bottleneckDim: 32 };
 * const trainer = new Pretrainer({ config: { ...p, hr: undefined }, steps: 100, heads });
 * const metrics = trainer.trainStep({
 *   s2: { frames: tf.randomNormal([2, 2, 10, 16, 16]), dates: [['2021-04-01', '2021-07-01'], ['2021-05-01', '2021-08-01']] },
 *   s1: { frames: tf.randomNormal([2, 1, 2, 16, 16]), dates: [['2021-04-02'], ['2021-05-02']] },
 *   lat: [43.6, 48.2],
 *   lon: [1.44, 16.4],
 * });
 * console.log(metrics.loss, metrics.terms);
 * trainer.save('pretrain.safetensors'); // Pretrainer.resume(file) continues exactly
 * ```
 */
export class Pretrainer {
  readonly student: SkySense;
  readonly teacher: SkySense;
  readonly loss: MGCL;
  readonly teacherLoss: MGCL;
  readonly align: CrossModalAlignment | null;
  readonly optimizer: AdamW;
  readonly rng: Generator;
  /** Steps taken. */
  step = 0;
  private readonly lrSchedule: (iter: number, base: number) => number;

  readonly options: PretrainOptions;

  constructor(options: PretrainOptions) {
    // the fidelity switches are stored resolved, so a checkpoint says which behaviour it was trained with
    const o = {
      ...options,
      fusionFeature: options.fusionFeature ?? 'geo-context',
      teacherAugment: options.teacherAugment ?? true,
      augmentPerImage: options.augmentPerImage ?? true,
    };
    this.options = o;
    validateOptions(o);
    this.rng = new Generator(o.seed ?? 0);
    this.student = new SkySense(o.config);
    this.teacher = new SkySense(o.config).eval();
    this.teacher.loadStateDict(this.student.stateDict());
    const widths = this.sourceWidths();
    const fgcl = (inDim: number): FGCLOptions => ({
      inDim,
      outDim: o.heads?.outDim,
      pixelOutDim: o.heads?.pixelOutDim,
      head: { hiddenDim: o.heads?.hiddenDim, bottleneckDim: o.heads?.bottleneckDim },
      distillation: {
        nepochs: o.steps,
        warmupTeacherTemp: 0.04,
        teacherTemp: 0.07,
        warmupTeacherTempEpochs: o.teacherTempWarmupSteps ?? Math.max(1, Math.round(0.3 * o.steps)),
      },
    });
    const sources = Object.fromEntries(Object.entries(widths).map(([k, d]) => [k, fgcl(d)]));
    this.loss = new MGCL(sources);
    this.teacherLoss = new MGCL(sources);
    this.teacherLoss.loadStateDict(this.loss.stateDict());
    const modal = Object.fromEntries(Object.entries(widths).filter(([k]) => k !== 'fusion'));
    this.align = Object.keys(modal).length >= 2 && o.terms?.align !== false ? new CrossModalAlignment({ widths: modal }) : null;
    const groups = buildParamGroups(this.trainable(), { lr: o.lr ?? 5e-4, weightDecay: o.weightDecay ?? 0.04 });
    this.optimizer = new AdamW(groups, { lr: o.lr ?? 5e-4, weightDecay: o.weightDecay ?? 0.04 });
    this.lrSchedule = linearWarmup(cosineLr({ maxIters: o.steps, minLr: o.minLr ?? 1e-6 }), {
      iters: o.warmupSteps ?? Math.round(0.1 * o.steps),
      ratio: 1e-3,
    });
  }

  /** Feature width per MGCL source (the fusion source's doubles with the geo-context). */
  private sourceWidths(): Partial<Record<Source, number>> {
    const s = this.student;
    const fusion = s.neck.fusion.options.embedDims * (this.geoContextTerm ? 2 : 1);
    return {
      ...(s.hr ? { hr: s.hr.stageChannels.at(-1)! } : {}),
      ...(s.s2 ? { s2: s.s2.options.embedDims } : {}),
      ...(s.s1 ? { s1: s.s1.options.embedDims } : {}),
      ...(this.options.terms?.fusion !== false ? { fusion } : {}),
    };
  }

  /** Whether the prototypes are learned (a bank, and `terms.gcpl` not off). */
  private get gcpl(): boolean {
    return this.student.geo !== null && this.options.terms?.gcpl !== false;
  }

  /** Whether the fusion term compares F_fus (fused ⊕ geo-context) rather than F_fus^mm. */
  private get geoContextTerm(): boolean {
    return this.gcpl && this.options.fusionFeature === 'geo-context';
  }

  /** Named trainable parameters: the student model, its projection heads and the alignment projections. */
  private trainable(): [string, Parameter][] {
    const named = (prefix: string, m: { namedParameters(): [string, Parameter][] } | null) =>
      m ? m.namedParameters().map(([n, p]) => [`${prefix}.${n}`, p] as [string, Parameter]) : [];
    return [...named('model', this.student), ...named('mgcl', this.loss), ...named('align', this.align)].filter(([, p]) => p.requiresGrad);
  }

  /**
   * One optimisation step. Several micro-batches accumulate: their gradients are averaged before the
   * update (a batch larger than memory allows); each updates the loss centers and the prototypes.
   * @throws SkySenseError `E_NONFINITE` (nothing updated) if a loss term is not finite.
   */
  trainStep(batch: PretrainBatch | PretrainBatch[]): StepMetrics {
    const o = this.options;
    const micro = Array.isArray(batch) ? batch : [batch];
    if (this.step >= o.steps) throw new SkySenseError('E_ARG', `trainStep: all ${o.steps} steps are done`);
    if (micro.length === 0) throw new SkySenseError('E_ARG', 'trainStep: expected a batch or a non-empty list of micro-batches, got []');
    micro.forEach(checkBatch);
    const parts: MicroResult[] = [];
    try {
      for (const b of micro) parts.push(this.backward(b));
      const grads = parts.length === 1 ? parts[0]!.grads : averageGradients(parts.map((p) => p.grads));
      if (parts.length > 1) parts.forEach((p) => disposeGradients(p.grads));
      parts.forEach((p) => (p.grads = grads));
      if (this.step < (o.freezeLastLayerSteps ?? 0)) this.cancelLastLayer(grads);
      this.optimizer.applySchedule(this.lrSchedule, this.step);
      const { totalNorm: norm, grads: clipped } = clipGradNorm(grads, o.clipGrad ?? 3);
      this.optimizer.step(clipped);
      if (clipped !== grads) disposeGradients(clipped);
      const momentum = cosineMomentum(this.step, o.steps, o.momentum ?? 0.996);
      emaUpdate(this.teacher, this.student, momentum);
      emaUpdate(this.teacherLoss, this.loss, momentum, { buffers: 'ignore' });
      if (this.gcpl) {
        micro.forEach((b, i) =>
          this.student.geo!.update(
            parts[i]!.fused,
            b.lat.map((lat, j) => this.student.geo!.regionOf(lat, b.lon[j]!)),
          ),
        );
        this.teacher.geo!.prototypes.assign(this.student.geo!.prototypes.value);
      }
      this.step++;
      const mean = (f: (p: MicroResult) => number) => parts.reduce((a, p) => a + f(p), 0) / parts.length;
      const terms = Object.fromEntries(Object.keys(parts[0]!.terms).map((k) => [k, mean((p) => p.terms[k]!)]));
      return {
        step: this.step,
        loss: mean((p) => p.loss),
        mgcl: mean((p) => p.mgcl),
        align: mean((p) => p.align),
        terms,
        lr: this.optimizer.groups[0]!.lr,
        momentum,
        gradNorm: norm,
      };
    } finally {
      new Set(parts.map((p) => p.grads)).forEach(disposeGradients);
      parts.forEach((p) => p.fused.dispose());
    }
  }

  /** Forward and backward of one micro-batch: its loss values, gradients and (detached) fused features. */
  private backward(full: PretrainBatch): MicroResult {
    const { batch, owned } = this.subsequences(full);
    try {
      return this.backwardOn(batch);
    } finally {
      tf.dispose(owned);
    }
  }

  /** Picks each sample's random fixed-length frame subsets (see {@link PretrainOptions.frames}). */
  private subsequences(b: PretrainBatch): { batch: PretrainBatch; owned: Tensor[] } {
    const owned: Tensor[] = [];
    const pick = (name: string, s: PretrainBatch['s2'], n?: number) => {
      if (n !== undefined && (!Number.isInteger(n) || n < 1))
        throw new SkySenseError('E_ARG', `frames.${name}: expected an integer ≥ 1, got ${n}`);
      const t = s?.frames.shape[1] ?? 0;
      if (!s || n === undefined || t <= n) return s;
      const idx = s.dates.map(() => randomSubset(t, n, this.rng));
      const frames = tf.tidy(() =>
        tf.stack(idx.map((ix, i) => tf.gather(tf.squeeze(tf.slice(s.frames, [i, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [0]), ix))),
      );
      owned.push(frames);
      return { frames, dates: idx.map((ix, i) => ix.map((j) => s.dates[i]![j]!)) };
    };
    return { batch: { ...b, s2: pick('s2', b.s2, this.options.frames?.s2), s1: pick('s1', b.s1, this.options.frames?.s1) }, owned };
  }

  private backwardOn(batch: PretrainBatch): MicroResult {
    const flip = this.rng.random() < 0.5;
    const studentView = this.augmentedView(batch, flip);
    const teacherView = this.options.teacherAugment ? this.augmentedView(batch, false) : null;
    let teacherOut: ReturnType<SkySense['forwardFeatures']>;
    try {
      teacherOut = this.teacher.forwardFeatures(this.modelInputs(teacherView ?? batch));
    } catch (e) {
      this.disposeView(studentView);
      throw e;
    } finally {
      if (teacherView) this.disposeView(teacherView);
    }
    const crops = this.options.multiCrop && batch.hr ? this.hrCrops(batch.hr, this.options.multiCrop) : null;
    const terms: Record<string, number> = {};
    let scalars = { mgcl: 0, align: 0 };
    let fused: Tensor | null = null;
    const kept: Tensor[] = [];
    try {
      const { value, grads } = valueAndGrads(this.trainable(), () =>
        this.objective(
          batch,
          studentView,
          teacherOut,
          flip,
          crops,
          terms,
          kept,
          (v) => (scalars = v),
          (f) => (fused = f),
        ),
      );
      const loss = value.dataSync()[0]!;
      value.dispose();
      const bad = Object.entries(terms).find(([, v]) => !Number.isFinite(v));
      if (bad || !Number.isFinite(loss)) {
        disposeGradients(grads);
        throw new SkySenseError(
          'E_NONFINITE',
          `step ${this.step}: loss term '${bad?.[0] ?? 'total'}' is ${bad?.[1] ?? loss}; nothing was updated and the last checkpoint is intact`,
        );
      }
      const result = { loss, ...scalars, terms, grads, fused: fused! };
      fused = null;
      return result;
    } catch (e) {
      if (e instanceof SkySenseError && e.code !== 'E_NONFINITE' && /NaN|infinit/.test(e.message)) {
        throw new SkySenseError(
          'E_NONFINITE',
          `step ${this.step}: non-finite values in the forward pass (${e.message}); nothing was updated and the last checkpoint is intact`,
        );
      }
      throw e;
    } finally {
      tf.dispose(
        [
          fused as Tensor | null,
          ...kept,
          ...Object.values(teacherOut),
          ...(crops ? [...crops.views.map((v) => v.view), ...crops.teacherMaps] : []),
        ].filter((t): t is Tensor => t instanceof tf.Tensor),
      );
      this.disposeView(studentView);
    }
  }

  /** The loss of one step (runs under the gradient tape); per-term values go to `terms`. */
  private objective(
    batch: PretrainBatch,
    view: ReturnType<Pretrainer['augmentedView']>,
    teacherOut: ReturnType<SkySense['forwardFeatures']>,
    flip: boolean,
    crops: HrCrops | null,
    terms: Record<string, number>,
    kept: Tensor[],
    setScalars: (v: { mgcl: number; align: number }) => void,
    setFused: (f: Tensor) => void,
  ): tf.Scalar {
    const s = this.student.forwardFeatures(view);
    const unflip = (t?: Tensor) => (t && flip ? tf.reverse(t, 3) : t);
    const maps: Record<string, Tensor> = {};
    const tmaps: Record<string, Tensor> = {};
    const fusion = (o: typeof s) => (this.geoContextTerm ? o.withGeoContext : o.fused);
    for (const k of ['hr', 's2', 's1', 'fusion'] as const) {
      if (!this.loss.sources.has(k)) continue;
      const st = k === 'fusion' ? fusion(s) : s[k];
      const tt = k === 'fusion' ? fusion(teacherOut) : teacherOut[k];
      if (st && tt) [maps[k], tmaps[k]] = [unflip(st)!, tt];
    }
    setFused(tf.keep(stopGradient(unflip(s.fused)!)));
    const aligned = crops ? this.alignedCrops(crops) : null;
    const mg = this.loss.forward(
      aligned ? { ...maps, hr: aligned.student } : maps,
      aligned ? { ...tmaps, hr: aligned.teacher } : tmaps,
      this.teacherLoss,
      this.step,
    );
    const on = (['pixel', 'object', 'image'] as const).filter((t) => this.options.terms?.[t] !== false);
    for (const [src, v] of Object.entries(mg.sources)) for (const t of on) terms[`${src}.${t}`] = v[t].dataSync()[0]!;
    const mgcl = tf.addN(Object.values(mg.sources).flatMap((v) => on.map((t) => v[t]))) as tf.Scalar;
    kept.push(mgcl);
    let align = tf.scalar(0);
    if (this.align) {
      const pooled = Object.fromEntries(
        Object.entries(maps)
          .filter(([k]) => k !== 'fusion')
          .map(([k, m]) => [k, this.pooled(k as Source, m, batch.lat.length)]),
      );
      const al = this.align.forward(pooled);
      for (const [pair, v] of Object.entries(al.pairs)) terms[`align.${pair}`] = v.dataSync()[0]!;
      kept.push(...Object.values(al.pairs));
      align = al.total;
    }
    const total = skySenseObjective(mgcl, align, { alpha: this.options.alpha, beta: this.options.beta });
    setScalars({ mgcl: mgcl.dataSync()[0]!, align: align.dataSync()[0]! });
    disposeMGCLValues(mg);
    return total;
  }

  /**
   * Multi-crop views of the HR tiles (drawn before the gradient tape): per sample two global and
   * `localCrops` local boxes, the student's flipped and jittered views of every crop, and the
   * teacher's maps of the globals.
   */
  private hrCrops(hr: Tensor, options: MultiCropOptions): HrCrops {
    const [b, , h, w] = hr.shape as [number, number, number, number];
    const mc = resolveMultiCrop(options, Math.min(h, w));
    const boxes = (scale: [number, number]) => Array.from({ length: b }, () => randomResizedBox(h, w, scale, this.rng));
    const specs = [
      ...[0, 1].map(() => ({ boxes: boxes(mc.globalScale), size: mc.globalSize })),
      ...Array.from({ length: mc.localCrops }, () => ({ boxes: boxes(mc.localScale), size: mc.localSize })),
    ];
    const teacherMaps = specs.slice(0, 2).map((c) => tf.tidy(() => this.teacher.hr!.forward(cropResize(hr, c.boxes, c.size)).at(-1)!));
    const views = specs.map((c) => {
      const flip = this.rng.random() < 0.5;
      return {
        ...c,
        flip,
        view: tf.tidy(() => this.photometric(flip ? tf.reverse(cropResize(hr, c.boxes, c.size), 3) : cropResize(hr, c.boxes, c.size))),
      };
    });
    return { views, teacherMaps, grid: mc.grid, minOverlap: mc.minOverlap };
  }

  /**
   * The student's map of every crop against the teacher's map of every other global crop, both
   * RoIAligned onto the overlap of the two boxes (pairs overlapping less than `minOverlap` of the
   * student crop are skipped). Runs under the gradient tape. Null if no pair overlaps enough.
   */
  private alignedCrops(c: HrCrops): { student: Tensor; teacher: Tensor; pairs: number } | null {
    const student: Tensor[] = [];
    const teacher: Tensor[] = [];
    c.views.forEach((v, si) => {
      const map = this.student.hr!.forward(v.view).at(-1)!;
      const s = v.flip ? tf.reverse(map, 3) : map;
      c.teacherMaps.forEach((t, gi) => {
        if (gi === si) return;
        const rows: number[] = [];
        const regions: CropBox[] = [];
        v.boxes.forEach((box, b) => {
          const o = intersect(box, c.views[gi]!.boxes[b]!);
          if (o && o.h * o.w >= c.minOverlap * box.h * box.w) (rows.push(b), regions.push(o));
        });
        if (!rows.length) return;
        student.push(
          roiAlignCrops(
            gatherRows(s, rows),
            rows.map((b) => v.boxes[b]!),
            regions,
            c.grid,
          ),
        );
        teacher.push(
          roiAlignCrops(
            gatherRows(t, rows),
            rows.map((b) => c.views[gi]!.boxes[b]!),
            regions,
            c.grid,
          ),
        );
      });
    });
    if (!student.length) return null;
    return { student: tf.concat(student, 0), teacher: tf.concat(teacher, 0), pairs: student.reduce((n, t) => n + t.shape[0]!, 0) };
  }

  /** Space-time average per sample: `[B(·T), D, h, w]` → `[B, D]`. */
  private pooled(k: Source, map: Tensor, b: number): Tensor {
    const [n, d] = map.shape as [number, number];
    return k === 'hr' ? tf.mean(map, [2, 3]) : tf.mean(tf.reshape(map, [b, n / b, d, -1]), [1, 3]);
  }

  private cancelLastLayer(grads: Map<Parameter, Tensor>): void {
    for (const [name, p] of this.loss.namedParameters()) {
      if (name.includes('last_layer') && grads.has(p)) {
        grads.get(p)!.dispose();
        grads.delete(p);
      }
    }
  }

  private modelInputs(b: PretrainBatch) {
    return {
      hr: b.hr,
      s2: b.s2 && { frames: b.s2.frames, dates: b.s2.dates },
      s1: b.s1 && { frames: b.s1.frames, dates: b.s1.dates },
      lat: b.lat,
      lon: b.lon,
    };
  }

  /** Brightness ×U(0.8, 1.2), blur σ ~ U(0.1, 2) with p 0.5, solarisation with p 0.2. */
  private drawPhotometric(): Photometric {
    return {
      scale: this.rng.uniform(0.8, 1.2),
      sigma: this.rng.random() < 0.5 ? this.rng.uniform(0.1, 2) : 0,
      solarize: this.rng.random() < 0.2,
    };
  }

  /** HR photometric augmentation with draws per image (or one per micro-batch, see {@link PretrainOptions.augmentPerImage}). */
  private photometric(hr: Tensor): Tensor {
    if (!this.options.augmentPerImage) {
      const d = this.drawPhotometric();
      return hrPhotometric(hr, d.scale, d.sigma, d.solarize);
    }
    const draws = Array.from({ length: hr.shape[0]! }, () => this.drawPhotometric());
    return tf.tidy(() =>
      tf.concat(
        draws.map((d, i) => hrPhotometric(tf.slice(hr, [i, 0, 0, 0], [1, -1, -1, -1]), d.scale, d.sigma, d.solarize)),
        0,
      ),
    );
  }

  /** An augmented view (the student's, or the teacher's without flip): optional horizontal flip of every modality, HR photometric jitter, date disturbance. */
  private augmentedView(b: PretrainBatch, flip: boolean) {
    const maxDays = this.options.dateJitterDays ?? 7;
    const shift = (dates: string[][]) => dates.map((row) => row.map((d) => shiftDate(d, Math.round(this.rng.uniform(-maxDays, maxDays)))));
    const f = (t: Tensor, axis: number) => (flip ? tf.reverse(t, axis) : tf.clone(t));
    return {
      hr: b.hr && tf.tidy(() => this.photometric(f(b.hr!, 3))),
      s2: b.s2 && { frames: f(b.s2.frames, 4), dates: shift(b.s2.dates) },
      s1: b.s1 && { frames: f(b.s1.frames, 4), dates: shift(b.s1.dates) },
      lat: b.lat,
      lon: b.lon,
    };
  }

  private disposeView(v: ReturnType<Pretrainer['augmentedView']>): void {
    tf.dispose([v.hr, v.s2?.frames, v.s1?.frames].filter((t): t is Tensor => t !== undefined));
  }

  /** The parts of a checkpoint (see `saveTrainer`): student, EMA teacher, both MGCL heads, the alignment. */
  checkpointModules(): Record<string, Module | undefined> {
    return {
      student: this.student,
      teacher: this.teacher,
      mgcl: this.loss,
      mgcl_teacher: this.teacherLoss,
      align: this.align ?? undefined,
    };
  }

  /** The trainer's own generator (crops and augmentation draws), saved besides the default one. */
  checkpointGenerators(): Record<string, Generator> {
    return { rng: this.rng };
  }

  /** Everything a resume needs, as one safetensors file written atomically (temp file + rename). */
  save(file: string): void {
    saveTrainer(file, FORMAT, this);
  }

  /** Rebuilds a trainer from {@link Pretrainer.save}'s file; it continues exactly where the saved run was (`steps` extends its total). */
  static resume(file: string, steps?: number): Pretrainer {
    // checkpoints of 0.2 carry no fidelity switches: they resume with 0.2's behaviour
    const legacy: Partial<PretrainOptions> = { fusionFeature: 'fused', teacherAugment: false, augmentPerImage: false };
    return resumeTrainer(file, FORMAT, 'SkySense pre-training', (o: PretrainOptions) => new Pretrainer({ ...legacy, ...o }), steps);
  }

  /** Frees every tensor the trainer holds. */
  dispose(): void {
    this.optimizer.dispose();
    [this.student, this.teacher, this.loss, this.teacherLoss, this.align].forEach((m) => m?.dispose());
  }
}

/**
 * The student's HR photometric augmentation, on normalised values: brightness scaling, Gaussian blur
 * (σ in pixels, 0 = none; separable, kernel 2⌈2σ⌉+1, zero padding), and solarisation as the inversion of
 * the values above the channel mean (`z → −z` for z > 0). Internal (not re-exported); exported for tests.
 */
export function hrPhotometric(x: Tensor, scale: number, sigma: number, solarize: boolean): Tensor {
  let y = tf.mul(x, scale);
  if (sigma > 0) {
    const r = Math.ceil(2 * sigma);
    const w = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
    const sum = w.reduce((a, b) => a + b, 0);
    const c = x.shape[1]!;
    const k = (shape: [number, number]) =>
      tf.tile(tf.reshape(tf.tensor1d(w.map((v) => v / sum)), [...shape, 1, 1]), [1, 1, c, 1]) as tf.Tensor4D;
    const nhwc = tf.transpose(y, [0, 2, 3, 1]) as tf.Tensor4D;
    const blurred = tf.depthwiseConv2d(tf.depthwiseConv2d(nhwc, k([2 * r + 1, 1]), 1, 'same'), k([1, 2 * r + 1]), 1, 'same');
    y = tf.transpose(blurred, [0, 3, 1, 2]);
  }
  return solarize ? tf.where(tf.greater(y, 0), tf.neg(y), y) : y;
}

/** Refuses a batch with non-finite values or mismatched lat/lon, naming the field. */
function checkBatch(b: PretrainBatch): void {
  const fields: [string, Tensor | undefined][] = [
    ['batch.hr', b.hr],
    ['batch.s2.frames', b.s2?.frames],
    ['batch.s1.frames', b.s1?.frames],
  ];
  for (const [name, t] of fields) {
    if (t && !(tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0]) as number))
      throw new SkySenseError('E_ARG', `${name}: contains NaN or infinite values`);
    if (t && t.shape[0] !== b.lat.length)
      throw new SkySenseError('E_SHAPE', `${name}: expected ${b.lat.length} samples (one per lat/lon), got ${t.shape[0]}`);
  }
  if (b.lon.length !== b.lat.length)
    throw new SkySenseError('E_LATLON', `batch.lon: expected ${b.lat.length} values like batch.lat, got ${b.lon.length}`);
  for (const [name, s] of [
    ['batch.s2', b.s2],
    ['batch.s1', b.s1],
  ] as const) {
    const t = s?.frames.shape[1];
    if (s && (s.dates.length !== b.lat.length || s.dates.some((row) => row.length !== t))) {
      throw new SkySenseError(
        'E_DATE',
        `${name}.dates: expected ${b.lat.length} rows of ${t} dates (one per frame), got rows of ${s.dates.map((r) => r.length).join(', ')}`,
      );
    }
  }
}

/** Checks every numeric option, naming it, before anything is built. */
function validateOptions(o: PretrainOptions): void {
  assertInt('steps', o.steps, 1);
  if (o.warmupSteps !== undefined) assertInt('warmupSteps', o.warmupSteps, 0, o.steps);
  if (o.teacherTempWarmupSteps !== undefined) assertInt('teacherTempWarmupSteps', o.teacherTempWarmupSteps, 1);
  if (o.freezeLastLayerSteps !== undefined) assertInt('freezeLastLayerSteps', o.freezeLastLayerSteps, 0);
  if (o.dateJitterDays !== undefined) assertInt('dateJitterDays', o.dateJitterDays, 0);
  if (o.momentum !== undefined) assertInRange('momentum', o.momentum, 0, 1);
  if (o.clipGrad !== undefined) assertPositive('clipGrad', o.clipGrad);
  if (o.minLr !== undefined) assertInRange('minLr', o.minLr, 0, Infinity);
  for (const [name, v] of [
    ['alpha', o.alpha],
    ['beta', o.beta],
  ] as const)
    if (v !== undefined) assertInRange(name, v, 0, Infinity);
  checkTerms(o.terms, o.fusionFeature);
  if (o.multiCrop) {
    if (!o.config.hr) throw new SkySenseError('E_ARG', 'multiCrop: HR multi-crop needs a model with an HR encoder (config.hr)');
    resolveMultiCrop(o.multiCrop, 1);
  }
}

/**
 * Checks the ablation switches and the fusion feature (see {@link PretrainOptions}): known names, and
 * at least one MGCL granularity on.
 * @throws SkySenseError `E_ARG` naming the option.
 */
export function checkTerms(terms: PretrainTerms | undefined, fusionFeature?: PretrainOptions['fusionFeature']): void {
  const t = terms ?? {};
  for (const [k, v] of Object.entries(t))
    if (!['pixel', 'object', 'image', 'fusion', 'align', 'gcpl'].includes(k) || typeof v !== 'boolean')
      throw new SkySenseError(
        'E_ARG',
        `terms.${k}: expected a boolean switch of pixel, object, image, fusion, align or gcpl, got ${JSON.stringify(v)}`,
      );
  if (t.pixel === false && t.object === false && t.image === false)
    throw new SkySenseError('E_ARG', 'terms: pixel, object and image are all off; MGCL needs at least one granularity');
  if (fusionFeature !== undefined && fusionFeature !== 'geo-context' && fusionFeature !== 'fused')
    throw new SkySenseError('E_ARG', `fusionFeature: expected 'geo-context' or 'fused', got ${JSON.stringify(fusionFeature)}`);
}

/** `YYYY-MM-DD` shifted by whole days. */
function shiftDate(date: string, days: number): string {
  const t = Date.parse(`${date}T00:00:00Z`);
  if (Number.isNaN(t)) throw new SkySenseError('E_DATE', `date: expected YYYY-MM-DD, got '${date}'`);
  return new Date(t + days * 86_400_000).toISOString().slice(0, 10);
}
