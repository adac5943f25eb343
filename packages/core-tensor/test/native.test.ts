/**
 * The native kernels against tfjs's own JavaScript kernels on the cpu backend, on randomized shapes:
 * every transpose flag, broadcasting, odd and empty sizes, forward and gradient. Runs where the
 * addon is built (CI builds it; the SKYSENSE_NATIVE=0 job checks the JavaScript path instead).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  GELU,
  Generator,
  LayerNorm,
  Sequential,
  Linear,
  MultiheadAttention,
  conv2d,
  linear,
  matMul,
  selfAttention,
  nativeCallCount,
  disableNativeKernels,
  disposeGradients,
  enableNativeKernels,
  gelu,
  initBackend,
  manualSeed,
  tf,
  valueAndGrads,
  type Tensor,
} from '../src/index';
import { expectNoLeak } from './helpers';
import { nativeAddon } from '../src/native';

const rng = new Generator(99);
const rand = (shape: number[]) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-2, 2)),
    shape,
  );

/** Runs `f` with native kernels and with the JS ones; asserts equal within 1e-5 relative to the output scale. */
function same(label: string, f: () => Tensor | Tensor[]): void {
  enableNativeKernels();
  const calls = nativeCallCount();
  const native = [f()].flat().map((t) => ({ shape: t.shape, v: Float64Array.from(t.dataSync()) }));
  expect(nativeCallCount(), `${label}: the native path ran`).toBeGreaterThan(calls);
  disableNativeKernels();
  const jsCalls = nativeCallCount();
  const js = [f()].flat().map((t) => ({ shape: t.shape, v: Float64Array.from(t.dataSync()) }));
  expect(nativeCallCount(), `${label}: the JavaScript path ran no native code`).toBe(jsCalls);
  enableNativeKernels();
  native.forEach((n, i) => {
    expect(n.shape, label).toEqual(js[i]!.shape);
    const scale = Math.max(1, ...Array.from(js[i]!.v, Math.abs));
    const err = n.v.reduce((m, x, j) => Math.max(m, Math.abs(x - js[i]!.v[j]!)), 0);
    expect(err / scale, `${label} output ${i}`).toBeLessThanOrEqual(1e-5);
  });
}

