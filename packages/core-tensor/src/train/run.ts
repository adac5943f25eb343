import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
// The generic machinery of a training run: atomic checkpoints with optimizer, RNG and step state,
// exact resume, run folders (settings, metrics log), and the loop with its progress lines. The
// trainers (@skysense/skysense's Pretrainer and Finetuner) sit on top of it.
import { progressBar } from './progress';
import { defaultRng, Generator, type GeneratorState } from '../rng';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../safetensors';
import { SkySenseError } from '../errors';
import { assertInt } from '../validate';
import { writeFileAtomic } from '../atomic-file';
import { tf, type Tensor } from '../tf';
import type { Module } from '../module';
import type { Optimizer } from './optimizers';

/** A training checkpoint opened for resuming: named parts (state dicts) and JSON metadata. */
export interface TrainingCheckpoint {
  /** The state dict saved under `prefix` (keys without it). */
  part(prefix: string): Map<string, Tensor>;
  /** A metadata value, parsed from JSON. @throws SkySenseError `E_STATE_DICT` if missing or malformed. */
  json<T>(key: string): T;
  /** Frees the tensors. */
  dispose(): void;
}

/**
 * Writes a training checkpoint as one safetensors file, atomically (temp file + rename): every part's
 * tensors under `<part>.<key>`, the `format` tag, and each metadata value as JSON.
 */
export function saveTrainingCheckpoint(
  file: string,
  format: string,
  parts: Record<string, Map<string, Tensor> | undefined>,
  metadata: Record<string, unknown>,
): void {
  const state = new Map<string, Tensor>();
  for (const [prefix, dict] of Object.entries(parts)) dict?.forEach((t, k) => state.set(`${prefix}.${k}`, t));
  saveSafetensors(file, state, {
    metadata: { format, ...Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, JSON.stringify(v)])) },
  });
}

/**
 * Opens a checkpoint written by {@link saveTrainingCheckpoint}.
 * @throws SkySenseError `E_STATE_DICT` if the file's format tag is not `format`.
 */
export function openTrainingCheckpoint(file: string, format: string, what: string): TrainingCheckpoint {
  const header = SafetensorsFile.open(file);
  const metadata = header.metadata;
  header.close();
  if (metadata.format !== format)
    throw new SkySenseError(
      'E_STATE_DICT',
      `${file}: not a ${what} checkpoint (format '${metadata.format ?? 'none'}', expected '${format}')`,
    );
  const state = loadSafetensors(file);
  return {
    part: (prefix) => new Map([...state].filter(([k]) => k.startsWith(`${prefix}.`)).map(([k, t]) => [k.slice(prefix.length + 1), t])),
    json<T>(key: string): T {
      try {
        return JSON.parse(metadata[key] ?? '') as T;
      } catch {
        throw new SkySenseError('E_STATE_DICT', `${file}: checkpoint metadata '${key}' is missing or not valid JSON`);
      }
    },
    dispose: () => tf.dispose([...state.values()]),
  };
}

/**
 * A trainer whose whole state goes into one checkpoint: modules (state dicts), the optimizer
 * (moments and step count), random generators, the step and the options it was built from.
 */
export interface CheckpointableTrainer<O> {
  step: number;
  readonly options: O & { steps: number };
  readonly optimizer: Optimizer;
  /** The modules to save, by part name; `undefined` for a part this trainer does not have. */
  checkpointModules(): Record<string, Module | undefined>;
  /** Random generators to save besides the process-wide default one (which is always saved), by name. Default: none. */
  checkpointGenerators?(): Record<string, Generator>;
}

/**
 * Saves everything a resume needs as one safetensors file, atomically (temp file + rename): each
 * module under `<part>.`, the optimizer under `optimizer.`, and as metadata the step, the optimizer's
 * step count, the default and the trainer's generators, and the options.
 */
