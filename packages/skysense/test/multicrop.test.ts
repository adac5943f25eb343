import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend, manualSeed, tf } from '@skysense/core-tensor';
import { Pretrainer, SKYSENSE_PRESETS } from '../src/index';

beforeAll(() => initBackend());

describe('HR multi-crop geometry', () => {
  it('a pre-training step with multi-crop: finite HR and fusion terms, tensor count flat (views and teacher maps freed), HR required', () => {
    manualSeed(0);
    const config = { ...SKYSENSE_PRESETS['skysense-tiny'], s2: undefined, s1: undefined };
    const t = new Pretrainer({
      config,
      steps: 4,
      seed: 1,
      heads: { outDim: 32, pixelOutDim: 16, hiddenDim: 24, bottleneckDim: 8 },
      multiCrop: { localCrops: 2 },
    });
    const batch = () => ({ hr: tf.randomNormal([2, 3, 160, 160], 0, 1, 'float32', 9), lat: [48, -33], lon: [11, 18] });
    const b0 = batch();
    const m = t.trainStep(b0);
    b0.hr.dispose();
    expect(Number.isFinite(m.loss)).toBe(true);
    expect(Object.keys(m.terms)).toEqual(expect.arrayContaining(['hr.pixel', 'hr.object', 'hr.image', 'fusion.pixel']));
    const before = tf.memory().numTensors;
    const b1 = batch();
    t.trainStep(b1);
    b1.hr.dispose();
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
    expect(
      () => new Pretrainer({ config: { ...config, hr: undefined, s2: SKYSENSE_PRESETS['skysense-tiny'].s2 }, steps: 2, multiCrop: {} }),
    ).toThrow(/multiCrop: HR multi-crop needs a model with an HR encoder/);
  });
});
