import { parityBackends, parityFixture } from '@skysense/test-utils';
import { type BackendKind, initBackend, loadSafetensors, tf, type Tensor } from '../src/index';

/** Backends every layer test runs on: `SKYSENSE_TEST_BACKENDS`, default wasm and cpu (the tfjs-node ones cannot install on this machine). */
export const TEST_BACKENDS = parityBackends<BackendKind>();

/** Switches the active backend. */
export async function useBackend(kind: BackendKind): Promise<void> {
  await initBackend({ force: kind });
}

/** Path of a copied parity fixture file. */
export function fixturePath(name: string, file: string): string {
  return parityFixture(__dirname, name).path(file);
}

/** Loads one safetensors file of a fixture into tensors. */
export function loadFixture(name: string, file: 'weights' | 'input' | 'output'): Map<string, Tensor> {
  return loadSafetensors(fixturePath(name, `${file}.safetensors`));
}

export { maxAbsDiff, expectClose, expectNoLeak, testValues, testTensor } from '@skysense/test-utils';

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
