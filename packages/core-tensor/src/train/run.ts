import { appendFileSync, existsSync, linkSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
// The generic machinery of a training run: atomic checkpoints with optimizer, RNG and step state,
// exact resume, run folders (settings, metrics log), and the loop with its progress lines. The
// trainers (@skysense/skysense's Pretrainer and Finetuner) sit on top of it.
import { progressBar } from './progress';
import { defaultRng, Generator, type GeneratorState } from '../rng';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../safetensors';
import { SkySenseError } from '../errors';
import { assertInt } from '../validate';
import { ensureDir, fsError, pidAlive, removeStaleTemps, writeFileAtomic } from '../atomic-file';
import { readJsonFile, summarizeList } from '../limits';
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
 * `steps` replaces the run's total (extending a finished run; schedules that depend on the total,
 * such as poly decay, are re-planned over the new one from the current step on).
 * @throws SkySenseError `E_STATE_DICT` for a file of another format, missing parts or metadata.
 */
export function resumeTrainer<O, T extends CheckpointableTrainer<O>>(
  file: string,
  format: string,
  what: string,
  build: (options: O & { steps: number }) => T,
  steps?: number,
): T {
  const ckpt = openTrainingCheckpoint(file, format, what);
  try {
    const saved = ckpt.json<O & { steps: number }>('options');
    if (steps !== undefined) {
      const at = ckpt.json<number>('step');
      assertInt('steps', steps, 1);
      if (steps < at)
        throw new SkySenseError(
          'E_ARG',
          `steps: the run is already at step ${at} of ${saved.steps}, got ${steps} (give more to extend it)`,
        );
    }
    const t = build(steps === undefined ? saved : { ...saved, steps });
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

/** The lock file of a run folder: `{ pid, host, started }` of the process that owns it. */
export const RUN_LOCK = '.skysense-run.lock';

/** What a run writes into its folder; `--overwrite` removes these (and nothing else). */
export const RUN_ARTEFACTS = [
  'run.json',
  'checkpoint.safetensors',
  'metrics.jsonl',
  'model.safetensors',
  'teacher.safetensors',
  'eval.json',
  'predictions',
];

/** How a run folder is opened: a fresh run (into an empty or new folder, or with `overwrite`), or `resume`. */
export interface RunFolderOptions {
  resume: boolean;
  /** Replace the run already in the folder (its {@link RUN_ARTEFACTS}). Default false. */
  overwrite?: boolean;
}

function runEntries(out: string): string[] {
  if (!existsSync(out)) return [];
  if (!statSync(out).isDirectory()) throw new SkySenseError('E_IO', `--out ${out}: is a file, expected a folder (ENOTDIR)`);
  return readdirSync(out).filter((n) => n !== RUN_LOCK && !n.startsWith(`.${RUN_LOCK}.`) && !/^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(n));
}

/**
 * Checks, without writing anything, that a run may start in `out`: `resume` needs its checkpoint; a
 * fresh run needs an empty or new folder, or `overwrite` on a folder that holds a run (a folder of
 * other files is never a run folder, so `overwrite` cannot empty it).
 * @throws SkySenseError `E_IO` (no checkpoint, a file), `E_EXISTS` (a run is there).
 */
export function checkRunFolder(out: string, o: RunFolderOptions): void {
  const entries = runEntries(out);
  if (o.resume) {
    if (o.overwrite) throw new SkySenseError('E_ARG', '--resume and --overwrite: give one of them (continue the run, or replace it)');
    if (!entries.includes('checkpoint.safetensors'))
      throw new SkySenseError('E_IO', `--resume: no checkpoint at ${join(out, 'checkpoint.safetensors')}`);
    return;
  }
  if (entries.length === 0) return;
  const isRun = entries.some((n) => RUN_ARTEFACTS.includes(n));
  if (!o.overwrite || !isRun)
    throw new SkySenseError(
      'E_EXISTS',
      isRun
        ? `--out ${out}: holds a run (${entries.filter((n) => RUN_ARTEFACTS.includes(n)).join(', ')}); pass --resume to continue it or --overwrite to replace it`
        : `--out ${out}: is not empty and holds no run (${summarizeList(entries, 3, 'and others')}); choose a new or empty folder`,
    );
}

/** A run folder held by this process; {@link RunLock.release} (or the process's exit) frees it. */
export interface RunLock {
  readonly file: string;
  release(): void;
}

/** Lock files this process holds (absolute paths): a second open of one of them from this process is refused, not taken over. */
const heldLocks = new Set<string>();

interface LockOwner {
  pid?: number;
  host?: string;
  boot?: string;
  started?: string;
}

/** This boot's id (Linux), so that a lock from before a reboot or a container restart is known stale even if its pid is reused. */
function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** Whether a lock's owner is gone: same host and another boot, or a pid that no longer runs (or is this process, which does not hold it). */
function isStale(owner: LockOwner, file: string): boolean {
  if (owner.host !== hostname()) return false;
  if (owner.boot && bootId() && owner.boot !== bootId()) return true;
  if (owner.pid === process.pid) return !heldLocks.has(file);
  return !pidAlive(owner.pid ?? -1);
}

/** Creates the lock with its content in one step (a hard link of a complete file); false when one exists. */
function createLock(file: string, content: string, attempt: number): boolean {
  const tmp = `${file}.${process.pid}-${attempt}`;
  try {
    writeFileSync(tmp, content);
    linkSync(tmp, file);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw fsError(e, `cannot lock ${dirname(file)}`);
    // no hard links on this file system (FAT, some network shares): exclusive create
    try {
      writeFileSync(file, content, { flag: 'wx' });
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw fsError(e2, `cannot lock ${dirname(file)}`);
    }
  } finally {
    rmSync(tmp, { force: true });
  }
}

const readOrNull = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
};

/**
 * Takes `out`'s lock file ({@link RUN_LOCK}, created exclusively and whole), so that two runs can
 * never share a folder. A lock whose process is gone (same host and a pid that no longer runs, or a
 * lock from before a reboot or container restart: a crash or SIGKILL) is stale and taken over, with
 * a line saying so; the takeover moves the file aside atomically, so two processes cannot both take
 * it. A live lock, or one of another host, is refused. Creates `out` if needed, and removes the
 * temporary files crashed writes left there.
 * @throws SkySenseError `E_LOCKED` naming the owner.
 */
export function acquireRunLock(out: string, log: (line: string) => void = () => {}): RunLock {
  ensureDir(out, '--out');
  const file = resolve(out, RUN_LOCK);
  const refuse = (owner: LockOwner): never => {
    throw new SkySenseError(
      'E_LOCKED',
      `--out ${out}: another run holds it (pid ${owner.pid ?? '?'} on ${owner.host ?? '?'}, since ${owner.started ?? '?'}; ${file}); wait for it to end${owner.host !== hostname() ? ', or delete the lock file if that run is gone' : ''}`,
    );
  };
  if (heldLocks.has(file))
    throw new SkySenseError('E_LOCKED', `--out ${out}: a run of this process (pid ${process.pid}) holds it (${file})`);
  const me = JSON.stringify({ pid: process.pid, host: hostname(), boot: bootId(), started: new Date().toISOString() });
  for (let attempt = 0; ; attempt++) {
    if (createLock(file, me, attempt)) break;
    const text = readOrNull(file);
    if (text === null) continue; // released meanwhile
    let owner: LockOwner = {};
    try {
      owner = JSON.parse(text) as LockOwner;
    } catch {
      // not ours to judge: treated as held
    }
    if (attempt >= 3 || !isStale(owner, file)) refuse(owner);
    const aside = `${file}.stale-${process.pid}-${attempt}`;
    try {
      renameSync(file, aside);
    } catch {
      continue; // another process moved it first
    }
    const moved = readOrNull(aside);
    if (moved === text) {
      rmSync(aside, { force: true });
      log(`${file}: stale lock of pid ${owner.pid} (no longer running), taken over`);
      continue;
    }
    // the lock changed between reading and moving it: another process took it over; put it back
    try {
      linkSync(aside, file);
    } finally {
      rmSync(aside, { force: true });
    }
    refuse(JSON.parse(moved ?? '{}') as LockOwner);
  }
  heldLocks.add(file);
  const removed = removeStaleTemps(out);
  if (removed.length) log(`${out}: removed ${removed.length} temporary file(s) left by a crashed write`);
  const release = () => {
    if (!heldLocks.delete(file)) return;
    process.off('exit', release);
    if (readOrNull(file) === me) rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { file, release };
}

/**
 * The settings of a run that decide its data (task, data folder, batch size, crop, seed, …). A fresh
 * run returns `given` (written by {@link openRun}); a resumed run reads `out/run.json` back, so
 * `--resume` needs only the folder and continues with exactly the batches the interrupted run would
 * have drawn. Nothing is written here.
 * @throws SkySenseError `E_ARG` when a setting given again differs from the run's (a resumed run
 * cannot change its data), `E_IO` when `run.json` is unreadable.
 */
export function runSettings<S extends object>(out: string, resume: boolean, given: S, log: (line: string) => void): S {
  const file = join(out, 'run.json');
  if (!resume) return given;
  if (!existsSync(file)) {
    log(`${file} is missing (a run from an older version): resuming with the options given now`);
    return given;
  }
  const saved = readJsonFile<S>(file, "the run's settings");
  refuseChanges(given as Record<string, unknown>, saved as Record<string, unknown>, file);
  return saved;
}

/** Options that may change when a run is resumed; every other one is the run's own. */
export const RESUMABLE_OPTIONS = ['steps', 'checkpointEvery', 'stride', 'log', 'resume', 'out'];

/**
 * Refuses options given with `--resume` that differ from the run's (the run would silently go on
 * with other settings otherwise); {@link RESUMABLE_OPTIONS} may change.
 * @throws SkySenseError `E_ARG` listing each option, the value given and the run's.
 */
export function refuseChanges(given: Record<string, unknown>, saved: Record<string, unknown>, source: string): void {
  const differ = Object.entries(given).filter(
    ([k, v]) => v !== undefined && !RESUMABLE_OPTIONS.includes(k) && JSON.stringify(v) !== JSON.stringify(saved[k]),
  );
  if (differ.length)
    throw new SkySenseError(
      'E_ARG',
      `--resume: ${differ.map(([k, v]) => `${k} ${JSON.stringify(v)} (the run's: ${JSON.stringify(saved[k]) ?? 'default'})`).join(', ')} — a resumed run keeps its settings (${source}); what may change: steps (to extend or shorten it), checkpointEvery, stride`,
    );
}

/** Options of {@link openRun}. */
export interface OpenRunOptions<S> extends RunFolderOptions {
  /** The run's settings, written to `run.json` by a fresh run. */
  settings: S;
  /** The trainer options given now: on resume, any that differs from the checkpoint's is refused ({@link refuseChanges}), except `steps`. */
  given?: Record<string, unknown>;
  log: (line: string) => void;
}

/**
 * Starts a run in `out`, owning the folder ({@link acquireRunLock}) until `release()`: a fresh
 * trainer (`build.fresh`; then `run.json` and an empty `metrics.jsonl` are written, after removing
 * the previous run's files with `overwrite`), or with `resume` the one of `out/checkpoint.safetensors`
 * (`build.resume` gets `given.steps`, so a run can be extended; its metrics log is cut back to the
 * checkpoint's step). Nothing but the lock is written before the trainer is built, so a refused
 * option or a failing build leaves the folder as it was.
 * @throws SkySenseError from {@link checkRunFolder} and {@link acquireRunLock}, or the build's.
 */
export function openRun<T extends LoopTrainer, S>(
  out: string,
  o: OpenRunOptions<S>,
  build: { fresh: () => T; resume: (file: string, steps?: number) => T },
): { trainer: T; release: () => void } {
  checkRunFolder(out, o);
  const created = !existsSync(out);
  const lock = acquireRunLock(out, o.log);
  const release = () => {
    lock.release();
    if (created && readdirSync(out).length === 0) rmSync(out, { recursive: true, force: true });
  };
  const file = join(out, 'checkpoint.safetensors');
  const metrics = join(out, 'metrics.jsonl');
  try {
    checkRunFolder(out, o);
    const given = (o.given ?? {}) as { steps?: number };
    const t = o.resume ? build.resume(file, given.steps) : build.fresh();
    try {
      if (!o.resume) {
        if (o.overwrite) for (const a of RUN_ARTEFACTS) rmSync(join(out, a), { recursive: true, force: true });
        writeFileAtomic(join(out, 'run.json'), `${JSON.stringify(o.settings, null, 2)}\n`);
        writeFileAtomic(metrics, '');
        return { trainer: t, release };
      }
      refuseChanges(given, t.options as unknown as Record<string, unknown>, file);
      truncateMetricsLog(metrics, t.step);
    } catch (e) {
      (t as unknown as { dispose?: () => void }).dispose?.();
      throw e;
    }
    o.log(`resumed ${file} at step ${t.step} of ${t.options.steps}`);
    return { trainer: t, release };
  } catch (e) {
    release();
    throw e;
  }
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

/** The generator of a run's step `k`: `Generator(seed · 1000003 + k)` (what {@link trainingLoop} hands each step; a prefetcher draws a future step's picks from it). */
export function stepGenerator(seed: number, step: number): Generator {
  return new Generator(seed * 1_000_003 + step);
}

/** The bookkeeping after one step: metrics line, progress, checkpoint. */
function stepDone<M extends object>(
  o: Omit<TrainingLoopOptions<M>, 'step'>,
  m: M,
  first: number,
  t0: number,
  bar: NodeJS.WriteStream | null,
): void {
  appendFileSync(join(o.out, 'metrics.jsonl'), `${JSON.stringify({ ...m, time: new Date().toISOString() })}\n`);
  const step = o.trainer.step;
  const done = step - first;
  const secs = (performance.now() - t0) / 1000;
  const line = `step ${step}/${o.total} ${o.describe(m)} · ${((done * o.samplesPerStep) / secs).toFixed(2)} samples/s · ETA ${((secs / done) * (o.total - step)).toFixed(0)} s`;
  bar?.write('\r\x1b[K');
  if (done === 1 || step % Math.max(1, Math.round(o.total / 20)) === 0 || step === o.total) o.log(line);
  if (step % o.checkpointEvery === 0 || step === o.total) o.trainer.save(join(o.out, 'checkpoint.safetensors'));
  if (step < o.total) bar?.write(`${progressBar(step / o.total)} ${line}`.slice(0, Math.max(20, (bar.columns ?? 120) - 1)));
}

function loopStart<M>(o: Omit<TrainingLoopOptions<M>, 'step'>): { first: number; t0: number; bar: NodeJS.WriteStream | null } {
  assertInt('checkpointEvery', o.checkpointEvery, 1);
  assertInt('samples per step', o.samplesPerStep, 1);
  return {
    first: o.trainer.step,
    t0: performance.now(),
    bar: o.bar === undefined ? (process.stderr.isTTY ? process.stderr : null) : o.bar,
  };
}

/**
 * Runs the remaining steps of a training run: one JSON line per step in `metrics.jsonl`, a progress
 * line (metrics, samples/s, ETA) at the first step and every 5 % (on a terminal also an in-place bar
 * redrawn every step), an atomic checkpoint every `checkpointEvery` steps and at the end.
 * @returns the metrics of the steps run in this call.
 */
export function trainingLoop<M extends object>(o: TrainingLoopOptions<M>): M[] {
  const { first, t0, bar } = loopStart(o);
  const metrics: M[] = [];
  while (o.trainer.step < o.total) {
    const m = o.step(stepGenerator(o.seed, o.trainer.step));
    metrics.push(m);
    stepDone(o, m, first, t0, bar);
  }
  return metrics;
}

/**
 * {@link trainingLoop} for steps that wait for their data (a streaming loader decoding in worker
 * threads): the same generators, log, progress and checkpoints.
 */
export async function trainingLoopAsync<M extends object>(
  o: Omit<TrainingLoopOptions<M>, 'step'> & { step: (g: Generator) => Promise<M> },
): Promise<M[]> {
  const { first, t0, bar } = loopStart(o);
  const metrics: M[] = [];
  while (o.trainer.step < o.total) {
    const m = await o.step(stepGenerator(o.seed, o.trainer.step));
    metrics.push(m);
    stepDone(o, m, first, t0, bar);
  }
  return metrics;
}
