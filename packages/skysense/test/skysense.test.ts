import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, loadSafetensors, manualSeed, saveSafetensors, shapeOnly, tf, type Tensor } from '@skysense/core-tensor';
import { SkySense, createModel, formatBreakdown, listModels, type SkySenseInputs } from '../src/index';
import { expectNoLeak, maxAbsDiff } from '@skysense/test-utils';
import { SwinTransformerV2 } from '@skysense/swin';
import { forwardFixture, runFixture } from '../src/verify';

const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-model-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function inputs(b = 2): SkySenseInputs {
  return {
    hr: tf.randomNormal([b, 3, 128, 128], 0, 1, 'float32', 1),
    s2: {
      frames: tf.randomNormal([b, 3, 10, 4, 4], 0, 1, 'float32', 2),
      dates: Array.from({ length: b }, () => ['2021-04-01', '2021-06-01', '2021-08-01']),
      valid: [
        [true, true, false],
        [true, true, true],
      ].slice(0, b),
    },
    s1: { frames: tf.randomNormal([b, 2, 2, 4, 4], 0, 1, 'float32', 3) },
    lat: [43.6, -33.9].slice(0, b),
    lon: [1.44, 151.2].slice(0, b),
  };
}

describe('SkySense (assembled)', () => {
  beforeAll(() => initBackend());

  it('skysense-2b breakdown: 1.659 B released parameters + 0.419 B prototype bank, from shapes, in seconds', () => {
    const t0 = performance.now();
    const bytes = tf.memory().numBytes;
    const model = shapeOnly(() => SkySense.fromPreset('skysense-2b'));
    const rows = Object.fromEntries(model.breakdown().map((r) => [r.prefix, r.parameters + r.bufferValues]));
    expect(rows).toEqual({
      backbone_gep: 655_074_704,
      backbone_s2: 302_738_432,
      backbone_s1: 302_607_360,
      head_s2: 46_182_400,
      head_s1: 46_182_400,
      fusion: 305_195_008,
      ctpe: 1_027_840,
      glbank: 419_430_400,
    });
    const text = formatBreakdown(model.breakdown());
    console.log(`skysense-2b:\n${text}`);
    expect(text).toMatch(/released modules\s+1,659,008,144/);
    expect(text).toMatch(/total\s+2,078,438,544 {2}\(2\.078 B\)/);
    expect(model.parameterCount()).toBe(1_659_008_144);
    expect(tf.memory().numBytes).toBe(bytes);
    expect(performance.now() - t0).toBeLessThan(10_000);
    const keys = [...model.stateShapes().keys()];
    expect(keys.filter((k) => !k.includes('.'))).toEqual(['ctpe']);
    expect(new Set(keys.map((k) => k.split('.')[0]))).toEqual(
      new Set(['ctpe', 'head_s2', 'head_s1', 'fusion', 'backbone_gep', 'backbone_s2', 'backbone_s1', 'glbank']),
    );
  });

  it('runs every modality subset on the tiny preset; geo-context doubles the width', () => {
    manualSeed(0);
    const model = SkySense.fromPreset('skysense-tiny').eval();
    const x = inputs();
    const full = model.forward(x);
    expect(full.fused.shape).toEqual([2, 32, 4, 4]);
    expect(full.withGeoContext!.shape).toEqual([2, 64, 4, 4]);
    // the dropped S2 frame of sample 0 shows in the coverage: 5 of its 6 tokens (HR, 3 S2, 2 S1) hold data
    expect(full.coverage!.shape).toEqual([2, 1, 4, 4]);
    const cov = full.coverage!.dataSync();
    expect(cov.slice(0, 16).every((v) => Math.abs(v - 5 / 6) < 1e-6)).toBe(true);
    expect(cov.slice(16).every((v) => v === 1)).toBe(true);
    tf.dispose([full.fused, full.withGeoContext!, full.coverage!]);
    for (const subset of [{ hr: x.hr }, { s2: x.s2 }, { s1: x.s1 }, { s2: x.s2, s1: x.s1 }, { hr: x.hr, s1: x.s1 }]) {
      const out = model.forward(subset);
      expect(out.fused.shape).toEqual([2, 32, 4, 4]);
      expect(out.withGeoContext).toBeUndefined();
      tf.dispose([out.fused, out.coverage].filter((t) => t !== undefined));
    }
    const warm = model.forward(x);
    tf.dispose([warm.fused, warm.withGeoContext!, warm.coverage!]);
    const before = tf.memory().numTensors;
    const again = model.forward(x);
    tf.dispose([again.fused, again.withGeoContext!, again.coverage!]);
    expect(tf.memory().numTensors).toBe(before);
    const hrOnly = SkySense.fromPreset('skysense-tiny', { s2: null, s1: null });
    expect(() => hrOnly.forward({ s2: x.s2 })).toThrow(/input 's2' given, but the model has no s2 encoder/);
    expect(() => model.forward({ ...x, lat: [91, 0] })).toThrow(/lat: expected a latitude in \[-90, 90\], got 91/);
    const beforeBad = tf.memory().numTensors; // a refused location frees the fused map it had computed
    expect(() => model.forward({ ...x, lon: [500, 0] })).toThrow(/lon: expected a longitude in \[-180, 360\], got 500/);
    expect(tf.memory().numTensors).toBe(beforeBad);
    model.dispose();
    hrOnly.dispose();
  });

  it('NaN and Inf in input tensors are nodata: outputs finite, coverage lowered where they were, nothing leaked', () => {
    manualSeed(0);
    const model = SkySense.fromPreset('skysense-tiny').eval();
    const x = inputs();
    const frames = x.s2!.frames.arraySync() as number[][][][][];
    frames[1]![0]![3]![0]![0] = NaN;
    frames[1]![1]![0]![0]![0] = Infinity;
    const hr = x.hr!.arraySync() as number[][][][];
    hr[0]![0]![0]![0] = NaN;
    const dirty = { ...x, hr: tf.tensor4d(hr), s2: { ...x.s2!, frames: tf.tensor5d(frames) } };
    const warm = model.forward(x); // the first eval forward keeps each Swin block's position bias
    tf.dispose(Object.values(warm).filter((v): v is Tensor => v instanceof tf.Tensor));
    const before = tf.memory().numTensors;
    const out = model.forward(dirty);
    expect(Array.from(out.fused.dataSync()).every(Number.isFinite)).toBe(true);
    expect(Array.from(out.withGeoContext!.dataSync()).every(Number.isFinite)).toBe(true);
    const cov = out.coverage!.arraySync() as number[][][][];
    // sample 1: two of its three 4 × 4 px S2 frames hold a bad pixel, and a frame is one ViT patch: out everywhere
    expect(cov[1]!.flat(2).every((c) => Math.abs(c - 4 / 6) < 1e-6)).toBe(true);
    // sample 0: its HR pixel (0, 0) takes out the HR token of cell (0, 0) (32 × 32 px); its third S2 frame is dropped
    expect(cov[0]![0]![0]![0]).toBeCloseTo(4 / 6, 6);
    expect(cov[0]![0]![3]![3]).toBeCloseTo(5 / 6, 6);
    tf.dispose([out.fused, out.withGeoContext!, out.coverage!]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x.hr!, x.s2!.frames, x.s1!.frames, dirty.hr, dirty.s2.frames]);
    model.dispose();
  });

  it('loads the six released files by path (backbone. prefixes, ctpe from the S2 file) and reproduces the outputs', () => {
    manualSeed(1);
    const src = SkySense.fromPreset('skysense-tiny', { geo: null }).eval();
    src.neck.ctpe.assign(tf.randomNormal(src.neck.ctpe.shape as number[], 0, 0.5, 'float32', 9));
    const part = (prefix: string, rename: (k: string) => string, extra: [string, Tensor][] = []) =>
      new Map<string, Tensor>([
        ...[...src.stateDict()]
          .filter(([k]) => k.startsWith(`${prefix}.`))
          .map(([k, v]): [string, Tensor] => [rename(k.slice(prefix.length + 1)), v]),
        ...extra,
      ]);
    const files = {
      hr: join(dir, 'hr.safetensors'),
      s2: join(dir, 's2.safetensors'),
      s1: join(dir, 's1.safetensors'),
      headS2: join(dir, 'head_s2.safetensors'),
      headS1: join(dir, 'head_s1.safetensors'),
      fusion: join(dir, 'fusion.safetensors'),
    };
    saveSafetensors(
      files.hr,
      part('backbone_gep', (k) => `backbone.${k}`, [['backbone.mask_token', tf.zeros([1, 1, 8])]]),
    );
    saveSafetensors(
      files.s2,
      part('backbone_s2', (k) => k, [['ctpe', src.neck.ctpe.value]]),
    );
    saveSafetensors(
      files.s1,
      part('backbone_s1', (k) => k, [['ctpe', src.neck.ctpe.value]]),
    );
    saveSafetensors(
      files.headS2,
      part('head_s2', (k) => k),
    );
    saveSafetensors(
      files.headS1,
      part('head_s1', (k) => k),
    );
    saveSafetensors(
      files.fusion,
      part('fusion', (k) => `backbone.${k}`),
    );
    manualSeed(2);
    const dst = SkySense.fromPreset('skysense-tiny', { geo: null }).eval();
    const reports = dst.loadReleased(files);
    expect(Object.keys(reports)).toEqual(['hr', 's2', 's1', 'headS2', 'headS1', 'fusion']);
    expect(reports.hr!.ignored).toEqual(['backbone.mask_token']);
    const x = inputs(1);
    expect(maxAbsDiff(dst.forward(x).fused, src.forward(x).fused)).toBeLessThanOrEqual(1e-6);
    src.dispose();
    dst.dispose();
  });

  it('skysense info prints the breakdown', () => {
    const r = spawnSync(process.execPath, [join(__dirname, '..', 'dist', 'bin.js'), 'info', 'skysense-2b'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/HR encoder \(Swin V2\)\s+655,074,704/);
    expect(r.stdout).toMatch(/geo-context prototype bank\s+419,430,400 {2}\(buffer\)/);
    expect(r.stdout).toMatch(/total\s+2,078,438,544/);
  });
});

