import { join } from 'node:path';
import { loadSafetensors, type Tensor } from '@skysense/core-tensor';
import { parityFixture } from '@skysense/test-utils';

/** Path of a file under `test/fixtures`. */
export function fixture(...parts: string[]): string {
  return join(__dirname, 'fixtures', ...parts);
}

/** Loads `weights`, `input` or `output` of a parity fixture. */
export function loadParity(name: string, file: 'weights' | 'input' | 'output'): Map<string, Tensor> {
  return loadSafetensors(parityFixture(__dirname, name).path(`${file}.safetensors`));
}

/** The fixture's `config.json`. */
export function parityConfig(name: string): {
  kwargs: Record<string, unknown>;
  negative_cases?: { input_shape: number[]; error: string }[];
} {
  return parityFixture(__dirname, name).config();
}

export { maxAbsDiff } from '@skysense/test-utils';
