import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator, initBackend, tf } from '@skysense/core-tensor';
import { bandTags, expectClose, writeGeoTiffLike } from '@skysense/test-utils';
import { BEN19_CLASSES, BEN19_FROM_BEN43, BEN43_CLASSES, indexBigEarthNet, samplesDir } from '@skysense/data';
import { type Classifier, type SkySenseInputs, loadFinetuned, loadTaskDataset, runEval, runFinetune, runPredict } from '../src/index';
import { sentinelInputs, wholeWindow } from '../src/finetune/sentinel-inputs';

const root = join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');
const dir = mkdtempSync(join(tmpdir(), 'skysense-mm-'));
const quiet = () => {};

/** A BigEarthNet-MM split of some of the sample pairs (symlinked S2 and S1 patch folders). */
function split(name: string, pick: (i: number) => boolean): string {
  const out = join(dir, name);
  for (const sub of ['BigEarthNet-S2', 'BigEarthNet-S1']) {
    mkdirSync(join(out, sub), { recursive: true });
    const s2Names = readdirSync(join(root, 'BigEarthNet-S2')).sort();
    readdirSync(join(root, sub))
      .sort()
      .forEach((p, i) => {
        const idx = sub === 'BigEarthNet-S2' ? i : s2Names.findIndex((s) => s.slice(-5) === p.slice(-5));
        if (pick(idx)) symlinkSync(join(root, sub, p), join(out, sub, p));
      });
  }
  return out;
}
const lossesOf = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { loss: number }).loss);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('multi-modal classification (BigEarthNet-MM: S2 + S1 → fused → multi-label)', () => {
  let a: string;
  let b: string;
  beforeAll(async () => {
    await initBackend();
    [a, b] = [split('a', (i) => i < 4), split('b', (i) => i >= 4)];
  });

  it('streams batches from worker threads exactly as the in-memory loader, and resumes exactly', async () => {
    const common = { task: 'mm-cls', data: a, steps: 4, batchSize: 2, holdOut: 1, checkpointEvery: 2, seed: 2, log: quiet } as const;
    const before = tf.memory().numTensors;
    await runFinetune({ ...common, out: join(dir, 'stream'), loader: 'stream', workers: 1 });
    await runFinetune({ ...common, out: join(dir, 'memory'), loader: 'memory' });
    expect(tf.memory().numTensors).toBe(before);
    const stream = lossesOf(join(dir, 'stream'));
    expect(stream).toHaveLength(4);
    expect(stream.every(Number.isFinite)).toBe(true);
    expect(lossesOf(join(dir, 'memory'))).toEqual(stream);
    const crash = (line: string) => {
      if (line.startsWith('step 3/')) throw new Error('simulated crash');
    };
    await expect(runFinetune({ ...common, out: join(dir, 'crash'), workers: 1, log: crash })).rejects.toThrow(/simulated crash/);
    await runFinetune({ ...common, out: join(dir, 'crash'), workers: 1, resume: true });
    expect(lossesOf(join(dir, 'crash'))).toEqual(stream);
    const evaluation = JSON.parse(readFileSync(join(dir, 'stream', 'eval.json'), 'utf8'));
    expect(evaluation.classes).toEqual(BEN19_CLASSES);
    expect(Object.keys(evaluation)).toEqual(expect.arrayContaining(['mAP', 'microF1', 'macroF1', 'f1', 'ap']));
    expect(readdirSync(join(dir, 'stream', 'predictions')).sort()).toEqual(['S2A_MSIL2A_20171221T112501_56_35.bars.png', 'classes.png']);
  });

  it("scores another split on the run's class list, not on the labels that split holds", async () => {
    const model = join(dir, 'stream', 'model.safetensors');
    const { classes } = loadFinetuned(model);
    const ben19Of = (labels: string[]) => new Set(labels.map((l) => BEN19_CLASSES[BEN19_FROM_BEN43[BEN43_CLASSES.indexOf(l)]!]));
    const present = new Set(
      indexBigEarthNet(b, { classes: 'ben43' }).entries.flatMap((e) => [...ben19Of(BEN43_CLASSES.filter((_, k) => e.targets[k]))]),
    );
    const r = await runEval({ model, data: b, log: quiet });
    const ap = r.scores.ap as number[];
    expect(ap).toHaveLength(19);
    // AP is defined exactly for the run's classes that split b has positives of (0.2 re-derived the list from b's labels)
    expect(classes.filter((_, k) => !Number.isNaN(ap[k]!)).map((c) => c.name)).toEqual(BEN19_CLASSES.filter((n) => present.has(n)));
    const written = await runPredict({ model, inputs: [b], out: join(dir, 'pred'), log: quiet });
    const json = JSON.parse(readFileSync(written.at(-1)!, 'utf8'));
    expect(Object.keys(json)).toHaveLength(2);
    expect(Object.keys(Object.values(json)[0] as object)).toEqual(BEN19_CLASSES);
  });

  it('multilabel (S2 only) with the 43 classes keeps them in the run; options are checked first', async () => {
    const out = join(dir, 'ben43');
    await runFinetune({ task: 'multilabel', data: join(a, 'BigEarthNet-S2'), classes: 'ben43', steps: 1, batchSize: 2, out, log: quiet });
    expect(loadFinetuned(join(out, 'model.safetensors')).classes.map((c) => c.name)).toEqual(BEN43_CLASSES);
    const r = await runEval({ model: join(out, 'model.safetensors'), data: join(b, 'BigEarthNet-S2'), log: quiet });
    expect((r.scores.ap as number[]).length).toBe(43);
    await expect(runFinetune({ task: 'mm-cls', out: join(dir, 'x'), loader: 'disk' as never, log: quiet })).rejects.toThrow(
      /loader: expected 'stream' or 'memory', got "disk"/,
    );
    await expect(runFinetune({ task: 'mm-cls', out: join(dir, 'x'), workers: -1, log: quiet })).rejects.toThrow(/workers/);
    await expect(runFinetune({ task: 'seg', out: join(dir, 'x'), loader: 'stream', log: quiet })).rejects.toThrow(
      /loader: task seg reads its data into memory \(streaming serves multilabel, mm-cls, temporal-cls, mm-seg\), got "stream"/,
    );
    expect(readdirSync(dir)).not.toContain('x'); // refused before anything was written
  });
});