describe('the model registry', () => {
  it('builds every name (shape-only), one name one model, downstream models take numClasses, unknown names list the known ones', () => {
    for (const name of listModels()) expect(shapeOnly(() => createModel(name)).parameterCount(), name).toBeGreaterThan(0);
    expect(listModels('skysense')).toEqual(['skysense-2b', 'skysense-tiny']);
    const shapes = (m: { stateShapes(): Map<string, readonly number[]> }) => JSON.stringify([...m.stateShapes()]);
    expect(shapes(shapeOnly(() => createModel('skysense-hr')))).toBe(shapes(shapeOnly(() => SwinTransformerV2.fromPreset('skysense-hr'))));
    expect(
      shapeOnly(() => createModel('upernet-skysense-tiny', { numClasses: 5 }))
        .stateShapes()
        .get('decode_head.conv_seg.weight'),
    ).toEqual([5, 32, 1, 1]);
    expect(
      shapeOnly(() => createModel('upernet-skysense-hr'))
        .stateShapes()
        .get('decode_head.conv_seg.weight'),
    ).toEqual([16, 512, 1, 1]);
    expect(() => createModel('resnet50')).toThrow(
      /unknown model 'resnet50'; expected one of skysense-2b, skysense-tiny, skysense-hr, skysense-hr-released/,
    );
  });
});