export function saveTrainer<O>(file: string, format: string, t: CheckpointableTrainer<O>): void {
  const parts = Object.fromEntries(Object.entries(t.checkpointModules()).map(([k, m]) => [k, m?.stateDict()]));
  const generators = Object.fromEntries(Object.entries(t.checkpointGenerators?.() ?? {}).map(([k, g]) => [k, g.getState()]));
  saveTrainingCheckpoint(
    file,
    format,
    { ...parts, optimizer: t.optimizer.stateDict() },
    {
      step: t.step,
      optimizer_steps: t.optimizer.stepCount,
      default_rng: defaultRng().getState(),
      ...generators,
      options: t.options,
    },
  );
}

/**
 * Rebuilds a trainer from {@link saveTrainer}'s file: `build(options)` makes it afresh, then every
 * module, the optimizer, the generators and the step are restored, so it continues exactly.
 * @throws SkySenseError `E_STATE_DICT` for a file of another format, missing parts or metadata.
 */
export function resumeTrainer<O, T extends CheckpointableTrainer<O>>(
  file: string,
  format: string,
  what: string,
  build: (options: O & { steps: number }) => T,
): T {
  const ckpt = openTrainingCheckpoint(file, format, what);
  try {
    const t = build(ckpt.json<O & { steps: number }>('options'));
    for (const [name, m] of Object.entries(t.checkpointModules())) m?.loadStateDict(ckpt.part(name));
    t.optimizer.loadStateDict(ckpt.part('optimizer'), ckpt.json<number>('optimizer_steps'));
    for (const [name, g] of Object.entries(t.checkpointGenerators?.() ?? {})) g.setState(ckpt.json<GeneratorState>(name));
    defaultRng().setState(ckpt.json<GeneratorState>('default_rng'));
    t.step = assertInt('checkpoint step', ckpt.json<number>('step'), 0, t.options.steps);
    return t;
  } finally {
    ckpt.dispose();
  }
}

/**
 * Keeps only the lines of a JSONL metrics log whose `step` is ≤ `step` (on resume, the steps after
 * the checkpoint are run again); a line torn by a crash is dropped. Rewritten atomically.
 */
export function truncateMetricsLog(file: string, step: number): void {
  if (!existsSync(file)) return;
  const stepOf = (line: string) => {
    try {
      return (JSON.parse(line) as { step: number }).step;
    } catch {
      return Infinity;
    }
  };
  writeFileAtomic(
    file,
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l && stepOf(l) <= step)
      .map((l) => `${l}\n`)
      .join(''),
  );
}

/** A trainer the {@link trainingLoop} drives: its step counter and its atomic checkpoint. */
export interface LoopTrainer {
  step: number;
  readonly options: { steps: number };
  save(file: string): void;
}

/**
 * The settings of a run that decide its data (task, data folder, batch size, crop, seed, …): a fresh
 * run writes them to `out/run.json` (atomically); a resumed run reads them back, so `--resume` needs
 * only the folder and continues with exactly the batches the interrupted run would have drawn
 * (options given again are ignored, with a line saying so). A run folder without `run.json` (older
 * versions) resumes with the options given now.
 * @throws SkySenseError `E_IO` when `resume` finds no checkpoint.
 */
export function runSettings<S extends object>(out: string, resume: boolean, given: S, log: (line: string) => void): S {
  const file = join(out, 'run.json');
  if (!resume) {
    mkdirSync(out, { recursive: true });
    writeFileAtomic(file, `${JSON.stringify(given, null, 2)}\n`);
    return given;
  }
  const checkpoint = join(out, 'checkpoint.safetensors');
  if (!existsSync(checkpoint)) throw new SkySenseError('E_IO', `--resume: no checkpoint at ${checkpoint}`);
  if (!existsSync(file)) {
    log(`${file} is missing (a run from an older version): resuming with the options given now`);
    return given;
  }
  let saved: S;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as S;
  } catch {
    throw new SkySenseError('E_IO', `${file}: not valid JSON (the run's settings are needed to resume it)`);
  }
  const differ = Object.entries(given).filter(
    ([k, v]) => v !== undefined && JSON.stringify(v) !== JSON.stringify((saved as Record<string, unknown>)[k]),
  );
  if (differ.length)
    log(`resuming with the run's own settings (${file}); ignored: ${differ.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(', ')}`);
  return saved;
}

