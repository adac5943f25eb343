/**
 * `npm run bench` (vit): a one-layer ViT-L with the SkySense S2 preset's dimensions (patch
 * embedding + one 1024-wide layer): forward and forward + backward on a batch of four 64 px
 * Sentinel-2 frames (257 tokens each), per backend. The full encoder is 24 such layers.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { disposeGradients, tf, valueAndGrads } from '@skysense/core-tensor';
import { VisionTransformer } from '../src/index';
import { runBench, timeIt } from '../../../bench/harness';

function bench(_kind: string, reps: number): Record<string, number> {
  const vit = VisionTransformer.fromPreset('skysense-s2', { numLayers: 1, dropPathRate: 0 });
  const x = tf.randomNormal([4, 10, 64, 64]);
  vit.eval();
  const fwd = timeIt('ViT-L layer forward, 4×10×64×64', reps, () => {
    const [y] = vit.forward(x);
    y!.dataSync();
    y!.dispose();
  });
  vit.train();
  const bwd = timeIt('ViT-L layer forward+backward', reps, () => {
    const { value, grads } = valueAndGrads(vit, () => tf.mean(tf.square(vit.forward(x)[0]!)) as tf.Scalar);
    value.dataSync();
    value.dispose();
    disposeGradients(grads);
  });
  vit.dispose();
  x.dispose();
  return { 'ViT-L layer fwd ms (4 frames)': fwd, 'fwd+bwd ms': bwd };
}

runBench('vit', join(dirname(fileURLToPath(import.meta.url)), 'results'), bench).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
