import { beforeAll, describe, expect, it } from 'vitest';
import { AdamW, SkySenseError, disposeGradients, initBackend, manualSeed, tf, valueAndGrads, type Tensor } from '@skysense/core-tensor';
import {
  ChangeDetectionHead,
  ConfusionMatrix,
  FCNHead,
  LinearClsHead,
  MultiLevelNeck,
  UPerHead,
  averagePrecision,
  binaryCrossEntropyLoss,
  crossEntropyLoss,
  meanAveragePrecision,
} from '../src/index';

const value = (t: Tensor) => {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
};
const pyramid = (n: number, chans: number[], side: number, seed = 0) =>
  chans.map((c, i) => tf.randomNormal([n, c, side >> i, side >> i], 0, 1, 'float32', seed + i));

beforeAll(() => initBackend());

describe('crossEntropyLoss (mmseg semantics), by hand', () => {
  // row 0: logits 0,0,0 → −log(1/3) = ln 3 for any class; row 1: ln 3,0,0 → softmax 3/5,1/5,1/5, class 0 → ln(5/3)
  const logits = () =>
    tf.tensor2d([
      [0, 0, 0],
      [Math.log(3), 0, 0],
    ]);
  it('mean over targets, ignore index, avgNonIgnore, class weights, loss weight', () => {
    expect(value(crossEntropyLoss(logits(), tf.tensor1d([1, 0], 'int32')))).toBeCloseTo((Math.log(3) + Math.log(5 / 3)) / 2, 6);
    expect(value(crossEntropyLoss(logits(), tf.tensor1d([1, 255], 'int32')))).toBeCloseTo(Math.log(3) / 2, 6);
    expect(value(crossEntropyLoss(logits(), tf.tensor1d([1, 255], 'int32'), { avgNonIgnore: true }))).toBeCloseTo(Math.log(3), 6);
    expect(value(crossEntropyLoss(logits(), tf.tensor1d([1, 0], 'int32'), { classWeight: [2, 1, 1] }))).toBeCloseTo(
      (Math.log(3) + 2 * Math.log(5 / 3)) / 2,
      6,
    );
    expect(value(crossEntropyLoss(logits(), tf.tensor1d([1, 0], 'int32'), { lossWeight: 0.4 }))).toBeCloseTo(
      (0.4 * (Math.log(3) + Math.log(5 / 3))) / 2,
      6,
    );
  });

  it('NCHW maps give the same value as the flattened pixels, and the gradient is (softmax − onehot) / N', () => {
    const map = tf.tensor4d([0, Math.log(3), 0, 0, 0, 0], [1, 3, 1, 2]);
    expect(value(crossEntropyLoss(map, tf.tensor3d([[[1, 0]]], [1, 1, 2], 'int32')))).toBeCloseTo((Math.log(3) + Math.log(5 / 3)) / 2, 6);
    const g = tf.grad((x: Tensor) => crossEntropyLoss(x, tf.tensor1d([1, 0], 'int32')))(logits());
    const want = [
      [1 / 3, 1 / 3 - 1, 1 / 3],
      [3 / 5 - 1, 1 / 5, 1 / 5],
    ]
      .flat()
      .map((v) => v / 2);
    [...g.dataSync()].forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 6));
  });

  it('refuses bad targets with the argument, expected and actual value', () => {
    expect(() => crossEntropyLoss(logits(), tf.tensor1d([1, 3], 'int32'))).toThrow(
      /target: expected class indices in \[0, 3\) or ignoreIndex 255, got 3 at flat index 1/,
    );
    expect(() => crossEntropyLoss(logits(), tf.tensor1d([1, 0]))).toThrow(/expected int32 class indices, got float32/);
    expect(() => crossEntropyLoss(logits(), tf.tensor1d([1], 'int32'))).toThrow(/target: expected \[2\] .* got \[1\]/);
    expect(() => crossEntropyLoss(logits(), tf.tensor1d([1, 0], 'int32'), { classWeight: [1, 1] })).toThrow(
      /classWeight: expected 3 weights, got 2/,
    );
  });

  it('binary cross-entropy on logits', () => {
    const want = (Math.log(2) + Math.log(1 + Math.exp(2))) / 2;
    expect(value(binaryCrossEntropyLoss(tf.tensor2d([[0, 2]]), tf.tensor2d([[1, 0]])))).toBeCloseTo(want, 6);
    expect(value(binaryCrossEntropyLoss(tf.tensor2d([[-80, 80]]), tf.tensor2d([[0, 1]])))).toBeCloseTo(0, 6);
    expect(() => binaryCrossEntropyLoss(tf.tensor2d([[0, 2]]), tf.tensor2d([[1]]))).toThrow(/expected \[1, 2\].*got \[1, 1\]/);
  });
});