/**
 * Starts a run in `out`: a fresh trainer (and an empty `metrics.jsonl`), or with `resume` the one
 * of `out/checkpoint.safetensors` (its metrics log cut back to the checkpoint's step).
 * @throws SkySenseError `E_IO` when `resume` finds no checkpoint.
 */
export function openRun<T extends LoopTrainer>(
  out: string,
  resume: boolean,
  build: { fresh: () => T; resume: (file: string) => T },
  log: (line: string) => void,
): T {
  const file = join(out, 'checkpoint.safetensors');
  const metrics = join(out, 'metrics.jsonl');
  if (!resume) {
    mkdirSync(out, { recursive: true });
    const t = build.fresh();
    writeFileAtomic(metrics, '');
    return t;
  }
  if (!existsSync(file)) throw new SkySenseError('E_IO', `--resume: no checkpoint at ${file}`);
  const t = build.resume(file);
  truncateMetricsLog(metrics, t.step);
  log(`resumed ${file} at step ${t.step} of ${t.options.steps}`);
  return t;
}

/** Options of {@link trainingLoop}. */
export interface TrainingLoopOptions<M> {
  trainer: LoopTrainer;
  /** Steps of the whole run. */
  total: number;
  /** Run seed: step k draws its data from `Generator(seed · 1000003 + k)`, so a resumed run sees the same batches. */
  seed: number;
  /** Run folder (`checkpoint.safetensors`, `metrics.jsonl`). */
  out: string;
  checkpointEvery: number;
  /** Samples per step (for the rate). */
  samplesPerStep: number;
  /** Builds the step's batch from the generator, trains on it, frees it; returns the step's metrics. */
  step: (g: Generator) => M;
  /** The metrics part of a progress line (`loss … (terms) lr …`). */
  describe: (m: M) => string;
  log: (line: string) => void;
  /** Where an in-place bar is redrawn after every step. Default: stderr when it is a terminal (none in logs and CI). */
  bar?: NodeJS.WriteStream | null;
}

/**
 * Runs the remaining steps of a training run: one JSON line per step in `metrics.jsonl`, a progress
 * line (metrics, samples/s, ETA) at the first step and every 5 % (on a terminal also an in-place bar
 * redrawn every step), an atomic checkpoint every `checkpointEvery` steps and at the end.
 * @returns the metrics of the steps run in this call.
 */
export function trainingLoop<M extends object>(o: TrainingLoopOptions<M>): M[] {
  assertInt('checkpointEvery', o.checkpointEvery, 1);
  assertInt('samples per step', o.samplesPerStep, 1);
  const metrics: M[] = [];
  const t0 = performance.now();
  const first = o.trainer.step;
  const ckpt = join(o.out, 'checkpoint.safetensors');
  const bar = o.bar === undefined ? (process.stderr.isTTY ? process.stderr : null) : o.bar;
  while (o.trainer.step < o.total) {
    const m = o.step(new Generator(o.seed * 1_000_003 + o.trainer.step));
    metrics.push(m);
    appendFileSync(join(o.out, 'metrics.jsonl'), `${JSON.stringify({ ...m, time: new Date().toISOString() })}\n`);
    const step = o.trainer.step;
    const done = step - first;
    const secs = (performance.now() - t0) / 1000;
    const line = `step ${step}/${o.total} ${o.describe(m)} · ${((done * o.samplesPerStep) / secs).toFixed(2)} samples/s · ETA ${((secs / done) * (o.total - step)).toFixed(0)} s`;
    bar?.write('\r\x1b[K');
    if (done === 1 || step % Math.max(1, Math.round(o.total / 20)) === 0 || step === o.total) o.log(line);
    if (step % o.checkpointEvery === 0 || step === o.total) o.trainer.save(ckpt);
    if (step < o.total) bar?.write(`${progressBar(step / o.total)} ${line}`.slice(0, Math.max(20, (bar.columns ?? 120) - 1)));
  }
  return metrics;
}
