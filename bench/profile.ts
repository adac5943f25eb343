/**
 * `npm run bench:profile`: where the time of one Swin-V2-H stage-0 block forward + backward goes on
 * the cpu backend (native kernels when built): wall time, the sum of kernel times, and the kernels
 * ranked by total time (tfjs's profiler; the gap between wall and kernel time is the engine's own
 * work: tape, gradient bookkeeping, allocation).
 */
import { disposeGradients, initBackend, tf, valueAndGrads } from '@skysense/core-tensor';
import { SwinBlockV2 } from '@skysense/swin';
async function main(): Promise<void> {
  await initBackend({ force: 'cpu' });
  const block = new SwinBlockV2(352, 8, { windowSize: 8, shift: true, extraNorm: false, dropPath: 0, padSmallMap: false, pretrainedWindowSize: 0 });
  const x = tf.randomNormal([1, 64, 64, 352]);
  block.train();
  const step = () => {
    const { value, grads } = valueAndGrads(block, () => tf.mean(tf.square(block.forward(x))) as tf.Scalar);
    value.dataSync();
    value.dispose();
    disposeGradients(grads);
  };
  step();
  const t = performance.now();
  step();
  console.log('fwd+bwd ms', (performance.now() - t).toFixed(0));
  const prof = await tf.profile(step);
  const by = new Map<string, { ms: number; n: number; shapes: string }>();
  for (const k of prof.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const key = k.name;
    const e = by.get(key) ?? { ms: 0, n: 0, shapes: '' };
    e.ms += ms; e.n += 1; if (!e.shapes) e.shapes = JSON.stringify(k.inputShapes).slice(0, 80);
    by.set(key, e);
  }
  const total = [...by.values()].reduce((a, e) => a + e.ms, 0);
  console.log('kernel total ms', total.toFixed(0));
  console.log(`${'kernel'.padEnd(28)} ${'ms'.padStart(8)} ${'calls'.padStart(5)} first input shapes`);
  for (const [k, e] of [...by].sort((a, b) => b[1].ms - a[1].ms).slice(0, 25)) console.log(k.padEnd(28), e.ms.toFixed(1).padStart(8), String(e.n).padStart(5), e.shapes);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
