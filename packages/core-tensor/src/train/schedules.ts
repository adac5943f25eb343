import { SkySenseError } from '../errors';
import { assertInt, assertPositive } from '../validate';

/**
 * A learning-rate schedule: the rate at iteration `iter` (0-based) for a group whose initial rate is
 * `baseLr`. Apply with `optimizer.applySchedule(schedule, iter)` before each step.
 */
export type LrSchedule = (iter: number, baseLr: number) => number;

/** The rate never changes. */
export function constantLr(): LrSchedule {
  return (_iter, base) => base;
}

/** mmcv `step` policy: `base · gamma^k`, k = number of milestones ≤ iter. */
export function stepLr(options: { steps: number[]; gamma?: number }): LrSchedule {
  const gamma = options.gamma ?? 0.1;
  options.steps.forEach((s, i) => assertInt(`steps[${i}]`, s, 0));
  return (iter, base) => base * gamma ** options.steps.filter((s) => iter >= s).length;
}

/** mmcv `poly` policy: `(base − minLr) · (1 − iter / maxIters)^power + minLr`. Default power 1, minLr 0. */
export function polyLr(options: { maxIters: number; power?: number; minLr?: number }): LrSchedule {
  const max = assertInt('maxIters', options.maxIters, 1);
  const power = options.power ?? 1;
  const min = options.minLr ?? 0;
  return (iter, base) => (base - min) * Math.max(0, 1 - iter / max) ** power + min;
}

/**
 * mmcv `CosineAnnealing` policy: `min + (base − min) · (1 + cos(π · iter / maxIters)) / 2`, where
 * `min` is `minLr` or `minLrRatio · base`. Default minLr 0.
 * @example
 * ```ts
 * import { AdamW, cosineLr, initBackend, Linear } from '@skysense/core-tensor';
 * await initBackend();
 * const optimizer = new AdamW(new Linear(4, 2), { lr: 1e-3 });
 * const schedule = cosineLr({ maxIters: 1000, minLr: 1e-6 }); // mmengine CosineAnnealingLR by iteration
 * for (const iter of [0, 500, 999]) console.log(iter, schedule(iter, 1e-3)); // 1e-3 … 5e-4 … ≈1e-6
 * optimizer.applySchedule(schedule, 500); // sets every group's lr for iteration 500
 * ```
 */
export function cosineLr(options: { maxIters: number; minLr?: number; minLrRatio?: number }): LrSchedule {
  const max = assertInt('maxIters', options.maxIters, 1);
  if (options.minLr !== undefined && options.minLrRatio !== undefined)
    throw new SkySenseError('E_ARG', 'cosineLr: give minLr or minLrRatio, not both');
  return (iter, base) => {
    const min = options.minLrRatio !== undefined ? base * options.minLrRatio : (options.minLr ?? 0);
    return min + ((base - min) * (1 + Math.cos((Math.PI * Math.min(iter, max)) / max))) / 2;
  };
}

/**
 * mmcv linear warm-up on top of a schedule: for `iter < iters`, the scheduled rate times
 * `1 − (1 − iter / iters) · (1 − ratio)` (so it starts at `ratio` of the schedule). Default ratio 0.1.
 */
export function linearWarmup(schedule: LrSchedule, options: { iters: number; ratio?: number }): LrSchedule {
  const iters = assertInt('iters', options.iters, 0);
  const ratio = options.ratio ?? 0.1;
  if (!(ratio > 0 && ratio <= 1)) throw new SkySenseError('E_ARG', `warm-up ratio must be in (0, 1], got ${ratio}`);
  return (iter, base) => {
    const lr = schedule(iter, base);
    return iter < iters ? lr * (1 - (1 - iter / iters) * (1 - ratio)) : lr;
  };
}

/**
 * DINO's teacher-momentum schedule: cosine from `base` (default 0.996) to `final` (default 1)
 * over `totalSteps`.
 */
export function cosineMomentum(step: number, totalSteps: number, base = 0.996, final = 1): number {
  assertPositive('totalSteps', totalSteps);
  const t = Math.min(Math.max(step, 0), totalSteps) / totalSteps;
  return final - ((final - base) * (Math.cos(Math.PI * t) + 1)) / 2;
}