describe('runFixture', () => {
  beforeAll(() => initBackend());

  it('frees the weights and inputs it loads (only the returned outputs stay alive), on every fixture kind', () => {
    const parity = (pkg: string, name: string) => join(__dirname, '..', '..', pkg, 'test', 'fixtures', 'parity', name);
    for (const fixture of [
      parity('losses', 'dino-loss-a'),
      parity('losses', 'itc-loss-a'),
      parity('losses', 'ibot-patch-loss-a'),
      parity('core-tensor', 'sinkhorn-a'),
      parity('vit', 'vit-skysense-small-a'),
      parity('swin', 'swinv2-small-a'),
      parity('temporal-fusion', 'upfusion-small-a'),
    ]) {
      const once = () => {
        const r = runFixture(fixture);
        expect(
          r.errors.every((e) => e.pass),
          fixture,
        ).toBe(true);
        tf.dispose([...r.outputs.values()]);
      };
      expectNoLeak(once, 1, fixture);
    }
  });

  it('names outputs by stage index (out_indices [1, 3] gives out1, out3) and forward needs no output.safetensors', () => {
    const source = join(__dirname, '..', '..', 'swin', 'test', 'fixtures', 'parity', 'swinv2-small-a');
    const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-fixture-'));
    try {
      const config = JSON.parse(fs.readFileSync(join(source, 'config.json'), 'utf8')) as {
        kwargs: Record<string, unknown>;
        outputs: Record<string, unknown>;
      };
      config.kwargs.out_indices = [1, 3];
      config.outputs = { out1: config.outputs.out1, out3: config.outputs.out3 };
      fs.writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      fs.copyFileSync(join(source, 'input.safetensors'), join(dir, 'input.safetensors'));
      const weights = loadSafetensors(join(source, 'weights.safetensors'));
      saveSafetensors(join(dir, 'weights.safetensors'), new Map([...weights].filter(([k]) => !/^norm[02]\./.test(k)))); // the output norms of stages 0 and 2 are gone
      tf.dispose([...weights.values()]);
      const r = forwardFixture(dir, join(dir, 'out.safetensors'));
      expect([...r.outputs.keys()]).toEqual(['out1', 'out3']);
      const full = runFixture(source);
      for (const k of ['out1', 'out3'])
        expect(tf.tidy(() => tf.max(tf.abs(tf.sub(r.outputs.get(k)!, full.outputs.get(k)!))).dataSync()[0])).toBe(0);
      tf.dispose([...r.outputs.values(), ...full.outputs.values()]);
      expect(() => runFixture(dir)).toThrow(
        /output\.safetensors: no such file \(verify compares with it; 'skysense forward' runs a fixture without it\)/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
