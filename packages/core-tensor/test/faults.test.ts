import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RUN_LOCK, SafetensorsFile, acquireRunLock, writeFileAtomic } from '../src/index';

// Fault injection against the built package (what users run): processes racing for a run folder,
// and SIGKILL in the middle of atomic writes.
const dist = join(__dirname, '..', 'dist', 'index.cjs');
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-faults-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function node(script: string, ...args: string[]) {
  return spawn(process.execPath, ['-e', script, dist, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

const done = (p: ReturnType<typeof spawn>) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) => {
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    p.on('close', (code, signal) => resolve({ code, signal, out }));
  });

/**
 * Two processes that load the package, then (on "go", so that loading time cannot order them)
 * both try to take `out`; the winner holds the folder until the parent has heard both results.
 */
async function race(out: string): Promise<string[]> {
  const racer = `
    const { acquireRunLock } = require(process.argv[1]);
    process.stdout.write('ready\\n');
    process.stdin.once('data', () => {
      try {
        const lock = acquireRunLock(process.argv[2]);
        process.stdout.write('won\\n');
        process.stdin.on('end', () => lock.release());
      } catch (e) {
        process.stdout.write(e.code + ' ' + e.message + '\\n');
        process.exit(0);
      }
    });`;
  const procs = [0, 1].map(() => spawn(process.execPath, ['-e', racer, dist, out], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const lines = procs.map((p) => {
    const queue: string[] = [];
    const waiters: ((l: string) => void)[] = [];
    let buf = '';
    p.stdout!.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = waiters.shift();
        if (w) w(line);
        else queue.push(line);
      }
    });
    // a child that ends without its line (a crash: its stderr is inherited) answers "exited …", so a
    // failure shows as a wrong result instead of a wait until the test's time-out
    p.on('close', (code, signal) => waiters.splice(0).forEach((w) => w(`exited ${code ?? signal} before answering`)));
    return () =>
      new Promise<string>((resolve) =>
        queue.length
          ? resolve(queue.shift()!)
          : p.exitCode !== null || p.signalCode
            ? resolve('exited before answering')
            : waiters.push(resolve),
      );
  });
  await Promise.all(lines.map((next) => next())); // both loaded
  procs.forEach((p) => p.stdin!.write('go\n'));
  const results = await Promise.all(lines.map((next) => next()));
  const closed = procs.map((p) => new Promise((resolve) => p.on('close', resolve)));
  procs.forEach((p) => p.stdin!.end());
  await Promise.all(closed);
  return results;
}

describe('run-folder races', () => {
  it('two processes starting on one folder at once: exactly one holds it, the other is refused naming the owner (10 rounds)', async () => {
    for (let round = 0; round < 10; round++) {
      const out = join(dir, `race-${round}`);
      const outs = await race(out);
      expect(
        outs.filter((o) => o === 'won'),
        outs.join(' | '),
      ).toHaveLength(1);
      expect(outs.find((o) => o !== 'won')).toMatch(/^E_LOCKED E_LOCKED: --out .*: another run holds it \(pid \d+ on /);
      expect(fs.existsSync(join(out, RUN_LOCK))).toBe(false); // released by its owner
    }
  });

  it('two processes taking over one stale lock at once: still exactly one holds the folder (10 rounds)', async () => {
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
    for (let round = 0; round < 10; round++) {
      const out = join(dir, `stale-race-${round}`);
      fs.mkdirSync(out);
      fs.writeFileSync(join(out, RUN_LOCK), JSON.stringify({ pid: dead, host: hostname(), started: 'then' }));
      const outs = (await race(out)).map((o) => o.split(' ')[0]);
      expect(outs.sort(), outs.join(' | ')).toEqual(['E_LOCKED', 'won']);
    }
  });

  it('a run killed with SIGKILL leaves a stale lock that the next run takes over', async () => {
    const out = join(dir, 'killed-run');
    const p = node(
      `const { acquireRunLock } = require(process.argv[1]); acquireRunLock(process.argv[2]); process.stdout.write('held'); setInterval(() => {}, 1000);`,
      out,
    );
    await new Promise<void>((resolve) => p.stdout!.once('data', () => resolve()));
    p.kill('SIGKILL');
    await done(p);
    expect(fs.existsSync(join(out, RUN_LOCK))).toBe(true);
    const lines: string[] = [];
    acquireRunLock(out, (l) => lines.push(l)).release();
    expect(lines[0]).toMatch(/stale lock of pid \d+ \(no longer running\), taken over/);
  });
});

describe('SIGKILL during atomic writes', () => {
  it('a writer killed at random points never leaves a torn file, and its temporary files are removed by the next write (12 kills)', async () => {
    const target = join(dir, 'model.safetensors');
    // each round writes 8 MB tensors whose every value is the round number, as fast as it can
    const writer = `
      const { initBackend, saveSafetensors, tf } = require(process.argv[1]);
      initBackend({ log: false }).then(() => {
        for (let k = 1; ; k++) { const t = tf.fill([2048, 1024], k); saveSafetensors(process.argv[2], new Map([['w', t]])); t.dispose(); process.stdout.write('.'); }
      });`;
    for (let kill = 0; kill < 12; kill++) {
      const p = node(writer, target);
      const started = await new Promise<boolean>((resolve) => {
        p.stdout!.once('data', () => resolve(true));
        p.once('close', () => resolve(false));
      });
      expect(started, 'the writer process started writing').toBe(true);
      await new Promise((r) => setTimeout(r, 5 + ((kill * 37) % 120)));
      p.kill('SIGKILL');
      const r = await done(p);
      expect(r.signal).toBe('SIGKILL');
      const f = SafetensorsFile.open(target);
      const values = new Float32Array(f.readRaw('w').data.slice().buffer);
      f.close();
      expect(values.length).toBe(2048 * 1024);
      expect(values.every((v) => v === values[0])).toBe(true);
      expect(values[0]).toBeGreaterThanOrEqual(1); // a whole earlier write, never a torn one
    }
    const temps = () => fs.readdirSync(dir).filter((n) => n.startsWith('.model.safetensors.tmp-'));
    writeFileAtomic(target, 'next write');
    expect(temps()).toEqual([]);
    expect(fs.readFileSync(target, 'utf8')).toBe('next write');
  }, 120_000);
});

it('the child processes use the built package', () => {
  expect(fs.existsSync(dist)).toBe(true);
  expect(spawnSync(process.execPath, ['-e', `require(${JSON.stringify(dist)})`]).status).toBe(0);
});
