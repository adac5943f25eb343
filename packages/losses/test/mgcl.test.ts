import { beforeAll, describe, expect, it } from 'vitest';
import { disposeGradients, initBackend, tf, valueAndGrads, type Tensor } from '@skysense/core-tensor';
import {
  ContrastiveAlignment,
  CrossModalAlignment,
  FGCL,
  MGCL,
  SelfDistillation,
  disposeMGCLValues,
  imageTokens,
  objectTokens,
  pixelTokens,
  skySenseObjective,
} from '../src/index';
import { expectNoLeak, maxAbsDiff } from '@skysense/test-utils';

const softmax = (v: number[]) => {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
};
const small = { nlayers: 2, hiddenDim: 12, bottleneckDim: 4 };
const fgclOptions = (inDim: number) => ({
  inDim,
  outDim: 10,
  pixelOutDim: 6,
  head: small,
  distillation: { nepochs: 3, warmupTeacherTempEpochs: 2 },
  objects: { clusters: 2 },
});

describe('SkySense multi-granularity and alignment losses', () => {
  beforeAll(() => initBackend());

  it('SelfDistillation: cross-entropy of matched rows and the center EMA, computed by hand', () => {
    const s = [
      [0.3, -1.2, 2.0],
      [1.5, 0.1, -0.4],
    ];
    const t = [
      [0.9, 0.2, -0.5],
      [-0.3, 1.1, 0.6],
    ];
    const c0 = [0.1, -0.2, 0.05];
    const term = new SelfDistillation({
      outDim: 3,
      nepochs: 2,
      warmupTeacherTemp: 0.04,
      teacherTemp: 0.07,
      warmupTeacherTempEpochs: 2,
      studentTemp: 0.1,
      centerMomentum: 0.9,
    });
    term.center.assign(tf.tensor2d([c0]));
    let expected = 0;
    s.forEach((si, i) => {
      const q = softmax(t[i]!.map((x, k) => (x - c0[k]!) / 0.07));
      const p = softmax(si.map((x) => x / 0.1));
      expected += -q.reduce((acc, qk, k) => acc + qk * Math.log(p[k]!), 0) / s.length;
    });
    const value = term.forward(tf.tensor2d(s), tf.tensor2d(t), 1);
    expect(Math.abs(value.dataSync()[0]! - expected)).toBeLessThanOrEqual(1e-5 * expected);
    const c1 = c0.map((c, k) => 0.9 * c + 0.1 * ((t[0]![k]! + t[1]![k]!) / 2));
    expect(maxAbsDiff(term.center.value, tf.tensor2d([c1]))).toBeLessThanOrEqual(1e-7);
  });

  it('pixel and image tokens: one row per location, the global mean per image', () => {
    const map = tf.tensor4d(
      Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i),
      [2, 3, 2, 2],
    );
    const px = pixelTokens(map);
    expect(px.shape).toEqual([8, 3]);
    expect(Array.from(px.dataSync().slice(3, 6))).toEqual([1, 5, 9]); // image 0, location (0, 1)
    expect(Array.from(imageTokens(map).dataSync())).toEqual([1.5, 5.5, 9.5, 13.5, 17.5, 21.5]);
  });

  it('object tokens: the teacher clusters two materials, the student is pooled with the same weights', () => {
    // 4 × 4 map: left half along e0, right half along e1, small variations; student = 2·teacher + 1.
    const data: number[] = [];
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) data.push(c === (x < 2 ? 0 : 1) ? 1 + 0.01 * y : c === 2 ? 0.02 * x : 0);
    const teacher = tf.tensor4d(data, [1, 3, 4, 4]);
    const student = tf.add(tf.mul(teacher, 2), 1);
    const { teacher: pt, student: ps } = objectTokens(teacher, student, { clusters: 2 });
    expect(pt.shape).toEqual([2, 3]);
    const rows = tf.tidy(() => pt.arraySync() as number[][]).sort((a, b) => b[0]! - a[0]!);
    // left half: e0 · (1 + 0.01·mean(y)) and channel 2 = 0.02·mean(x ∈ {0, 1}); right half likewise along e1.
    expect(rows[0]![0]).toBeCloseTo(1.015, 4);
    expect(rows[0]![2]).toBeCloseTo(0.01, 4);
    expect(rows[1]![1]).toBeCloseTo(1.015, 4);
    expect(rows[1]![2]).toBeCloseTo(0.05, 4);
    expect(maxAbsDiff(ps, tf.add(tf.mul(pt, 2), 1))).toBeLessThanOrEqual(1e-5);
  });

  it('CrossModalAlignment equals twice ALBEF’s loss_ita for two modalities and sums the 6 ordered pairs for three', () => {
    const albef = new ContrastiveAlignment({ widthA: 5, widthB: 3, embedDim: 4 });
    const ours = new CrossModalAlignment({ widths: { a: 5, b: 3 }, embedDim: 4 });
    const sd = albef.stateDict();
    ours.loadStateDict(
      new Map([
        ['temp', sd.get('temp')!],
        ['proj.a.weight', sd.get('vision_proj.weight')!],
        ['proj.a.bias', sd.get('vision_proj.bias')!],
        ['proj.b.weight', sd.get('text_proj.weight')!],
        ['proj.b.bias', sd.get('text_proj.bias')!],
      ]),
    );
    const a = tf.randomNormal([4, 1, 5]);
    const b = tf.randomNormal([4, 1, 3]);
    const ref = albef.forward(a, b);
    const got = ours.forward({ a: tf.reshape(a, [4, 5]), b: tf.reshape(b, [4, 3]) });
    expect(maxAbsDiff(got.pairs['a→b']!, ref.lossAB)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(got.pairs['b→a']!, ref.lossBA)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(got.total, tf.mul(ref.loss, 2))).toBeLessThanOrEqual(1e-5);

    const three = new CrossModalAlignment({ widths: { hr: 6, s2: 5, s1: 4 }, embedDim: 3 });
    const r3 = three.forward({ hr: tf.randomNormal([3, 6]), s2: tf.randomNormal([3, 5]), s1: tf.randomNormal([3, 4]) });
    expect(Object.keys(r3.pairs).sort()).toEqual(['hr→s1', 'hr→s2', 's1→hr', 's1→s2', 's2→hr', 's2→s1']);
    expect(maxAbsDiff(r3.total, tf.addN(Object.values(r3.pairs)))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(skySenseObjective(tf.scalar(2), tf.scalar(3), { alpha: 0.5, beta: 2 }), tf.scalar(7))).toBe(0);
  });

  it('MGCL: gradients reach the student heads only (the teacher’s are exactly zero), and every center moves', () => {
    const options = { hr: fgclOptions(8), fusion: fgclOptions(6) };
    const student = new MGCL(options);
    const teacher = new MGCL(options);
    const maps = { hr: tf.randomNormal([2, 8, 4, 4]), fusion: tf.randomNormal([2, 6, 4, 4]) };
    const tmaps = { hr: tf.randomNormal([2, 8, 4, 4]), fusion: tf.randomNormal([2, 6, 4, 4]) };
    const centersBefore = student.namedBuffers().map(([, b]) => tf.clone(b.value));
    const params = [...student.namedParameters(), ...teacher.namedParameters()];
    let values: ReturnType<MGCL['forward']> | undefined;
    const { value, grads } = valueAndGrads(params, () => {
      values = student.forward(maps, tmaps, teacher, 1);
      Object.values(values.sources).forEach((f) => [f.pixel, f.object, f.image, f.total].forEach((t) => tf.keep(t)));
      return values.total;
    });
    const fgcl = values!.sources.hr!;
    expect(maxAbsDiff(fgcl.total, tf.addN([fgcl.pixel, fgcl.object, fgcl.image]))).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(value, tf.add(values!.sources.hr!.total, values!.sources.fusion!.total))).toBeLessThanOrEqual(1e-5);
    const studentTrainable = student.namedParameters().filter(([, p]) => p.requiresGrad);
    expect(studentTrainable.every(([, p]) => grads.has(p))).toBe(true);
    const gradNorm = (t: Tensor | undefined) => (t ? tf.tidy(() => tf.max(tf.abs(t)).dataSync()[0]!) : 0);
    expect(teacher.namedParameters().map(([, p]) => gradNorm(grads.get(p)))).toEqual(teacher.namedParameters().map(() => 0));
    expect(
      studentTrainable
        .filter(([name]) => name.includes('weight_v') || name.endsWith('mlp.0.weight'))
        .every(([, p]) => gradNorm(grads.get(p)) > 0),
    ).toBe(true);
    student.namedBuffers().forEach(([name, b], i) => expect(maxAbsDiff(b.value, centersBefore[i]!), name).toBeGreaterThan(0));
    disposeGradients(grads);
    disposeMGCLValues(values!);
  });

  it('keeps the live tensor count flat across repeated MGCL and alignment steps', () => {
    const student = new FGCL(fgclOptions(4));
    const teacher = new FGCL(fgclOptions(4));
    const align = new CrossModalAlignment({ widths: { x: 4, y: 4 }, embedDim: 2 });
    const [s, t] = [tf.randomNormal([2, 4, 3, 3]), tf.randomNormal([2, 4, 3, 3])];
    const once = () => {
      const v = student.forward(s, t, teacher, 0);
      const features = { x: imageTokens(s), y: imageTokens(t) };
      const al = align.forward(features);
      tf.dispose([v.pixel, v.object, v.image, v.total, al.total, ...Object.values(al.pairs), features.x, features.y]);
    };
    expectNoLeak(once);
  });

  it('names what is wrong with bad input', () => {
    const fgcl = new FGCL(fgclOptions(4));
    expect(() => fgcl.forward(tf.zeros([1, 5, 2, 2]), tf.zeros([1, 5, 2, 2]), fgcl, 0)).toThrow(
      /FGCL student: expected \[B, 4, h, w\], got \[1, 5, 2, 2\]/,
    );
    expect(() => objectTokens(tf.zeros([1, 4, 2, 2]), tf.zeros([1, 4, 3, 3]))).toThrow(
      /aligned to the same shape, got \[1, 4, 2, 2\] and \[1, 4, 3, 3\]/,
    );
    expect(() => objectTokens(tf.zeros([1, 4, 2, 2]), tf.zeros([1, 4, 2, 2]), { clusters: 0 })).toThrow(/clusters/);
    expect(objectTokens(tf.randomNormal([1, 4, 2, 2]), tf.zeros([1, 4, 2, 2]), { clusters: 5 }).teacher.shape).toEqual([4, 4]);
    const mgcl = new MGCL({ hr: fgclOptions(4) });
    expect(() => mgcl.forward({}, {}, mgcl, 0)).toThrow(/source 'hr' needs a student map/);
    const align = new CrossModalAlignment({ widths: { hr: 4, s2: 3 } });
    expect(() => align.forward({ hr: tf.zeros([2, 4]), s2: tf.zeros([2, 5]) })).toThrow(/features.s2: expected \[B, 3\], got \[2, 5\]/);
    expect(() => align.forward({ hr: tf.fill([2, 4], NaN), s2: tf.zeros([2, 3]) })).toThrow(/features.hr: contains NaN/);
    expect(() => new SelfDistillation({ outDim: 3, nepochs: 2 }).forward(tf.zeros([2, 3]), tf.fill([2, 3], NaN), 0)).toThrow(
      /teacher: contains NaN/,
    );
  });
});
