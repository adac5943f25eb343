import { beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  Generator,
  Module,
  SkySenseError,
  disposeGradients,
  initBackend,
  manualSeed,
  tf,
  valueAndGrads,
  type FeatureEncoder,
  type Tensor,
} from '@skysense/core-tensor';
import { FPN, FasterRCNN, MaxIoUAssigner, RandomSampler, SingleRoIExtractor, withGtAsProposals } from '../src/index';

beforeAll(() => initBackend());

/** A stand-in encoder: strided average pools of the input, projected by fixed 1×1 convs (strides 4, 8, 16, 32). */
class PoolEncoder extends Module implements FeatureEncoder {
  readonly featureChannels = [8, 8, 8, 8];
  private readonly proj = tf.randomNormal([1, 1, 3, 8], 0, 1, 'float32', 3);
  forward(x: Tensor): Tensor[] {
    return tf.tidy(() => {
      const nhwc = tf.transpose(x, [0, 2, 3, 1]) as tf.Tensor4D;
      return [4, 8, 16, 32].map((s) =>
        tf.transpose(tf.conv2d(tf.avgPool(nhwc, s, s, 'valid'), this.proj as tf.Tensor4D, 1, 'same'), [0, 3, 1, 2]),
      );
    });
  }
}

const tinyDetector = (numClasses = 2) => {
  manualSeed(0);
  return new FasterRCNN({ backbone: new PoolEncoder(), numClasses, neckChannels: 8, fcOutChannels: 16 });
};
const gt = (boxes: number[], labels: number[]) => ({ boxes: Float32Array.from(boxes), labels: Int32Array.from(labels) });

describe('MaxIoUAssigner (mmdet semantics, by hand)', () => {
  const anchors = Float32Array.of(0, 0, 10, 10, 0, 0, 10, 20, 50, 50, 60, 60, 100, 100, 110, 110);
  it('positive at IoU ≥ pos, negative below neg, ignored between; low-quality matches claim each gt’s best boxes', () => {
    // gt 0 = anchor 0 exactly (IoU 1 with anchor 0, 0.5 with anchor 1); gt 1 overlaps anchor 2 by 25/175
    const a = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.1 });
    const r = a.assign(anchors, Float32Array.of(0, 0, 10, 10, 55, 55, 65, 65), Int32Array.of(4, 7));
    expect(Array.from(r.gtInds)).toEqual([1, -1, 2, 0]);
    expect(Array.from(r.labels)).toEqual([4, -1, 7, -1]);
    expect(r.maxOverlaps[1]).toBeCloseTo(0.5, 6);
    // without low-quality matching anchor 2 (IoU 1/7) stays negative
    const b = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, matchLowQuality: false });
    expect(Array.from(b.assign(anchors, Float32Array.of(0, 0, 10, 10, 55, 55, 65, 65), Int32Array.of(4, 7)).gtInds)).toEqual([1, -1, 0, 0]);
  });
  it('no gt boxes: every box negative; gt labels must match the boxes', () => {
    const r = new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.5 }).assign(anchors, new Float32Array(0), new Int32Array(0));
    expect(Array.from(r.gtInds)).toEqual([0, 0, 0, 0]);
    expect(() =>
      new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.5 }).assign(anchors, Float32Array.of(0, 0, 1, 1), new Int32Array(0)),
    ).toThrow(/gtLabels: expected 1 \(one per gt box\), got 0/);
    expect(() => new MaxIoUAssigner({ posIouThr: 0.3, negIouThr: 0.5 })).toThrow(SkySenseError);
  });
  it('gt as proposals: gt boxes first, each assigned to itself', () => {
    const first = new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.5 }).assign(anchors, Float32Array.of(0, 0, 10, 10), Int32Array.of(3));
    const { boxes, assign } = withGtAsProposals(anchors, first, Float32Array.of(0, 0, 10, 10), Int32Array.of(3));
    expect(boxes.length).toBe(20);
    expect(Array.from(assign.gtInds)).toEqual([1, 1, 1, 0, 0]); // anchor 1: IoU 0.5 ≥ 0.5
    expect(Array.from(assign.labels)).toEqual([3, 3, 3, -1, -1]);
  });
});

