import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  AnchorGenerator,
  SkySenseError,
  batchedNms,
  bbox2delta,
  boxIou,
  boxOpTolerance,
  delta2bbox,
  initBackend,
  loadSafetensors,
  nms,
  roiAlign,
  runBoxOp,
  tf,
} from '../src/index';
import { expectNoLeak } from './helpers';

/** Op fixtures made by torchvision and mmdet's own code (`test/fixtures/box-ops/make.py`, README there). */
const ROOT = join(__dirname, 'fixtures', 'box-ops');
const FIXTURES = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

function run(name: string) {
  const config = JSON.parse(readFileSync(join(ROOT, name, 'config.json'), 'utf8')) as { op: string; kwargs: Record<string, unknown> };
  const inputs = loadSafetensors(join(ROOT, name, 'input.safetensors'));
  const expected = loadSafetensors(join(ROOT, name, 'output.safetensors'));
  const outputs = runBoxOp(config.op, config.kwargs, inputs);
  return { config, inputs, expected, outputs, dispose: () => tf.dispose([...inputs.values(), ...expected.values(), ...outputs.values()]) };
}

beforeAll(async () => {
  await initBackend({ force: 'cpu' });
});

describe('box ops match torchvision and mmdet (op fixtures)', () => {
  it.each(FIXTURES)('%s', (name) => {
    const { config, expected, outputs, dispose } = run(name);
    expect([...outputs.keys()].sort()).toEqual([...expected.keys()].sort());
    for (const [key, want] of expected) {
      const got = outputs.get(key)!;
      expect(got.shape, `${name} ${key}`).toEqual(want.shape);
      if (key === 'keep') expect(Array.from(got.dataSync()), `${name} kept indices`).toEqual(Array.from(want.dataSync()));
      else {
        const err = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!);
        expect(err, `${name} ${key} max abs error`).toBeLessThanOrEqual(boxOpTolerance(config.op, key));
      }
    }
    dispose();
  });

  it('keep the tensor count flat', () => {
    for (const name of FIXTURES) expectNoLeak(() => run(name).dispose(), 2, name);
  });
});

describe('box ops refuse what they cannot compute', () => {
  it('names the argument, the expected and the actual value', () => {
    const box = tf.tensor2d([[0, 0, 4, 4]]);
    expect(() => boxIou(tf.zeros([2, 3]), box)).toThrow(/^E_SHAPE: boxIou boxes1: expected \[N, 4\] \(x1, y1, x2, y2\), got \[2, 3\]$/);
    expect(() => nms(box, tf.zeros([2]), 0.5)).toThrow(/^E_SHAPE: nms scores: expected \[1\] \(one per box\), got \[2\]$/);
    expect(() => nms(box, tf.zeros([1]), 1.5)).toThrow(/nms iouThreshold/);
    expect(() => batchedNms(box, tf.zeros([1]), tf.zeros([3], 'int32'), 0.5)).toThrow(/batchedNms idxs: expected \[1\]/);
    expect(() => bbox2delta(box, tf.zeros([2, 4]))).toThrow(/bbox2delta: proposals \[1, 4\] and gt \[2, 4\] differ/);
    expect(() => delta2bbox(box, tf.zeros([2, 4]))).toThrow(/delta2bbox: expected rois \[N, 4\] and deltas \[N, 4·k\]/);
    expect(() => roiAlign(tf.zeros([1, 2, 4, 4]), tf.tensor2d([[1, 0, 0, 2, 2]]), { outputSize: 2 })).toThrow(
      /^E_ARG: roiAlign rois\[0\]: batch index 1 is not an image of the batch \(0 … 0\)$/,
    );
    expect(() => roiAlign(tf.zeros([1, 2, 4, 4]), tf.zeros([1, 4]), { outputSize: 2 })).toThrow(/roiAlign rois: expected \[K, 5\]/);
    expect(() => new AnchorGenerator({ strides: [4, 8], ratios: [1], scales: [8], baseSizes: [4] })).toThrow(
      /AnchorGenerator baseSizes: expected 2 \(one per stride\), got 1/,
    );
    expect(() => runBoxOp('rotated_nms', {}, new Map())).toThrow(SkySenseError);
    expect(() => nms(box, tf.tensor1d([NaN]), 0.5)).toThrow(/^E_ARG: nms scores\[0\]: expected a finite number, got NaN$/);
    expect(() => bbox2delta(tf.zeros([1, 8]), tf.zeros([1, 8]))).toThrow(/bbox2delta proposals: expected \[N, 4\]/);
    expect(() => bbox2delta(box, box, { stds: [1, 1] })).toThrow(/bbox2delta stds: expected 4 numbers \(x, y, w, h\), got \[1,1\]/);
    expect(() => delta2bbox(box, tf.zeros([1, 5]))).toThrow(
      /delta2bbox: expected rois \[N, 4\] and deltas \[N, 4·k\], got \[1, 4\] and \[1, 5\]/,
    );
    expect(() => delta2bbox(box, box, { whRatioClip: 0 })).toThrow(/delta2bbox whRatioClip: expected a finite number > 0, got 0/);
    const gen = new AnchorGenerator({ strides: [4], ratios: [1], scales: [8] });
    expect(() => gen.gridPriors([[-1, 2]])).toThrow(/featmapSizes\[0\] height/);
    expect(() => new AnchorGenerator({ strides: [0], ratios: [1], scales: [8] })).toThrow(
      /AnchorGenerator stride: expected a finite number > 0, got 0/,
    );
    expect(() => nms(tf.tensor2d([[0, 0, NaN, 4]]), tf.tensor1d([1]), 0.5)).toThrow(
      /^E_ARG: nms boxes\[0\]: expected finite coordinates, got 0, 0, NaN, 4$/,
    );
    expect(() => batchedNms(box, tf.tensor1d([1]), tf.tensor1d([-1], 'int32'), 0.5)).toThrow(
      /^E_ARG: batchedNms idxs\[0\]: expected a class index \(an integer ≥ 0\), got -1$/,
    );
    expect(() => bbox2delta(tf.tensor2d([[0, 0, 0, 4]]), box)).toThrow(
      /^E_ARG: bbox2delta proposals\[0\]: expected x2 > x1 and y2 > y1 \(a box with area\), got 0, 0, 0, 4$/,
    );
    expect(() => roiAlign(tf.zeros([1, 2, 4, 4]), tf.tensor2d([[0, 0, Infinity, 2, 2]]), { outputSize: 2 })).toThrow(
      /^E_ARG: roiAlign rois\[0\]: expected finite x1, y1, x2, y2, got 0, Infinity, 2, 2$/,
    );
    // boxes without area: IoU 0 (mmdet's union floor), not NaN
    expect(Array.from(boxIou(tf.tensor2d([[3, 3, 3, 3]]), tf.tensor2d([[3, 3, 3, 3]])).dataSync())).toEqual([0]);
    box.dispose();
  });

  it('empty inputs give empty results', () => {
    expect(nms(tf.zeros([0, 4]), tf.zeros([0]), 0.5).shape).toEqual([0]);
    expect(roiAlign(tf.zeros([1, 2, 4, 4]), tf.zeros([0, 5]), { outputSize: 2 }).shape).toEqual([0, 2, 2, 2]);
    expect(boxIou(tf.zeros([0, 4]), tf.zeros([3, 4])).shape).toEqual([0, 3]);
  });
});
