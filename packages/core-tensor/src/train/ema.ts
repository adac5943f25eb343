import { tf } from '../tf';
import { SkySenseError } from '../errors';
import { assertInRange } from '../validate';
import type { Module } from '../module';

/** Options of {@link emaUpdate}. */
export interface EmaOptions {
  /** Buffers (running statistics) are copied from the source (`copy`, default, as mmengine) or left alone (`ignore`). */
  buffers?: 'copy' | 'ignore';
}

/**
 * Moves every parameter of `target` towards `source`: `t ← m·t + (1 − m)·s` (the teacher update of
 * DINO / SkySense). Both modules must have the same parameter names and shapes. No gradients flow.
 * @throws SkySenseError `E_STATE_DICT` if the structures differ.
 * @example
 * ```ts
 * import { emaUpdate, initBackend, Linear } from '@skysense/core-tensor';
 * await initBackend();
 * const student = new Linear(8, 8);
 * const teacher = new Linear(8, 8);
 * emaUpdate(teacher, student, 0.996); // teacher ← 0.996 · teacher + 0.004 · student, parameter by parameter
 * ```
 */
export function emaUpdate(target: Module, source: Module, momentum: number, options: EmaOptions = {}): void {
  assertInRange('momentum', momentum, 0, 1);
  const src = new Map(source.namedParameters());
  const tgt = target.namedParameters();
  if (tgt.length !== src.size)
    throw new SkySenseError('E_STATE_DICT', `emaUpdate: target has ${tgt.length} parameters, source ${src.size}`);
  tf.tidy(() => {
    for (const [name, t] of tgt) {
      const s = src.get(name);
      if (!s || s.shape.join() !== t.shape.join())
        throw new SkySenseError('E_STATE_DICT', `emaUpdate: parameter '${name}' is missing from the source or has another shape`);
      t.value.assign(tf.add(tf.mul(t.value, momentum), tf.mul(s.value, 1 - momentum)));
    }
    if ((options.buffers ?? 'copy') === 'copy') {
      const srcBuf = new Map(source.namedBuffers());
      for (const [name, b] of target.namedBuffers()) {
        const s = srcBuf.get(name);
        if (s) b.assign(s.value);
      }
    }
  });
}
