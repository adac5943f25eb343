import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { disposeGradients, initBackend, loadSafetensors, tf, valueAndGrads, type BackendKind, type Tensor } from '@skysense/core-tensor';
import { ContrastiveAlignment, DINOHead, DINOLoss, IBOTLoss } from '../src/index';
import { expectNoLeak, maxAbsDiff, parityBackends } from '@skysense/test-utils';

const load = (name: string, part: string) => loadSafetensors(join(__dirname, 'fixtures', 'parity', name, `${part}.safetensors`));
/** Values only: the fixtures store scalars as [1]. */
const maxAbs = (a: Tensor, b: Tensor) => maxAbsDiff(a.dataSync(), b.dataSync());

describe.each(parityBackends<BackendKind>())('losses against the reference implementations on %s', (backend) => {
  beforeAll(() => initBackend({ force: backend }));

  it('DINOHead and DINOLoss (warm-up and final temperature, center EMA) match facebookresearch/dino', () => {
    const w = load('dino-loss-a', 'weights');
    const inp = load('dino-loss-a', 'input');
    const out = load('dino-loss-a', 'output');
    const head = new DINOHead({ inDim: 24, outDim: 64, nlayers: 3, hiddenDim: 32, bottleneckDim: 16, normLastLayer: true });
    expect(head.loadStateDict(w).loaded).toHaveLength(8);
    const student = head.forward(inp.get('head_in')!);
    const teacher = head.forward(inp.get('teacher_in')!);
    expect(maxAbs(student, out.get('student_output')!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbs(teacher, out.get('teacher_output')!)).toBeLessThanOrEqual(1e-5);
    const loss = new DINOLoss({
      outDim: 64,
      ncrops: 4,
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.07,
      warmupTeacherTempEpochs: 30,
      nepochs: 100,
      studentTemp: 0.1,
      centerMomentum: 0.9,
    });
    expect(maxAbs(tf.tensor1d(loss.schedule), out.get('teacher_temp_schedule')!)).toBeLessThanOrEqual(1e-7);
    loss.center.assign(inp.get('center_init')!);
    expect(maxAbs(loss.forward(student, teacher, 10), out.get('loss_step1')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(loss.center.value, out.get('center_step1')!)).toBeLessThanOrEqual(1e-6);
    expect(maxAbs(loss.forward(student, teacher, 50), out.get('loss_step2')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(loss.center.value, out.get('center_step2')!)).toBeLessThanOrEqual(1e-6);
  });

  it('iBOTLoss (cls + masked patch terms, empty masks, both centers) matches bytedance/ibot', () => {
    const inp = load('ibot-patch-loss-a', 'input');
    const out = load('ibot-patch-loss-a', 'output');
    const loss = new IBOTLoss({
      outDim: 32,
      patchOutDim: 24,
      ngcrops: 2,
      nlcrops: 2,
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.07,
      warmupTeacherTemp2: 0.04,
      teacherTemp2: 0.07,
      warmupTeacherTempEpochs: 10,
      nepochs: 20,
      studentTemp: 0.1,
      centerMomentum: 0.9,
      centerMomentum2: 0.9,
      lambda1: 1,
      lambda2: 0.5,
      mimStartEpoch: 0,
    });
    expect(maxAbs(tf.tensor1d(loss.schedule), out.get('teacher_temp_schedule')!)).toBeLessThanOrEqual(1e-7);
    expect(maxAbs(tf.tensor1d(loss.schedule2), out.get('teacher_temp2_schedule')!)).toBeLessThanOrEqual(1e-7);
    loss.center.assign(inp.get('center_init')!);
    loss.center2.assign(inp.get('center2_init')!);
    const masks = tf.unstack(inp.get('student_mask')!);
    const r = loss.forward(
      { cls: inp.get('student_cls')!, patch: inp.get('student_patch')! },
      { cls: inp.get('teacher_cls')!, patch: inp.get('teacher_patch')! },
      inp.get('student_local_cls')!,
      masks,
      5,
    );
    expect(maxAbs(r.cls, out.get('loss_cls')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(r.patch, out.get('loss_patch')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(r.loss, out.get('loss')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(loss.center.value, out.get('center')!)).toBeLessThanOrEqual(1e-6);
    expect(maxAbs(loss.center2.value, out.get('center2')!)).toBeLessThanOrEqual(1e-6);
  });

  it('ContrastiveAlignment matches ALBEF’s ITC loss (only the first token used)', () => {
    const w = load('itc-loss-a', 'weights');
    const inp = load('itc-loss-a', 'input');
    const out = load('itc-loss-a', 'output');
    const align = new ContrastiveAlignment({ widthA: 32, widthB: 24, embedDim: 16 });
    w.set('temp', tf.reshape(w.get('temp')!, []));
    align.loadStateDict(w);
    const r = align.forward(inp.get('image_embeds')!, inp.get('text_embeds')!);
    expect(maxAbs(r.featA, out.get('image_feat')!)).toBeLessThanOrEqual(1e-6);
    expect(maxAbs(r.featB, out.get('text_feat')!)).toBeLessThanOrEqual(1e-6);
    expect(maxAbs(r.simAB, out.get('sim_i2t')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(r.simBA, out.get('sim_t2i')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbs(r.lossAB, out.get('loss_i2t')!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbs(r.lossBA, out.get('loss_t2i')!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbs(r.loss, out.get('loss_ita')!)).toBeLessThanOrEqual(1e-5);
  });
});

describe('loss behaviour', () => {
  beforeAll(() => initBackend());

  it('gradients reach the student head only; the frozen weight-norm magnitude gets none', () => {
    const head = new DINOHead({ inDim: 8, outDim: 16, hiddenDim: 12, bottleneckDim: 4 });
    const loss = new DINOLoss({ outDim: 16, ncrops: 2, nepochs: 1, warmupTeacherTempEpochs: 1 });
    const x = tf.randomNormal([4, 8]);
    const teacherOut = tf.randomNormal([4, 16]);
    const { value, grads } = valueAndGrads(head, () => loss.forward(head.forward(x), teacherOut, 0));
    expect(grads.has(head.lastLayer.weightG)).toBe(false);
    expect(grads.has(head.lastLayer.weightV)).toBe(true);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    disposeGradients(grads);
  });

  it('keeps the live tensor count flat across repeated calls (results and center updates included)', () => {
    const head = new DINOHead({ inDim: 8, outDim: 16, hiddenDim: 12, bottleneckDim: 4 });
    const dino = new DINOLoss({ outDim: 16, ncrops: 2, nepochs: 2, warmupTeacherTempEpochs: 1 });
    const ibot = new IBOTLoss({
      outDim: 16,
      patchOutDim: 16,
      nepochs: 2,
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.07,
      warmupTeacherTemp2: 0.04,
      teacherTemp2: 0.07,
      warmupTeacherTempEpochs: 1,
    });
    const align = new ContrastiveAlignment({ widthA: 8, widthB: 6, embedDim: 4 });
    const [x, cls, patch, a, b] = [
      tf.randomNormal([4, 8]),
      tf.randomNormal([4, 16]),
      tf.randomNormal([4, 3, 16]),
      tf.randomNormal([2, 3, 8]),
      tf.randomNormal([2, 5, 6]),
    ];
    const masks = [
      tf.tensor2d(
        [
          [1, 0, 1],
          [0, 0, 0],
        ],
        undefined,
        'bool',
      ),
      tf.tensor2d(
        [
          [0, 1, 0],
          [1, 1, 1],
        ],
        undefined,
        'bool',
      ),
    ];
    const once = () => {
      tf.dispose([head.forward(x), dino.forward(cls, cls, 1)]);
      tf.dispose(Object.values(ibot.forward({ cls, patch }, { cls, patch }, null, masks, 1)));
      tf.dispose(Object.values(align.forward(a, b)));
    };
    expectNoLeak(once);
  });

  it('validates shapes, temperatures and finiteness, naming the problem', () => {
    expect(() => new DINOLoss({ outDim: 4, ncrops: 2, nepochs: 10, studentTemp: 0 })).toThrow(
      /studentTemp: expected a finite number > 0, got 0/,
    );
    const loss = new DINOLoss({ outDim: 4, ncrops: 2, nepochs: 10 });
    expect(() => loss.forward(tf.zeros([4, 5]), tf.zeros([4, 4]), 0)).toThrow(
      /student: expected rank 2 with last dimension 4, got \[4, 5\]/,
    );
    const before = tf.memory().numTensors;
    expect(() =>
      loss.forward(
        tf.tidy(() => tf.tensor2d([NaN, 0, 0, 0, 0, 0, 0, 0], [2, 4])),
        tf.zeros([2, 4]),
        0,
      ),
    ).toThrow(/student: contains NaN/);
    expect(() => loss.forward(tf.zeros([2, 4]), tf.fill([2, 4], Infinity), 0)).toThrow(/teacher: contains NaN or infinite/);
    expect(Array.from(loss.center.value.dataSync())).toEqual([0, 0, 0, 0]); // no center update from a bad batch
    expect(tf.memory().numTensors - before).toBeLessThanOrEqual(4); // only the test's own inputs
    expect(() => loss.forward(tf.zeros([4, 4]), tf.zeros([4, 4]), 10)).toThrow(/epoch: expected an integer in \[0, 9\], got 10/);
    const align = new ContrastiveAlignment({ widthA: 4, widthB: 4, embedDim: 2 });
    expect(() => align.forward(tf.zeros([3, 1, 4]), tf.zeros([2, 1, 4]))).toThrow(/same batch/);
    expect(() => align.forward(tf.zeros([2, 1, 4]), tf.fill([2, 1, 4], NaN))).toThrow(/modality B: contains NaN/);
  });
});
