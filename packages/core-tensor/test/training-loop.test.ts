import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  Generator,
  Linear,
  Sequential,
  disposeGradients,
  initBackend,
  manualSeed,
  openRun,
  resumeTrainer,
  runSettings,
  RUN_LOCK,
  acquireRunLock,
  checkRunFolder,
  refuseChanges,
  saveTrainer,
  tf,
  trainingLoop,
  valueAndGrads,
  type CheckpointableTrainer,
} from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'skysense-loop-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A trainer that counts steps and records where it saved. */
class FakeTrainer {
  step = 0;
  saves: number[] = [];
  constructor(readonly options: { steps: number }) {}
  save(file: string): void {
    writeFileSync(file, String(this.step));
    this.saves.push(this.step);
  }
}

describe('training loop', () => {
  it('one metrics line per step, progress lines at the first step and every 5 %, checkpoints, an in-place bar on a terminal', () => {
    const out = join(dir, 'run');
    const lines: string[] = [];
    const { trainer: t, release } = openRun(
      out,
      { resume: false, settings: { seed: 7 }, log: (l) => lines.push(l) },
      { fresh: () => new FakeTrainer({ steps: 40 }), resume: () => new FakeTrainer({ steps: 40 }) },
    );
    const writes: string[] = [];
    const bar = { write: (s: string) => writes.push(s), columns: 200 } as unknown as NodeJS.WriteStream;
    const seen: number[] = [];
    const metrics = trainingLoop({
      trainer: t,
      total: 40,
      seed: 7,
      out,
      checkpointEvery: 15,
      samplesPerStep: 2,
      log: (l) => lines.push(l),
      bar,
      step: (g) => {
        seen.push(g.random());
        t.step += 1;
        return { step: t.step, loss: 1 / t.step };
      },
      describe: (m) => `loss ${m.loss.toFixed(3)}`,
    });
    expect(metrics).toHaveLength(40);
    expect(
      readFileSync(join(out, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).step),
    ).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(lines.map((l) => Number(/^step (\d+)\/40 loss/.exec(l)?.[1]))).toEqual([
      1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40,
    ]);
    expect(lines[0]).toMatch(/^step 1\/40 loss 1\.000 · \d+(\.\d+)? samples\/s · ETA \d+ s$/);
    expect(t.saves).toEqual([15, 30, 40]);
    expect(writes.filter((w) => w === '\r\x1b[K')).toHaveLength(40);
    expect(writes.find((w) => w.startsWith('████████████'))).toMatch(/^█{12}·{12} step 20\/40 loss 0\.050/);
    release();
    expect(existsSync(join(out, RUN_LOCK))).toBe(false);
    // a resumed run draws the same data for the same step, and the log is cut back to the checkpoint
    const { trainer: again, release: release2 } = openRun(
      out,
      { resume: true, settings: {}, log: (l) => lines.push(l) },
      { fresh: () => new FakeTrainer({ steps: 40 }), resume: () => Object.assign(new FakeTrainer({ steps: 40 }), { step: 30 }) },
    );
    expect(lines.at(-1)).toMatch(/resumed .*checkpoint\.safetensors at step 30 of 40/);
    expect(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(30);
    const replay: number[] = [];
    trainingLoop({
      trainer: again,
      total: 40,
      seed: 7,
      out,
      checkpointEvery: 15,
      samplesPerStep: 2,
      log: () => undefined,
      bar: null,
      step: (g) => (replay.push(g.random()), (again.step += 1), { step: again.step }),
      describe: () => '',
    });
    expect(replay).toEqual(seen.slice(30));
    release2();
    expect(() =>
      openRun(join(dir, 'nothing'), { resume: true, settings: {}, log: () => undefined }, { fresh: () => t, resume: () => t }),
    ).toThrow(/--resume: no checkpoint at .*nothing\/checkpoint\.safetensors/);
    expect(existsSync(join(dir, 'nothing'))).toBe(false);
  });

  it('run settings: a resumed run uses the recorded ones and refuses given ones that differ (steps, checkpointEvery, stride may change)', () => {
    const out = join(dir, 'settings');
    const lines: string[] = [];
    const fake = () => new FakeTrainer({ steps: 4 });
    openRun(
      out,
      { resume: false, settings: { task: 'cls', batchSize: 8, crop: undefined }, log: () => undefined },
      { fresh: fake, resume: fake },
    ).release();
    writeFileSync(join(out, 'checkpoint.safetensors'), '');
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))).toEqual({ task: 'cls', batchSize: 8 });
    expect(runSettings(out, true, { task: undefined, batchSize: 8, crop: undefined }, (l) => lines.push(l))).toEqual({
      task: 'cls',
      batchSize: 8,
    });
    expect(lines).toEqual([]);
    expect(() => runSettings(out, true, { task: 'seg', batchSize: 2, stride: 5 }, (l) => lines.push(l))).toThrow(
      /E_ARG: --resume: task "seg" \(the run's: "cls"\), batchSize 2 \(the run's: 8\) — a resumed run keeps its settings .*run\.json.*what may change: steps/,
    );
    expect(() => refuseChanges({ lr: 0.5, steps: 80 }, { lr: 1e-4, steps: 60 }, 'ckpt')).toThrow(/lr 0\.5 \(the run's: 0\.0001\)/);
    expect(() => refuseChanges({ steps: 80, checkpointEvery: 3 }, { steps: 60 }, 'ckpt')).not.toThrow();
    rmSync(join(out, 'run.json'));
    expect(runSettings(out, true, { task: 'seg' }, (l) => lines.push(l))).toEqual({ task: 'seg' });
    expect(lines.at(-1)).toMatch(/run\.json is missing \(a run from an older version\): resuming with the options given now/);
  });

  it('run folders: a fresh run into a run folder is refused unless overwrite; a folder of other files never is a run folder; a failed build writes nothing', () => {
    const out = join(dir, 'owned');
    const fake = () => new FakeTrainer({ steps: 4 });
    const log = () => undefined;
    openRun(out, { resume: false, settings: { a: 1 }, log }, { fresh: fake, resume: fake }).release();
    writeFileSync(join(out, 'checkpoint.safetensors'), 'old');
    expect(() => openRun(out, { resume: false, settings: { a: 2 }, log }, { fresh: fake, resume: fake })).toThrow(
      /E_EXISTS: --out .*owned: holds a run \(.*checkpoint\.safetensors.*\); pass --resume to continue it or --overwrite to replace it/,
    );
    expect(readFileSync(join(out, 'checkpoint.safetensors'), 'utf8')).toBe('old');
    expect(() =>
      openRun(
        out,
        { resume: false, overwrite: true, settings: { a: 2 }, log },
        {
          fresh: () => {
            throw new Error('build failed');
          },
          resume: fake,
        },
      ),
    ).toThrow('build failed');
    expect(readFileSync(join(out, 'checkpoint.safetensors'), 'utf8')).toBe('old');
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))).toEqual({ a: 1 });
    expect(existsSync(join(out, RUN_LOCK))).toBe(false);
    openRun(out, { resume: false, overwrite: true, settings: { a: 2 }, log }, { fresh: fake, resume: fake }).release();
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(false);
    expect(JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'))).toEqual({ a: 2 });
    const other = join(dir, 'photos');
    mkdirSync(other);
    writeFileSync(join(other, 'holiday.jpg'), 'x');
    expect(() => openRun(other, { resume: false, overwrite: true, settings: {}, log }, { fresh: fake, resume: fake })).toThrow(
      /E_EXISTS: --out .*photos: is not empty and holds no run \(holiday\.jpg\); choose a new or empty folder/,
    );
    expect(() => checkRunFolder(out, { resume: true, overwrite: true })).toThrow(/--resume and --overwrite: give one of them/);
    writeFileSync(join(dir, 'a-file'), '');
    expect(() => checkRunFolder(join(dir, 'a-file'), { resume: false })).toThrow(
      /--out .*a-file: is a file, expected a folder \(ENOTDIR\)/,
    );
  });

  it('run lock: a second owner is refused naming the first; a lock of a dead process is taken over; crashed writes are cleaned up', () => {
    const out = join(dir, 'locked');
    const lines: string[] = [];
    const lock = acquireRunLock(out, (l) => lines.push(l));
    expect(() => acquireRunLock(out)).toThrow(
      new RegExp(`E_LOCKED: --out .*locked: a run of this process \\(pid ${process.pid}\\) holds it`),
    );
    lock.release();
    // a lock of this pid that this process does not hold is from an earlier life of the pid (a restarted container): stale
    writeFileSync(join(out, RUN_LOCK), JSON.stringify({ pid: process.pid, host: hostname(), started: 'before the restart' }));
    acquireRunLock(out).release();
    // a live process of this host holds it
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)']);
    writeFileSync(join(out, RUN_LOCK), JSON.stringify({ pid: sleeper.pid, host: hostname(), started: 'now' }));
    expect(() => acquireRunLock(out)).toThrow(
      new RegExp(
        `E_LOCKED: --out .*locked: another run holds it \\(pid ${sleeper.pid} on ${hostname()}, since now; .*\\); wait for it to end$`,
      ),
    );
    sleeper.kill('SIGKILL');
    rmSync(join(out, RUN_LOCK));
    // a lock left by a process that is gone (SIGKILL), and a temporary file of a crashed write
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(out, RUN_LOCK), JSON.stringify({ pid: Number(dead), host: hostname(), started: 'then' }));
    writeFileSync(join(out, `.checkpoint.safetensors.tmp-${dead}-0123abcd`), 'torn');
    writeFileSync(join(out, `.metrics.jsonl.tmp-${process.pid}-0123abcd`), 'mine, in progress');
    const again = acquireRunLock(out, (l) => lines.push(l));
    expect(lines).toEqual([
      `${join(out, RUN_LOCK)}: stale lock of pid ${dead} (no longer running), taken over`,
      `${out}: removed 1 temporary file(s) left by a crashed write`,
    ]);
    expect(existsSync(join(out, `.checkpoint.safetensors.tmp-${dead}-0123abcd`))).toBe(false);
    expect(existsSync(join(out, `.metrics.jsonl.tmp-${process.pid}-0123abcd`))).toBe(true);
    again.release();
    // another host's lock is never taken over
    writeFileSync(join(out, RUN_LOCK), JSON.stringify({ pid: 1, host: 'elsewhere', started: 'then' }));
    expect(() => acquireRunLock(out)).toThrow(/pid 1 on elsewhere.*or delete the lock file if that run is gone/);
  });
});