describe('temporal classification (fMoW-Sentinel style: S2 series of any length → fusion over dates → softmax)', () => {
  const series = join(dir, 'series');
  beforeAll(async () => {
    await initBackend();
    const g = new Generator(9);
    const grid = {
      width: 8,
      height: 8,
      origin: [465000, 5080000] as [number, number],
      resolution: [10, -10] as [number, number],
      epsg: 32633,
    };
    // class "crops": bright NIR; class "water": dark; 3 series each of 1–3 frames, 13-band L1C (one 12-band L2A)
    ['crops', 'water'].forEach((cls, c) =>
      [1, 2, 3].forEach((t, i) => {
        const folder = join(series, cls, `s${i}`);
        mkdirSync(folder, { recursive: true });
        for (let f = 0; f < t; f++) {
          const bands = cls === 'crops' && i === 2 ? 12 : 13;
          const px = Uint16Array.from({ length: bands * 64 }, (_, k) => (c === 0 && k % bands >= 6 ? 3000 : 400) + g.randint(300));
          writeGeoTiffLike(join(folder, `frame_2021-0${3 + 2 * f}-15.tif`), grid, px, bandTags(bands, 16));
        }
      }),
    );
  });

  it('trains on padded series (frames masked, dates null), reports top-1 / top-5; a padded series scores as alone', async () => {
    const out = join(dir, 'temporal');
    const r = await runFinetune({
      task: 'temporal-cls',
      data: series,
      out,
      steps: 3,
      batchSize: 3,
      crop: 8,
      holdOut: 1,
      workers: 1,
      log: quiet,
    });
    // held out per class, as cls: the last series of each
    expect(JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8')).samples).toEqual(['crops/s2', 'water/s2']);
    const s = r.evaluation!.scores as { top1: number; top5: number };
    expect(s.top5).toBe(1); // two classes
    expect(r.evaluation!.table).toMatch(/top-1 \d+\.\d\d, top-5 100\.00 over 2 series/);
    const { model } = loadFinetuned(join(out, 'model.safetensors'));
    const d = await loadTaskDataset('temporal-cls', series);
    const [one, three] = [d.samples.find((x) => x.images.length === 1)!, d.samples.find((x) => x.images.length === 3)!];
    expect(three.dates).toEqual(['2021-03-15', '2021-05-15', '2021-07-15']);
    const layout = (x: { images: unknown[] }) => ({ s2: x.images.map((_, k) => k), s1: [] });
    const windows = [one, three].map((x) => wholeWindow(x.images[0]!));
    const both = sentinelInputs([one, three], windows, layout);
    expect(both.s2!.frames.shape).toEqual([2, 3, 10, 8, 8]);
    expect(both.s2!.valid).toEqual([
      [true, false, false],
      [true, true, true],
    ]);
    expect(both.s2!.dates![0]).toEqual([one.dates![0], null, null]);
    const alone = sentinelInputs([one], [windows[0]!], layout);
    const [pb, pa] = [(model as Classifier<SkySenseInputs>).predict(both), (model as Classifier<SkySenseInputs>).predict(alone)];
    expectClose(pb.slice([0, 0], [1, -1]), pa, 1e-5);
    tf.dispose([pb, pa, both.s2!.frames, both.s2!.pixelValid!, alone.s2!.frames, alone.s2!.pixelValid!]);
    model.dispose();
    await expect(loadTaskDataset('temporal-cls', undefined)).rejects.toThrow(/--data: task temporal-cls needs a data folder/);
  });
});

describe('Sentinel-2 segmentation (s2-seg: ViT → MultiLevelNeck → UperNet)', () => {
  beforeAll(() => initBackend());
  it('trains on 13-band L1C tiles with masks, scores mIoU, keeps mmseg neck keys, predicts a mask from a tile', async () => {
    const data = join(dir, 's2seg');
    mkdirSync(join(data, 'images'), { recursive: true });
    mkdirSync(join(data, 'masks'), { recursive: true });
    const g = new Generator(5);
    const grid = {
      width: 32,
      height: 32,
      origin: [465000, 5080000] as [number, number],
      resolution: [10, -10] as [number, number],
      epsg: 32633,
    };
    for (let t = 0; t < 3; t++) {
      const edge = 10 + 5 * t; // water left of the edge, fields right of it
      const px = Uint16Array.from({ length: 13 * 1024 }, (_, k) => {
        const [p, b] = [Math.floor(k / 13), k % 13];
        return (p % 32 >= edge ? (b >= 6 ? 3000 : 600) : 200) + g.randint(100);
      });
      writeGeoTiffLike(join(data, 'images', `t${t}.tif`), grid, px, bandTags(13, 16));
      writeGeoTiffLike(
        join(data, 'masks', `t${t}.tif`),
        grid,
        Uint8Array.from({ length: 1024 }, (_, p) => (p % 32 >= edge ? 1 : 0)),
      );
    }
    writeFileSync(
      join(data, 'classes.json'),
      JSON.stringify([
        { name: 'water', color: [0, 0, 255] },
        { name: 'field', color: [0, 255, 0] },
      ]),
    );
    const out = join(dir, 's2seg-run');
    const r = await runFinetune({ task: 's2-seg', data, out, steps: 3, batchSize: 2, holdOut: 1, log: quiet });
    const s = r.evaluation!.scores as { mIoU: number };
    expect(s.mIoU).toBeGreaterThanOrEqual(0);
    expect(r.evaluation!.table).toMatch(/water.*\n.*field/);
    const { model } = loadFinetuned(join(out, 'model.safetensors'));
    expect([...model.stateDict().keys()]).toEqual(
      expect.arrayContaining(['neck.lateral_convs.0.conv.weight', 'neck.convs.3.conv.weight', 'decode_head.conv_seg.weight']),
    );
    model.dispose();
    const written = await runPredict({
      model: join(out, 'model.safetensors'),
      inputs: [join(data, 'images', 't0.tif')],
      out: join(dir, 's2seg-pred'),
      log: quiet,
    });
    expect(written).toEqual([join(dir, 's2seg-pred', 't0.png')]);
    await expect(runFinetune({ task: 's2-seg', out: join(dir, 'y'), log: quiet })).rejects.toThrow(
      /--data: task s2-seg needs a data folder/,
    );
  });
});

describe('multi-modal segmentation (mm-seg: HR + S2 + S1 series → fusion → UperNet / FCN)', () => {
  beforeAll(() => initBackend());
  it('trains on manifest samples (HR resampled onto the fusion grid, series of 2 and 1 dates), scores mIoU, draws, predicts', async () => {
    const data = join(dir, 'mmseg');
    mkdirSync(data, { recursive: true });
    const g = new Generator(11);
    const grid = (px: number, n: number) => ({
      width: n,
      height: n,
      origin: [465000, 5080000] as [number, number],
      resolution: [px, -px] as [number, number],
      epsg: 32633,
    });
    const samples = [0, 1].map((k) => {
      const edge = 3 + 2 * k;
      const right = (p: number, n: number) => p % n >= (edge * n) / 8;
      writeGeoTiffLike(
        join(data, `hr${k}.tif`),
        grid(1, 80),
        Uint8Array.from({ length: 3 * 6400 }, (_, i) => (right(Math.floor(i / 3), 80) ? 200 : 40) + g.randint(30)),
        bandTags(3, 8),
      );
      const s2 = ['2021-05-01', '2021-08-01'].map((date) => {
        const file = join(data, `s2_${k}_${date}.tif`);
        writeGeoTiffLike(
          file,
          grid(10, 8),
          Uint16Array.from({ length: 13 * 64 }, (_, i) => (right(Math.floor(i / 13), 8) ? 2500 : 300) + g.randint(200)),
          bandTags(13, 16),
        );
        return { file, bandMap: 'auto', date };
      });
      const [vv, vh] = ['vv', 'vh'].map((b) =>
        writeGeoTiffLike(
          join(data, `${b}${k}.tif`),
          grid(10, 8),
          Float32Array.from({ length: 64 }, () => -15 + 5 * g.random()),
          { SampleFormat: [3] },
        ),
      );
      writeGeoTiffLike(
        join(data, `mask${k}.tif`),
        grid(10, 8),
        Uint8Array.from({ length: 64 }, (_, p) => (right(p, 8) ? 1 : 0)),
      );
      return { name: `field${k}`, hr: `hr${k}.tif`, s2, s1: [{ vv, vh, date: '2021-06-01' }], mask: `mask${k}.tif`, anyDtype: true };
    });
    writeFileSync(join(data, 'samples.json'), JSON.stringify(samples));
    writeFileSync(
      join(data, 'classes.json'),
      JSON.stringify([
        { name: 'meadow', color: [0, 160, 0] },
        { name: 'field', color: [220, 200, 0] },
      ]),
    );
    const out = join(dir, 'mmseg-run');
    const before = tf.memory().numTensors;
    const r = await runFinetune({ task: 'mm-seg', data, out, steps: 2, batchSize: 2, workers: 1, log: quiet });
    expect(tf.memory().numTensors).toBe(before);
    expect((r.evaluation!.scores as { mIoU: number }).mIoU).toBeGreaterThanOrEqual(0);
    expect(readdirSync(join(out, 'predictions')).sort()).toEqual(['field1.png', 'field1.side.png']);
    const { model } = loadFinetuned(join(out, 'model.safetensors'));
    const keys = [...model.stateDict().keys()];
    expect(keys).toEqual(
      expect.arrayContaining([
        'neck.lateral_convs.0.conv.weight',
        'decode_head.conv_seg.weight',
        'backbone.backbone_gep.patch_embed.projection.weight',
      ]),
    );
    model.dispose();
    const fcn = await runFinetune({
      task: 'mm-seg',
      preset: 'fcn-skysense-tiny-mm',
      data,
      out: join(dir, 'mmseg-fcn'),
      steps: 1,
      batchSize: 2,
      loader: 'memory',
      log: quiet,
    });
    expect(fcn.evaluation!.table).toMatch(/meadow.*\n.*field/);
    const written = await runPredict({ model: join(out, 'model.safetensors'), inputs: [data], out: join(dir, 'mmseg-pred'), log: quiet });
    expect(written.map((f) => f.slice(join(dir, 'mmseg-pred').length + 1))).toEqual(['field0.png', 'field1.png']);
  });
});
