import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AdamW,
  Conv2d,
  Generator,
  Module,
  decodePng,
  shapeOnly,
  disposeGradients,
  writePng,
  initBackend,
  manualSeed,
  tf,
  valueAndGrads,
  type Tensor,
} from '@skysense/core-tensor';
import { ChangeDetectionHead, LinearClsHead, MultiLevelNeck, UPerHead } from '@skysense/heads';
import { VisionTransformer } from '@skysense/vit';
import { bandTags, writeGeoTiffLike } from '@skysense/test-utils';
import {
  ChangeDetector,
  Classifier,
  SkySenseEncoder,
  buildFinetuneModel,
  FusionSegmentor,
  SkySense,
  Finetuner,
  Segmentor,
  finetuneOptimizer,
  runEval,
  runFinetune,
  runPredict,
  swinLayerId,
  vitLayerId,
  getTask,
  listTasks,
  loadTaskDataset,
  registerTask,
  segmentationTask,
  taskBatch,
  type FeatureEncoder,
  type TaskDataset,
} from '../src/index';
import { cutWindow, toLatLon, writeVocAnnotation, type LabelledImage } from '@skysense/data';

const dir = mkdtempSync(join(tmpdir(), 'skysense-finetune-'));

/** A two-level convolutional encoder (strides 2 and 4) — any map size works, so windows can be small. */
class TinyEncoder extends Module implements FeatureEncoder {
  readonly a = this.registerModule('a', new Conv2d(3, 4, 3, { stride: 2, padding: 1 }));
  readonly b = this.registerModule('b', new Conv2d(4, 8, 3, { stride: 2, padding: 1 }));
  readonly featureChannels = [4, 8];
  forward(x: Tensor): Tensor[] {
    return tf.tidy(() => {
      const f1 = tf.relu(this.a.forward(x));
      return [f1, tf.relu(this.b.forward(f1))];
    });
  }
}
const tinySegmentor = () =>
  new Segmentor({
    backbone: new TinyEncoder(),
    decodeHead: new UPerHead({ inChannels: [4, 8], channels: 8, numClasses: 3, poolScales: [1, 2] }),
  }).eval();

/** Images of two flat regions (left dark → class 0, right bright → class 1) with noise. */
function synthetic(n: number, side: number, seed: number): LabelledImage[] {
  const g = new Generator(seed);
  return Array.from({ length: n }, (_, k) => {
    const data = new Float32Array(3 * side * side);
    const mask = new Uint8Array(side * side);
    const cut = 4 + g.randint(side - 8);
    for (let y = 0; y < side; y++) {
      for (let x = 0; x < side; x++) {
        mask[y * side + x] = x < cut ? 0 : 1;
        for (let c = 0; c < 3; c++) data[c * side * side + y * side + x] = (x < cut ? 60 : 190) + 20 * g.normal();
      }
    }
    return { name: `s${k}`, file: `s${k}`, image: { width: side, height: side, channels: 3, data }, mask };
  });
}

/** Two co-registered samples for the tiny SkySense: an HR tile, two S2 and one S1 frame each, dates and locations. */
function multiModalInputs() {
  return {
    hr: tf.randomNormal([2, 3, 128, 128], 0, 1, 'float32', 1),
    s2: {
      frames: tf.randomNormal([2, 2, 10, 4, 4], 0, 1, 'float32', 2),
      dates: [
        ['2021-04-01', '2021-06-01'],
        ['2021-05-01', '2021-08-01'],
      ],
    },
    s1: { frames: tf.randomNormal([2, 1, 2, 4, 4], 0, 1, 'float32', 3) },
    lat: [43.6, -33.9],
    lon: [1.44, 151.2],
  };
}

