import {
  Module,
  SkySenseError,
  assertInRange,
  assertInt,
  formatShape,
  stopGradient,
  tf,
  type Buffer,
  type Tensor,
} from '@skysense/core-tensor';
import { checkLogits, checkTemperature, requireFinite, teacherTempSchedule } from './validate';

/** Options of {@link IBOTLoss}, with iBOT's names. */
export interface IBOTLossOptions {
  outDim: number;
  patchOutDim: number;
  /** Global crops. Default 2. */
  ngcrops?: number;
  /** Local crops. Default 0. */
  nlcrops?: number;
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTemp2: number;
  teacherTemp2: number;
  /** Default 30. */
  warmupTeacherTempEpochs?: number;
  nepochs: number;
  /** Default 0.1. */
  studentTemp?: number;
  /** Default 0.9. */
  centerMomentum?: number;
  /** Default 0.9. */
  centerMomentum2?: number;
  /** Weight of the cls term. Default 1. */
  lambda1?: number;
  /** Weight of the masked patch term. Default 1. */
  lambda2?: number;
  /** Epochs before the patch-term temperature warm-up starts. Default 0. */
  mimStartEpoch?: number;
}

/** The three iBOT loss values. */
export interface IBOTLossValues {
  cls: tf.Scalar;
  patch: tf.Scalar;
  loss: tf.Scalar;
}

/**
 * iBOT's loss: the DINO cls term over (global teacher view, other student view) pairs plus the
 * masked-patch term on matching global views (per image, the mean over masked patches of the
 * cross-entropy, an image without masked patches contributing 0), weighted by lambda1 / lambda2;
 * then both centers (`center`, `center2`) are updated by EMA.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { IBOTLoss } from '@skysense/losses';
 * await initBackend();
 * // iBOT: [CLS] distillation across views plus masked-patch distillation
 * const loss = new IBOTLoss({ outDim: 16, patchOutDim: 16, nepochs: 2, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTemp2: 0.04, teacherTemp2: 0.07, warmupTeacherTempEpochs: 1 });
 * const [b, n] = [2, 3]; // images, patches; 2 global views
 * const student = { cls: tf.randomNormal([2 * b, 16]), patch: tf.randomNormal([2 * b, n, 16]) };
 * const teacher = { cls: tf.randomNormal([2 * b, 16]), patch: tf.randomNormal([2 * b, n, 16]) };
 * const masks = [tf.tensor2d([[1, 0, 1], [0, 1, 0]], undefined, 'bool'), tf.tensor2d([[0, 0, 1], [1, 1, 0]], undefined, 'bool')];
 * const { loss: total } = loss.forward(student, teacher, null, masks, 0);
 * console.log(total.dataSync()[0]);
 * ```
 */
export class IBOTLoss extends Module {
  readonly center: Buffer;
  readonly center2: Buffer;
  readonly schedule: number[];
  readonly schedule2: number[];
  private readonly ng: number;
  private readonly ncrops: number;

  constructor(readonly o: IBOTLossOptions) {
    super();
    this.ng = assertInt('ngcrops', o.ngcrops ?? 2, 1);
    this.ncrops = this.ng + assertInt('nlcrops', o.nlcrops ?? 0, 0);
    checkTemperature('studentTemp', o.studentTemp ?? 0.1);
    assertInRange('centerMomentum', o.centerMomentum ?? 0.9, 0, 1);
    assertInRange('centerMomentum2', o.centerMomentum2 ?? 0.9, 0, 1);
    const warmupEpochs = o.warmupTeacherTempEpochs ?? 30;
    this.schedule = teacherTempSchedule({
      warmup: o.warmupTeacherTemp,
      final: o.teacherTemp,
      warmupEpochs,
      epochs: assertInt('nepochs', o.nepochs, 1),
    });
    this.schedule2 = teacherTempSchedule({
      warmup: o.warmupTeacherTemp2,
      final: o.teacherTemp2,
      warmupEpochs,
      epochs: o.nepochs,
      holdEpochs: o.mimStartEpoch ?? 0,
    });
    [...this.schedule, ...this.schedule2].forEach((t, i) => checkTemperature(`teacher temperature ${i}`, t));
    this.center = this.registerBuffer('center', [1, o.outDim], () => tf.zeros([1, o.outDim]));
    this.center2 = this.registerBuffer('center2', [1, 1, o.patchOutDim], () => tf.zeros([1, 1, o.patchOutDim]));
  }

