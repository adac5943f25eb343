import { join } from 'node:path';
import { expect } from 'vitest';
import { type BackendKind, initBackend, loadSafetensors, tf, type Tensor } from '../src/index';

/** Backends every layer test runs on here (the native ones cannot install on this machine). */
export const TEST_BACKENDS: BackendKind[] = ['wasm', 'cpu'];

/** Switches the active backend. */
export async function useBackend(kind: BackendKind): Promise<void> {
  await initBackend({ force: kind });
}

/** Path of a copied parity fixture file. */
export function fixturePath(name: string, file: string): string {
  return join(__dirname, 'fixtures', 'parity', name, file);
}

/** Loads one safetensors file of a fixture into tensors. */
export function loadFixture(name: string, file: 'weights' | 'input' | 'output'): Map<string, Tensor> {
  return loadSafetensors(fixturePath(name, `${file}.safetensors`));
}

/** Max |a − b| over all elements (shapes must match). */
export function maxAbsDiff(a: Tensor | ArrayLike<number>, b: Tensor | ArrayLike<number>): number {
  const av = a instanceof tf.Tensor ? a.dataSync() : a;
  const bv = b instanceof tf.Tensor ? b.dataSync() : b;
  if (a instanceof tf.Tensor && b instanceof tf.Tensor) expect(a.shape).toEqual(b.shape);
  expect(av.length).toBe(bv.length);
  let m = 0;
  for (let i = 0; i < av.length; i++) {
    const d = Math.abs(av[i]! - bv[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Asserts max |a − b| ≤ tol. */
export function expectClose(a: Tensor | ArrayLike<number>, b: Tensor | ArrayLike<number>, tol: number): void {
  expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(tol);
}

/** Runs `fn` several times and asserts the live tensor count does not grow. */
export function expectNoLeak(fn: () => void, reps = 3): void {
  fn();
  const before = tf.memory().numTensors;
  for (let i = 0; i < reps; i++) fn();
  expect(tf.memory().numTensors).toBe(before);
}

/** Deterministic pseudo-random values in [-1, 1) (independent of the library's RNG). */
export function testValues(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** A tensor of {@link testValues}. */
export function testTensor(shape: number[], seed = 1): Tensor {
  return tf.tensor(testValues(shape.reduce((a, b) => a * b, 1), seed), shape);
}

/**
 * Central finite-difference gradient of a scalar function of one tensor, in float64 where the
 * function allows (evaluated through tfjs in float32; use a step of ~1e-2 and a loose tolerance).
 */
export function numericGrad(f: (x: Tensor) => Tensor, x: Tensor, h = 1e-2): Float32Array {
  const base = x.dataSync().slice();
  const g = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const eval1 = (delta: number) => {
      const v = base.slice();
      v[i] = v[i]! + delta;
      return tf.tidy(() => f(tf.tensor(v, x.shape)).dataSync()[0]!);
    };
    g[i] = (eval1(h) - eval1(-h)) / (2 * h);
  }
  return g;
}