describe('metrics against hand-computed confusion matrices', () => {
  // target 0 0 1 1 2 2 (255), prediction 0 1 1 1 0 2 (2): tp 1,2,1; gt area 2,2,2; predicted area 2,3,1
  const cm = () => new ConfusionMatrix(3).update([0, 1, 1, 1, 0, 2, 2], [0, 0, 1, 1, 2, 2, 255]);
  it('counts, IoU, F1, precision, recall, means and overall accuracy', () => {
    const m = cm();
    expect([...m.matrix]).toEqual([1, 1, 0, 0, 2, 0, 1, 0, 1]);
    const s = m.scores();
    [1 / 3, 2 / 3, 1 / 2].forEach((v, i) => expect(s.iou[i]).toBeCloseTo(v, 12));
    [1 / 2, 2 / 3, 1].forEach((v, i) => expect(s.precision[i]).toBeCloseTo(v, 12));
    [1 / 2, 1, 1 / 2].forEach((v, i) => expect(s.recall[i]).toBeCloseTo(v, 12));
    [1 / 2, 4 / 5, 2 / 3].forEach((v, i) => expect(s.f1[i]).toBeCloseTo(v, 12));
    expect(s.mIoU).toBeCloseTo(0.5, 12);
    expect(s.mF1).toBeCloseTo((1 / 2 + 4 / 5 + 2 / 3) / 3, 12);
    expect(s.oa).toBeCloseTo(4 / 6, 12);
    expect(m.table(['water', 'road', 'building'])).toContain('OA 66.67  mIoU 50.00  mF1 65.56');
  });

  it('a class absent from prediction and ground truth is NaN and left out of the means; batches accumulate', () => {
    const m = new ConfusionMatrix(4).update([0, 1, 1, 1, 0, 2, 2], [0, 0, 1, 1, 2, 2, 255]);
    expect(Number.isNaN(m.scores().iou[3]!)).toBe(true);
    expect(m.scores().mIoU).toBeCloseTo(0.5, 12);
    const split = new ConfusionMatrix(3).update([0, 1, 1], [0, 0, 1]).update([1, 0, 2, 2], [1, 2, 2, 255]);
    expect([...split.matrix]).toEqual([...cm().matrix]);
    expect(() => new ConfusionMatrix(3).update([0, 3], [0, 1])).toThrow(/prediction\[1\]: expected a class in \[0, 3\), got 3/);
    expect(() => new ConfusionMatrix(3).update([0], [0, 1])).toThrow(SkySenseError);
  });

  it('change detection: precision, recall, F1 and IoU of the change class', () => {
    // TP 2, FP 1, FN 1, TN 2
    const c = new ConfusionMatrix(2).update([0, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0]).changeScores();
    expect(c.precision).toBeCloseTo(2 / 3, 12);
    expect(c.recall).toBeCloseTo(2 / 3, 12);
    expect(c.f1).toBeCloseTo(2 / 3, 12);
    expect(c.iou).toBeCloseTo(1 / 2, 12);
    expect(c.oa).toBeCloseTo(4 / 6, 12);
  });

  it('average precision as mmcls (difficult −1 ignored) and the multi-label mean', () => {
    expect(averagePrecision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])).toBeCloseTo((1 + 2 / 3) / 2, 12);
    expect(averagePrecision([0.9, 0.8, 0.7, 0.6], [1, -1, 1, 0])).toBeCloseTo(1, 12);
    const { ap, mAP } = meanAveragePrecision(
      [
        [0.9, 0.1],
        [0.8, 0.2],
        [0.7, 0.3],
        [0.6, 0.4],
      ],
      [
        [1, 0],
        [0, 0],
        [1, 0],
        [0, 0],
      ],
    );
    expect(Number.isNaN(ap[1]!)).toBe(true);
    expect(mAP).toBeCloseTo(5 / 6, 12);
    expect(() => meanAveragePrecision([], [])).toThrow(/expected at least one sample, got none/);
    expect(() => meanAveragePrecision([[0.1, 0.2]], [[1]])).toThrow(/row 0: expected 2 scores and targets, got 2 and 1/);
  });
});