  /**
   * @param student `{ cls: [ng·B, D], patch: [ng·B, N, P] }` of the global views.
   * @param teacher the same shapes from the teacher (no gradient).
   * @param studentLocalCls `[nl·B, D]` cls outputs of the local crops, or null.
   * @param masks per global crop, `[B, h, w]` (1 = masked patch), h·w = N.
   */
  forward(
    student: { cls: Tensor; patch: Tensor },
    teacher: { cls: Tensor; patch: Tensor },
    studentLocalCls: Tensor | null,
    masks: Tensor[],
    epoch: number,
  ): IBOTLossValues {
    const { outDim, patchOutDim } = this.o;
    checkLogits('student.cls', student.cls, 2, outDim);
    checkLogits('teacher.cls', teacher.cls, 2, outDim);
    checkLogits('student.patch', student.patch, 3, patchOutDim);
    checkLogits('teacher.patch', teacher.patch, 3, patchOutDim);
    if (masks.length !== this.ng) throw new SkySenseError('E_ARG', `masks: expected one per global crop (${this.ng}), got ${masks.length}`);
    const b = student.cls.shape[0]! / this.ng;
    const n = student.patch.shape[1]!;
    masks.forEach((m, i) => {
      if (m.shape[0] !== b || m.size !== b * n)
        throw new SkySenseError('E_SHAPE', `masks[${i}]: expected [${b}, h, w] with h·w = ${n}, got ${formatShape(m.shape)}`);
    });
    assertInt('epoch', epoch, 0, this.o.nepochs - 1);
    const [temp, temp2, st] = [this.schedule[epoch]!, this.schedule2[epoch]!, this.o.studentTemp ?? 0.1];
    const kept = tf.tidy(() => {
      const allCls = studentLocalCls ? tf.concat([student.cls, studentLocalCls], 0) : student.cls;
      if (allCls.shape[0] !== b * this.ncrops)
        throw new SkySenseError('E_SHAPE', `student cls rows: expected ${this.ncrops}·${b}, got ${allCls.shape[0]}`);
      const sCls = tf.split(tf.div(allCls, st), this.ncrops, 0).map((x) => tf.logSoftmax(x, -1));
      const sPatch = tf.split(tf.div(student.patch, st), this.ng, 0).map((x) => tf.logSoftmax(x, -1));
      const tCls = tf.split(stopGradient(tf.softmax(tf.div(tf.sub(teacher.cls, this.center.value), temp), -1)), this.ng, 0);
      const tPatch = tf.split(stopGradient(tf.softmax(tf.div(tf.sub(teacher.patch, this.center2.value), temp2), -1)), this.ng, 0);
      const t1: Tensor[] = [];
      const t2: Tensor[] = [];
      tCls.forEach((q, iq) =>
        sCls.forEach((s, v) => {
          if (v === iq) {
            const l = tf.sum(tf.mul(tf.neg(tPatch[iq]!), sPatch[v]!), -1);
            const m = tf.reshape(tf.cast(masks[v]!, 'float32'), [b, n]);
            t2.push(tf.mean(tf.div(tf.sum(tf.mul(l, m), -1), tf.maximum(tf.sum(m, -1), 1))));
          } else t1.push(tf.mean(tf.sum(tf.mul(tf.neg(q), s), -1)));
        }),
      );
      const cls = tf.mul(tf.div(tf.addN(t1), t1.length), this.o.lambda1 ?? 1);
      const patch = tf.mul(tf.div(tf.addN(t2), t2.length), this.o.lambda2 ?? 1);
      return [cls, patch, tf.add(cls, patch)];
    });
    requireFinite(
      kept[2]!,
      [
        ['student.cls', student.cls],
        ['teacher.cls', teacher.cls],
        ['student.patch', student.patch],
        ['teacher.patch', teacher.patch],
        ...(studentLocalCls ? [['studentLocalCls', studentLocalCls] as [string, Tensor]] : []),
      ],
      kept,
    );
    tf.tidy(() => {
      const m1 = this.o.centerMomentum ?? 0.9;
      const m2 = this.o.centerMomentum2 ?? 0.9;
      const c1 = tf.div(tf.sum(stopGradient(teacher.cls), 0, true), teacher.cls.shape[0]!);
      const c2 = tf.div(tf.sum(tf.mean(stopGradient(teacher.patch), 1, true), 0, true), teacher.patch.shape[0]!);
      this.center.assign(tf.add(tf.mul(this.center.value, m1), tf.mul(c1, 1 - m1)));
      this.center2.assign(tf.add(tf.mul(this.center2.value, m2), tf.mul(c2, 1 - m2)));
    });
    return { cls: kept[0] as tf.Scalar, patch: kept[1] as tf.Scalar, loss: kept[2] as tf.Scalar };
  }
}
