/**
 * `npm run bench` (core-tensor): 1024³ matmul throughput and a ViT-L-sized pre-norm transformer
 * block (1024 wide, 16 heads, 257 tokens, FFN 4096, exact GELU) forward and forward + backward.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TransformerEncoderLayer, disposeGradients, matMul, tf, valueAndGrads } from '../src/index';
import { runBench, timeIt } from '../../../bench/harness';

function bench(_kind: string, reps: number): Record<string, number> {
  const n = 1024;
  const [a, b] = [tf.randomNormal([n, n]), tf.randomNormal([n, n])];
  const mm = timeIt('matmul 1024³', reps, () => {
    const c = matMul(a, b);
    c.dataSync();
    c.dispose();
  });
  tf.dispose([a, b]);
  const block = new TransformerEncoderLayer({ embedDims: 1024, numHeads: 16, feedforwardChannels: 4096 }).eval();
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
  return { 'matmul GFLOP/s': (2 * n ** 3) / (mm * 1e6), 'ViT-L block fwd ms': fwd, 'fwd+bwd ms': bwd };
}

runBench('core-tensor', join(dirname(fileURLToPath(import.meta.url)), 'results'), bench).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
