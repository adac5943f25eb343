import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadSafetensors, tf, type Tensor } from '@skysense/core-tensor';

/** Path of a file under `test/fixtures`. */
export function fixture(...parts: string[]): string {
  return join(__dirname, 'fixtures', ...parts);
}

/** Loads `weights`, `input` or `output` of a parity fixture. */
export function loadParity(name: string, file: 'weights' | 'input' | 'output'): Map<string, Tensor> {
  return loadSafetensors(fixture('parity', name, `${file}.safetensors`));
}

/** The fixture's `config.json`. */
export function parityConfig(name: string): { kwargs: Record<string, unknown>; negative_cases?: { input_shape: number[]; error: string }[] } {
  return JSON.parse(readFileSync(fixture('parity', name, 'config.json'), 'utf8'));
}

/** Max |a − b|. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}