/** A trainer of a small MLP with its own generator (dropout-like noise), for saveTrainer / resumeTrainer. */
class MlpTrainer implements CheckpointableTrainer<{ steps: number; lr: number }> {
  step = 0;
  readonly model = new Sequential(new Linear(4, 8), new Linear(8, 1));
  readonly optimizer: AdamW;
  readonly rng = new Generator(5);
  constructor(readonly options: { steps: number; lr: number }) {
    this.optimizer = new AdamW(this.model, { lr: options.lr });
  }
  checkpointModules() {
    return { model: this.model };
  }
  checkpointGenerators() {
    return { rng: this.rng };
  }
  trainStep(): number {
    const noise = this.rng.normal();
    const x = tf.tensor2d([[1, 2, 3, 4 + noise]]);
    const { value, grads } = valueAndGrads(this.model, () => tf.mean(tf.square(tf.sub(this.model.forward(x), 1))) as tf.Scalar);
    this.optimizer.step(grads);
    disposeGradients(grads);
    x.dispose();
    this.step++;
    const loss = value.dataSync()[0]!;
    value.dispose();
    return loss;
  }
}

describe('saveTrainer / resumeTrainer', () => {
  beforeAll(() => initBackend());

  it('a run saved at step 3 and resumed gives the uninterrupted losses (weights, optimizer moments, generators, step restored)', () => {
    manualSeed(1);
    const whole = new MlpTrainer({ steps: 6, lr: 0.05 });
    const expected = Array.from({ length: 6 }, () => whole.trainStep());
    manualSeed(1);
    const first = new MlpTrainer({ steps: 6, lr: 0.05 });
    const losses = Array.from({ length: 3 }, () => first.trainStep());
    const file = join(dir, 'mlp.safetensors');
    saveTrainer(file, 'mlp-test-1', first);
    manualSeed(99); // the default generator is restored from the checkpoint too
    const resumed = resumeTrainer(file, 'mlp-test-1', 'MLP test', (o: { steps: number; lr: number }) => new MlpTrainer(o));
    expect(resumed.step).toBe(3);
    expect(resumed.options).toEqual({ steps: 6, lr: 0.05 });
    losses.push(...Array.from({ length: 3 }, () => resumed.trainStep()));
    expect(losses).toEqual(expected);
    expect(() => resumeTrainer(file, 'other-format', 'other', (o: { steps: number; lr: number }) => new MlpTrainer(o))).toThrow(
      /not a other checkpoint \(format 'mlp-test-1', expected 'other-format'\)/,
    );
    [whole, first, resumed].forEach((t) => {
      t.optimizer.dispose();
      t.model.dispose();
    });
  });
});