describe.runIf(nativeAddon() !== null)('native kernels vs the JavaScript kernels', () => {
  beforeAll(() => initBackend({ force: 'cpu' }));
  afterAll(() => enableNativeKernels());

  it('BatchMatMul: every transpose flag, broadcast batches, odd and empty sizes, and its gradients', () => {
    for (const [m, k, n] of [
      [1, 1, 1],
      [3, 5, 7],
      [17, 33, 9],
      [64, 1, 65],
      [0, 4, 3],
      [4, 0, 3],
    ] as const) {
      for (const [tA, tB] of [
        [false, false],
        [false, true],
        [true, false],
        [true, true],
      ] as const) {
        for (const [ba, bb] of [
          [[], []],
          [[3], [3]],
          [[2, 3], [1]],
          [[1], [4]],
        ] as [number[], number[]][]) {
          const a = rand([...ba, ...(tA ? [k, m] : [m, k])]);
          const b = rand([...bb, ...(tB ? [n, k] : [k, n])]);
          same(`matMul ${m}x${k}x${n} tA=${tA} tB=${tB} batches ${ba}/${bb}`, () => tf.matMul(a, b, tA, tB));
          if (m * k * n)
            same(`matMul grads ${m}x${k}x${n} ${tA}${tB}`, () =>
              tf.grads((x: Tensor, y: Tensor) => tf.sum(tf.square(matMul(x, y, tA, tB))))([a, b]),
            );
        }
      }
    }
  });

  it('_FusedMatMul with bias and linear / relu activation', () => {
    const [a, b, bias] = [rand([2, 5, 7]), rand([7, 3]), rand([3])];
    same('fused', () => [
      tf.fused.matMul({ a, b }),
      tf.fused.matMul({ a, b, bias, activation: 'relu' }),
      tf.fused.matMul({ a, b, bias, activation: 'elu' }),
      tf.fused.matMul({ a: b, b: a, transposeA: true, transposeB: true }),
    ]);
  });

  it('kernels that decline (int32 inputs, NCHW) leave the call to tfjs and count no native call', () => {
    const [a, b] = [tf.tensor1d([1, 2, 3], 'int32'), tf.tensor1d([4, 5, 6], 'int32')];
    const calls = nativeCallCount();
    expect([...tf.add(a, b).dataSync()]).toEqual([5, 7, 9]);
    expect([...tf.sum(a).dataSync()]).toEqual([6]);
    expect(nativeCallCount()).toBe(calls);
    tf.add(tf.ones([2]), tf.ones([2])).dispose();
    expect(nativeCallCount()).toBe(calls + 1);
  });

  it('Add / Multiply / Sub / RealDiv with broadcasting', () => {
    const pairs: [number[], number[]][] = [
      [[5], [5]],
      [[2, 3, 4], [4]],
      [
        [2, 1, 4],
        [3, 1],
      ],
      [[1], [3, 2]],
      [[], [2, 2]],
      [[2, 0, 3], [3]],
      [
        [3, 1, 1, 5],
        [1, 4, 2, 1],
      ],
    ];
    for (const [sa, sb] of pairs) {
      const a = rand(sa);
      const b = tf.add(rand(sb), 3);
      for (const op of [tf.add, tf.mul, tf.sub, tf.div]) same(`${op.name} ${sa} ${sb}`, () => op(a, b));
      same(`broadcast grads ${sa} ${sb}`, () => tf.grads((x: Tensor, y: Tensor) => tf.sum(tf.mul(tf.add(x, y), tf.div(x, y))))([a, b]));
    }
  });

  it('Erf, Exp, Tanh, Softmax, Transpose, Slice, SplitV, GatherV2, Sum and Mean (any axes), with gradients', () => {
    const x = rand([3, 4, 5, 6]);
    same('unary', () => [
      tf.erf(x),
      tf.exp(x),
      tf.tanh(x),
      tf.square(x),
      tf.relu(x),
      tf.sigmoid(x),
      tf.rsqrt(tf.abs(x)),
      tf.sqrt(tf.abs(x)),
      tf.neg(x),
    ]);
    const ids = tf.tensor1d([2, 0, 2, 5, 1, 0], 'int32');
    const rows = rand([6, 3, 2]);
    same('pad / segment sum', () => [
      tf.pad(
        x,
        [
          [0, 1],
          [2, 0],
          [1, 1],
          [0, 3],
        ],
        0.5,
      ),
      tf.pad(rand([0, 2]).reshape([0, 2]), [
        [1, 1],
        [0, 0],
      ]),
      tf.unsortedSegmentSum(rows, ids, 7),
    ]);
    same('gather grad', () => tf.grad((t: Tensor) => tf.sum(tf.square(tf.gather(t, ids))))(rows));
    same('gather (any axis, 2-D indices, empty)', () => [
      tf.gather(x, tf.tensor2d([4, 0, 2, 1], [2, 2], 'int32'), 2),
      tf.gather(x, tf.tensor1d([3, 1], 'int32'), 1),
      tf.gather(x, tf.tensor1d([], 'int32'), 0),
    ]);
    expect(() => tf.gather(rows, tf.tensor1d([6], 'int32'))).toThrow();
    const [p1, p2] = [rand([3, 2, 5, 6]), rand([3, 4, 5, 1])];
    same('concat', () => [tf.concat([x, p1], 1), tf.concat([x, p2], 3), tf.concat([x, x], 0), tf.concat([rand([0, 4, 5, 6]), x], 0)]);
    const [col, wide] = [rand([7, 1]), rand([2, 257])];
    same('softmax', () => [tf.softmax(x), tf.softmax(col), tf.softmax(wide)]);
    for (const perm of [
      [1, 0, 2, 3],
      [3, 2, 1, 0],
      [0, 2, 3, 1],
      [0, 1, 3, 2],
    ])
      same(`transpose ${perm}`, () => tf.transpose(x, perm));
    same('slice / split', () => [
      tf.slice(x, [1, 0, 2, 1], [2, -1, 3, 4]),
      tf.slice(x, [0, 3, 0, 5], [3, 1, 5, 1]),
      ...tf.split(x, [1, 3, 2], 3),
      ...tf.split(x, 2, 1),
    ]);
    same('slice / split grads', () =>
      tf.grad((t: Tensor) => tf.sum(tf.mul(tf.slice(t, [0, 1, 0, 0], [3, 2, 5, 6]), tf.split(t, 2, 1)[1]!)))(x),
    );
    for (const axes of [3, 0, [1, 2], [0, 3], [0, 1, 2, 3], -1]) {
      same(`sum/mean ${axes}`, () => [tf.sum(x, axes), tf.mean(x, axes, true)]);
    }
    const [e1, e2] = [rand([2, 0]), rand([0, 3])];
    same('empty reductions', () => [tf.sum(e1, 1), tf.sum(e2, 0)]);
    same('unary grads', () => tf.grad((t: Tensor) => tf.sum(tf.mul(tf.softmax(gelu(t)), tf.tanh(tf.exp(tf.mul(t, 0.1))))))(x));
  });

  it('the fused GELU (one native kernel forward, one backward) equals the composed erf form, empty and wide ranges included', () => {
    const x = tf.concat([rand([5, 7]).reshape([35]), tf.linspace(-12, 12, 481)]);
    const w = rand([516]);
    same('gelu', () => [gelu(x), tf.grad((t: Tensor) => tf.sum(tf.mul(gelu(t), w)))(x), gelu(tf.zeros([0, 3]))]);
    expectNoLeak(() =>
      tf
        .grad((t: Tensor) => tf.sum(gelu(t)))(x)
        .dispose(),
    );
  });

  it('the fused LayerNorm (with and without affine) equals the composed one, forward and every gradient', () => {
    for (const [shape, affine] of [
      [[2, 5, 7], true],
      [[33, 1], true],
      [[4, 352], false],
      [[0, 6], true],
    ] as [number[], boolean][]) {
      const ln = new LayerNorm(shape.at(-1)!, { elementwiseAffine: affine, eps: 1e-3 });
      if (affine) {
        ln.weight!.assign(rand([shape.at(-1)!]));
        ln.bias!.assign(rand([shape.at(-1)!]));
      }
      const x = tf.add(tf.mul(rand(shape), 3), 1.5);
      const w = rand(shape);
      const loss = (t: Tensor) => tf.sum(tf.mul(ln.forward(t), w)) as tf.Scalar;
      same(`layerNorm ${shape} ${affine}`, () => {
        const out = [ln.forward(x), tf.grad(loss)(x)];
        if (affine) out.push(...valueAndGrads(ln, () => loss(x)).grads.values());
        return out;
      });
    }
    const ln = new LayerNorm(8);
    const x = rand([3, 8]);
    expectNoLeak(() =>
      tf
        .grad((t: Tensor) => tf.sum(ln.forward(t)))(x)
        .dispose(),
    );
  });

  it('the fused linear layer (bias written before the GEMM) equals matMul + add, forward and every gradient', () => {
    for (const [rows, inF, outF] of [
      [1, 1, 1],
      [7, 5, 3],
      [65, 33, 17],
      [0, 4, 3],
    ] as const) {
      const [x, w, b, g] = [rand([rows, inF]), rand([outF, inF]), rand([outF]), rand([rows, outF])];
      same(`linear ${rows}x${inF}→${outF}`, () => [
        linear(x, w, b),
        ...tf.grads((p: Tensor, q: Tensor, r: Tensor) => tf.sum(tf.mul(linear(p, q, r), g)))([x, w, b]),
      ]);
    }
    const lin = new Linear(4, 6);
    const x = rand([2, 3, 4]);
    expect(lin.forward(x).shape).toEqual([2, 3, 6]);
    expectNoLeak(() =>
      tf
        .grad((t: Tensor) => tf.sum(lin.forward(t)))(x)
        .dispose(),
    );
  });

  it('linear with the exact GELU in its kernel equals gelu(linear), forward and every gradient', () => {
    for (const [rows, inF, outF] of [
      [1, 1, 1],
      [65, 33, 17],
      [0, 4, 3],
    ] as const) {
      const [x, w, b, g] = [rand([rows, inF]), rand([outF, inF]), rand([outF]), rand([rows, outF])];
      same(`linear+gelu ${rows}x${inF}→${outF}`, () => [
        linear(x, w, b, 'gelu'),
        ...tf.grads((p: Tensor, q: Tensor, r: Tensor) => tf.sum(tf.mul(linear(p, q, r, 'gelu'), g)))([x, w, b]),
      ]);
    }
  });

  it('selfAttention (one kernel over the heads) equals the composed softmax(q·kᵀ/√d)·v, forward and gradient', () => {
    for (const [b, n, c, heads] of [
      [1, 1, 3, 1],
      [2, 17, 24, 4],
      [1, 65, 64, 2],
    ] as const) {
      const [qkv, g] = [rand([b, n, 3 * c]), rand([b, n, c])];
      same(`selfAttention ${b}x${n}x${c}/${heads}`, () => [
        selfAttention(qkv, heads),
        tf.grad((t: Tensor) => tf.sum(tf.mul(selfAttention(t, heads), g)))(qkv),
      ]);
    }
    const [qkv, g] = [rand([3, 6, 24]), rand([3, 6, 8])];
    const padding = tf.tensor2d(
      [
        [0, 0, 1, 0, 1, 1],
        [0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
      ],
      [3, 6],
      'bool',
    );
    same('selfAttention with a key padding mask', () => [
      selfAttention(qkv, 2, padding),
      tf.grad((t: Tensor) => tf.sum(tf.mul(selfAttention(t, 2, padding), g)))(qkv),
    ]);
    expectNoLeak(() => selfAttention(qkv, 2, padding).dispose());
    expect(() => selfAttention(qkv, 2, tf.ones([3, 6], 'bool'))).toThrow(
      /selfAttention: keyPadding: a sample has every key masked; its attention would be NaN/,
    );
    expect(() => selfAttention(qkv, 2, tf.zeros([3, 5], 'bool'))).toThrow(
      /selfAttention: keyPadding: expected bool \[3, 6\], got bool \[3,5\]|got bool \[3, 5\]/,
    );
    expect(() => linear(rand([2, 3]), rand([4, 3]), rand([4]), 'relu' as 'gelu')).toThrow(
      /linear: activation: expected 'gelu' or none, got 'relu'/,
    );
    expect(() => selfAttention(rand([1, 2, 9]), 2)).toThrow(
      /selfAttention: qkv: expected \[B, N, 3·C\] with C divisible by 2 heads, got \[1, 2, 9\]/,
    );
  });

  it('MultiheadAttention in eval mode (fused heads) equals training mode without dropout, both layouts, with and without key padding', () => {
    for (const batchFirst of [true, false]) {
      const attn = new MultiheadAttention(32, 4, { batchFirst });
      const x = rand(batchFirst ? [2, 9, 32] : [9, 2, 32]);
      const keyPaddingMask = tf.tensor2d(
        [
          [0, 1, 0, 0, 0, 0, 0, 0, 1],
          [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        [2, 9],
        'bool',
      );
      for (const options of [{}, { keyPaddingMask }]) {
        attn.train();
        const train = Float64Array.from(attn.forward(x, x, x, options).output.dataSync());
        attn.eval();
        const calls = nativeCallCount();
        const evaluated = attn.forward(x, x, x, options).output.dataSync();
        expect(nativeCallCount() - calls).toBeGreaterThan(0);
        const err = train.reduce((m, v, i) => Math.max(m, Math.abs(v - evaluated[i]!)), 0);
        expect(err, `batchFirst=${batchFirst} ${Object.keys(options)}`).toBeLessThanOrEqual(1e-5);
      }
      expectNoLeak(() => attn.forward(x).output.dispose());
      attn.dispose();
    }
  });

  it('in eval mode a Sequential runs Linear + exact GELU as one native call, equal to the two calls of training mode', () => {
    const mlp = new Sequential(new Linear(12, 40), new GELU(), new Linear(40, 5), new GELU('tanh'));
    const x = rand([9, 12]);
    const run = () => {
      const calls = nativeCallCount();
      const y = mlp.forward(x);
      return { y: Float64Array.from(y.dataSync()), calls: nativeCallCount() - calls };
    };
    const train = run();
    mlp.eval();
    const evaluated = run();
    expect(evaluated.calls).toBe(train.calls - 1); // the tanh GELU is not fused
    const err = evaluated.y.reduce((m, v, i) => Math.max(m, Math.abs(v - train.y[i]!)), 0);
    expect(err).toBeLessThanOrEqual(1e-6);
    expectNoLeak(() => mlp.forward(x).dispose());
    mlp.dispose();
  });

  it('an eval forward after an optimizer step uses the updated weights (no stale copy of them anywhere in the fused path)', () => {
    const mlp = new Sequential(new Linear(16, 48), new GELU(), new Linear(48, 4));
    const x = rand([70, 16]);
    const reference = () => {
      disableNativeKernels();
      const y = Float64Array.from(mlp.forward(x).dataSync());
      enableNativeKernels();
      return y;
    };
    mlp.eval();
    const before = mlp.forward(x).dataSync().slice();
    const opt = new AdamW(mlp, { lr: 0.05 });
    mlp.train();
    const { value, grads } = valueAndGrads(mlp, () => tf.mean(tf.square(mlp.forward(x))) as tf.Scalar);
    opt.step(grads);
    disposeGradients(grads);
    value.dispose();
    mlp.eval();
    const after = Float64Array.from(mlp.forward(x).dataSync());
    const want = reference();
    expect(
      after.some((v, i) => Math.abs(v - before[i]!) > 1e-3),
      'the step changed the output',
    ).toBe(true);
    expect(after.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0)).toBeLessThanOrEqual(1e-5);
    mlp.dispose();
  });

  it('Conv2D and both backprop kernels (stride, padding, dilation, groups)', () => {
    const cases: [number[], number[], Parameters<typeof conv2d>[3]][] = [
      [[2, 3, 9, 8], [4, 3, 3, 3], { padding: 1 }],
      [[1, 2, 10, 11], [5, 2, 4, 4], { stride: 4 }],
      [[1, 4, 9, 9], [6, 2, 3, 3], { groups: 2, padding: [1, 0], stride: 2 }],
      [[1, 2, 9, 9], [3, 2, 3, 3], { dilation: 2, padding: 2 }],
    ];
    for (const [xs, ws, o] of cases) {
      const x = rand(xs);
      const w = rand(ws);
      same(`conv ${JSON.stringify(o)}`, () => conv2d(x, w, null, o));
      same(`conv grads ${JSON.stringify(o)}`, () => tf.grads((a: Tensor, b: Tensor) => tf.sum(tf.square(conv2d(a, b, null, o))))([x, w]));
    }
  });

  it('a whole attention layer: output and every parameter gradient', () => {
    manualSeed(3);
    const mha = new MultiheadAttention(16, 4, { batchFirst: true });
    const x = rand([2, 9, 16]);
    same('attention forward + grads', () => {
      const { value, grads } = valueAndGrads(mha, () => tf.sum(tf.square(mha.forward(x).output)) as tf.Scalar);
      const out = [value, ...grads.values()].map((t) => tf.clone(t));
      value.dispose();
      disposeGradients(grads);
      return out;
    });
  });
});
