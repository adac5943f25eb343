/**
 * The fused native window attention (one kernel forward, one backward) against the same attention
 * composed from tfjs kernels — the path every other backend runs, itself checked against mmcls by
 * the parity fixtures. Runs where the native addon is built.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Generator,
  disableNativeKernels,
  enableNativeKernels,
  initBackend,
  nativeCallCount,
  nativeKernelsAvailable,
  tf,
  valueAndGrads,
  type Tensor,
} from '@skysense/core-tensor';
import { ShiftWindowMSA, WindowMSAV2, shiftWindowMask } from '../src/index';

const rng = new Generator(7);
const rand = (shape: number[], scale = 1) =>
  tf.tensor(
    Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.uniform(-scale, scale)),
    shape,
  );

/** Output and every gradient (input first, then each parameter by name) of `loss(model(x))`. */
function outputs(model: WindowMSAV2 | ShiftWindowMSA, x: Tensor, weight: Tensor, run: (t: Tensor) => Tensor): Map<string, Float32Array> {
  const loss = (t: Tensor) => tf.sum(tf.mul(run(t), weight)) as tf.Scalar;
  const out = new Map<string, Float32Array>([
    ['output', run(x).dataSync() as Float32Array],
    ['d input', tf.grad(loss)(x).dataSync() as Float32Array],
  ]);
  const { grads } = valueAndGrads(model, () => loss(x));
  for (const [name, p] of model.namedParameters()) out.set(name, grads.get(p)!.dataSync() as Float32Array);
  return out;
}

/** Native and tfjs-composed runs agree within 1e-5 of each output's scale. */
function expectSame(model: WindowMSAV2 | ShiftWindowMSA, x: Tensor, run: (t: Tensor) => Tensor): void {
  const weight = tf.tidy(() => rand(run(x).shape));
  enableNativeKernels();
  const calls = nativeCallCount();
  const fused = outputs(model, x, weight, run);
  expect(nativeCallCount(), 'the native path ran').toBeGreaterThan(calls);
  disableNativeKernels();
  const jsCalls = nativeCallCount();
  const composed = outputs(model, x, weight, run);
  expect(nativeCallCount(), 'the composed path ran no native code').toBe(jsCalls);
  enableNativeKernels();
  expect([...fused.keys()]).toEqual([...composed.keys()]);
  for (const [name, ref] of composed) {
    const scale = Math.max(1e-3, ...Array.from(ref, Math.abs));
    const err = ref.reduce((m, v, i) => Math.max(m, Math.abs(v - fused.get(name)![i]!)), 0);
    expect(err / scale, name).toBeLessThanOrEqual(1e-5);
  }
}

describe.runIf(nativeKernelsAvailable())('fused native window attention vs the tfjs composition', () => {
  beforeAll(() => initBackend({ force: 'cpu' }));
  afterAll(() => enableNativeKernels());

  it('WindowMSAV2: masked and unmasked, clamped logit scale, an all-zero window (q = k = 0: finite, zero gradients), no windows', () => {
    const attn = new WindowMSAV2(12, [3, 4], 3);
    attn.logitScale.assign(tf.tensor3d([1.2, Math.log(100) + 0.5, 2.9], [3, 1, 1]));
    attn.qBias!.assign(rand([12], 0.5));
    attn.vBias!.assign(rand([12], 0.5));
    expectSame(attn, rand([3, 12, 12]), (t) => attn.forward(t));
    const mask = tf.tensor3d(shiftWindowMask(6, 8, 4, 2).subarray(0, 2 * 144), [2, 12, 12]);
    expectSame(attn, rand([4, 12, 12]), (t) => attn.forward(t, mask));
    attn.qBias!.assign(tf.zeros([12]));
    expectSame(attn, tf.concat([tf.zeros([1, 12, 12]), rand([1, 12, 12])]), (t) => attn.forward(t));
    expectSame(attn, tf.zeros([0, 12, 12]), (t) => attn.forward(t));
  });

  it('ShiftWindowMSA: shifted, padded map, two images', () => {
    const msa = new ShiftWindowMSA(16, 2, 4, { shiftSize: 2 });
    expectSame(msa, rand([2, 10, 7, 16]), (t) => msa.forward(t));
  });

  it('keeps the tensor count flat and falls back to the composition while attention dropout is active', () => {
    const attn = new WindowMSAV2(8, [2, 2], 2, { attnDrop: 0.5 });
    const x = rand([3, 4, 8]);
    const step = () =>
      tf
        .grad((t: Tensor) => tf.sum(attn.forward(t)))(x)
        .dispose();
    attn.eval();
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    expect(tf.memory().numTensors).toBe(before);
    attn.train();
    const [a, b] = [attn.forward(x), attn.forward(x)];
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose([a, b]);
  });
});
