/**
 * `npm run bench` (core-tensor): 1024³ matmul throughput and a ViT-L-sized pre-norm transformer
 * block (1024 wide, 16 heads, 257 tokens, FFN 4096, exact GELU) forward and forward + backward.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FFN, LayerNorm, Module, MultiheadAttention, disposeGradients, matMul, tf, valueAndGrads, type Tensor } from '../src/index';
import { runBench, timeIt } from '../../../bench/harness';

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

function bench(_kind: string, reps: number): Record<string, number> {
  const n = 1024;
  const [a, b] = [tf.randomNormal([n, n]), tf.randomNormal([n, n])];
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
  return { 'matmul GFLOP/s': (2 * n ** 3) / (mm * 1e6), 'ViT-L block fwd ms': fwd, 'fwd+bwd ms': bwd };
}

runBench('core-tensor', join(dirname(fileURLToPath(import.meta.url)), 'results'), bench).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