beforeAll(() => initBackend());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('sliding-window inference (mmseg slide mode)', () => {
  it('equals the per-window logits stitched by hand: overlaps averaged, the last windows moved back inside', () => {
    manualSeed(1);
    const model = tinySegmentor();
    const image = tf.randomNormal([1, 3, 20, 27], 0, 1, 'float32', 5);
    // crop 12, stride 8: rows [0,12) [8,20); columns [0,12) [8,20) [15,27)
    const windows = [0, 8].flatMap((y) => [0, 8, 15].map((x) => [y, x] as const));
    const expected = tf.tidy(() => {
      let sum = tf.zeros([1, 3, 20, 27]);
      let count = tf.zeros([1, 1, 20, 27]);
      for (const [y, x] of windows) {
        const pad: [number, number][] = [
          [0, 0],
          [0, 0],
          [y, 20 - y - 12],
          [x, 27 - x - 12],
        ];
        sum = tf.add(sum, tf.pad(model.forward(tf.slice(image, [0, 0, y, x], [1, 3, 12, 12])), pad));
        count = tf.add(count, tf.pad(tf.ones([1, 1, 12, 12]), pad));
      }
      return tf.div(sum, count);
    });
    const got = model.slideInference(image, { crop: 12, stride: 8 });
    expect(got.shape).toEqual([1, 3, 20, 27]);
    expect(tf.max(tf.abs(tf.sub(got, expected))).dataSync()[0]).toBeLessThan(1e-5);
    const small = tf.randomNormal([1, 3, 10, 9], 0, 1, 'float32', 6);
    expect(tf.max(tf.abs(tf.sub(model.slideInference(small, { crop: 12 }), model.forward(small)))).dataSync()[0]).toBeLessThan(1e-6);
    expect(() => model.slideInference(image, { crop: 12, stride: 13 })).toThrow(
      /slide stride \(at most the crop, so every pixel is covered\): expected an integer in \[1, 12\], got 13/,
    );
    const before = tf.memory().numTensors;
    model.slideInference(image, { crop: 12, stride: 8 }).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('layer-wise learning-rate decay', () => {
  it('numbers Swin V2 parameters as SwinV2LayerDecayOptimizerConstructor (24 layers for 2-2-18-2) and ViT layers as mmseg', () => {
    const d = [2, 2, 18, 2];
    const ids = [
      'backbone.patch_embed.projection.weight',
      'backbone.absolute_pos_embed',
      'backbone.stages.0.blocks.0.attn.w_msa.qkv.weight',
      'backbone.stages.0.blocks.1.norm1.weight',
      'backbone.stages.1.downsample.reduction.weight',
      'backbone.stages.1.blocks.0.ffn.layers.0.0.weight',
      'backbone.stages.2.blocks.17.attn.w_msa.logit_scale',
      'backbone.stages.3.blocks.1.norm2.bias',
      'backbone.norm3.weight',
      'decode_head.conv_seg.weight',
    ].map((n) => swinLayerId(n, d));
    expect(ids).toEqual([0, 0, 1, 2, 2, 3, 22, 24, 25, 25]);
    expect(
      [
        'backbone.cls_token',
        'backbone.patch_embed.projection.weight',
        'backbone.layers.0.ln1.weight',
        'backbone.layers.23.ffn.layers.1.weight',
        'decode_head.conv_seg.bias',
      ].map((n) => vitLayerId(n, 24)),
    ).toEqual([0, 0, 1, 24, 25]);
  });

  it('AdamW groups: rate · 0.9^(L+1−id), no weight decay for biases, norms and position tables, frozen encoder left out', () => {
    const t = new Finetuner({ numClasses: 3, steps: 10, lr: 1e-3, weightDecay: 0.05 });
    const groupOf = (name: string) => {
      const p = new Map(t.model.namedParameters()).get(name)!;
      return t.optimizer.groups.find((g) => g.params.includes(p))!;
    };
    // skysense-tiny HR: depths 2,2,2,2 → 8 layers, ids 0…9
    expect(groupOf('backbone.patch_embed.projection.weight').lr).toBeCloseTo(1e-3 * 0.9 ** 9, 12);
    expect(groupOf('backbone.stages.0.blocks.0.attn.w_msa.qkv.weight').lr).toBeCloseTo(1e-3 * 0.9 ** 8, 12);
    expect(groupOf('backbone.stages.3.blocks.1.ffn.layers.1.weight').lr).toBeCloseTo(1e-3 * 0.9, 12);
    expect(groupOf('decode_head.fpn_bottleneck.conv.weight').lr).toBeCloseTo(1e-3, 12);
    expect(groupOf('decode_head.fpn_bottleneck.conv.weight').weightDecay).toBe(0.05);
    for (const n of [
      'backbone.stages.0.blocks.0.norm1.weight',
      'decode_head.conv_seg.bias',
      'decode_head.bottleneck.bn.weight',
      'backbone.stages.0.blocks.0.attn.w_msa.logit_scale',
    ])
      expect(groupOf(n).weightDecay, n).toBe(0);
    t.dispose();
    const frozen = new Finetuner({ numClasses: 3, steps: 10, freezeBackbone: true });
    const inGroups = new Set(frozen.optimizer.groups.flatMap((g) => g.params));
    expect([...frozen.model.backbone.namedParameters()].some(([, p]) => inGroups.has(p))).toBe(false);
    expect([...(frozen.model as Segmentor).decodeHead.namedParameters()].every(([, p]) => inGroups.has(p))).toBe(true);
    frozen.dispose();
    const classifier = new Classifier(new TinyEncoder(), new LinearClsHead({ inChannels: 8, numClasses: 2 }));
    expect(() => finetuneOptimizer(classifier)).toThrow(/layer-wise decay knows Swin V2 and ViT encoders, got TinyEncoder/);
    expect(finetuneOptimizer(classifier, { layerDecayRate: 1 }).groups.length).toBe(2);
  });
});

describe('the iSAID preset against architecture guide §7 (shape-only, nothing allocated)', () => {
  it('upernet-skysense-hr has the official decode_head / auxiliary_head key shapes', () => {
    const model = shapeOnly(() => buildFinetuneModel('seg', 'upernet-skysense-hr', 16));
    const shapes = model.stateShapes();
    const want: [string, number[]][] = [
      ['decode_head.psp_modules.3.1.conv.weight', [512, 2816, 1, 1]],
      ['decode_head.bottleneck.conv.weight', [512, 4864, 3, 3]],
      ['decode_head.lateral_convs.0.conv.weight', [512, 352, 1, 1]],
      ['decode_head.lateral_convs.2.conv.weight', [512, 1408, 1, 1]],
      ['decode_head.fpn_convs.1.conv.weight', [512, 512, 3, 3]],
      ['decode_head.fpn_bottleneck.conv.weight', [512, 2048, 3, 3]],
      ['decode_head.conv_seg.weight', [16, 512, 1, 1]],
      ['auxiliary_head.convs.0.conv.weight', [256, 1408, 3, 3]],
      ['auxiliary_head.conv_seg.weight', [16, 256, 1, 1]],
      ['backbone.stages.3.blocks.1.ffn.layers.1.weight', [2816, 11264]],
    ];
    for (const [k, s] of want) expect(shapes.get(k), k).toEqual(s);
    expect(shapes.has('decode_head.bottleneck.conv.bias')).toBe(false);
    expect(shapes.get('decode_head.bottleneck.bn.num_batches_tracked')).toEqual([]);
  });
});

describe('segmentation fine-tuning', () => {
  const batch = (items: LabelledImage[], step: number) => {
    const g = new Generator(step);
    const views = items.map((it) =>
      cutWindow(
        it.image,
        it.mask,
        { scale: 1, y0: 0, x0: 0, size: 128, flip: g.random() < 0.5 },
        { mean: [128, 128, 128], std: [64, 64, 64] },
      ),
    );
    return {
      images: tf.tensor4d(Float32Array.from(views.flatMap((v) => [...v.image])), [items.length, 3, 128, 128]),
      labels: tf.tensor3d(Int32Array.from(views.flatMap((v) => [...v.mask])), [items.length, 128, 128], 'int32'),
    };
  };
  const runSteps = (t: Finetuner, items: LabelledImage[], from: number, to: number) => {
    const out: number[] = [];
    for (let s = from; s < to; s++) {
      const { images, labels } = batch(items, s);
      out.push(t.trainStep({ images, targets: labels }).loss);
      tf.dispose([images, labels]);
    }
    return out;
  };
  const items = synthetic(2, 128, 3);
  const opts = { numClasses: 2, steps: 40, lr: 2e-3, warmupIters: 2, seed: 4 };

  it('resumes exactly: 3 steps, save, resume, 3 steps gives the uninterrupted 6-step losses', () => {
    const straight = new Finetuner(opts);
    const expected = runSteps(straight, items, 0, 6);
    straight.dispose();
    const first = new Finetuner(opts);
    const head = runSteps(first, items, 0, 3);
    const file = join(dir, 'ft.safetensors');
    first.save(file);
    first.dispose();
    manualSeed(999);
    const resumed = Finetuner.resume(file);
    expect(resumed.step).toBe(3);
    expect([...head, ...runSteps(resumed, items, 3, 6)]).toEqual(expected);
    resumed.dispose();
  });

  it('loss falls and tensor count stays flat over 20 steps; a frozen encoder does not move; a NaN batch is refused, updating nothing', () => {
    const t = new Finetuner(opts);
    const losses = runSteps(t, items, 0, 2);
    const before = tf.memory().numTensors;
    losses.push(...runSteps(t, items, 2, 22));
    expect(tf.memory().numTensors).toBe(before);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    expect(mean(losses.slice(-5))).toBeLessThan(0.7 * mean(losses.slice(0, 5)));
    const snapshot = (m: Module) => [...m.namedParameters()].map(([, p]) => p.value.dataSync().slice());
    const w = snapshot(t.model);
    const { images, labels } = batch(items, 0);
    const bad = tf.mul(images, NaN);
    expect(() => t.trainStep({ images: bad, targets: labels })).toThrow(
      /trainStep images: contains NaN or infinite values \(step 23; nothing was updated\)/,
    );
    expect(snapshot(t.model)).toEqual(w);
    tf.dispose([images, labels, bad]);
    t.dispose();
    const f = new Finetuner({ ...opts, freezeBackbone: true });
    const enc = snapshot(f.model.backbone);
    const head = snapshot((f.model as Segmentor).decodeHead);
    runSteps(f, items, 0, 2);
    expect(snapshot(f.model.backbone)).toEqual(enc);
    expect(snapshot((f.model as Segmentor).decodeHead)).not.toEqual(head);
    f.dispose();
  });
});

describe('tasks are objects, looked up by name', () => {
  it('a task added with registerTask trains through Finetuner and taskBatch with no other change; unknown names list the registered ones', () => {
    registerTask({ ...segmentationTask, name: 'seg-copy', description: 'a copy of seg' });
    expect(listTasks()).toEqual(['seg', 'cls', 'multilabel', 'change', 'det', 'mm-cls', 'temporal-cls', 's2-seg', 'mm-seg', 'seg-copy']);
    const data = {
      task: 'seg-copy',
      classes: [
        { name: 'a', color: [0, 0, 0] },
        { name: 'b', color: [1, 1, 1] },
      ],
      samples: synthetic(2, 128, 1).map((s) => ({ name: s.name, images: [s.image], mask: s.mask })),
      stats: { mean: [0, 0, 0], std: [1, 1, 1] },
    } as TaskDataset;
    const t = new Finetuner({ task: 'seg-copy', numClasses: 2, steps: 1, seed: 0 });
    expect(t.options.preset).toBe('upernet-skysense-tiny');
    expect(t.model).toBeInstanceOf(Segmentor);
    const batch = taskBatch(data, data.samples, 128, new Generator(0));
    expect(batch.targets.shape).toEqual([2, 128, 128]);
    expect(Number.isFinite(t.trainStep(batch).loss)).toBe(true);
    tf.dispose([batch.images as Tensor, batch.targets]);
    t.dispose();
    expect(() => getTask('detection')).toThrow(
      /task: expected one of seg, cls, multilabel, change, det, mm-cls, temporal-cls, s2-seg, mm-seg, seg-copy, got 'detection'/,
    );
  });
});

describe('a task head on the multi-modal model', () => {
  it('SkySenseEncoder is a FeatureEncoder over SkySense inputs: a Classifier on F_fus trains, keys keep the official names', () => {
    manualSeed(3);
    const sky = SkySense.fromPreset('skysense-tiny');
    const enc = new SkySenseEncoder(sky, true);
    expect(enc.featureChannels).toEqual([2 * sky.neck.fusion.options.embedDims]);
    const clf = new Classifier(enc, new LinearClsHead({ inChannels: enc.featureChannels[0]!, numClasses: 3 }));
    const keys = [...clf.stateDict().keys()];
    expect(keys).toEqual(
      expect.arrayContaining([
        'backbone.backbone_gep.patch_embed.projection.weight',
        'backbone.fusion.cls_token',
        'backbone.ctpe',
        'head.fc.weight',
      ]),
    );
    const inputs = multiModalInputs();
    const targets = tf.tensor1d([0, 2], 'int32');
    const opt = new AdamW(clf, { lr: 1e-3 });
    const { value, grads } = valueAndGrads(clf, () => clf.loss(inputs, targets) as tf.Scalar);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    opt.step(grads);
    disposeGradients(grads);
    expect(clf.predict(inputs).shape).toEqual([2, 3]);
    expect(() => new SkySenseEncoder(SkySense.fromPreset('skysense-tiny', { geo: null }), true)).toThrow(/the model has no prototype bank/);
    tf.dispose([value, targets, inputs.hr, inputs.s2.frames, inputs.s1.frames]);
    opt.dispose();
    clf.dispose();
  });
});

describe('classification and change detection models', () => {
  it('Classifier (single- and multi-label) and ChangeDetector train, name bad inputs and keep the tensor count flat', () => {
    manualSeed(2);
    const x = tf.randomNormal([2, 3, 16, 16], 0, 1, 'float32', 1);
    const cls = new Classifier(new TinyEncoder(), new LinearClsHead({ inChannels: 8, numClasses: 3 }));
    expect(cls.forward(x).shape).toEqual([2, 3]);
    expect([...cls.stateShapes().keys()]).toContain('head.fc.weight');
    const multi = new Classifier(new TinyEncoder(), new LinearClsHead({ inChannels: 8, numClasses: 3, multiLabel: true }));
    const targets = tf.tensor2d([
      [1, 0, 1],
      [0, 1, 0],
    ]);
    const { optimizer } = finetuneOptimizer(multi, { layerDecayRate: 1, lr: 1e-2 });
    const losses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const { value, grads } = valueAndGrads(multi, () => multi.loss(x, targets) as tf.Scalar);
      losses.push(value.dataSync()[0]!);
      optimizer.step(grads);
      disposeGradients(grads);
      value.dispose();
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]!);
    const cd = new ChangeDetector(
      new TinyEncoder(),
      new ChangeDetectionHead({ inChannels: [4, 8], channels: 8, poolScales: [1, 2] }),
    ).eval();
    expect(cd.forward(x, tf.reverse(x, 3)).shape).toEqual([2, 2, 16, 16]);
    expect(cd.loss(x, x, tf.zeros([2, 16, 16], 'int32')).shape).toEqual([]);
    expect(() => cd.forward(x, tf.zeros([2, 3, 8, 8]))).toThrow(/date B \[2, 3, 8, 8\] must match date A \[2, 3, 16, 16\]/);
    const noChange = tf.zeros([2, 16, 16], 'int32');
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++)
      tf.dispose([cls.forward(x), cls.predict(x), multi.loss(x, targets), cd.forward(x, x), cd.loss(x, x, noChange)]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('other encoders under the heads', () => {
  it('a Sentinel ViT with the multi-level neck under UperNet (SkySense++ layout: out_indices of 4 layers, scales 4, 2, 1, 0.5)', () => {
    manualSeed(5);
    const vit = new VisionTransformer({ inChannels: 10, imgSize: 16, embedDims: 16, numLayers: 4, numHeads: 2, outIndices: [0, 1, 2, 3] });
    const seg = new Segmentor({
      backbone: vit,
      neck: new MultiLevelNeck({ inChannels: [16, 16, 16, 16], outChannels: 8, scales: [4, 2, 1, 0.5] }),
      decodeHead: new UPerHead({ inChannels: [8, 8, 8, 8], channels: 8, numClasses: 4 }),
    }).eval();
    expect([...seg.stateShapes().keys()].filter((k) => k.startsWith('neck.'))[0]).toBe('neck.lateral_convs.0.conv.weight');
    const x = tf.randomNormal([1, 10, 16, 16], 0, 1, 'float32', 2);
    expect(seg.features(x).map((f) => f.shape)).toEqual([
      [1, 8, 16, 16],
      [1, 8, 8, 8],
      [1, 8, 4, 4],
      [1, 8, 2, 2],
    ]);
    expect(seg.forward(x).shape).toEqual([1, 4, 16, 16]);
    expect(finetuneOptimizer(seg).groups.some((g) => g.name === 'layer_4_decay')).toBe(true);
  });

  it('an FCN head on the fused multi-modal map, with and without geo-context, trains', () => {
    manualSeed(6);
    const inputs = multiModalInputs();
    const labels = tf.tensor3d(
      Int32Array.from({ length: 2 * 16 * 16 }, (_, i) => (i % 16 < 8 ? 0 : 1)),
      [2, 16, 16],
      'int32',
    );
    for (const geoContext of [false, true]) {
      const seg = new FusionSegmentor(SkySense.fromPreset('skysense-tiny'), { numClasses: 2, channels: 8, geoContext });
      expect(seg.stateShapes().get('decode_head.convs.0.conv.weight')).toEqual([8, geoContext ? 64 : 32, 3, 3]);
      expect(seg.eval().forward(inputs, [16, 16]).shape).toEqual([2, 2, 16, 16]);
      seg.train();
      const { value, grads } = valueAndGrads(seg.decodeHead, () => seg.loss(inputs, labels) as tf.Scalar);
      expect(Number.isFinite(value.dataSync()[0])).toBe(true);
      expect(grads.size).toBe([...seg.decodeHead.namedParameters()].length);
      disposeGradients(grads);
      seg.dispose();
    }
    expect(() => new FusionSegmentor(SkySense.fromPreset('skysense-tiny', { geo: null }), { numClasses: 2, geoContext: true })).toThrow(
      /the model has no prototype bank/,
    );
  });
});

describe('fine-tuning every task from folders (runFinetune / runPredict / runEval)', () => {
  /** Writes an RGB PNG of a 128 × 128 picture given per-pixel values. */
  const png = (file: string, f: (x: number, y: number) => [number, number, number]) => {
    const rgb = new Uint8Array(128 * 128 * 3);
    for (let y = 0; y < 128; y++) for (let x = 0; x < 128; x++) rgb.set(f(x, y), 3 * (y * 128 + x));
    mkdirSync(dirname(file), { recursive: true });
    writePng(file, rgb, 128, 128);
  };
  const noise = (seed: number) => {
    const g = new Generator(seed);
    return () => Math.round(40 * g.random());
  };
  const quiet = () => undefined;

  it('cls: an ImageFolder of two classes; per-class hold-out; accuracy table; predict writes probabilities', async () => {
    const data = join(dir, 'cls-data');
    for (let i = 0; i < 4; i++) {
      const n = noise(i);
      png(join(data, 'dark', `d${i}.png`), () => [30 + n(), 30 + n(), 40 + n()]);
      png(join(data, 'bright', `b${i}.png`), () => [200 + n(), 190 + n(), 150 + n()]);
    }
    const r = await runFinetune({ task: 'cls', data, out: join(dir, 'cls'), steps: 12, batchSize: 4, lr: 3e-3, log: quiet });
    expect((r.evaluation!.scores as { oa: number }).oa).toBe(1);
    const ev = JSON.parse(readFileSync(join(dir, 'cls', 'eval.json'), 'utf8'));
    expect(ev.samples).toEqual(['bright/b3', 'dark/d3']);
    const written = await runPredict({
      model: join(dir, 'cls', 'model.safetensors'),
      inputs: [join(data, 'dark', 'd3.png')],
      out: join(dir, 'cls-pred'),
      log: quiet,
    });
    const probs = JSON.parse(readFileSync(written[0]!, 'utf8')).d3;
    expect(probs.dark).toBeGreaterThan(probs.bright);
    expect(probs.dark + probs.bright).toBeCloseTo(1, 5);
  });

  it('change: A/B/label pairs; the change class scored by precision, recall, F1; masks drawn A | B | prediction | truth', async () => {
    const data = join(dir, 'cd-data');
    for (let i = 0; i < 3; i++) {
      const n = noise(10 + i);
      const inside = (x: number, y: number) => x >= 20 * i + 10 && x < 20 * i + 60 && y >= 30 && y < 90;
      png(join(data, 'A', `p${i}.png`), () => [90 + n(), 100 + n(), 80 + n()]);
      png(join(data, 'B', `p${i}.png`), (x, y) => (inside(x, y) ? [230, 230, 230] : [90 + n(), 100 + n(), 80 + n()]));
      png(join(data, 'label', `p${i}.png`), (x, y) => (inside(x, y) ? [255, 255, 255] : [0, 0, 0]));
    }
    const r = await runFinetune({ task: 'change', data, out: join(dir, 'cd'), steps: 4, batchSize: 2, holdOut: 1, log: quiet });
    expect(Object.keys(r.evaluation!.scores)).toEqual(expect.arrayContaining(['precision', 'recall', 'f1', 'iou', 'oa']));
    expect(r.evaluation!.table).toMatch(/change: precision .* recall .* F1 .* IoU/);
    const side = decodePng(readFileSync(join(dir, 'cd', 'predictions', 'p2.side.png')));
    expect(side.width).toBe(4 * 128 + 3 * 8);
    const e = await runEval({ model: join(dir, 'cd', 'model.safetensors'), data, last: 1, log: quiet });
    expect(e.scores).toEqual(r.evaluation!.scores);
    await expect(
      runPredict({
        model: join(dir, 'cd', 'model.safetensors'),
        inputs: [join(data, 'A', 'p0.png')],
        out: join(dir, 'cd-pred'),
        log: quiet,
      }),
    ).rejects.toThrow(/expected pairs of images \(A B A B …\), got 1 file/);
  });

  it('det: a VOC folder of bright boxes on noise; mAP table; eval pictures prediction | truth; predict draws boxes, writes JSON and GeoJSON', async () => {
    const data = join(dir, 'det-data');
    const boxes: number[][][] = [
      [[20, 30, 70, 80]],
      [
        [60, 10, 110, 50],
        [10, 70, 50, 120],
      ],
      [],
      [[40, 40, 100, 90]],
    ];
    mkdirSync(join(data, 'Annotations'), { recursive: true });
    boxes.forEach((bs, i) => {
      const n = noise(20 + i);
      const inside = (x: number, y: number) => bs.some(([x1, y1, x2, y2]) => x >= x1! && x < x2! && y >= y1! && y < y2!);
      png(join(data, 'JPEGImages', `d${i}.png`), (x, y) => (inside(x, y) ? [230, 220, 200] : [40 + n(), 60 + n(), 50 + n()]));
      writeVocAnnotation(join(data, 'Annotations', `d${i}.xml`), {
        filename: `d${i}.png`,
        width: 128,
        height: 128,
        objects: bs.map((b) => ({ name: 'roof', bbox: b as [number, number, number, number], difficult: false })),
      });
    });
    const r = await runFinetune({ task: 'det', data, out: join(dir, 'det'), steps: 3, batchSize: 2, crop: 128, holdOut: 1, log: quiet });
    expect(r.evaluation!.table).toMatch(/roof +1 +\d+ +\d\.\d{3} +\d\.\d{3}\nmAP +\d\.\d{3}/);
    expect(Object.keys(r.evaluation!.scores)).toEqual(['mAP', 'ap', 'detections']);
    expect(decodePng(readFileSync(join(dir, 'det', 'predictions', 'd3.side.png'))).width).toBe(2 * 128 + 8);
    const e = await runEval({ model: join(dir, 'det', 'model.safetensors'), data, last: 1, log: quiet });
    expect(e.scores).toEqual(r.evaluation!.scores);
    // a det trainer resumes exactly: 2 steps, save, resume, 2 steps = 4 steps straight (each batch carries its sampling seed)
    const d = await loadTaskDataset('det', data);
    const g = new Generator(5);
    const batches = Array.from({ length: 4 }, () => taskBatch(d, d.samples.slice(0, 2), 128, g));
    const opts = { task: 'det', numClasses: 1, steps: 4, seed: 0 } as const;
    const straight = new Finetuner(opts);
    const expected = batches.map((b) => straight.trainStep(b).loss);
    straight.dispose();
    const first = new Finetuner(opts);
    const got = batches.slice(0, 2).map((b) => first.trainStep(b).loss);
    first.save(join(dir, 'det-trainer.safetensors'));
    first.dispose();
    const resumed = Finetuner.resume(join(dir, 'det-trainer.safetensors'));
    got.push(...batches.slice(2).map((b) => resumed.trainStep(b).loss));
    resumed.dispose();
    expect(got).toEqual(expected);
    batches.forEach((b) => tf.dispose([b.images as Tensor, b.targets]));
    // the same set as COCO (annotations.json + images/), read with a stored run's class order
    const coco = join(dir, 'det-coco');
    mkdirSync(join(coco, 'images'), { recursive: true });
    boxes.forEach((_, i) => writeFileSync(join(coco, 'images', `d${i}.png`), readFileSync(join(data, 'JPEGImages', `d${i}.png`))));
    const annotations = boxes.flatMap((bs, i) =>
      bs.map(([x1, y1, x2, y2]) => ({ image_id: i, category_id: 4, bbox: [x1, y1, x2! - x1!, y2! - y1!] })),
    );
    writeFileSync(
      join(coco, 'annotations.json'),
      JSON.stringify({
        images: boxes.map((_, i) => ({ id: i, file_name: `d${i}.png` })),
        annotations,
        categories: [{ id: 4, name: 'roof' }],
      }),
    );
    const fromCoco = await loadTaskDataset('det', coco, [
      { name: 'tree', color: [0, 0, 0] },
      { name: 'roof', color: [0, 0, 0] },
    ]);
    expect(fromCoco.classes.map((c) => c.name)).toEqual(['tree', 'roof']);
    expect(fromCoco.samples.map((s) => Array.from(s.boxLabels!))).toEqual([[1], [1, 1], [], [1]]);
    expect(Array.from(fromCoco.samples[1]!.boxes!)).toEqual(boxes[1]!.flat());
    // a georeferenced copy of one image (UTM 14N, 1 m pixels): boxes in lon/lat
    const rgb = decodePng(readFileSync(join(data, 'JPEGImages', 'd3.png')));
    const tif = writeGeoTiffLike(
      join(dir, 'geo3.tif'),
      { width: 128, height: 128, origin: [500000, 5300000], resolution: [1, -1], epsg: 32614 },
      rgb.data,
      bandTags(3, 8),
    );
    const model = join(dir, 'det', 'model.safetensors');
    const written = await runPredict({ model, inputs: [join(data, 'JPEGImages', 'd3.png'), tif], out: join(dir, 'det-pred'), log: quiet });
    expect(written.map((f) => f.slice(join(dir, 'det-pred').length + 1))).toEqual([
      'd3.png',
      'geo3.png',
      'detections.json',
      'detections.geojson',
    ]);
    const json = JSON.parse(readFileSync(written[2]!, 'utf8'));
    expect(Object.keys(json)).toEqual(['d3', 'geo3']);
    const geo = JSON.parse(readFileSync(written[3]!, 'utf8'));
    expect(geo.type).toBe('FeatureCollection');
    expect(geo.features.length).toBe(json.geo3.length);
    expect(geo.features.length).toBeGreaterThan(0);
    // every corner: pixel (x, y) → UTM (500000 + x, 5300000 − y) → WGS 84, counter-clockwise from the top left
    geo.features.forEach((f: { geometry: { coordinates: number[][][] } }, k: number) => {
      const [x1, y1, x2, y2] = json.geo3[k].bbox as number[];
      const corners = [
        [x1, y1],
        [x1, y2],
        [x2, y2],
        [x2, y1],
        [x1, y1],
      ].map(([x, y]) => toLatLon(500000 + x!, 5300000 - y!, 32614).reverse());
      f.geometry.coordinates[0]!.forEach((p, i) => {
        expect(p[0]).toBeCloseTo(corners[i]![0]!, 9);
        expect(p[1]).toBeCloseTo(corners[i]![1]!, 9);
      });
    });
    expect(geo.features[0].geometry.coordinates[0][0][0]).toBeCloseTo(-99, 0); // UTM 14N's central meridian
  });

  it('det sample data: the Dubai buildings converted once into the cache (161 boxes in 9 tiles), then reused', async () => {
    const cache = join(dir, 'cache');
    const saved = process.env.SKYSENSE_CACHE;
    process.env.SKYSENSE_CACHE = cache;
    try {
      const d = await loadTaskDataset('det', undefined);
      expect(d.classes.map((c) => c.name)).toEqual(['Building']);
      expect([d.samples.length, d.samples.reduce((a, s) => a + s.boxLabels!.length, 0)]).toEqual([9, 161]);
      expect(readdirSync(cache)).toEqual(['dubai-aerial-boxes']); // no temporary folder left
      const again = await loadTaskDataset('det', undefined);
      expect(again.samples.map((s) => s.name)).toEqual(d.samples.map((s) => s.name));
    } finally {
      if (saved === undefined) delete process.env.SKYSENSE_CACHE;
      else process.env.SKYSENSE_CACHE = saved;
    }
  });

  it('multilabel: BigEarthNet-S2 patches of the samples (10 bands, labels from the metadata) on the tiny S2 ViT; mAP', async () => {
    const r = await runFinetune({ task: 'multilabel', out: join(dir, 'ben'), steps: 3, batchSize: 2, log: quiet });
    const s = r.evaluation!.scores as { ap: number[]; mAP: number };
    expect(s.ap.length).toBe(19); // BigEarthNet-19
    expect(s.mAP).toBeGreaterThan(0);
    expect(s.mAP).toBeLessThanOrEqual(1);
    expect(r.evaluation!.table).toMatch(
      /mAP \d+\.\d\d, micro-F1 \d+\.\d\d, macro-F1 \d+\.\d\d over 2 samples \(AP of classes without a positive left out; F1 at p ≥ 0\.5\)/,
    );
    expect(r.metrics).toHaveLength(3);
  });
});
