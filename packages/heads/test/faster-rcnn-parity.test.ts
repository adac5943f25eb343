/**
 * Faster R-CNN against mmdet 2.x's own classes (fixture faster-rcnn-a, made by
 * test/fixtures/faster-rcnn/make.py; README there): every intermediate of a small detector on two
 * non-square images of different sizes in one padded batch, and the training losses with mmdet's
 * sampled indices injected — on the wasm backend and on cpu with the native kernels.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadSafetensors, tf, type BackendKind, type Tensor } from '@skysense/core-tensor';
import { detectionFixtureModel, detectionFixtureTolerance, runDetectionFixture, type DetectionFixtureConfig } from '../src/index';
import { maxAbsDiff, parityBackends } from '@skysense/test-utils';

const dir = join(__dirname, 'fixtures', 'faster-rcnn', 'faster-rcnn-a');
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as DetectionFixtureConfig;

describe.each(parityBackends<BackendKind>())('Faster R-CNN against mmdet 2.x on %s', (backend) => {
  let inputs: Map<string, Tensor>;
  let expected: Map<string, Tensor>;
  let got: Map<string, Tensor>;

  beforeAll(async () => {
    await initBackend({ force: backend });
    inputs = loadSafetensors(join(dir, 'input.safetensors'));
    expected = loadSafetensors(join(dir, 'output.safetensors'));
    const model = detectionFixtureModel(config).eval();
    const weights = loadSafetensors(join(dir, 'weights.safetensors'));
    const report = model.loadStateDict(weights);
    expect([report.missing, report.loaded.length]).toEqual([[], weights.size]);
    tf.dispose([...weights.values()]);
    got = runDetectionFixture(model, config, inputs, expected);
  });

  const check = (keys: string[]) => {
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      const [a, b] = [got.get(key), expected.get(key)];
      expect(a, `${key} computed`).toBeDefined();
      expect(a!.shape, `${key} shape (count of boxes)`).toEqual(b!.shape);
      expect(maxAbsDiff(a!, b!), key).toBeLessThanOrEqual(detectionFixtureTolerance(key));
    }
  };
  const keys = (re: RegExp) => [...expected.keys()].filter((k) => re.test(k));

  it('FPN levels and RPN maps within 1e-4', () => check(keys(/^(fpn|rpn_cls|rpn_reg)_/)));
  it('proposals (test and training configs): the same boxes within 1e-3 px, the same count', () => check(keys(/proposals_/)));
  it('RoIs, RoI features and head outputs within 1e-4; final boxes within 1e-3 px, the same labels', () =>
    check(keys(/^(rois|roi_feats|cls_score|bbox_pred|det_bboxes_|det_labels_)/)));
  it('the RPN and RCNN losses within 1e-5 with mmdet’s samples injected; the accuracy', () => check(keys(/^(loss_|acc)/)));
  it('covers every output of the fixture', () => expect([...expected.keys()].filter((k) => !got.has(k))).toEqual([]));
});
