import { beforeAll, describe, expect, it } from 'vitest';
import { Generator, initBackend, manualSeed, tf } from '@skysense/core-tensor';
import { Pretrainer, SKYSENSE_PRESETS, type PretrainBatch, type PretrainOptions, type SkySense } from '../src/index';

/** The paper's pre-training details that 0.2 did differently: each test fails on the old behaviour. */
const options: PretrainOptions = {
  config: SKYSENSE_PRESETS['skysense-tiny'],
  steps: 4,
  seed: 5,
  heads: { outDim: 32, pixelOutDim: 16, hiddenDim: 24, bottleneckDim: 8 },
};

/** Two samples whose HR tiles are the same image (so per-image draws show as different views). */
function batch(): PretrainBatch {
  const g = new Generator(7);
  const r = (shape: number[]) => Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => g.normal());
  const tile = r([1, 3, 128, 128]);
  return {
    hr: tf.tensor4d([...tile, ...tile], [2, 3, 128, 128]),
    s2: {
      frames: tf.tensor(r([2, 2, 10, 4, 4]), [2, 2, 10, 4, 4]),
      dates: [
        ['2020-03-01', '2020-07-15'],
        ['2021-01-10', '2021-09-30'],
      ],
    },
    s1: { frames: tf.tensor(r([2, 1, 2, 4, 4]), [2, 1, 2, 4, 4]), dates: [['2020-05-05'], ['2021-02-02']] },
    lat: [48.1, -33.9],
    lon: [11.6, 18.4],
  };
}
const dispose = (b: PretrainBatch) => tf.dispose([b.hr!, b.s2!.frames, b.s1!.frames]);

/** One step of a fresh trainer; `spy` sees every input the model (student or teacher) is given. */
function step(o: Partial<PretrainOptions>, prepare?: (t: Pretrainer) => void) {
  manualSeed(0);
  const t = new Pretrainer({ ...options, ...o });
  prepare?.(t);
  const b = batch();
  const seen: { student: Float32Array[]; teacher: Float32Array[]; teacherDates: string[][] } = {
    student: [],
    teacher: [],
    teacherDates: [],
  };
  const spy = (m: SkySense, into: Float32Array[], dates?: string[][]) => {
    const f = m.forwardFeatures.bind(m);
    m.forwardFeatures = (inputs) => {
      into.push(inputs.hr!.dataSync() as Float32Array);
      dates?.push(...(inputs.s2!.dates as string[][]));
      return f(inputs);
    };
  };
  spy(t.student, seen.student);
  spy(t.teacher, seen.teacher, seen.teacherDates);
  const metrics = t.trainStep(b);
  const protos = t.student.geo!.prototypes.value.dataSync().slice();
  const hr = b.hr!.dataSync() as Float32Array;
  dispose(b);
  t.dispose();
  return { metrics, seen, hr, protos };
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i]!)));
const half = (a: Float32Array, i: 0 | 1) => a.subarray((i * a.length) / 2, ((i + 1) * a.length) / 2);
/** Replaces the prototypes of student and teacher by other values. */
const otherPrototypes = (t: Pretrainer) =>
  [t.student, t.teacher].forEach((m) => m.geo!.prototypes.assign(tf.tidy(() => tf.mul(m.geo!.prototypes.value, -3))));

describe('pre-training fidelity (paper §3.3)', () => {
  beforeAll(() => initBackend());

  it('the fusion term compares F_fus = fused ⊕ geo-context, so the prototypes enter L_MGCL', () => {
    const base = step({});
    const moved = step({}, otherPrototypes);
    expect(Math.abs(base.metrics.terms['fusion.image']! - moved.metrics.terms['fusion.image']!)).toBeGreaterThan(1e-6);
    expect(moved.metrics.terms['s2.image']).toBe(base.metrics.terms['s2.image']);
    // 0.2's F_fus^mm: the prototypes never entered the loss
    const old = [step({ fusionFeature: 'fused' }), step({ fusionFeature: 'fused' }, otherPrototypes)];
    expect(old[0]!.metrics.terms['fusion.image']).toBe(old[1]!.metrics.terms['fusion.image']);
    manualSeed(0);
    const t = new Pretrainer(options);
    expect(t.loss.sources.get('fusion')!.o.inDim).toBe(2 * SKYSENSE_PRESETS['skysense-tiny'].geo!.dims!);
    t.dispose();
  });

  it('the teacher sees its own augmented view (photometric draws and shifted dates), not the raw batch', () => {
    const { seen, hr } = step({});
    expect(maxDiff(seen.teacher[0]!, hr)).toBeGreaterThan(1e-3);
    expect(maxDiff(seen.teacher[0]!, seen.student[0]!)).toBeGreaterThan(1e-3);
    const old = step({ teacherAugment: false });
    expect(maxDiff(old.seen.teacher[0]!, old.hr)).toBe(0);
    expect(old.seen.teacherDates[0]).toEqual(['2020-03-01', '2020-07-15']);
  });

  it('brightness, blur and solarisation are drawn per image: two copies of one tile get different views', () => {
    const { seen } = step({});
    for (const views of [seen.student[0]!, seen.teacher[0]!]) expect(maxDiff(half(views, 0), half(views, 1))).toBeGreaterThan(1e-3);
    const old = step({ augmentPerImage: false, teacherAugment: false });
    expect(maxDiff(half(old.seen.student[0]!, 0), half(old.seen.student[0]!, 1))).toBe(0);
  });

  it('ablation switches (Tab. 5b): a term switched off is neither reported nor in the loss; gcpl off leaves the prototypes', () => {
    const { metrics } = step({ terms: { pixel: false, align: false } });
    expect(Object.keys(metrics.terms).some((k) => k.endsWith('.pixel') || k.startsWith('align'))).toBe(false);
    expect(metrics.align).toBe(0);
    const sum = Object.values(metrics.terms).reduce((a, b) => a + b, 0);
    expect(Math.abs(metrics.loss - sum)).toBeLessThan(1e-4 * Math.abs(sum));
    expect(step({ terms: { fusion: false } }).metrics.terms['fusion.image']).toBeUndefined();
    manualSeed(0);
    const initial = new Pretrainer(options);
    const before = initial.student.geo!.prototypes.value.dataSync().slice();
    initial.dispose();
    expect(maxDiff(step({ terms: { gcpl: false } }).protos, before)).toBe(0);
    expect(maxDiff(step({}).protos, before)).toBeGreaterThan(0);
    expect(() => new Pretrainer({ ...options, terms: { pixel: false, object: false, image: false } })).toThrow(
      /terms: pixel, object and image are all off; MGCL needs at least one granularity/,
    );
    expect(() => new Pretrainer({ ...options, terms: { colour: true } as never })).toThrow(/terms.colour: expected a boolean switch/);
    expect(() => new Pretrainer({ ...options, fusionFeature: 'both' as never })).toThrow(
      /fusionFeature: expected 'geo-context' or 'fused', got "both"/,
    );
  });
});
