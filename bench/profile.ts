/**
 * `npm run bench:profile`: where the time of one block goes on
 * the cpu backend (native kernels when built): the wall time (min and median of BENCH_REPS steps),
 * the time inside each native addon function (fused kernels included, forward and backward), and
 * tfjs's kernel profile (what runs outside the addon shows there; a custom-gradient op appears as
 * "unnamed scope" with the time of its forward pass). Wall time minus native time is the engine's
 * own work: tape, gradient bookkeeping, allocation, JavaScript kernels, garbage collection.
 *
 * `BENCH_BLOCK`: `swin` (default: a Swin-V2-H stage-0 block on a 256 px tile), `vit` (a ViT-L block,
 * 257 tokens) or `swin-h` (the whole Swin-V2-H encoder on a 256 px tile). `BENCH_MODE`: `fwd+bwd` (default: a training step) or `fwd` (an eval-mode forward).
 */
import { disposeGradients, initBackend, type Module, tf, TransformerEncoderLayer, valueAndGrads } from '@skysense/core-tensor';
import { SwinTransformerV2 } from '@skysense/swin';
// The raw addon is internal to core-tensor; the bench reaches it from the source (Node shares the loaded binary).
import { nativeAddon } from '../packages/core-tensor/src/native';
import { hrStage0Block } from './workloads';

const reps = Number(process.env.BENCH_REPS ?? 6);
const mode = process.env.BENCH_MODE ?? 'fwd+bwd';
const which = process.env.BENCH_BLOCK ?? 'swin';
const native = new Map<string, { ms: number; calls: number }>();

/** Wraps every function of the addon with a timer. */
function timeNativeCalls(): void {
  const addon = nativeAddon() as unknown as Record<string, unknown> | null;
  if (!addon) return;
  for (const [name, f] of Object.entries(addon)) {
    if (typeof f !== 'function') continue;
    addon[name] = (...args: unknown[]) => {
      const t = performance.now();
      const out = (f as (...a: unknown[]) => unknown)(...args);
      const e = native.get(name) ?? { ms: 0, calls: 0 };
      e.ms += performance.now() - t;
      e.calls += 1;
      native.set(name, e);
      return out;
    };
  }
}

/** The model `BENCH_BLOCK` names and its input. */
function workload(): { block: Module & { forward(x: tf.Tensor): tf.Tensor | tf.Tensor[] }; x: tf.Tensor } {
  switch (which) {
    case 'swin':
      return { block: hrStage0Block(), x: tf.randomNormal([1, 64, 64, 352]) };
    case 'vit':
      return {
        block: new TransformerEncoderLayer({ embedDims: 1024, numHeads: 16, feedforwardChannels: 4096 }),
        x: tf.randomNormal([1, 257, 1024]),
      };
    case 'swin-h':
      return { block: SwinTransformerV2.fromPreset('huge'), x: tf.randomNormal([1, 3, 256, 256]) };
    default:
      throw new Error(`BENCH_BLOCK must be 'swin', 'vit' or 'swin-h', got '${which}'`);
  }
}

async function main(): Promise<void> {
  await initBackend({ force: 'cpu' });
  timeNativeCalls();
  if (mode !== 'fwd' && mode !== 'fwd+bwd') throw new Error(`BENCH_MODE must be 'fwd' or 'fwd+bwd', got '${mode}'`);
  const { block, x } = workload();
  const run = (): tf.Tensor => [block.forward(x)].flat().at(-1)!;
  if (mode === 'fwd') block.eval();
  else block.train();
  const step = () => {
    if (mode === 'fwd') {
      const y = run();
      y.dataSync();
      y.dispose();
      return;
    }
    const { value, grads } = valueAndGrads(block, () => tf.mean(tf.square(run())) as tf.Scalar);
    value.dataSync();
    value.dispose();
    disposeGradients(grads);
  };
  step();
  native.clear();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    step();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  console.log(`${which} ${mode} ms: min ${times[0]!.toFixed(0)}, median ${times[times.length >> 1]!.toFixed(0)} (${reps} steps)`);
  if (native.size) {
    const total = [...native.values()].reduce((a, e) => a + e.ms, 0) / reps;
    console.log(`\nnative addon, ms per step (${total.toFixed(0)} in all):`);
    for (const [name, e] of [...native].sort((a, b) => b[1].ms - a[1].ms))
      console.log(`  ${name.padEnd(26)} ${(e.ms / reps).toFixed(1).padStart(7)} ${String(e.calls / reps).padStart(4)} calls`);
  }
  const prof = await tf.profile(step);
  const by = new Map<string, { ms: number; n: number; shapes: string }>();
  for (const k of prof.kernels) {
    const e = by.get(k.name) ?? { ms: 0, n: 0, shapes: JSON.stringify(k.inputShapes).slice(0, 80) };
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    e.n += 1;
    by.set(k.name, e);
  }
  console.log(`\ntfjs kernels of one step (profiler):\n  ${'kernel'.padEnd(26)} ${'ms'.padStart(7)} calls first input shapes`);
  for (const [k, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 20))
    console.log(`  ${k.padEnd(26)} ${e.ms.toFixed(1).padStart(7)} ${String(e.n).padStart(5)} ${e.shapes}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
