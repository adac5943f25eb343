import { beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  BatchNorm2d,
  Generator,
  Linear,
  Module,
  SGD,
  SkySenseError,
  buildParamGroups,
  clipGradNorm,
  constantLr,
  cosineLr,
  cosineMomentum,
  disposeGradients,
  emaUpdate,
  initBackend,
  linearWarmup,
  polyLr,
  sinkhornKnopp,
  stepLr,
  tf,
  valueAndGrads,
  zeros,
  type Parameter,
  type Tensor,
} from '../src/index';
import { expectClose, expectNoLeak, loadFixture } from './helpers';

/** One parameter vector and the loss Σ c·p² (gradient 2·c·p), for closed-form optimizer checks. */
class Quadratic extends Module {
  readonly p: Parameter = this.registerParameter('p', [3], zeros);
  constructor(init: number[]) {
    super();
    this.p.assign(tf.tensor1d(init));
  }
}
const C = [1, 0.5, -0.25];
const lossOf = (m: Quadratic) => () => tf.sum(tf.mul(tf.square(m.p.value), tf.tensor1d(C))) as tf.Scalar;

function run(opt: AdamW | SGD, m: Quadratic, steps: number): Float32Array {
  for (let i = 0; i < steps; i++) {
    const { value, grads } = valueAndGrads(m, lossOf(m));
    opt.step(grads);
    value.dispose();
    disposeGradients(grads);
  }
  return m.p.value.dataSync() as Float32Array;
}

