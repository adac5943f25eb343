import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadSafetensors, tf, type Tensor } from '@skysense/core-tensor';

/** Loads `weights`, `input` or `output` of a parity fixture. */
export function loadParity(name: string, file: 'weights' | 'input' | 'output'): Map<string, Tensor> {
  return loadSafetensors(join(__dirname, 'fixtures', 'parity', name, `${file}.safetensors`));
}

/** The fixture's constructor kwargs. */
export function parityKwargs(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(__dirname, 'fixtures', 'parity', name, 'config.json'), 'utf8')).kwargs;
}

/** Max |a − b| (shapes must match). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}
