/**
 * The GEMM under the native kernels — each built-in micro-kernel this CPU runs (AVX-512, AVX2/FMA,
 * baseline) and OpenBLAS where the addon was built with it — against a float64 reference and
 * against tfjs's JavaScript BatchMatMul, on randomized shapes that cross every blocking edge:
 * sizes off the MR/NR multiples and the 16-wide blocks of the transposing packer, depth beyond one
 * KC block (256) with and without a last block of up to 1.5·KC, rows beyond one MC block (512), transposes, broadcast batches and empty sizes.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GEMM_CHOICES,
  Generator,
  cosineWindowAttention,
  selfAttention,
  SkySenseError,
  disableNativeKernels,
  enableNativeKernels,
  initBackend,
  matMul,
  setNativeGemm,
  tf,
  type GemmChoice,
} from '../src/index';
import { nativeAddon } from '../src/native';

const rng = new Generator(7);
const values = (n: number) => Float32Array.from({ length: n }, () => rng.uniform(-1, 1));

/** C = op(A)·op(B) in float64. */
function reference(a: Float32Array, b: Float32Array, m: number, n: number, k: number, tA: boolean, tB: boolean): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (tA ? a[p * m + i]! : a[i * k + p]!) * (tB ? b[j * k + p]! : b[p * n + j]!);
      c[i * n + j] = s;
    }
  return c;
}

/** The GEMMs this machine runs: every choice that `setNativeGemm` accepts, `auto` aside. */
function runnable(): GemmChoice[] {
  return GEMM_CHOICES.filter((g) => {
    if (g === 'auto') return false;
    try {
      setNativeGemm(g);
      return true;
    } catch (e) {
      expect((e as SkySenseError).code).toBe('E_BACKEND');
      return false;
    }
  });
}