describe('classification, change and neck modules', () => {
  it('LinearClsHead: global average pooling + fc (keys fc.*), the last map of a list, softmax or sigmoid', () => {
    const head = new LinearClsHead({ inChannels: 4, numClasses: 3 });
    expect([...head.stateShapes().keys()]).toEqual(['fc.weight', 'fc.bias']);
    const map = tf.randomNormal([2, 4, 3, 5], 0, 1, 'float32', 3);
    const want = head.forward(tf.mean(map, [2, 3]));
    expect(tf.max(tf.abs(tf.sub(head.forward([tf.zeros([2, 1, 1, 1]), map]), want))).dataSync()[0]).toBeLessThan(1e-6);
    expect(tf.sum(head.predict(map), 1).dataSync()[0]).toBeCloseTo(1, 5);
    const multi = new LinearClsHead({ inChannels: 4, numClasses: 3, multiLabel: true });
    multi.loadStateDict(head.stateDict());
    const p = multi.predict(map).dataSync();
    const logits = head.forward(map).dataSync();
    p.forEach((v, i) => expect(v).toBeCloseTo(1 / (1 + Math.exp(-logits[i]!)), 5));
    expect(() => head.forward(tf.zeros([2, 5]))).toThrow(/expected \[N, 4\] or \[N, 4, H, W\], got \[2, 5\]/);
  });

  it('ChangeDetectionHead: |A − B| is symmetric in the dates, concat doubles the lateral widths, mismatched dates are refused', () => {
    manualSeed(1);
    const head = new ChangeDetectionHead({ inChannels: [4, 8], channels: 8, poolScales: [1, 2] }).eval();
    const a = pyramid(1, [4, 8], 8, 1);
    const b = pyramid(1, [4, 8], 8, 7);
    const ab = head.forwardPair(a, b);
    expect(ab.shape).toEqual([1, 2, 8, 8]);
    expect(tf.max(tf.abs(tf.sub(ab, head.forwardPair(b, a)))).dataSync()[0]).toBeLessThan(1e-5);
    const cat = new ChangeDetectionHead({ inChannels: [4, 8], channels: 8, poolScales: [1, 2], fusion: 'concat' }).eval();
    expect(cat.stateShapes().get('lateral_convs.0.conv.weight')).toEqual([8, 8, 1, 1]);
    expect(cat.forwardPair(a, b).shape).toEqual([1, 2, 8, 8]);
    expect(() => head.forwardPair(a, [b[0]!, tf.zeros([1, 8, 2, 2])])).toThrow(
      /level 1: date B \[1, 8, 2, 2\] differs from date A \[1, 8, 4, 4\]/,
    );
  });

  it('MultiLevelNeck: mmseg keys, rescaled pyramid from ViT maps, one input shared by every scale', () => {
    const neck = new MultiLevelNeck({ inChannels: [6, 6, 6, 6], outChannels: 5, scales: [4, 2, 1, 0.5] });
    expect([...neck.stateShapes().keys()].slice(0, 2)).toEqual(['lateral_convs.0.conv.weight', 'lateral_convs.0.conv.bias']);
    expect(neck.stateShapes().get('convs.3.conv.weight')).toEqual([5, 5, 3, 3]);
    const maps = Array.from({ length: 4 }, (_, i) => tf.randomNormal([1, 6, 8, 8], 0, 1, 'float32', i));
    expect(neck.forward(maps).map((t) => t.shape)).toEqual([
      [1, 5, 32, 32],
      [1, 5, 16, 16],
      [1, 5, 8, 8],
      [1, 5, 4, 4],
    ]);
    const one = new MultiLevelNeck({ inChannels: [6], outChannels: 5, scales: [2, 1] });
    expect(one.forward([maps[0]!]).map((t) => t.shape)).toEqual([
      [1, 5, 16, 16],
      [1, 5, 8, 8],
    ]);
    expect(() => neck.forward(maps.slice(0, 3))).toThrow(/expected 4 maps, got 3/);
    const head = new UPerHead({ inChannels: [5, 5, 5, 5], channels: 4, numClasses: 3 });
    expect(head.eval().forward(neck.forward(maps)).shape).toEqual([1, 3, 32, 32]);
  });

  it('decode heads name the input they refuse', () => {
    const head = new UPerHead({ inChannels: [4, 8], channels: 8, numClasses: 2 });
    expect(() => head.forward([tf.zeros([1, 4, 8, 8])])).toThrow(
      /UPerHead inputs: expected a map at index 1 \(inIndex\[1\]\), got a list of 1/,
    );
    expect(() => head.forward([tf.zeros([1, 4, 8, 8]), tf.zeros([1, 6, 4, 4])])).toThrow(
      /UPerHead inputs\[1\]: expected \[N, 8, H, W\], got \[1, 6, 4, 4\]/,
    );
    expect(() => new FCNHead({ inChannels: 4, channels: 8, numClasses: 2, numConvs: 0 })).toThrow(/channels: expected 4 .* got 8/);
  });
});

