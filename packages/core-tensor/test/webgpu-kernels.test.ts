/**
 * The WGSL kernels (GELU, LayerNorm, linear with bias, cosine window attention) on the webgpu
 * backend against the tfjs composition on the JavaScript cpu backend, on randomized shapes: values
 * and gradients. Runs where Dawn finds an adapter — CI installs Mesa's software Vulkan driver
 * (lavapipe) for it; a machine without any driver skips it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Generator,
  LayerNorm,
  cosineWindowAttention,
  disableNativeKernels,
  enableNativeKernels,
  gelu,
  initBackend,
  linear,
  probeWebGPU,
  tf,
  webgpuKernelCount,
  webgpuSyncReadCount,
  type Tensor,
} from '../src/index';
import { TinyVit } from './tiny-vit';

const rng = new Generator(2024);
const int = (lo: number, hi: number) => lo + Math.floor(rng.uniform(0, 1) * (hi - lo + 1));
const values = (shape: number[], lo = -2, hi = 2) =>
  Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(lo, hi));

interface Case {
  label: string;
  inputs: { shape: number[]; values: Float32Array }[];
  /** The op's value and its gradients with respect to every input but the last (a random upstream gradient). */
  f: (xs: Tensor[]) => Tensor[];
}

/** Value and gradients of `op`, for the loss Σ op(xs) · r with `r` the last input. */
function withGrads(op: (xs: Tensor[]) => Tensor): (xs: Tensor[]) => Tensor[] {
  return (xs) => {
    const r = xs[xs.length - 1]!;
    const args = xs.slice(0, -1);
    const grads = tf.grads((...a: Tensor[]) => tf.sum(tf.mul(op(a), r)))(args);
    return [op(args), ...grads];
  };
}

function evaluate(c: Case): Float64Array[] {
  const xs = c.inputs.map((i) => tf.tensor(i.values, i.shape));
  const out = tf.tidy(() => c.f(xs));
  const read = out.map((t) => Float64Array.from(t.dataSync()));
  tf.dispose([...xs, ...out]);
  return read;
}

/** Runs every case on webgpu (the WGSL kernels must run) and on the JavaScript cpu backend; compares within `tol` of the output scale. */
async function compare(cases: Case[], tol: number): Promise<void> {
  await initBackend({ force: 'webgpu' });
  const gpu = cases.map((c) => {
    const before = webgpuKernelCount();
    const r = evaluate(c);
    expect(webgpuKernelCount(), `${c.label}: the WGSL kernel ran`).toBeGreaterThan(before);
    return r;
  });
  await initBackend({ force: 'cpu' });
  disableNativeKernels();
  const ref = cases.map(evaluate);
  enableNativeKernels();
  cases.forEach((c, k) =>
    ref[k]!.forEach((want, i) => {
      const got = gpu[k]![i]!;
      expect(got.length, c.label).toBe(want.length);
      const scale = Math.max(1, ...Array.from(want, Math.abs));
      const err = got.reduce((m, x, j) => Math.max(m, Math.abs(x - want[j]!)), 0);
      expect(err / scale, `${c.label} output ${i}`).toBeLessThanOrEqual(tol);
    }),
  );
}

