import {
  GELU,
  Linear,
  Module,
  Sequential,
  SkySenseError,
  assertInRange,
  assertInt,
  formatShape,
  l2Normalize,
  matMul,
  ones,
  stopGradient,
  tf,
  truncNormal,
  zeros,
  type Buffer,
  type Parameter,
  type Tensor,
  type UnaryModule,
} from '@skysense/core-tensor';
import { checkLogits, checkTemperature, requireFinite, teacherTempSchedule } from './validate';

/** Options of {@link DINOHead}, with DINO's defaults. */
export interface DINOHeadOptions {
  inDim: number;
  outDim: number;
  /** Default 3. */
  nlayers?: number;
  /** Default 2048. */
  hiddenDim?: number;
  /** Default 256. */
  bottleneckDim?: number;
  /** Fix the weight-norm magnitudes `last_layer.weight_g` at 1 (not trained). Default `true`. */
  normLastLayer?: boolean;
}

/**
 * DINO's projection head: `mlp` (Linear → GELU, …, Linear to the bottleneck; keys `mlp.0`, `mlp.2`, …),
 * L2-normalisation (eps 1e-12), then a weight-normalised `last_layer` without bias
 * (`weight_g` `[out, 1]`, `weight_v` `[out, bottleneck]`: row o = g[o] · v[o] / ‖v[o]‖).
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { DINOHead } from '@skysense/losses';
 * await initBackend();
 * // DINO's projection head: MLP → bottleneck → L2 norm → weight-normalised last layer
 * const head = new DINOHead({ inDim: 64, outDim: 256, hiddenDim: 128, bottleneckDim: 32 });
 * console.log(head.forward(tf.randomNormal([8, 64])).shape); // [8, 256]
 * ```
 */
export class DINOHead extends Module {
  readonly mlp: Sequential;
  readonly lastLayer: Module & { weightG: Parameter; weightV: Parameter };

  constructor(o: DINOHeadOptions) {
    super();
    const n = assertInt('nlayers', o.nlayers ?? 3, 1);
    const hidden = o.hiddenDim ?? 2048;
    const bottleneck = o.bottleneckDim ?? 256;
    const init = { weightInit: truncNormal(0.02), biasInit: zeros };
    const layers: UnaryModule[] = [];
    if (n === 1) layers.push(new Linear(o.inDim, bottleneck, init));
    else {
      layers.push(new Linear(o.inDim, hidden, init), new GELU());
      for (let i = 0; i < n - 2; i++) layers.push(new Linear(hidden, hidden, init), new GELU());
      layers.push(new Linear(hidden, bottleneck, init));
    }
    this.mlp = this.registerModule('mlp', new Sequential(...layers));
    this.lastLayer = this.registerModule(
      'last_layer',
      new (class extends Module {
        readonly weightG = this.registerParameter('weight_g', [o.outDim, 1], ones);
        readonly weightV = this.registerParameter('weight_v', [o.outDim, bottleneck], truncNormal(0.02));
      })(),
    );
    if (o.normLastLayer ?? true) this.lastLayer.weightG.requiresGrad = false;
  }

  /** `[N, inDim]` → `[N, outDim]`. */
  forward(x: Tensor): Tensor {
    const inDim = (this.mlp.at(0) as Linear).inFeatures;
    if (x.rank !== 2 || x.shape[1] !== inDim)
      throw new SkySenseError('E_SHAPE', `DINOHead input: expected [N, ${inDim}], got ${formatShape(x.shape)}`);
    return tf.tidy(() => {
      const z = l2Normalize(this.mlp.forward(x));
      const v = this.lastLayer.weightV.value;
      const w = tf.mul(this.lastLayer.weightG.value, tf.div(v, tf.norm(v, 'euclidean', 1, true)));
      return matMul(z, w, false, true);
    });
  }
}

/** Options of {@link SelfDistillation}, with DINO's defaults. */
export interface SelfDistillationOptions {
  outDim: number;
  /** Default 0.04. */
  warmupTeacherTemp?: number;
  /** Default 0.04 (DINO's final value is a command-line argument; 0.07 in its recommended setups). */
  teacherTemp?: number;
  /** Default 30. */
  warmupTeacherTempEpochs?: number;
  nepochs: number;
  /** Default 0.1. */
  studentTemp?: number;
  /** Default 0.9. */
  centerMomentum?: number;
}

/**
 * One self-distillation term between matched rows (SkySense's L_CL, Eq. 4): the mean over rows i of
 * the cross-entropy between the centred, sharpened teacher distribution softmax((t_i − c)/τ_t) and
 * the student's log-softmax(s_i/τ_s); the center (a buffer) is then updated by EMA of the teacher rows.
 * The teacher side gets no gradient.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SelfDistillation } from '@skysense/losses';
 * await initBackend();
 * // one teacher→student cross-entropy term with centering and a temperature schedule (FGCL's building block)
 * const term = new SelfDistillation({ outDim: 32, nepochs: 10 });
 * console.log(term.forward(tf.randomNormal([6, 32]), tf.randomNormal([6, 32]), 0).dataSync()[0]);
 * ```
 */
export class SelfDistillation extends Module {
  readonly center: Buffer;
  readonly schedule: number[];
  readonly studentTemp: number;
  readonly centerMomentum: number;

