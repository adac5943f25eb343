import { beforeAll, describe, expect, it } from 'vitest';
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  DropPath,
  Dropout,
  Embedding,
  FFN,
  TransformerEncoderLayer,
  GELU,
  Generator,
  LayerNorm,
  Linear,
  ModuleList,
  MultiheadAttention,
  PixelShuffle,
  ReLU,
  Sequential,
  Upsample,
  disposeGradients,
  gelu,
  manualSeed,
  tf,
  valueAndGrads,
  type Module,
  type Tensor,
  type BackendKind,
} from '../src/index';
import { TEST_BACKENDS, expectClose, expectNoLeak, numericGrad, testTensor, useBackend } from './helpers';

/** Naive float64 multi-head attention (batch-first), from the PyTorch definition. */
function naiveMha(
  x: Float32Array,
  n: number,
  l: number,
  e: number,
  heads: number,
  w: Float32Array,
  b: Float32Array,
  wo: Float32Array,
  bo: Float32Array,
  masked: boolean[][] = [],
): Float64Array {
  const hd = e / heads;
  const proj = (t: number, tok: number, j: number) => {
    let acc = b[t * e + j]!;
    for (let k = 0; k < e; k++) acc += x[tok * e + k]! * w[(t * e + j) * e + k]!;
    return acc;
  };
  const out = new Float64Array(n * l * e);
  for (let s = 0; s < n; s++) {
    const ctx = new Float64Array(l * e);
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < l; i++) {
        const logits = [];
        for (let j = 0; j < l; j++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += (proj(0, s * l + i, h * hd + d) / Math.sqrt(hd)) * proj(1, s * l + j, h * hd + d);
          logits.push(masked[s]?.[j] ? -Infinity : dot);
        }
        const mx = Math.max(...logits);
        const ex = logits.map((v) => Math.exp(v - mx));
        const z = ex.reduce((a, c) => a + c, 0);
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = 0; j < l; j++) acc += (ex[j]! / z) * proj(2, s * l + j, h * hd + d);
          ctx[i * e + h * hd + d] = acc;
        }
      }
    }
    for (let i = 0; i < l; i++)
      for (let j = 0; j < e; j++) {
        let acc = bo[j]!;
        for (let k = 0; k < e; k++) acc += ctx[i * e + k]! * wo[j * e + k]!;
        out[(s * l + i) * e + j] = acc;
      }
  }
  return out;
}

function randomizeParams(m: Module, seed: number): void {
  m.namedParameters().forEach(([, p], i) => p.assign(testTensor([...p.shape], seed + i)));
}

