import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator, initBackend, manualSeed, saveSafetensors, tf } from '@skysense/core-tensor';
import { Pretrainer, SKYSENSE_PRESETS, type PretrainBatch, type PretrainOptions } from '../src/index';
import { hrPhotometric } from '../src/pretrain';

const dir = mkdtempSync(join(tmpdir(), 'skysense-pretrain-'));
const options: PretrainOptions = {
  config: SKYSENSE_PRESETS['skysense-tiny'],
  steps: 24,
  seed: 3,
  lr: 1e-3,
  heads: { outDim: 32, pixelOutDim: 16, hiddenDim: 24, bottleneckDim: 8 },
};

/** A deterministic batch: two samples, HR 128 px, 2 S2 and 1 S1 frames of 4 px → 4 × 4 fused maps. */
function batch(i: number): PretrainBatch {
  const g = new Generator(100 + i);
  const r = (shape: number[]) =>
    tf.tensor(
      Float32Array.from({ length: shape.reduce((a, b) => a * b) }, () => g.normal()),
      shape,
    );
  return {
    hr: r([2, 3, 128, 128]),
    s2: {
      frames: r([2, 2, 10, 4, 4]),
      dates: [
        ['2020-03-01', '2020-07-15'],
        ['2021-01-10', '2021-09-30'],
      ],
    },
    s1: { frames: r([2, 1, 2, 4, 4]), dates: [['2020-05-05'], ['2021-02-02']] },
    lat: [48.1, -33.9],
    lon: [11.6, 18.4],
  };
}
const disposeBatch = (b: PretrainBatch) => tf.dispose([b.hr, b.s2?.frames, b.s1?.frames].filter((t): t is tf.Tensor => t !== undefined));
/** HR-only batches of two 128 px tiles (for the multi-crop runs). */
const hrBatch = (i: number): PretrainBatch => ({
  hr: tf.randomNormal([2, 3, 128, 128], 0, 1, 'float32', 20 + i),
  lat: [48, -33],
  lon: [11, 18],
});
const multiCropOptions: PretrainOptions = {
  ...options,
  config: { ...SKYSENSE_PRESETS['skysense-tiny'], s2: undefined, s1: undefined },
  steps: 4,
  multiCrop: { localCrops: 1 },
};
function run(t: Pretrainer, from: number, to: number, make: (i: number) => PretrainBatch = batch): number[] {
  const losses: number[] = [];
  for (let i = from; i < to; i++) {
    const b = make(i);
    losses.push(t.trainStep(b).loss);
    disposeBatch(b);
  }
  return losses;
}

