/**
 * The timing harness every package's `bench/run.ts` uses: per backend, median of several runs
 * with a progress line (run i/n, last time, ETA), results saved atomically as JSON.
 *
 * Environment: BENCH_BACKENDS=wasm,cpu (default: every backend that loads), BENCH_REPS=5 (the
 * pure-JS cpu backend uses at most 3).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_ORDER, initBackend, setNativeGemm, writeFileAtomic, type BackendKind, type GemmChoice } from '@skysense/core-tensor';

/** Median of the runs of `f` (after one warm-up run), in milliseconds, with a progress line. */
export function timeIt(label: string, reps: number, f: () => void): number {
  f();
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
    const eta = ((performance.now() - t0) / 1000 / (i + 1)) * (reps - i - 1);
    process.stdout.write(`\r  ${label}: run ${i + 1}/${reps}, last ${times[i]!.toFixed(0)} ms, ETA ${eta.toFixed(0)} s   `);
  }
  process.stdout.write('\n');
  const sorted = [...times].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** One row of results: the backend and named measurements. */
export type BenchRow = { backend: BackendKind } & Record<string, number | string>;

/**
 * Runs `bench(kind, reps)` on every requested backend that loads, prints a table and saves
 * `results/<name>-<time>.json` beside the calling bench.
 */
export async function runBench(
  name: string,
  resultsDir: string,
  bench: (kind: BackendKind, reps: number) => Record<string, number>,
): Promise<void> {
  const wanted = (process.env.BENCH_BACKENDS?.split(',').map((s) => s.trim()) ?? [...BACKEND_ORDER]) as BackendKind[];
  const reps = Number(process.env.BENCH_REPS ?? 5);
  const rows: BenchRow[] = [];
  for (const kind of wanted) {
    try {
      await initBackend({ force: kind });
    } catch {
      console.log(`${kind}: not available here`);
      continue;
    }
    console.log(`${kind}:`);
    rows.push({ backend: kind, ...bench(kind, kind === 'cpu' ? Math.min(reps, 3) : reps) });
  }
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((c) => c !== 'backend');
  console.log(`\n${['backend', ...cols].join(' | ')}`);
  for (const r of rows)
    console.log([r.backend, ...cols.map((c) => (typeof r[c] === 'number' ? (r[c] as number).toFixed(1) : String(r[c] ?? '')))].join(' | '));
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileAtomic(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2));
  console.log(`\nsaved ${file}`);
}

/** The fastest built-in micro-kernel this CPU runs, selected; returns the GEMM's name. */
export function selectBuiltinGemm(): string {
  for (const g of ['avx512', 'avx2', 'baseline'] as GemmChoice[]) {
    try {
      return setNativeGemm(g);
    } catch {
      /* not on this CPU */
    }
  }
  throw new Error('no built-in GEMM');
}

/**
 * The Python with torch the benchmarks compare against: BENCH_PYTHON, else /usr/bin/python3, else
 * python3; null where none imports torch or BENCH_PYTHON=none.
 */
export function findPython(): string | null {
  if (process.env.BENCH_PYTHON === 'none') return null;
  for (const py of [process.env.BENCH_PYTHON, '/usr/bin/python3', 'python3'].filter(Boolean) as string[]) {
    if (py.startsWith('/') && !existsSync(py)) continue;
    try {
      execFileSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
      return py;
    } catch {
      /* no torch there */
    }
  }
  console.log('PyTorch: not found (install python3-torch to compare)');
  return null;
}