describe('optimizers', () => {
  beforeAll(() => initBackend());

  it('AdamW follows PyTorch’s update (decoupled decay, bias correction) step by step', () => {
    const p0 = [1, -2, 0.5];
    const [lr, wd, b1, b2, eps] = [0.1, 0.05, 0.9, 0.999, 1e-8];
    const p = [...p0],
      m = [0, 0, 0],
      v = [0, 0, 0];
    for (let t = 1; t <= 4; t++) {
      for (let i = 0; i < 3; i++) {
        const g = 2 * C[i]! * p[i]!;
        p[i] = p[i]! * (1 - lr * wd);
        m[i] = b1 * m[i]! + (1 - b1) * g;
        v[i] = b2 * v[i]! + (1 - b2) * g * g;
        const denom = Math.sqrt(v[i]!) / Math.sqrt(1 - b2 ** t) + eps;
        p[i] = p[i]! - (lr / (1 - b1 ** t)) * (m[i]! / denom);
      }
    }
    const q = new Quadratic(p0);
    const opt = new AdamW(q, { lr, weightDecay: wd });
    expectClose(run(opt, q, 4), p, 1e-6);
    expect(opt.stepCount).toBe(4);
    opt.dispose();
  });

  it.each([false, true])('SGD with momentum, dampening-free, weight decay (nesterov %s) follows PyTorch', (nesterov) => {
    const p0 = [1, -2, 0.5];
    const [lr, mom, wd] = [0.1, 0.9, 0.01];
    const p = [...p0],
      buf = [0, 0, 0];
    for (let t = 1; t <= 4; t++) {
      for (let i = 0; i < 3; i++) {
        const d = 2 * C[i]! * p[i]! + wd * p[i]!;
        buf[i] = t === 1 ? d : mom * buf[i]! + d;
        p[i] = p[i]! - lr * (nesterov ? d + mom * buf[i]! : buf[i]!);
      }
    }
    const q = new Quadratic(p0);
    expectClose(run(new SGD(q, { lr, momentum: mom, weightDecay: wd, nesterov }), q, 4), p, 1e-6);
  });

  it('AdamW state round-trips: 3 steps + save + load into a fresh optimizer + 2 steps = 5 steps', () => {
    const straight = new Quadratic([1, -2, 3]);
    const expected = Array.from(run(new AdamW(straight, { lr: 0.1 }), straight, 5));
    const first = new Quadratic([1, -2, 3]);
    const opt = new AdamW(first, { lr: 0.1 });
    run(opt, first, 3);
    const saved = new Map([...opt.stateDict()].map(([k, v]) => [k, tf.clone(v)]));
    expect([...saved.keys()]).toEqual(['0.0.0', '0.0.1']);
    const resumed = new Quadratic([0, 0, 0]);
    resumed.p.assign(first.p.value);
    const opt2 = new AdamW(resumed, { lr: 0.1 });
    opt2.loadStateDict(saved, opt.stepCount);
    expect(Array.from(run(opt2, resumed, 2))).toEqual(expected);
    expect(() => opt2.loadStateDict(new Map([['0.0.0', tf.zeros([2])]]), 1)).toThrow(
      /optimizer state '0.0.0': no parameter of shape \[2\]/,
    );
    tf.dispose([...saved.values()]);
  });

  it('Generator state round-trips (uniform and the cached normal continue exactly)', () => {
    const g = new Generator(7);
    g.normal();
    const state = JSON.parse(JSON.stringify(g.getState()));
    const next = [g.normal(), g.random(), g.normal()];
    expect([new Generator(0).setState(state)].map((h) => [h.normal(), h.random(), h.normal()])[0]).toEqual(next);
    expect(() => new Generator(0).setState({ s: [1, 2], spareNormal: null })).toThrow(/generator state: expected/);
  });

  it('optimizer steps leak no tensors and skip frozen parameters', () => {
    const q = new Quadratic([1, 1, 1]);
    const opt = new AdamW(q, { lr: 0.1 });
    expectNoLeak(() => run(opt, q, 1));
    const frozen = new Quadratic([1, 1, 1]);
    const opt2 = new SGD([{ params: [frozen.p] }], { lr: 1 });
    const { value, grads } = valueAndGrads([frozen.p], lossOf(frozen));
    frozen.p.requiresGrad = false;
    opt2.step(grads);
    expectClose(frozen.p.value, [1, 1, 1], 0);
    value.dispose();
    disposeGradients(grads);
  });

  it('parameter groups: no decay for norms, biases and tokens; layer-wise lr decay as mmseg', () => {
    class Toy extends Module {
      readonly patch = this.registerModule('patch_embed', new Linear(2, 2));
      readonly cls: Parameter = this.registerParameter('cls_token', [1, 2], zeros);
      readonly l0 = this.registerModule('layers0', new Linear(2, 2));
      readonly l1 = this.registerModule('layers1', new Linear(2, 2));
      readonly bn = this.registerModule('norm', new BatchNorm2d(2));
      readonly head = this.registerModule('head', new Linear(2, 1));
    }
    const toy = new Toy();
    toy.bn.freeze();
    const layerId = (n: string) =>
      n.startsWith('patch_embed') || n === 'cls_token' ? 0 : n.startsWith('layers0') ? 1 : n.startsWith('layers1') ? 2 : 3;
    const groups = buildParamGroups(toy.namedParameters(), { lr: 1, weightDecay: 0.05, layerDecay: { rate: 0.5, numLayers: 2, layerId } });
    const byName = Object.fromEntries(groups.map((g) => [g.name, g]));
    expect(Object.keys(byName).sort()).toEqual([
      'layer_0_decay',
      'layer_0_no_decay',
      'layer_1_decay',
      'layer_1_no_decay',
      'layer_2_decay',
      'layer_2_no_decay',
      'layer_3_decay',
      'layer_3_no_decay',
    ]);
    expect(byName.layer_0_decay!.lr).toBeCloseTo(0.125, 12);
    expect(byName.layer_1_decay!.lr).toBeCloseTo(0.25, 12);
    expect(byName.layer_3_decay!.lr).toBe(1);
    expect(byName.layer_0_no_decay!.params).toEqual([toy.cls, toy.patch.bias]);
    expect(byName.layer_0_no_decay!.weightDecay).toBe(0);
    expect(byName.layer_0_decay!.weightDecay).toBe(0.05);
    expect(groups.flatMap((g) => g.params)).not.toContain(toy.bn.weight);
    const opt = new AdamW(groups, { lr: 1 });
    opt.applySchedule(polyLr({ maxIters: 10 }), 5);
    expect(opt.groups.find((g) => g.name === 'layer_1_decay')!.lr).toBeCloseTo(0.125, 12);
    expect(() =>
      buildParamGroups(toy.namedParameters(), { lr: 1, weightDecay: 0, layerDecay: { rate: 0.5, numLayers: 2, layerId: () => 9 } }),
    ).toThrow(/returned 9, expected an integer in \[0, 3\]/);
  });
});

