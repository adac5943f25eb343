/**
 * `npm run bench`: per available backend, 1024³ matmul throughput and the time of a ViT-L-sized
 * pre-norm transformer block (1024 wide, 16 heads, 257 tokens, FFN 4096, exact GELU) forward and
 * forward + backward, median of several runs. Results go to stdout and `bench/results/*.json`.
 *
 * Options (environment): BENCH_BACKENDS=wasm,cpu (default: every backend that loads),
 * BENCH_REPS=5 (runs per measurement; the pure-JS cpu backend uses at most 3).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BACKEND_ORDER, FFN, LayerNorm, Module, MultiheadAttention, type BackendKind, disposeGradients, initBackend, matMul, tf, valueAndGrads,
  writeFileAtomic, type Tensor,
} from '../src/index';

class Block extends Module {
  readonly ln1 = this.registerModule('ln1', new LayerNorm(1024));
  readonly attn = this.registerModule('attn', new MultiheadAttention(1024, 16, { batchFirst: true }));
  readonly ln2 = this.registerModule('ln2', new LayerNorm(1024));
  readonly ffn = this.registerModule('ffn', new FFN({ embedDims: 1024, feedforwardChannels: 4096, act: 'gelu' }));
  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.ln1.forward(x)).output);
      return this.ffn.forward(this.ln2.forward(h), h);
    });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeIt(label: string, reps: number, f: () => void): number {
  f();
  const times: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    times.push(performance.now() - t);
    const elapsed = (performance.now() - t0) / 1000;
    const eta = (elapsed / (i + 1)) * (reps - i - 1);
    process.stdout.write(`\r  ${label}: run ${i + 1}/${reps}, last ${times[i]!.toFixed(0)} ms, ETA ${eta.toFixed(0)} s   `);
  }
  process.stdout.write('\n');
  return median(times);
}

interface Result {
  backend: BackendKind;
  matmulGflops: number;
  blockForwardMs: number;
  blockForwardBackwardMs: number;
}

function benchBackend(kind: BackendKind, reps: number): Result {
  const n = 1024;
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const mm = timeIt('matmul 1024³', reps, () => {
    const c = matMul(a, b);
    c.dataSync();
    c.dispose();
  });
  tf.dispose([a, b]);
  const block = new Block().eval();
  const x = tf.randomNormal([1, 257, 1024]);
  const fwd = timeIt('ViT-L block forward', reps, () => {
    const y = block.forward(x);
    y.dataSync();
    y.dispose();
  });
  block.train();
  const bwd = timeIt('ViT-L block forward+backward', reps, () => {
    const { value, grads } = valueAndGrads(block, () => tf.mean(tf.square(block.forward(x))) as tf.Scalar);
    value.dataSync();
    value.dispose();
    disposeGradients(grads);
  });
  x.dispose();
  block.dispose();
  return { backend: kind, matmulGflops: (2 * n ** 3) / (mm * 1e6), blockForwardMs: fwd, blockForwardBackwardMs: bwd };
}

async function main(): Promise<void> {
  const wanted = (process.env.BENCH_BACKENDS?.split(',').map((s) => s.trim()) ?? [...BACKEND_ORDER]) as BackendKind[];
  const reps = Number(process.env.BENCH_REPS ?? 5);
  const results: Result[] = [];
  for (const kind of wanted) {
    try {
      await initBackend({ force: kind });
    } catch (e) {
      console.log(`${kind}: not available (${(e as Error).message.split('(')[1]?.replace(/\)$/, '') ?? (e as Error).message})`);
      continue;
    }
    console.log(`${kind}:`);
    results.push(benchBackend(kind, kind === 'cpu' ? Math.min(reps, 3) : reps));
  }
  console.log('\nbackend  matmul 1024³ GFLOP/s  ViT-L block fwd ms  fwd+bwd ms');
  for (const r of results) {
    console.log(`${r.backend.padEnd(8)} ${r.matmulGflops.toFixed(1).padStart(20)} ${r.blockForwardMs.toFixed(0).padStart(19)} ${r.blockForwardBackwardMs.toFixed(0).padStart(11)}`);
  }
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `core-tensor-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileAtomic(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, results }, null, 2));
  console.log(`\nsaved ${file}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