  constructor(readonly o: SelfDistillationOptions) {
    super();
    this.studentTemp = checkTemperature('studentTemp', o.studentTemp ?? 0.1);
    this.centerMomentum = assertInRange('centerMomentum', o.centerMomentum ?? 0.9, 0, 1);
    this.schedule = teacherTempSchedule({
      warmup: o.warmupTeacherTemp ?? 0.04,
      final: o.teacherTemp ?? 0.04,
      warmupEpochs: o.warmupTeacherTempEpochs ?? 30,
      epochs: assertInt('nepochs', o.nepochs, 1),
    });
    this.schedule.forEach((t, i) => checkTemperature(`teacher temperature at epoch ${i}`, t));
    this.center = this.registerBuffer('center', [1, o.outDim], () => tf.zeros([1, o.outDim]));
  }

  /** Teacher temperature at an epoch. */
  teacherTemp(epoch: number): number {
    assertInt('epoch', epoch, 0, this.o.nepochs - 1);
    return this.schedule[epoch]!;
  }

  /**
   * @param student `[N, outDim]` student head outputs; @param teacher `[N, outDim]` teacher outputs of the same rows.
   * @returns the loss (scalar); the center is updated afterwards.
   */
  forward(student: Tensor, teacher: Tensor, epoch: number): tf.Scalar {
    this.checkInputs(student, teacher);
    if (student.shape[0] !== teacher.shape[0])
      throw new SkySenseError(
        'E_SHAPE',
        `SelfDistillation: student and teacher need the same rows, got ${student.shape[0]} and ${teacher.shape[0]}`,
      );
    const temp = this.teacherTemp(epoch);
    const loss = tf.tidy(() => crossEntropy(this.teacherProbs(teacher, temp), tf.logSoftmax(tf.div(student, this.studentTemp), -1)));
    requireFinite(loss, [
      ['student', student],
      ['teacher', teacher],
    ]);
    this.updateCenter(teacher);
    return loss;
  }

  /** Validates both inputs' shapes (their values are checked through the loss, see `requireFinite`). */
  protected checkInputs(student: Tensor, teacher: Tensor): void {
    checkLogits('student', student, 2, this.o.outDim);
    checkLogits('teacher', teacher, 2, this.o.outDim);
  }

  /** softmax((teacher − center)/temp), without gradient. */
  protected teacherProbs(teacher: Tensor, temp: number): Tensor {
    return stopGradient(tf.softmax(tf.div(tf.sub(teacher, this.center.value), temp), -1));
  }

  /** center ← m·center + (1 − m)·mean(teacher rows). */
  protected updateCenter(teacher: Tensor): void {
    tf.tidy(() => {
      const batch = tf.div(tf.sum(stopGradient(teacher), 0, true), teacher.shape[0]!);
      this.center.assign(tf.add(tf.mul(this.center.value, this.centerMomentum), tf.mul(batch, 1 - this.centerMomentum)));
    });
  }
}

/** Mean over rows of −Σ q·log p. */
function crossEntropy(q: Tensor, logP: Tensor): tf.Scalar {
  return tf.mean(tf.sum(tf.mul(tf.neg(q), logP), -1));
}

/** Options of {@link DINOLoss}, with DINO's defaults. */
export interface DINOLossOptions extends SelfDistillationOptions {
  /** Number of crops (2 global + local). */
  ncrops: number;
}

/**
 * DINO's self-distillation loss: cross-entropy between the centred, sharpened teacher distribution
 * of each global view and the student distribution of every other view, averaged over the pairs;
 * the center (a buffer) is then updated by EMA of the teacher outputs. Rows are crop-major.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { DINOLoss } from '@skysense/losses';
 * await initBackend();
 * const loss = new DINOLoss({ outDim: 128, ncrops: 2, nepochs: 100 }); // teacher temperature warm-up, centering
 * const student = tf.randomNormal([8, 128]); // 2 views × 4 images, view-major
 * const teacher = tf.randomNormal([8, 128]);
 * console.log(loss.forward(student, teacher, 0).dataSync()[0]); // also updates loss.center
 * ```
 */
export class DINOLoss extends SelfDistillation {
  readonly ncrops: number;

  constructor(o: DINOLossOptions) {
    super(o);
    this.ncrops = assertInt('ncrops', o.ncrops, 2);
  }

  /**
   * @param student `[ncrops·B, outDim]` student head outputs (crop-major; crops 0 and 1 are the global views).
   * @param teacher `[2·B, outDim]` teacher head outputs of the two global views (no gradient flows into them).
   * @returns the loss (scalar); the center is updated afterwards.
   */
  override forward(student: Tensor, teacher: Tensor, epoch: number): tf.Scalar {
    this.checkInputs(student, teacher);
    if (student.shape[0]! % this.ncrops !== 0 || teacher.shape[0]! * this.ncrops !== student.shape[0]! * 2) {
      throw new SkySenseError(
        'E_SHAPE',
        `DINOLoss: ${this.ncrops} crops need student rows = ${this.ncrops}·B and teacher rows = 2·B, got ${student.shape[0]} and ${teacher.shape[0]}`,
      );
    }
    const temp = this.teacherTemp(epoch);
    const loss = tf.tidy(() => {
      const s = tf.split(tf.div(student, this.studentTemp), this.ncrops, 0).map((x) => tf.logSoftmax(x, -1));
      const q = tf.split(this.teacherProbs(teacher, temp), 2, 0);
      const terms: Tensor[] = [];
      q.forEach((qi, iq) => s.forEach((sv, v) => v !== iq && terms.push(crossEntropy(qi, sv))));
      return tf.div(tf.addN(terms), terms.length) as tf.Scalar;
    });
    requireFinite(loss, [
      ['student', student],
      ['teacher', teacher],
    ]);
    this.updateCenter(teacher);
    return loss;
  }
}