/** erf in double precision: Taylor series for |z| ≤ 3, Lentz continued fraction of erfc beyond (both ~1e-14). */
function erf64(z: number): number {
  const a = Math.abs(z);
  if (a <= 3) {
    let term = a,
      sum = a;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(z) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = a,
    c = a,
    d = 0;
  for (let k = 1; k < 300; k++) {
    const t = k / 2;
    d = 1 / (a + t * d);
    c = a + t / c;
    f *= c * d;
  }
  return Math.sign(z) * (1 - Math.exp(-a * a) / (Math.sqrt(Math.PI) * f));
}

describe.each(TEST_BACKENDS)('layers on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('GELU and its gradient equal the exact erf form computed in double precision (reference, not our own kernels)', () => {
    const xs = Array.from({ length: 801 }, (_, i) => -8 + i * 0.02);
    const x = tf.tensor1d(xs);
    const y = gelu(x).dataSync();
    const g = tf
      .grad((t: Tensor) => tf.sum(gelu(t)))(x)
      .dataSync();
    xs.forEach((v, i) => {
      const cdf = 0.5 * (1 + erf64(v / Math.SQRT2));
      expect(Math.abs(y[i]! - v * cdf), `gelu(${v})`).toBeLessThanOrEqual(2e-6);
      expect(Math.abs(g[i]! - (cdf + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI))), `gelu'(${v})`).toBeLessThanOrEqual(2e-6);
    });
    expect(erf64(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf64(3.5)).toBeCloseTo(0.9999992569016276, 14);
  });
  it('Linear computes x Wᵀ + b over the last axis, with PyTorch init bounds', () => {
    const lin = new Linear(3, 2);
    expect(Math.max(...Array.from(lin.weight.value.dataSync()).map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(3));
    lin.weight.assign(tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]));
    lin.bias!.assign(tf.tensor1d([0.5, -1]));
    const y = lin.forward(tf.tensor3d([1, 0, -1, 2, 1, 0], [1, 2, 3]));
    expect(y.shape).toEqual([1, 2, 2]);
    expectClose(y, [1 - 3 + 0.5, 4 - 6 - 1, 2 + 2 + 0.5, 8 + 5 - 1], 1e-6);
    expect(() => lin.forward(tf.ones([2, 4]))).toThrow(/Linear input: expected last dimension 3, got shape \[2, 4\]/);
  });

  it('LayerNorm uses the biased variance with eps inside the square root', () => {
    const ln = new LayerNorm(4, { eps: 0.1 });
    ln.weight!.assign(tf.tensor1d([1, 2, 3, 4]));
    ln.bias!.assign(tf.tensor1d([0, 1, 0, -1]));
    const v = [1, 2, 4, 9];
    const mean = 4;
    const varB = v.reduce((a, x) => a + (x - mean) ** 2, 0) / 4;
    const ref = v.map((x, i) => ((x - mean) / Math.sqrt(varB + 0.1)) * (i + 1) + [0, 1, 0, -1][i]!);
    expectClose(ln.forward(tf.tensor2d(v, [1, 4])), ref, 1e-5);
    const ln2 = new LayerNorm([2, 2]);
    expectClose(
      ln2.forward(tf.tensor3d(v, [1, 2, 2])),
      v.map((x) => (x - mean) / Math.sqrt(varB + 1e-5)),
      1e-5,
    );
    expect(() => ln.forward(tf.ones([2, 3]))).toThrow(/expected trailing shape \[4\], got \[2, 3\]/);
  });

  it('BatchNorm2d trains with batch statistics, updates running stats (unbiased) and evaluates with them', () => {
    const bn = new BatchNorm2d(2);
    const x = tf.tensor4d([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]);
    const y = bn.forward(x);
    const c0 = [1, 2, 3, 4],
      m0 = 2.5,
      v0 = 1.25;
    expectClose(
      tf.slice(y, [0, 0, 0, 0], [1, 1, 2, 2]),
      c0.map((t) => (t - m0) / Math.sqrt(v0 + 1e-5)),
      1e-5,
    );
    expectClose(bn.runningMean.value, [0.25, 2.5], 1e-6);
    expectClose(bn.runningVar.value, [0.9 + (0.1 * (v0 * 4)) / 3, 0.9 + (0.1 * (125 * 4)) / 3], 1e-4);
    expect(bn.numBatchesTracked.value.dataSync()[0]).toBe(1);
    bn.eval();
    const e = bn.forward(x);
    expectClose(tf.slice(e, [0, 0, 0, 0], [1, 1, 1, 1]), [(1 - 0.25) / Math.sqrt(0.9 + 0.1 * (5 / 3) + 1e-5)], 1e-5);
    const cumulative = new BatchNorm2d(1, { momentum: null });
    cumulative.forward(tf.tensor4d([0, 2], [1, 1, 1, 2]));
    cumulative.forward(tf.tensor4d([4, 6], [1, 1, 1, 2]));
    expectClose(cumulative.runningMean.value, [3], 1e-6);
    expect(() => new BatchNorm2d(2).forward(tf.ones([1, 2, 1, 1]))).toThrow(/more than 1 value per channel when training/);
    expect(bn.stateShapes()).toEqual(
      new Map([
        ['weight', [2]],
        ['bias', [2]],
        ['running_mean', [2]],
        ['running_var', [2]],
        ['num_batches_tracked', []],
      ]),
    );
  });

  it('GELU is the exact erf form by default and the tanh form on request', () => {
    expectClose(gelu(tf.tensor1d([-1, 0, 1, 2])), [-0.15865525393145707, 0, 0.8413447460685429, 1.9544997361036416], 2e-6);
    expectClose(new GELU('tanh').forward(tf.tensor1d([1])), [0.8411919906082768], 2e-6);
    expectClose(new ReLU().forward(tf.tensor1d([-1, 2])), [0, 2], 0);
  });

  it('Dropout and DropPath act only in training mode, reproducibly', () => {
    const x = tf.ones([4000]);
    const d = new Dropout(0.25, new Generator(7));
    const y = d.forward(x).dataSync();
    const zeros = y.filter((v) => v === 0).length;
    expect(zeros / 4000).toBeGreaterThan(0.2);
    expect(zeros / 4000).toBeLessThan(0.3);
    expect(y.filter((v) => v !== 0).every((v) => Math.abs(v - 4 / 3) < 1e-6)).toBe(true);
    expectClose(new Dropout(0.25, new Generator(7)).forward(x), y, 0);
    d.eval();
    expectClose(d.forward(x), x, 0);
    const dp = new DropPath(0.5, new Generator(3)).forward(tf.ones([64, 3, 2]));
    const perSample = tf.max(tf.reshape(dp, [64, 6]), 1).dataSync();
    const samples = tf.min(tf.reshape(dp, [64, 6]), 1).dataSync();
    expect(Array.from(perSample)).toEqual(Array.from(samples));
    expect(new Set(perSample)).toEqual(new Set([0, 2]));
  });

  it('FFN has mmcv key names and computes identity + fc2(act(fc1(x)))', () => {
    const ffn = new FFN({ embedDims: 4, feedforwardChannels: 6, act: 'gelu' });
    expect([...ffn.stateShapes().keys()]).toEqual(['layers.0.0.weight', 'layers.0.0.bias', 'layers.1.weight', 'layers.1.bias']);
    randomizeParams(ffn, 50);
    const x = testTensor([2, 3, 4], 60);
    const [w1, b1, w2, b2] = ffn.namedParameters().map(([, p]) => p.value);
    const ref = tf.add(
      x,
      tf.add(tf.matMul(gelu(tf.add(tf.matMul(x.reshape([6, 4]), w1!, false, true), b1!)), w2!, false, true), b2!).reshape([2, 3, 4]),
    );
    expectClose(ffn.forward(x), ref, 1e-5);
    expectClose(ffn.forward(x, tf.zerosLike(x)), tf.sub(ref, x), 1e-5);
    expect(() => ffn.forward(tf.zeros([2, 3]))).toThrow(/^E_SHAPE: FFN input: expected last dimension 4, got \[2, 3\]$/);
    const layer = new TransformerEncoderLayer({ embedDims: 8, numHeads: 2, feedforwardChannels: 16 });
    expect(() => layer.forward(tf.zeros([2, 5, 7]))).toThrow(
      /^E_SHAPE: TransformerEncoderLayer input: expected shape \[\*, \*, 8\], got \[2, 5, 7\]/,
    );
    layer.dispose();
  });

  it('MultiheadAttention matches the definition, with torch key names, masks and both layouts', () => {
    const mha = new MultiheadAttention(8, 2, { batchFirst: true });
    expect([...mha.stateShapes()]).toEqual([
      ['in_proj_weight', [24, 8]],
      ['in_proj_bias', [24]],
      ['out_proj.weight', [8, 8]],
      ['out_proj.bias', [8]],
    ]);
    randomizeParams(mha, 70);
    const [w, b, wo, bo] = mha.namedParameters().map(([, p]) => p.value.dataSync() as Float32Array);
    const x = testTensor([2, 5, 8], 80);
    const ref = naiveMha(x.dataSync() as Float32Array, 2, 5, 8, 2, w!, b!, wo!, bo!);
    expectClose(mha.forward(x).output, ref, 1e-5);
    const seqFirst = new MultiheadAttention(8, 2);
    seqFirst.loadStateDict(mha.stateDict());
    expectClose(tf.transpose(seqFirst.forward(tf.transpose(x, [1, 0, 2])).output, [1, 0, 2]), ref, 1e-5);
    const masked = [
      [false, false, true, false, true],
      [false, false, false, false, false],
    ];
    const kpm = tf
      .tensor2d(
        masked.map((r) => r.map(Number)),
        [2, 5],
      )
      .cast('bool');
    const { output, weights } = mha.forward(x, x, x, { keyPaddingMask: kpm, needWeights: true });
    expectClose(output, naiveMha(x.dataSync() as Float32Array, 2, 5, 8, 2, w!, b!, wo!, bo!, masked), 1e-5);
    expectClose(tf.sum(weights!, -1), new Array(10).fill(1), 1e-5);
    expectClose(tf.slice(weights!, [0, 0, 2], [1, 5, 1]), new Array(5).fill(0), 0);
    expect(() => mha.forward(x, x, x, { keyPaddingMask: tf.ones([2, 5]).cast('bool') })).toThrow(/every key masked/);
    expect(() => mha.forward(tf.ones([2, 5, 6]))).toThrow(/query: expected \[N, L, E\] with E = 8, got \[2, 5, 6\]/);
    const cross = mha.forward(x, testTensor([2, 3, 8], 90), testTensor([2, 3, 8], 91)).output;
    expect(cross.shape).toEqual([2, 5, 8]);
  });

  it('Embedding, containers and resampling modules', () => {
    const emb = new Embedding(4, 3);
    emb.weight.assign(
      tf.tensor2d(
        Array.from({ length: 12 }, (_, i) => i),
        [4, 3],
      ),
    );
    expectClose(emb.forward(tf.tensor2d([[3, 0]], [1, 2], 'int32')), [9, 10, 11, 0, 1, 2], 0);
    expect(() => emb.forward([4])).toThrow(/index 4 is outside \[0, 3\]/);
    const seq = new Sequential(new Linear(2, 3), new ReLU(), new Linear(3, 1));
    expect([...seq.stateShapes().keys()]).toEqual(['0.weight', '0.bias', '2.weight', '2.bias']);
    const list = new ModuleList([new Linear(1, 1), new LayerNorm(1)]);
    expect([...list.stateShapes().keys()]).toEqual(['0.weight', '0.bias', '1.weight', '1.bias']);
    expect(new AdaptiveAvgPool2d(1).forward(tf.ones([1, 2, 3, 3])).shape).toEqual([1, 2, 1, 1]);
    expect(new PixelShuffle(2).forward(tf.ones([1, 8, 3, 3])).shape).toEqual([1, 2, 6, 6]);
    expect(new Upsample({ scaleFactor: 2, mode: 'bilinear' }).forward(tf.ones([1, 1, 3, 3])).shape).toEqual([1, 1, 6, 6]);
  });

  const gradCases: [string, () => Module, () => Tensor, (m: Module, x: Tensor) => Tensor][] = [
    ['Linear', () => new Linear(4, 3), () => testTensor([2, 4], 1), (m, x) => (m as Linear).forward(x)],
    ['Conv2d', () => new Conv2d(2, 3, 3, { padding: 1, stride: 2 }), () => testTensor([1, 2, 5, 5], 2), (m, x) => (m as Conv2d).forward(x)],
    ['LayerNorm', () => new LayerNorm(4), () => testTensor([3, 4], 3), (m, x) => (m as LayerNorm).forward(x)],
    ['BatchNorm2d', () => new BatchNorm2d(2), () => testTensor([2, 2, 2, 2], 4), (m, x) => (m as BatchNorm2d).forward(x)],
    [
      'FFN',
      () => new FFN({ embedDims: 4, feedforwardChannels: 8, act: 'gelu' }),
      () => testTensor([2, 3, 4], 5),
      (m, x) => (m as FFN).forward(x),
    ],
    [
      'MultiheadAttention',
      () => new MultiheadAttention(4, 2),
      () => testTensor([3, 2, 4], 6),
      (m, x) => (m as MultiheadAttention).forward(x).output,
    ],
    ['Embedding', () => new Embedding(5, 3), () => tf.tensor1d([1, 4, 1], 'int32'), (m, x) => (m as Embedding).forward(x)],
  ];

  it.each(gradCases)('%s: every parameter gets a gradient, equal to finite differences, and memory stays flat', (_n, make, input, run) => {
    const m = make();
    randomizeParams(m, 100);
    const x = input();
    const weight = testTensor(
      tf.tidy(() => run(m, x).shape),
      7,
    );
    const loss = () => tf.sum(tf.mul(run(m, x), weight)) as tf.Scalar;
    const { value, grads } = valueAndGrads(m, loss);
    expect(grads.size).toBe(m.namedParameters().length);
    const [, first] = m.namedParameters()[0]!;
    const num = numericGrad((v) => {
      const saved = tf.clone(first.value);
      first.assign(v);
      const l = loss();
      first.assign(saved);
      saved.dispose();
      return l;
    }, first.value);
    expectClose(grads.get(first)!, num, 5e-3);
    value.dispose();
    disposeGradients(grads);
    expectNoLeak(() => {
      tf.tidy(() => {
        run(m, x);
      });
      const r = valueAndGrads(m, loss);
      r.value.dispose();
      disposeGradients(r.grads);
    });
    m.dispose();
  });

  it.each([
    ['GELU', () => new GELU()],
    ['GELU tanh', () => new GELU('tanh')],
    ['ReLU', () => new ReLU()],
    ['Dropout (training)', () => new Dropout(0.3, new Generator(1))],
    ['DropPath (training)', () => new DropPath(0.3, new Generator(2))],
    ['PixelShuffle', () => new PixelShuffle(2)],
    ['AdaptiveAvgPool2d', () => new AdaptiveAvgPool2d([3, 2])],
    ['Upsample bicubic', () => new Upsample({ size: [7, 5], mode: 'bicubic', alignCorners: false })],
    ['Sequential', () => new Sequential(new GELU(), new PixelShuffle(2), new ReLU())],
  ] as const)('%s: forward and input gradient leave the tensor count flat', (_n, make) => {
    const layer = make();
    const x = testTensor([2, 4, 4, 4], 9);
    expectNoLeak(() => {
      tf.dispose(layer.forward(x));
      tf.dispose(tf.grad((t: Tensor) => tf.sum(layer.forward(t)))(x));
    });
  });

  it('frozen parameters receive no gradient', () => {
    const seq = new Sequential(new Linear(2, 2), new Linear(2, 1));
    seq.at(0)!.freeze();
    const { value, grads } = valueAndGrads(seq, () => tf.sum(seq.forward(tf.ones([1, 2]))) as tf.Scalar);
    expect(grads.size).toBe(2);
    expect([...grads.keys()]).toEqual(
      seq
        .at(1)!
        .namedParameters()
        .map(([, p]) => p),
    );
    value.dispose();
    disposeGradients(grads);
  });
});

describe('initialisation is backend independent', () => {
  const backends = [...new Set<BackendKind>(['cpu', 'wasm', ...TEST_BACKENDS])];
  it(`the same seed gives bit-identical weights on ${backends.join(', ')}`, async () => {
    const weights: Float32Array[] = [];
    for (const b of backends) {
      await useBackend(b);
      manualSeed(123);
      const m = new MultiheadAttention(8, 2);
      weights.push(Float32Array.from(m.inProjWeight.value.dataSync()));
      m.dispose();
    }
    for (const w of weights.slice(1)) expect(w).toEqual(weights[0]);
  });
});
