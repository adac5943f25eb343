import { SkySenseError, assertPositive, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Checks a temperature (> 0, finite). */
export function checkTemperature(name: string, t: number): number {
  return assertPositive(name, t);
}

/** Checks rank/last dimension and that every value is finite. @throws SkySenseError `E_SHAPE` / `E_ARG`. */
export function checkLogits(name: string, t: Tensor, rank: number, last?: number): void {
  if (t.rank !== rank || (last !== undefined && t.shape[rank - 1] !== last)) {
    throw new SkySenseError('E_SHAPE', `${name}: expected rank ${rank}${last !== undefined ? ` with last dimension ${last}` : ''}, got ${formatShape(t.shape)}`);
  }
  if (!(tf.tidy(() => tf.all(tf.isFinite(t)).dataSync()[0]) as number)) throw new SkySenseError('E_ARG', `${name}: contains NaN or infinite values`);
}

/**
 * DINO's teacher-temperature schedule: `linspace(warmup, final, warmupEpochs)` then `final` up to
 * `epochs` (float64, as numpy). With `holdEpochs` (iBOT's `mim_start_epoch`) the warm-up value is
 * first held for that many epochs.
 */
export function teacherTempSchedule(o: { warmup: number; final: number; warmupEpochs: number; epochs: number; holdEpochs?: number }): number[] {
  const hold = o.holdEpochs ?? 0;
  const ramp = Array.from({ length: o.warmupEpochs }, (_, i) => (o.warmupEpochs === 1 ? o.warmup : o.warmup + ((o.final - o.warmup) * i) / (o.warmupEpochs - 1)));
  const rest = Math.max(0, o.epochs - o.warmupEpochs - hold);
  return [...Array<number>(hold).fill(o.warmup), ...ramp, ...Array<number>(rest).fill(o.final)];
}