describe.runIf(probeWebGPU().adapter !== undefined)('WGSL kernels vs the tfjs composition', () => {
  beforeAll(() => initBackend({ force: 'webgpu' }));
  afterAll(() => initBackend({ force: 'wasm' }));

  it('GELU (exact erf form) and its gradient, on odd sizes and ranks', async () => {
    const shapes = [[1], [63], [65], [3, 7, 5], [2, 130], [4, 4, 4, 4, 3]];
    const cases = shapes.map((shape) => ({
      label: `gelu ${shape.join('x')}`,
      inputs: [
        { shape, values: values(shape, -6, 6) },
        { shape, values: values(shape) },
      ],
      f: withGrads(([x]) => gelu(x!)),
    }));
    await compare(cases, 2e-6);
  });

  it('LayerNorm over the last axis, with and without affine parameters, and its gradients', async () => {
    const cases: Case[] = [];
    for (const cols of [1, 3, 63, 64, 65, 352, 1000]) {
      const rows = int(1, 70);
      const affine = cols % 2 === 1;
      const shape = cols === 352 ? [2, rows, cols] : [rows, cols];
      const params = affine
        ? [
            { shape: [cols], values: values([cols]) },
            { shape: [cols], values: values([cols]) },
          ]
        : [];
      cases.push({
        label: `layer norm ${shape.join('x')}${affine ? ' affine' : ''}`,
        inputs: [{ shape, values: values(shape, -3, 5) }, ...params, { shape, values: values(shape) }],
        f: (xs) => {
          const [x, r] = [xs[0]!, xs[xs.length - 1]!];
          const norm = new LayerNorm(cols, { elementwiseAffine: affine });
          const vars = affine ? [norm.weight!.value, norm.bias!.value] : [];
          vars.forEach((v, i) => v.assign(xs[1 + i]!));
          const loss = () => tf.sum(tf.mul(norm.forward(x), r));
          const out = [norm.forward(x), ...tf.grads((y: Tensor) => tf.sum(tf.mul(norm.forward(y), r)))([x])];
          if (affine) {
            const { grads } = tf.variableGrads(loss as () => tf.Scalar, vars);
            out.push(...vars.map((v) => grads[v.name]!));
          }
          norm.dispose();
          return out;
        },
      });
    }
    await compare(cases, 2e-5);
  });

  it('linear with the bias in the GEMM, and its gradients', async () => {
    const cases: Case[] = [1, 2, 3].map(() => {
      const [rows, inF, outF] = [int(1, 90), int(1, 70), int(1, 70)];
      return {
        label: `linear ${rows}x${inF} -> ${outF}`,
        inputs: [
          { shape: [rows, inF], values: values([rows, inF]) },
          { shape: [outF, inF], values: values([outF, inF]) },
          { shape: [outF], values: values([outF]) },
          { shape: [rows, outF], values: values([rows, outF]) },
        ],
        f: withGrads(([x, w, b]) => linear(x!, w!, b!)),
      };
    });
    await compare(cases, 1e-5);
  });

  it('Swin V2 cosine window attention, with and without a shift mask, and its gradients', async () => {
    const cases: Case[] = [];
    for (const [n, heads, d, nW] of [
      [16, 1, 4, 0],
      [49, 3, 11, 2],
      [64, 2, 32, 4],
      [9, 4, 7, 1],
    ] as const) {
      const b = nW ? nW * int(1, 2) : int(1, 3);
      const c = heads * d;
      const mask = nW ? Float32Array.from(values([nW, n, n]), (v) => (v > 0.5 ? -100 : 0)) : null;
      cases.push({
        label: `attention b${b} n${n} h${heads} d${d}${nW ? ` mask ${nW}` : ''}`,
        inputs: [
          { shape: [b, n, 3 * c], values: values([b, n, 3 * c]) },
          { shape: [heads], values: values([heads], 1, 20) },
          { shape: [heads, n, n], values: values([heads, n, n]) },
          { shape: [b, n, c], values: values([b, n, c]) },
        ],
        f: withGrads(([qkv, scale, bias]) =>
          tf.tidy(() => {
            const m = mask ? tf.tensor(mask, [nW, n, n]) : null;
            return cosineWindowAttention({ qkv: qkv!, scale: scale!, bias: bias!, mask: m, heads });
          }),
        ),
      });
    }
    await compare(cases, 2e-5);
  });

  it("tfjs's webgpu kernels that SkySense replaces (rank 5–6 pad, reverse, where, cumsum, broadcasts; addN of many; integer transposes, reductions and casts) equal the cpu backend", async () => {
    const shapes = [[5], [3, 4], [2, 3, 4], [2, 3, 2, 3], [2, 1, 3, 2, 2], [2, 1, 2, 3, 2, 2]];
    const ops: [string, (x: Tensor) => Tensor][] = [
      [
        'pad',
        (x) =>
          tf.pad(
            x,
            x.shape.map((_, i) => [i % 2, 1] as [number, number]),
          ),
      ],
      ['reverse', (x) => tf.reverse(x, [...new Set([0, x.rank - 1])])],
      ['where', (x) => tf.where(tf.greater(x, tf.scalar(2, x.dtype)), x, tf.zerosLike(x))],
      ['addN of 20', (x) => tf.addN(Array.from({ length: 20 }, (_, i) => tf.mul(x, tf.scalar(i + 1, x.dtype))))],
      [
        'unsortedSegmentSum',
        (x) =>
          tf.unsortedSegmentSum(
            x,
            tf.tensor1d(
              Array.from({ length: x.shape[0]! }, (_, i) => i % 2),
              'int32',
            ),
            3,
          ),
      ],
      ['cumsum', (x) => tf.cumsum(x, 0)],
      ['broadcast mul', (x) => tf.mul(x, tf.cast(tf.range(1, x.shape[x.rank - 1]! + 1), x.dtype))],
      ['all along an inner axis', (x) => tf.cast(tf.all(tf.greater(x, tf.scalar(3, x.dtype)), 0), 'int32')],
      ['cumsum exclusive reverse', (x) => tf.cumsum(x, x.rank - 1, true, true)],
      [
        'transpose',
        (x) =>
          tf.transpose(
            x,
            x.shape.map((_, i) => (i + 1) % x.rank),
          ),
      ],
      [
        'cast to float, transpose',
        (x) =>
          tf.transpose(
            tf.cast(x, 'float32'),
            x.shape.map((_, i) => (i + 1) % x.rank),
          ),
      ],
      [
        'bool transpose',
        (x) =>
          tf.cast(
            tf.transpose(
              tf.greater(x, tf.scalar(3, x.dtype)),
              x.shape.map((_, i) => (i + 1) % x.rank),
            ),
            'int32',
          ),
      ],
    ];
    const results = new Map<string, number[]>();
    for (const backend of ['cpu', 'webgpu'] as const) {
      await initBackend({ force: backend });
      for (const shape of shapes)
        for (const dtype of ['float32', 'int32'] as const)
          for (const [name, op] of ops) {
            const label = `${name} ${shape.join('x')} ${dtype}`;
            // computed on the device (not handed to the CPU as small constants are): x·1 + 0 of a range
            const y = tf.tidy(() =>
              op(
                tf.cast(
                  tf.add(
                    tf.mul(
                      tf.reshape(
                        tf.range(
                          0,
                          shape.reduce((a, b) => a * b, 1),
                        ),
                        shape,
                      ),
                      1,
                    ),
                    0,
                  ),
                  dtype,
                ),
              ),
            );
            const values = Array.from(await y.data());
            y.dispose();
            if (backend === 'cpu') results.set(label, values);
            else expect(values, label).toEqual(results.get(label));
          }
    }
    // the replacements release their intermediate buffers
    const buffers = tf.memory().numDataBuffers;
    for (const [, op] of ops) tf.tidy(() => op(tf.add(tf.mul(tf.reshape(tf.range(0, 24), [2, 1, 3, 2, 2]), 1), 0))).dispose();
    expect(tf.memory().numDataBuffers).toBe(buffers);
  });

  it('training repeats itself bit for bit: products with a long inner axis and segment sums (gather gradients) add in a fixed order', async () => {
    await initBackend({ force: 'webgpu' });
    const a = tf.randomNormal([24, 4096], 0, 1, 'float32', 3);
    const b = tf.randomNormal([4096, 40], 0, 1, 'float32', 4);
    const rows = tf.randomNormal([5000, 6], 0, 1, 'float32', 5);
    const ids = tf.tensor1d(
      Array.from({ length: 5000 }, (_, i) => (i * 7) % 13),
      'int32',
    );
    const run = async () => {
      const [p, q] = tf.tidy(() => [tf.matMul(a, b), tf.unsortedSegmentSum(rows, ids, 13)]);
      const out = [Array.from((await p!.data()) as Float32Array), Array.from((await q!.data()) as Float32Array)];
      tf.dispose([p!, q!]);
      return out;
    };
    const first = await run();
    for (let i = 0; i < 3; i++) expect(await run()).toEqual(first);
    await initBackend({ force: 'cpu' });
    const want = await run();
    tf.dispose([a, b, rows, ids]);
    first.forEach((got, i) => got.forEach((v, j) => expect(Math.abs(v - want[i]![j]!), `output ${i}`).toBeLessThan(1e-3)));
  });

  it('a forward pass reads nothing back from the GPU and leaves the tensor count flat', async () => {
    await initBackend({ force: 'webgpu' });
    const model = new TinyVit().eval();
    const x = tf.randomNormal([2, 10, 16, 16], 0, 1, 'float32', 7);
    const run = () => {
      const { maps, cls } = model.forward(x);
      tf.dispose([...maps, ...cls]);
    };
    run();
    const [reads, tensors] = [webgpuSyncReadCount(), tf.memory().numTensors];
    for (let i = 0; i < 3; i++) run();
    expect(webgpuSyncReadCount() - reads).toBe(0);
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
    model.dispose();
  });
});