describe('SkySense pre-training', () => {
  beforeAll(() => initBackend());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('one step: every term finite, student changes, teacher follows by EMA, prototypes of the batch regions move', () => {
    manualSeed(0);
    const t = new Pretrainer(options);
    const before = new Map([...t.student.stateDict()].map(([k, v]) => [k, tf.clone(v)]));
    const teacherBefore = new Map([...t.teacher.stateDict()].map(([k, v]) => [k, tf.clone(v)]));
    const b = batch(0);
    const m = t.trainStep(b);
    disposeBatch(b);
    expect(Object.keys(m.terms).sort()).toEqual([
      'align.hr→s1',
      'align.hr→s2',
      'align.s1→hr',
      'align.s1→s2',
      'align.s2→hr',
      'align.s2→s1',
      'fusion.image',
      'fusion.object',
      'fusion.pixel',
      'hr.image',
      'hr.object',
      'hr.pixel',
      's1.image',
      's1.object',
      's1.pixel',
      's2.image',
      's2.object',
      's2.pixel',
    ]);
    expect(Object.values(m.terms).every(Number.isFinite)).toBe(true);
    expect(m.loss).toBeCloseTo(m.mgcl + m.align, 4);
    // EMA by hand on one weight: t1 = m·t0 + (1 − m)·s1.
    const key = 'fusion.porj_linear.weight';
    const expected = tf.add(tf.mul(teacherBefore.get(key)!, m.momentum), tf.mul(t.student.stateDict().get(key)!, 1 - m.momentum));
    expect(tf.max(tf.abs(tf.sub(expected, t.teacher.stateDict().get(key)!))).dataSync()[0]).toBeLessThanOrEqual(1e-7);
    expect(tf.max(tf.abs(tf.sub(before.get(key)!, t.student.stateDict().get(key)!))).dataSync()[0]).toBeGreaterThan(0);
    // Prototypes: only the two batch regions' rows changed, and the teacher shares the student's bank.
    const changed = tf.tidy(() =>
      tf.any(tf.notEqual(before.get('glbank.prototypes')!, t.student.geo!.prototypes.value), [1, 2]).dataSync(),
    );
    const regions = [t.student.geo!.regionOf(48.1, 11.6), t.student.geo!.regionOf(-33.9, 18.4)].sort((a, b) => a - b);
    expect([...changed].flatMap((c, i) => (c ? [i] : []))).toEqual(regions);
    expect(tf.max(tf.abs(tf.sub(t.teacher.geo!.prototypes.value, t.student.geo!.prototypes.value))).dataSync()[0]).toBe(0);
    tf.dispose([...before.values(), ...teacherBefore.values(), expected]);
    t.dispose();
  });

  it('accumulates micro-batches into one step, and last-layer freezing leaves every last_layer untouched', () => {
    manualSeed(0);
    const t = new Pretrainer({ ...options, freezeLastLayerSteps: 1 });
    const lastLayers = t.loss.namedParameters().filter(([n]) => n.includes('last_layer.weight_v'));
    const before = lastLayers.map(([, p]) => tf.clone(p.value));
    const [b1, b2] = [batch(0), batch(1)];
    const m = t.trainStep([b1, b2]);
    expect(t.step).toBe(1);
    expect(t.optimizer.stepCount).toBe(1);
    expect(Number.isFinite(m.loss) && Number.isFinite(m.gradNorm)).toBe(true);
    lastLayers.forEach(([name, p], i) => expect(tf.max(tf.abs(tf.sub(p.value, before[i]!))).dataSync()[0], name).toBe(0));
    t.trainStep([b1, b2]); // the first update of last_layer creates its AdamW state
    expect(tf.max(tf.abs(tf.sub(lastLayers[0]![1].value, before[0]!))).dataSync()[0]).toBeGreaterThan(0);
    const tensors = tf.memory().numTensors;
    t.trainStep([b1, b2]);
    expect(tf.memory().numTensors).toBe(tensors);
    [b1, b2].forEach(disposeBatch);
    tf.dispose(before);
    t.dispose();
  });

  it('random fixed-length sub-sequences: 1 of 2 S2 frames per sample, validated', () => {
    manualSeed(0);
    const t = new Pretrainer({ ...options, frames: { s2: 1 } });
    const b = batch(0);
    expect(Number.isFinite(t.trainStep(b).loss)).toBe(true);
    const tensors = tf.memory().numTensors;
    t.trainStep(b);
    expect(tf.memory().numTensors).toBe(tensors);
    const bad = new Pretrainer({ ...options, frames: { s1: 0 } });
    expect(() => bad.trainStep(b)).toThrow(/frames.s1: expected an integer ≥ 1, got 0/);
    disposeBatch(b);
    bad.dispose();
    t.dispose();
  });

  it('HR photometric augmentation: blur of an impulse is the normalised Gaussian, solarisation inverts z > 0', () => {
    const impulse = tf.tidy(() =>
      tf.pad(tf.ones([1, 1, 1, 1]), [
        [0, 0],
        [0, 0],
        [4, 4],
        [4, 4],
      ]),
    );
    const sigma = 1;
    const blurred = hrPhotometric(impulse, 2, sigma, false);
    const w = [-2, -1, 0, 1, 2].map((d) => Math.exp(-(d * d) / 2));
    const sum = w.reduce((a, b) => a + b, 0);
    const row = (blurred.arraySync() as number[][][][])[0]![0]![4]!;
    // centre row: 2 · g(0) · g(dx) on the radius-2 support (kernel 2⌈2σ⌉+1 = 5), zero beyond
    expect(row.map((v) => +v.toFixed(6))).toEqual([0, 0, ...w.map((g) => +((2 * (w[2]! / sum) * g) / sum).toFixed(6)), 0, 0]);
    expect(tf.sum(blurred).dataSync()[0]).toBeCloseTo(2, 5);
    const sol = hrPhotometric(tf.tensor4d([-1, 0.5, 2, -3], [1, 1, 2, 2]), 1, 0, true);
    expect(Array.from(sol.dataSync())).toEqual([-1, -0.5, -2, -3]);
    tf.dispose([impulse, blurred, sol]);
  });

  it.each([
    ['one view', options, batch, 3],
    ['HR multi-crop', multiCropOptions, hrBatch, 2],
  ] as const)('resumes exactly (%s): k steps, save, resume, k steps gives the uninterrupted 2k-step loss sequence', (_, opts, make, k) => {
    manualSeed(0);
    const straight = new Pretrainer(opts);
    const expected = run(straight, 0, 2 * k, make);
    straight.dispose();
    manualSeed(0);
    const first = new Pretrainer(opts);
    const head = run(first, 0, k, make);
    const file = join(dir, 'ckpt.safetensors');
    first.save(file);
    first.dispose();
    manualSeed(12345); // a different process state: the checkpoint must restore everything
    const resumed = Pretrainer.resume(file);
    expect(resumed.step).toBe(k);
    expect([...head, ...run(resumed, k, 2 * k, make)]).toEqual(expected);
    resumed.dispose();
  });

  it('a non-finite forward pass stops the step naming it, updating nothing; a NaN input is refused by name', () => {
    manualSeed(0);
    const t = new Pretrainer(options);
    const file = join(dir, 'good.safetensors');
    t.save(file);
    const bytes = readFileSync(file);
    const b = batch(0);
    const hr = b.hr!;
    b.hr = tf.fill([2, 3, 128, 128], NaN);
    expect(() => t.trainStep(b)).toThrow(/batch.hr: contains NaN or infinite values/);
    b.hr.dispose();
    b.hr = hr;
    const key = 'fusion.porj_linear.bias';
    const bias = t.student.namedParameters().find(([n]) => n === key)![1];
    const good = tf.clone(bias.value);
    bias.assign(tf.fill([...bias.shape], NaN));
    const teacherW = tf.clone(t.teacher.stateDict().get('fusion.porj_linear.weight')!);
    expect(() => t.trainStep(b)).toThrow(/step 0: non-finite values in the forward pass .*nothing was updated/);
    disposeBatch(b);
    expect(tf.max(tf.abs(tf.sub(teacherW, t.teacher.stateDict().get('fusion.porj_linear.weight')!))).dataSync()[0]).toBe(0);
    expect(t.step).toBe(0);
    expect(readFileSync(file).equals(bytes)).toBe(true);
    bias.assign(good);
    tf.dispose([good, teacherW]);
    t.dispose();
  });

  it('names bad options, batches and checkpoints', () => {
    expect(() => new Pretrainer({ ...options, momentum: 2 })).toThrow(/momentum: expected .*1.*got 2/);
    expect(() => new Pretrainer({ ...options, steps: 0 })).toThrow(/steps: expected an integer/);
    expect(() => new Pretrainer({ ...options, warmupSteps: 99 })).toThrow(/warmupSteps/);
    manualSeed(0);
    const t = new Pretrainer(options);
    const b = batch(0);
    const dates = b.s2!.dates;
    b.s2!.dates = [['2020-03-01'], dates[1]!];
    expect(() => t.trainStep(b)).toThrow(/batch.s2.dates: expected 2 rows of 2 dates \(one per frame\), got rows of 1, 2/);
    b.s2!.dates = dates;
    expect(() => t.trainStep({ ...b, lon: [1] })).toThrow(/batch.lon: expected 2 values like batch.lat, got 1/);
    disposeBatch(b);
    const file = join(dir, 'plain.safetensors');
    saveSafetensors(file, t.student);
    expect(() => Pretrainer.resume(file)).toThrow(
      /not a SkySense pre-training checkpoint \(format 'none', expected 'skysense-pretrain-1'\)/,
    );
    saveSafetensors(file, new Map([['x', tf.zeros([1])]]), { metadata: { format: 'skysense-pretrain-1', options: '{oops' } });
    expect(() => Pretrainer.resume(file)).toThrow(/checkpoint metadata 'options' is missing or not valid JSON/);
    t.dispose();
  });

  it('keeps tensor count and RSS flat over 20 steps, with the loss falling', () => {
    manualSeed(0);
    const t = new Pretrainer(options);
    const losses = run(t, 0, 2);
    const tensors = tf.memory().numTensors;
    // RSS saw-tooths with garbage collection (tens of MiB per step on wasm); a leak raises its floor,
    // so the lowest RSS of the last ten steps is compared with the lowest of the first ten. On webgpu
    // the bytes of GPU buffers tfjs holds are measured instead (a software adapter's driver memory is
    // in RSS, and V8 frees Dawn's objects lazily)
    const gpu = tf.getBackend() === 'webgpu';
    const rss: number[] = [];
    for (let i = 0; i < 20; i++) {
      losses.push(...run(t, i, i + 1));
      rss.push(gpu ? (tf.memory() as unknown as { numBytesAllocatedInGPU: number }).numBytesAllocatedInGPU : process.memoryUsage().rss);
    }
    expect(tf.memory().numTensors).toBe(tensors);
    expect(Math.min(...rss.slice(-10)) - Math.min(...rss.slice(0, 10))).toBeLessThan(64 * 1024 * 1024);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(mean(losses.slice(0, 5)));
    t.dispose();
  });
});