describe.runIf(nativeAddon() !== null)('native GEMM', () => {
  beforeAll(() => initBackend({ force: 'cpu' }));
  afterAll(() => setNativeGemm((process.env.SKYSENSE_GEMM?.trim().toLowerCase() as GemmChoice | undefined) || 'auto')); // the job's GEMM again

  it('runs the baseline kernel everywhere and names the one in use', () => {
    const gemms = runnable();
    expect(gemms).toContain('baseline');
    for (const g of gemms)
      expect(setNativeGemm(g)).toMatch(g === 'openblas' ? /^OpenBLAS / : new RegExp(`^built-in GEMM \\(${g}, \\d+x\\d+\\)$`));
    expect(() => setNativeGemm('sse9' as GemmChoice)).toThrow(/gemm: expected one of auto, openblas, avx512, avx2, baseline, got 'sse9'/);
  });

  it('matches a float64 reference on shapes that cross every blocking edge', () => {
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [7, 5, 3],
      [9, 33, 17],
      [8, 32, 256],
      [13, 47, 257],
      [130, 70, 600],
      [3, 4100, 5],
      [20, 4100, 300],
      [1, 1, 1000],
      [65, 1, 9],
      [600, 64, 37],
      [520, 100, 260],
      [33, 70, 600],
    ];
    for (const g of runnable()) {
      setNativeGemm(g);
      for (const [m, n, k] of shapes)
        for (const tA of [false, true])
          for (const tB of [false, true]) {
            const [a, b] = [values(m * k), values(k * n)];
            const out = new Float32Array(m * n).fill(Number.NaN); // a GEMM with beta = 0 must not read C
            nativeAddon()!.gemm(a, b, out, Int32Array.of(0), Int32Array.of(0), m, n, k, tA, tB);
            const ref = reference(a, b, m, n, k, tA, tB);
            const err = out.reduce((e, v, i) => Math.max(e, Math.abs(v - ref[i]!)), 0);
            expect(err / Math.sqrt(k), `${g} ${m}x${n}x${k} tA=${tA} tB=${tB}`).toBeLessThanOrEqual(2e-6);
          }
    }
  });

  it('linear: x·wᵀ + bias and its exact GELU, added on each tile as the GEMM finishes it, match a float64 reference', () => {
    // erf(x) = 2/√π · e^(−x²) · Σ 2ⁿx²ⁿ⁺¹ / (1·3·…·(2n+1)): positive terms, no cancellation in float64
    const erf = (x: number) => {
      if (Math.abs(x) >= 6) return Math.sign(x);
      let term = x;
      let sum = x;
      for (let n = 1; n < 300; n++) {
        term *= (2 * x * x) / (2 * n + 1);
        sum += term;
      }
      return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
    };
    const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
    for (const g of runnable()) {
      setNativeGemm(g);
      for (const [rows, inF, outF] of [
        [1, 3, 1],
        [70, 600, 45],
        [300, 100, 37],
        [9, 1000, 70],
      ] as const)
        for (const act of [0, 1]) {
          const [x, w, bias] = [values(rows * inF), values(outF * inF), values(outF)];
          const out = new Float32Array(rows * outF).fill(Number.NaN);
          nativeAddon()!.linear(x, w, bias, out, rows, outF, inF, act);
          const ref = reference(x, w, rows, outF, inF, false, true).map((v, i) => {
            const z = v + bias[i % outF]!;
            return act ? gelu(z) : z;
          });
          const err = out.reduce((e, v, i) => Math.max(e, Math.abs(v - ref[i]!)), 0);
          expect(err / Math.sqrt(inF), `${g} linear ${rows}x${inF}→${outF} act=${act}`).toBeLessThanOrEqual(2e-6);
        }
    }
  });

  it("each kernel's attention rows (normalisation, softmax) equal the JavaScript composition: cosine window and scaled dot-product", () => {
    const rand = (shape: number[], scale = 1) =>
      tf.tensor(
        values(shape.reduce((p, q) => p * q, 1)).map((v) => v * scale),
        shape,
      );
    // 37 keys: two 16-wide blocks and a tail; one window's q row all zeros (F.normalize's eps)
    const [b, n, heads, d] = [4, 37, 3, 20];
    const qkv = tf.tidy(() => tf.concat([tf.zeros([1, n, 3 * heads * d]), rand([b - 1, n, 3 * heads * d])]));
    const scale = rand([heads], 8);
    const bias = rand([heads, n, n], 4);
    const mask = tf.tidy(() => tf.mul(tf.cast(tf.greater(rand([2, n, n]), 0.6), 'float32'), -100));
    const run = () => [
      cosineWindowAttention({ qkv, scale, bias, mask, heads }),
      cosineWindowAttention({ qkv, scale, bias, mask: null, heads }),
      selfAttention(qkv, heads),
    ];
    disableNativeKernels();
    const js = run().map((t) => Array.from(t.dataSync() as Float32Array));
    enableNativeKernels();
    for (const g of runnable()) {
      setNativeGemm(g);
      run().forEach((t, i) => {
        const x = t.dataSync() as Float32Array;
        const scaleOut = Math.max(1, ...js[i]!.map(Math.abs));
        expect(x.reduce((e, v, j) => Math.max(e, Math.abs(v - js[i]![j]!)), 0) / scaleOut, `${g} attention ${i}`).toBeLessThanOrEqual(1e-5);
        t.dispose();
      });
    }
    tf.dispose([qkv, scale, bias, mask]);
  });

  it('equals the JavaScript BatchMatMul on explicitly broadcast operands, with empty sizes and gradients', () => {
    const rand = (shape: number[]) => tf.tensor(values(shape.reduce((p, q) => p * q, 1)), shape);
    const cases: [number[], number[], boolean, boolean][] = [
      [[3, 37, 19], [3, 19, 41], false, false],
      [[2, 1, 19, 37], [3, 41, 19], true, true],
      [[2, 1, 5, 7], [2, 3, 7, 4], false, false],
      [[3, 1, 6, 5], [1, 4, 2, 5], false, true],
      [[1, 9, 300], [4, 300, 11], false, false],
      [[0, 5, 3], [0, 3, 2], false, false],
      [[4, 0], [0, 6], false, false],
    ];
    // tfjs's JavaScript BatchMatMul broadcasts batches only when one batch shape ends the other;
    // the reference broadcasts both operands to the full batch shape first.
    const full = (x: tf.Tensor, y: tf.Tensor) => tf.broadcast_util.assertAndGetBroadcastShape(x.shape.slice(0, -2), y.shape.slice(0, -2));
    const expand = (x: tf.Tensor, batch: number[]) => tf.broadcastTo(x, [...batch, ...x.shape.slice(-2)]);
    for (const g of runnable()) {
      setNativeGemm(g);
      for (const [sa, sb, tA, tB] of cases) {
        const [a, b] = [rand(sa), rand(sb)];
        const loss = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(matMul(x, y, tA, tB))); // core-tensor's matMul: gradients of broadcast batches
        const native = [tf.matMul(a, b, tA, tB), ...(a.size && b.size ? tf.grads(loss)([a, b]) : [])];
        disableNativeKernels();
        const batch = full(a, b);
        const refLoss = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(expand(x, batch), expand(y, batch), tA, tB)));
        const js = [tf.matMul(expand(a, batch), expand(b, batch), tA, tB), ...(a.size && b.size ? tf.grads(refLoss)([a, b]) : [])];
        enableNativeKernels();
        native.forEach((t, i) => {
          expect(t.shape).toEqual(js[i]!.shape);
          const [x, y] = [Array.from(t.dataSync() as Float32Array), Array.from(js[i]!.dataSync() as Float32Array)];
          const scale = Math.max(1, ...y.map(Math.abs));
          expect(x.reduce((e, v, j) => Math.max(e, Math.abs(v - y[j]!)), 0) / scale, `${g} ${sa} ${sb} output ${i}`).toBeLessThanOrEqual(
            1e-5,
          );
        });
        tf.dispose([a, b, ...native, ...js]);
      }
    }
  });
});

