import { SkySenseError, assertPositive, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Checks a temperature (> 0, finite). */
export function checkTemperature(name: string, t: number): number {
  return assertPositive(name, t);
}

/** Checks rank and last dimension (reads no data). @throws SkySenseError `E_SHAPE`. */
export function checkLogits(name: string, t: Tensor, rank: number, last?: number): void {
  if (t.rank !== rank || (last !== undefined && t.shape[rank - 1] !== last)) {
    throw new SkySenseError(
      'E_SHAPE',
      `${name}: expected rank ${rank}${last !== undefined ? ` with last dimension ${last}` : ''}, got ${formatShape(t.shape)}`,
    );
  }
}

/**
 * The finiteness check of a loss: any NaN or infinity in the inputs makes the loss non-finite, so one
 * scalar read replaces a pass over every (large) logit tensor; only when it fails are the inputs
 * scanned to name the culprit. Disposes `values` before throwing.
 * @throws SkySenseError `E_ARG` naming the input with NaN or infinite values, or `E_NONFINITE`.
 */
export function requireFinite(loss: Tensor, inputs: [string, Tensor][], values: Tensor[] = [loss]): void {
  const v = loss.dataSync()[0]!;
  if (Number.isFinite(v)) return;
  tf.dispose(values);
  const bad = inputs.find(([, t]) => !(tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0]) as number));
  if (bad) throw new SkySenseError('E_ARG', `${bad[0]}: contains NaN or infinite values`);
  throw new SkySenseError('E_NONFINITE', `the loss is ${v} although every input is finite`);
}

/**
 * DINO's teacher-temperature schedule: `linspace(warmup, final, warmupEpochs)` then `final` up to
 * `epochs` (float64, as numpy). With `holdEpochs` (iBOT's `mim_start_epoch`) the warm-up value is
 * first held for that many epochs.
 */
export function teacherTempSchedule(o: {
  warmup: number;
  final: number;
  warmupEpochs: number;
  epochs: number;
  holdEpochs?: number;
}): number[] {
  const hold = o.holdEpochs ?? 0;
  const ramp = Array.from({ length: o.warmupEpochs }, (_, i) =>
    o.warmupEpochs === 1 ? o.warmup : o.warmup + ((o.final - o.warmup) * i) / (o.warmupEpochs - 1),
  );
  const rest = Math.max(0, o.epochs - o.warmupEpochs - hold);
  return [...Array<number>(hold).fill(o.warmup), ...ramp, ...Array<number>(rest).fill(o.final)];
}
