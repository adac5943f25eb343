/**
 * `npm start` until the umbrella package exists: picks a backend, trains a tiny model for a few
 * steps, round-trips its weights through safetensors and reports matmul throughput.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW,
  GELU,
  LayerNorm,
  Linear,
  SafetensorsFile,
  Sequential,
  disposeGradients,
  formatBackendReport,
  initBackend,
  manualSeed,
  matMul,
  saveSafetensors,
  tf,
  valueAndGrads,
} from './index';

function trainTinyModel(): { first: number; last: number; model: Sequential } {
  manualSeed(0);
  const model = new Sequential(new Linear(8, 32), new GELU(), new LayerNorm(32), new Linear(32, 1));
  const opt = new AdamW(model, { lr: 1e-2, weightDecay: 0 });
  const x = tf.randomNormal([64, 8], 0, 1, 'float32', 1);
  const y = tf.sum(x, 1, true);
  let first = NaN;
  let last = NaN;
  for (let step = 0; step < 60; step++) {
    const { value, grads } = valueAndGrads(model, () => tf.mean(tf.square(tf.sub(model.forward(x), y))));
    opt.step(grads);
    last = value.dataSync()[0]!;
    if (step === 0) first = last;
    value.dispose();
    disposeGradients(grads);
  }
  tf.dispose([x, y]);
  opt.dispose();
  return { first, last, model };
}

function matmulGflops(n: number): number {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const run = () => {
    const t0 = performance.now();
    const c = matMul(a, b);
    c.dataSync();
    c.dispose();
    return performance.now() - t0;
  };
  run();
  const ms = Math.min(run(), run(), run());
  tf.dispose([a, b]);
  return (2 * n ** 3) / (ms * 1e6);
}

async function main(): Promise<void> {
  const report = await initBackend();
  console.log(formatBackendReport(report));
  const before = tf.memory().numTensors;
  const { first, last, model } = trainTinyModel();
  console.log(`train: 60 AdamW steps on a 8→32→1 MLP, loss ${first.toFixed(4)} → ${last.toFixed(4)}`);
  if (!(last < first / 4)) throw new Error('self-check: the tiny model did not learn');
  const dir = mkdtempSync(join(tmpdir(), 'skysense-'));
  try {
    const file = join(dir, 'tiny.safetensors');
    saveSafetensors(file, model);
    const st = SafetensorsFile.open(file);
    const reloaded = new Sequential(new Linear(8, 32), new GELU(), new LayerNorm(32), new Linear(32, 1));
    reloaded.loadStateDict(st);
    st.close();
    const same = tf.tidy(() => {
      const x = tf.ones([2, 8]);
      return tf.max(tf.abs(tf.sub(model.forward(x), reloaded.forward(x)))).dataSync()[0]!;
    });
    console.log(`safetensors: ${st.keys().length} tensors written and reloaded, max difference ${same}`);
    if (same !== 0) throw new Error('self-check: safetensors round trip changed the weights');
    reloaded.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  model.dispose();
  console.log(`matmul 512³: ${matmulGflops(512).toFixed(1)} GFLOP/s on ${report.kind}`);
  const leaked = tf.memory().numTensors - before;
  console.log(`tensors leaked: ${leaked}`);
  if (leaked !== 0) throw new Error('self-check: tensors leaked');
  console.log('self-check passed');
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
