/**
 * Streaming vs in-memory loading at two dataset sizes: the BigEarthNet-MM sample pairs as they are
 * (×1) and replicated ×100 on disk (symlinked rasters, rewritten metadata), each fine-tuned with
 * `skysense finetune --task mm-cls` for `--steps` steps with `--loader stream` and `--loader memory`.
 * The child's resident memory (VmRSS, worker threads included) is sampled every 100 ms; the table
 * gives its peak and the training rate the run reports.
 *
 *   npm run bench:loader -- [--steps 200] [--copies 100]
 *
 * Needs SKYSENSE_SAMPLES (the sample folder) and a build.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const steps = arg('steps', 200);
const copies = arg('copies', 100);
const samples = process.env.SKYSENSE_SAMPLES;
if (!samples) throw new Error('set SKYSENSE_SAMPLES to the sample folder');
const root = join(samples, 'bigearthnet', 'v1-s1s2-example');
const bin = resolve('packages/skysense/dist/bin.js');
const work = mkdtempSync(join(tmpdir(), 'skysense-loader-scale-'));

/** The sample pairs replicated `k` times: per copy new patch folders of symlinked rasters, S1 metadata pointing at the copy's S2 patch. */
function replicate(k: number): string {
  const out = join(work, `x${k}`);
  for (let r = 0; r < k; r++) {
    for (const s1 of readdirSync(join(root, 'BigEarthNet-S1'))) {
      const src = join(root, 'BigEarthNet-S1', s1);
      const metaName = readdirSync(src).find((f) => f.endsWith('_labels_metadata.json'))!;
      const meta = JSON.parse(readFileSync(join(src, metaName), 'utf8')) as { corresponding_s2_patch: string };
      const s2 = meta.corresponding_s2_patch;
      const [d1, d2] = [join(out, 'BigEarthNet-S1', `${s1}_r${r}`), join(out, 'BigEarthNet-S2', `${s2}_r${r}`)];
      mkdirSync(d1, { recursive: true });
      mkdirSync(d2, { recursive: true });
      for (const f of readdirSync(src)) if (f !== metaName) symlinkSync(join(src, f), join(d1, f));
      writeFileSync(join(d1, metaName), JSON.stringify({ ...meta, corresponding_s2_patch: `${s2}_r${r}` }));
      for (const f of readdirSync(join(root, 'BigEarthNet-S2', s2))) symlinkSync(join(root, 'BigEarthNet-S2', s2, f), join(d2, f));
    }
  }
  return out;
}

/** Runs one fine-tuning in a child process; peak VmRSS (MiB), the last reported samples/s, and seconds to the first step. */
function run(data: string, loader: string): Promise<{ peakMiB: number; rate: number; firstStep: number; wall: number }> {
  return new Promise((done, fail) => {
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [
        bin,
        'finetune',
        '--task',
        'mm-cls',
        '--data',
        data,
        '--steps',
        String(steps),
        '--batch-size',
        '4',
        '--hold-out',
        '2',
        '--loader',
        loader,
        '--out',
        join(work, `run-${loader}-${Date.now()}`),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let peak = 0;
    let rate = 0;
    let firstStep = 0;
    const timer = setInterval(() => {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
        peak = Math.max(peak, kb / 1024);
      } catch {
        /* the child has exited */
      }
    }, 100);
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n')) {
        const m = /· ([\d.]+) samples\/s/.exec(line);
        if (m) rate = Number(m[1]);
        if (!firstStep && line.startsWith('step 1/')) firstStep = (performance.now() - t0) / 1000;
      }
    });
    child.on('exit', (code) => {
      clearInterval(timer);
      if (code !== 0) fail(new Error(`finetune (${loader}) exited with ${code}`));
      else done({ peakMiB: peak, rate, firstStep, wall: (performance.now() - t0) / 1000 });
    });
  });
}

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const k of [1, copies]) {
    const data = replicate(k);
    const n = 6 * k;
    for (const loader of ['stream', 'memory']) {
      const r = await run(data, loader);
      rows.push(
        `| ×${k} (${n} pairs) | ${loader} | ${r.peakMiB.toFixed(0)} | ${r.rate.toFixed(2)} | ${r.firstStep.toFixed(1)} | ${r.wall.toFixed(0)} |`,
      );
      console.error(rows.at(-1));
    }
  }
  console.log(`\nmm-cls (linear-skysense-tiny-mm), ${steps} steps × 4 samples, node ${process.version}\n`);
  console.log('| dataset | loader | peak RSS (MiB) | samples/s | s to step 1 | wall s |');
  console.log('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
}

main().finally(() => rmSync(work, { recursive: true, force: true }));