describe('RandomSampler', () => {
  const assign = (gtInds: number[]) => ({
    gtInds: Int32Array.from(gtInds),
    maxOverlaps: new Float32Array(gtInds.length),
    labels: new Int32Array(gtInds.length),
  });
  it('takes all candidates in index order when they fit, else a seeded draw without replacement', () => {
    const s = new RandomSampler({ num: 4, posFraction: 0.5, rng: new Generator(1) });
    const few = s.sample(assign([0, 1, -1, 0, 2]));
    expect([Array.from(few.pos), Array.from(few.neg)]).toEqual([
      [1, 4],
      [0, 3],
    ]);
    const many = assign([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    const a = new RandomSampler({ num: 4, posFraction: 0.5, rng: new Generator(7) }).sample(many);
    const b = new RandomSampler({ num: 4, posFraction: 0.5, rng: new Generator(7) }).sample(many);
    expect(a).toEqual(b);
    expect(a.pos.length).toBe(2);
    expect(new Set(a.pos).size).toBe(2);
    expect(a.neg.length).toBe(2);
    expect([...a.pos].every((i) => i < 5) && [...a.neg].every((i) => i >= 5)).toBe(true);
    // negatives fill the places positives leave
    expect(new RandomSampler({ num: 4, posFraction: 0.5 }).sample(assign([0, 0, 0, 0, 0, 1])).neg.length).toBe(3);
  });
});

describe('SingleRoIExtractor level mapping (finest scale 56)', () => {
  it('maps √area to levels as mmdet: < 112 → 0, < 224 → 1, < 448 → 2, else 3', () => {
    const e = new SingleRoIExtractor();
    expect(
      e.levels([
        [0, 0, 0, 111, 111],
        [0, 0, 0, 112, 112],
        [0, 0, 0, 223, 223],
        [0, 0, 0, 224, 224],
        [0, 0, 0, 500, 500],
        [0, 0, 0, 2000, 2000],
      ]),
    ).toEqual([0, 1, 1, 2, 3, 3]);
  });
});

describe('FPN', () => {
  it('top-down nearest upsampling of the laterals and max-pooled extra levels on non-square, odd sizes', () => {
    const fpn = new FPN({ inChannels: [2, 3], outChannels: 4, numOuts: 4 });
    const outs = fpn.forward([tf.ones([1, 2, 10, 7]), tf.ones([1, 3, 5, 4])]);
    expect(outs.map((o) => o.shape)).toEqual([
      [1, 4, 10, 7],
      [1, 4, 5, 4],
      [1, 4, 3, 2],
      [1, 4, 2, 1],
    ]);
    tf.dispose(outs);
    expect(() => fpn.forward([tf.ones([1, 2, 10, 7])])).toThrow(/FPN inputs: expected 2 maps, got 1/);
    expect(() => fpn.forward([tf.ones([1, 3, 10, 7]), tf.ones([1, 3, 5, 4])])).toThrow(
      /FPN inputs\[0\]: expected \[N, 2, H, W\], got \[1, 3, 10, 7\]/,
    );
  });
});

describe('FasterRCNN on a stand-in encoder', () => {
  const image = () => tf.randomNormal([2, 3, 100, 90], 0, 1, 'float32', 5);
  const gts = [gt([10, 10, 60, 50, 40, 5, 90, 40], [0, 1]), gt([], [])];

  it('pads to 32, predicts sorted detections inside the image, and frees what it creates', () => {
    const det = tinyDetector().eval();
    const x = image();
    det.predict(x);
    const before = tf.memory().numTensors;
    const out = det.predict(x);
    expect(tf.memory().numTensors).toBe(before);
    expect(out.some((d) => d.scores.length > 0)).toBe(true);
    for (const d of out) {
      expect(d.boxes.length).toBe(4 * d.scores.length);
      expect(d.labels.length).toBe(d.scores.length);
      expect([...d.scores].every((s, i) => s > 0.05 && (i === 0 || s <= d.scores[i - 1]!))).toBe(true);
      for (let i = 0; i < d.boxes.length; i += 4) {
        const [x1, y1, x2, y2] = d.boxes.subarray(i, i + 4);
        expect(x1! >= 0 && y1! >= 0 && x2! <= 90 && y2! <= 100).toBe(true);
      }
    }
    x.dispose();
  });

  it('trains: every parameter of the heads gets a gradient, the loss falls on a fixed batch, tensors stay flat', () => {
    const det = tinyDetector();
    const x = image();
    const params = det.namedParameters();
    const opt = new AdamW(params, { lr: 2e-3, weightDecay: 0 });
    const losses: number[] = [];
    let before = 0;
    for (let step = 0; step < 12; step++) {
      if (step === 2) before = tf.memory().numTensors;
      const { value, grads } = valueAndGrads(params, () => {
        const l = det.losses(x, gts, { rng: new Generator(step) });
        return l.loss as tf.Scalar;
      });
      if (step === 0) expect(grads.size).toBe(params.length);
      losses.push(value.dataSync()[0]!);
      opt.step(grads);
      value.dispose();
      disposeGradients(grads);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.8);
    opt.dispose();
    x.dispose();
  });

  it('names bad gt boxes, labels and batch sizes', () => {
    const det = tinyDetector();
    const x = image();
    expect(() => det.losses(x, [gt([10, 10, 5, 50], [0]), gt([], [])])).toThrow(
      /gts\[0\] box 0: expected finite x1 < x2 and y1 < y2, got 10, 10, 5, 50/,
    );
    expect(() => det.losses(x, [gt([10, 10, 20, 50], [2]), gt([], [])])).toThrow(
      /gts\[0\] label 0: expected a class index in \[0, 2\), got 2/,
    );
    expect(() => det.losses(x, [gt([10, 10, 20, NaN], [0]), gt([], [])])).toThrow(/expected finite/);
    expect(() => det.losses(x, [gt([], [])])).toThrow(/gts: expected 2 \(one per image\), got 1/);
    expect(() => det.predict(tf.ones([3, 100, 90]))).toThrow(/images: expected \[N, C, H, W\], got \[3, 100, 90\]/);
    // boxes wholly outside the image (e.g. original-image pixels after a resize)
    expect(() => det.losses(x, [gt([120, 10, 150, 40], [0]), gt([], [])])).toThrow(
      /gts\[0\] box 0: 120, 10, 150, 40 lies outside the 90×100 image/,
    );
    // metas: named field, expected and actual; nothing leaks when they are refused
    const before = tf.memory().numTensors;
    const meta = (m: object) => [{ imgShape: [100, 90] as const, ...m }, { imgShape: [100, 90] as const }];
    expect(() => det.predict(x, meta({ imgShape: [0, 90] }))).toThrow(
      /metas\[0\]\.imgShape: expected \[height, width\], positive integers within \[128, 96\], got \[0,90\]/,
    );
    expect(() => det.predict(x, meta({ imgShape: [NaN, 90] }))).toThrow(/metas\[0\]\.imgShape/);
    expect(() => det.predict(x, meta({ padShape: [160, 96] }))).toThrow(
      /metas\[0\]\.padShape: expected \[height, width\] within the batch's \[128, 96\], got \[160,96\]/,
    );
    expect(() => det.predict(x, meta({ scaleFactor: [0, 1] }))).toThrow(
      /metas\[0\]\.scaleFactor: expected \[w, h\], two positive numbers, got \[0,1\]/,
    );
    expect(() => det.predict(x, [{ imgShape: [100, 90] }])).toThrow(/metas: expected 2 \(one per image\), got 1/);
    expect(tf.memory().numTensors).toBe(before);
    // a custom sampler is held to the assignment
    const liar = { sample: () => ({ pos: Int32Array.of(0), neg: new Int32Array(0) }) };
    expect(() => det.losses(x, [gt([10, 10, 60, 50], [0]), gt([], [])], { rpnSampler: liar })).toThrow(
      /RPNHead\.loss sampler \(image \d\): positive index 0 is not a box assigned to a gt box/,
    );
    expect(() => det.rpnHead.proposals(det.rpnHead.forward(det.features(x).levels), meta({}), { minBboxSize: -1 })).toThrow(/minBboxSize/);
    x.dispose();
  });

  it('no proposals anywhere: empty detections per image, and a finite RCNN loss on a batch without boxes', () => {
    const det = tinyDetector();
    const x = image();
    const { levels } = det.features(x);
    const empty = { boxes: new Float32Array(0), scores: new Float32Array(0) };
    const dets = det.roiHead.detections(levels, [empty, empty], [{ imgShape: [100, 90] }, { imgShape: [100, 90] }]);
    expect(dets.map((d) => d.scores.length)).toEqual([0, 0]);
    const l = det.roiHead.loss(levels, [empty, empty], [gt([], []), gt([], [])], {
      sampler: new RandomSampler({ num: 8, posFraction: 0.25 }),
    });
    expect([l.lossCls.dataSync()[0], l.lossBbox.dataSync()[0]].map(Math.abs)).toEqual([0, 0]);
    const all = det.losses(x, [gt([], []), gt([], [])], { rng: new Generator(0) });
    expect(Number.isFinite(all.loss.dataSync()[0]!)).toBe(true);
    expect(Math.abs(all.lossBbox.dataSync()[0]!)).toBe(0);
    tf.dispose([...levels, l.lossCls, l.lossBbox, all.loss, all.lossRpnCls, all.lossRpnBbox, all.lossCls, all.lossBbox]);
    x.dispose();
  });
});
