import { loadSafetensors, type Tensor } from '@skysense/core-tensor';
import { parityFixture } from '@skysense/test-utils';

/** Loads `weights`, `input` or `output` of a parity fixture. */
export function loadParity(name: string, file: 'weights' | 'input' | 'output'): Map<string, Tensor> {
  return loadSafetensors(parityFixture(__dirname, name).path(`${file}.safetensors`));
}

/** The fixture's constructor kwargs. */
export function parityKwargs(name: string): Record<string, unknown> {
  return parityFixture(__dirname, name).config<{ kwargs: Record<string, unknown> }>().kwargs;
}

export { maxAbsDiff } from '@skysense/test-utils';