describe('schedules', () => {
  it('follow mmcv’s formulas', () => {
    expect(constantLr()(7, 0.1)).toBe(0.1);
    expect(polyLr({ maxIters: 100 })(50, 0.1)).toBeCloseTo(0.05, 12);
    expect(polyLr({ maxIters: 100, power: 0.9, minLr: 1e-4 })(50, 0.1)).toBeCloseTo((0.1 - 1e-4) * 0.5 ** 0.9 + 1e-4, 12);
    expect(cosineLr({ maxIters: 100, minLr: 0.01 })(50, 0.1)).toBeCloseTo(0.055, 12);
    expect(cosineLr({ maxIters: 100, minLrRatio: 0.1 })(100, 0.2)).toBeCloseTo(0.02, 12);
    expect(stepLr({ steps: [10, 20] })(15, 0.1)).toBeCloseTo(0.01, 12);
    const warm = linearWarmup(constantLr(), { iters: 10, ratio: 0.1 });
    expect(warm(0, 1)).toBeCloseTo(0.1, 12);
    expect(warm(5, 1)).toBeCloseTo(0.55, 12);
    expect(warm(10, 1)).toBe(1);
    expect(cosineMomentum(0, 100)).toBeCloseTo(0.996, 12);
    expect(cosineMomentum(50, 100)).toBeCloseTo(0.998, 12);
    expect(cosineMomentum(100, 100)).toBe(1);
  });
});

describe('gradient clipping, EMA and Sinkhorn', () => {
  beforeAll(() => initBackend());

  it('clipGradNorm scales by maxNorm / (norm + 1e-6) only above the limit', () => {
    const a = new Quadratic([0, 0, 0]);
    const b = new Quadratic([0, 0, 0]);
    const grads = new Map<Parameter, Tensor>([
      [a.p, tf.tensor1d([3, 0, 0])],
      [b.p, tf.tensor1d([0, 4, 0])],
    ]);
    const { totalNorm, grads: clipped } = clipGradNorm(grads, 1);
    expect(totalNorm).toBeCloseTo(5, 6);
    expectClose(clipped.get(a.p)!, [3 / (5 + 1e-6), 0, 0], 1e-7);
    const under = new Map<Parameter, Tensor>([[a.p, tf.tensor1d([0.1, 0, 0])]]);
    expect(clipGradNorm(under, 1).grads).toBe(under);
  });

  it('emaUpdate moves the teacher towards the student and copies buffers', () => {
    const student = new BatchNorm2d(2);
    const teacher = new BatchNorm2d(2);
    student.weight!.assign(tf.tensor1d([2, 4]));
    student.runningMean.assign(tf.tensor1d([5, 6]));
    emaUpdate(teacher, student, 0.9);
    expectClose(teacher.weight!.value, [1.1, 1.3], 1e-6);
    expectClose(teacher.runningMean.value, [5, 6], 0);
    expect(() => emaUpdate(new Linear(2, 2), new Linear(2, 3), 0.9)).toThrow(SkySenseError);
    expect(() => emaUpdate(teacher, student, 1.5)).toThrow(/momentum: expected a number in \[0, 1\], got 1.5/);
  });

  it('sinkhornKnopp reproduces SwAV’s distributed_sinkhorn (sinkhorn-a, 1e-5)', () => {
    const scores = loadFixture('sinkhorn-a', 'input').get('scores')!;
    const out = loadFixture('sinkhorn-a', 'output');
    const q = sinkhornKnopp(scores, { epsilon: 0.05, iterations: 3 });
    expectClose(q, out.get('Q')!, 1e-5);
    expectClose(tf.sum(q, 1), out.get('Q_row_sums')!, 1e-5);
    expectClose(tf.sum(q, 0), out.get('Q_col_sums')!, 1e-5);
    const sharp = sinkhornKnopp(tf.mul(scores, 1000));
    expect(tf.all(tf.isFinite(sharp)).dataSync()[0]).toBe(1);
    expectClose(tf.sum(sharp, 1), new Array(16).fill(1), 1e-5);
    expect(() => sinkhornKnopp(tf.tensor2d([NaN, 1], [1, 2]))).toThrow(/expected finite values/);
    expect(() => sinkhornKnopp(tf.ones([2, 2, 2]))).toThrow(/expected \[B, K\], got \[2, 2, 2\]/);
    expectNoLeak(() => sinkhornKnopp(scores).dispose());
  });
});