describe('training a UPerHead + auxiliary FCNHead', () => {
  it('every parameter gets a gradient, the loss falls, BN statistics update, and the tensor count stays flat over 20 steps', () => {
    manualSeed(3);
    const head = new UPerHead({ inChannels: [4, 8], channels: 8, numClasses: 3, poolScales: [1, 2] }).train();
    const aux = new FCNHead({ inChannels: 8, inIndex: 1, channels: 4, numClasses: 3, numConvs: 1, concatInput: false }).train();
    const feats = pyramid(2, [4, 8], 8, 11);
    const target = tf.tidy(() => tf.cast(tf.greater(tf.slice(feats[0]!, [0, 0, 0, 0], [2, 1, 8, 8]).reshape([2, 8, 8]), 0), 'int32'));
    const params = [...head.namedParameters('decode_head.'), ...aux.namedParameters('auxiliary_head.')];
    const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0 });
    const losses: number[] = [];
    let before = 0;
    for (let step = 0; step < 20; step++) {
      if (step === 2) before = tf.memory().numTensors;
      const { value: loss, grads } = valueAndGrads(params, () =>
        tf.tidy(() => {
          const main = crossEntropyLoss(head.forward(feats), target);
          const auxLogits = tf.image
            .resizeBilinear(tf.transpose(aux.forward(feats), [0, 2, 3, 1]) as tf.Tensor4D, [8, 8])
            .transpose([0, 3, 1, 2]);
          return tf.add(main, crossEntropyLoss(auxLogits, target, { lossWeight: 0.4 })) as tf.Scalar;
        }),
      );
      if (step === 0) expect(grads.size).toBe(params.length);
      losses.push(value(loss));
      opt.step(grads);
      disposeGradients(grads);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.7);
    expect(head.bottleneck.bn!.numBatchesTracked.value.dataSync()[0]).toBe(20);
    opt.dispose();
    head.dispose();
    aux.dispose();
  });
});