/**
 * The pool under load, in child processes with 8 threads (CI machines have 2 cores, i.e. one
 * worker, which would hide races between workers) and from two worker_threads at once (one of
 * them finds the pool busy and runs inline). Each child checks its own results.
 */
const STRESS = `
const n = require(process.env.ADDON);
const { Worker, isMainThread } = require('node:worker_threads');
const rand = (len) => Float32Array.from({ length: len }, (_, i) => Math.sin(i * 12.9898) * 0.5);
function run(gemm, calls) {
  if (!n.setGemm(gemm)) return;
  const x = rand(70000), out = new Float32Array(x.length), a = rand(96 * 96), c = new Float32Array(96 * 96);
  for (let i = 0; i < calls; i++) {
    n.unary(1, x, out);
    n.gemm(a, a, c, Int32Array.of(0), Int32Array.of(0), 96, 96, 96, false, false);
    if (Math.abs(out[777] - Math.exp(x[777])) > 1e-5) throw new Error('unary went wrong at call ' + i);
  }
  let s = 0;
  for (let k = 0; k < 96; k++) s += a[5 * 96 + k] * a[k * 96 + 7];
  if (Math.abs(c[5 * 96 + 7] - s) > 1e-4) throw new Error(gemm + ': gemm went wrong');
}
if (isMainThread && process.env.MODE === 'workers') {
  let left = 2;
  for (let w = 0; w < 2; w++) new Worker(__filename.endsWith('[eval]') ? process.env.SCRIPT : __filename, { eval: true, env: { ...process.env, MODE: 'one' } })
    .on('error', (e) => { console.error(e); process.exit(1); }).on('exit', () => { if (--left === 0) console.log('ok'); });
} else {
  for (const g of ['baseline', 'avx2', 'avx512', 'openblas']) run(g, process.env.MODE === 'one' ? 300 : 1500);
  if (isMainThread) console.log('ok');
}`;

describe.runIf(nativeAddon() !== null)('the native thread pool', () => {
  const addonPath = () =>
    (createRequire(import.meta.url)('node-gyp-build') as { resolve(d: string): string }).resolve(
      fileURLToPath(new URL('..', import.meta.url)),
    );
  const child = (mode: string) =>
    execFileSync(process.execPath, ['-e', STRESS], {
      env: { ...process.env, ADDON: addonPath(), SKYSENSE_THREADS: '8', MODE: mode, SCRIPT: STRESS },
      encoding: 'utf8',
      timeout: 120_000,
    }).trim();

  it('with 8 threads, thousands of back-to-back parallel calls (GEMM and element-wise) each finish with the right values', () => {
    expect(child('main')).toBe('ok');
  });

  it('two worker_threads calling at once both get right values (one runs inline while the other holds the pool)', () => {
    expect(child('workers')).toBe('ok');
  });
});

describe.runIf(process.env.CI === 'true' && process.env.SKYSENSE_NATIVE !== '0')('CI builds the native kernels', () => {
  it('loads the addon, with the GEMM the job expects (SKYSENSE_EXPECT_GEMM)', () => {
    expect(nativeAddon(), 'the native addon must load in CI').not.toBeNull();
    if (process.env.SKYSENSE_EXPECT_GEMM) expect(nativeAddon()!.gemmName()).toContain(process.env.SKYSENSE_EXPECT_GEMM);
  });
});
