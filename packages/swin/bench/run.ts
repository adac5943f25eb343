/**
 * `npm run bench` (swin): forward time of the `tiny` preset on a 1×3×256×256 input (all four
 * outputs) and of one stage-0 block of the SkySense HR (`huge`) encoder on its 64×64×352 map
 * (a 256 px input), per backend.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tf } from '@skysense/core-tensor';
import { SwinTransformerV2 } from '../src/index';
import { hrStage0Block } from '../../../bench/workloads';
import { runBench, timeIt } from '../../../bench/harness';

function bench(_kind: string, reps: number): Record<string, number> {
  const tiny = SwinTransformerV2.fromPreset('tiny', { outIndices: [0, 1, 2, 3] }).eval();
  const x = tf.randomNormal([1, 3, 256, 256]);
  const tinyMs = timeIt('tiny preset forward, 256²', reps, () => {
    const outs = tiny.forward(x);
    outs[3]!.dataSync();
    tf.dispose(outs);
  });
  tiny.dispose();
  const block = hrStage0Block().eval();
  const map = tf.randomNormal([1, 64, 64, 352]);
  const blockMs = timeIt('huge stage-0 block forward, 64×64×352', reps, () => {
    const y = block.forward(map);
    y.dataSync();
    y.dispose();
  });
  block.dispose();
  tf.dispose([x, map]);
  return { 'tiny 256² fwd ms': tinyMs, 'huge stage-0 block fwd ms': blockMs };
}

runBench('swin', join(dirname(fileURLToPath(import.meta.url)), 'results'), bench).catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
