import { beforeAll, describe, expect, it } from 'vitest';
import { parityBackends } from '@skysense/test-utils';
import { join } from 'node:path';
import {
  SkySenseError,
  disposeGradients,
  initBackend,
  loadCheckpoint,
  shapeOnly,
  tf,
  valueAndGrads,
  webgpuSyncReadCount,
  type BackendKind,
  type Tensor,
} from '@skysense/core-tensor';
import { SENTINEL2_BANDS, VisionTransformer, selectBandsStateDict } from '../src/index';
import { loadParity, maxAbsDiff, parityKwargs } from './helpers';

const BACKENDS = parityBackends<BackendKind>();
const SMALL = { imgSize: 16, embedDims: 16, numLayers: 2, numHeads: 2, dropPathRate: 0, outIndices: [0, 1] };

describe.each(BACKENDS)('ViT parity with SkySense’s official class on %s', (backend) => {
  beforeAll(() => initBackend({ force: backend }));

  it.each(['vit-skysense-small-a', 'vit-skysense-resize-a'])('%s: maps and cls tokens within 1e-4', (name) => {
    const vit = VisionTransformer.fromConfig(parityKwargs(name)).eval();
    const report = vit.loadStateDict(loadParity(name, 'weights'));
    expect(report).toMatchObject({ missing: [], unexpected: [], ignored: [] });
    const input = loadParity(name, 'input').get('input')!;
    const out = loadParity(name, 'output');
    const reads = webgpuSyncReadCount();
    const { maps, cls } = vit.forwardWithCls(input);
    expect(webgpuSyncReadCount(), 'the forward pass waits for no GPU read').toBe(reads);
    [0, 1].forEach((i) => {
      expect(maxAbsDiff(maps[i]!, out.get(`out${i}`)!), `out${i}`).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(cls[i]!, out.get(`out${i}_cls`)!), `out${i}_cls`).toBeLessThanOrEqual(1e-4);
    });
    if (out.has('pos_embed_resized')) {
      const [h, w] = vit.validateInput(input.shape);
      expect(maxAbsDiff(vit.positionTable(h, w), out.get('pos_embed_resized')!)).toBeLessThanOrEqual(1e-5);
    }
    vit.dispose();
  });
});

describe('VisionTransformer', () => {
  beforeAll(() => initBackend());

  it('presets have the published parameter counts and mmseg key names (shape-only)', () => {
    const before = tf.memory().numBytes;
    const s2 = shapeOnly(() => VisionTransformer.fromPreset('skysense-s2'));
    const s1 = shapeOnly(() => VisionTransformer.fromPreset('skysense-s1'));
    expect(s2.parameterCount()).toBe(302_738_432);
    expect(s1.parameterCount()).toBe(302_607_360);
    const keys = [...s2.stateShapes().keys()];
    expect(keys).toHaveLength(292);
    expect(keys.slice(0, 6)).toEqual([
      'cls_token',
      'pos_embed',
      'patch_embed.projection.weight',
      'patch_embed.projection.bias',
      'layers.0.ln1.weight',
      'layers.0.ln1.bias',
    ]);
    expect(s2.stateShapes().get('pos_embed')).toEqual([1, 257, 1024]);
    expect(s1.stateShapes().get('patch_embed.projection.weight')).toEqual([1024, 2, 4, 4]);
    expect(keys).toContain('layers.23.attn.attn.in_proj_weight');
    expect(keys.some((k) => k.startsWith('ln1'))).toBe(false);
    expect(s1.options.bandNames).toEqual(['VV', 'VH']);
    expect(s2.options.layerNormEps).toBe(1e-5);
    expect(tf.memory().numBytes).toBe(before);
  });

  it('LayerNorm eps is an option: 1e-5 by default, 1e-6 as SkySense++ configs', () => {
    const v = VisionTransformer.fromConfig({ ...parityKwargs('vit-skysense-small-a'), norm_cfg: { type: 'LN', eps: 1e-6 } });
    expect(v.layers.at(0)!.ln1.eps).toBe(1e-6);
    expect(new VisionTransformer(SMALL).layers.at(1)!.ln2.eps).toBe(1e-5);
    v.dispose();
  });

  it('adds the table directly when only the token count matches (the reference quirk), resizes otherwise', () => {
    const vit = new VisionTransformer(SMALL);
    expect(vit.positionTable(8, 2)).toBe(vit.posEmbed.value);
    const resized = vit.positionTable(3, 5);
    expect(resized.shape).toEqual([1, 16, 16]);
    expect(maxAbsDiff(tf.slice(resized, [0, 0, 0], [1, 1, 16]), tf.slice(vit.posEmbed.value, [0, 0, 0], [1, 1, 16]))).toBe(0);
    expect(vit.forward(tf.zeros([1, 10, 32, 8]))[0]!.shape).toEqual([1, 16, 8, 2]);
    vit.dispose();
  });

  it('a wrong band count names the expected bands; a band subset reproduces the full model with the other bands at zero', () => {
    const full = new VisionTransformer(SMALL).eval();
    expect(() => full.forward(tf.zeros([1, 6, 16, 16]))).toThrow(
      /expected 10 bands \(B2, B3, B4, B5, B6, B7, B8, B8A, B11, B12\) at dimension 1, got 6/,
    );
    const subset = ['B4', 'B3', 'B2', 'B8'];
    const part = new VisionTransformer({ ...SMALL, inChannels: 4, bandNames: subset }).eval();
    part.loadStateDict(selectBandsStateDict(full.stateDict(), SENTINEL2_BANDS, subset));
    const x = tf.randomNormal([2, 4, 16, 16]);
    const idx = subset.map((b) => SENTINEL2_BANDS.indexOf(b as (typeof SENTINEL2_BANDS)[number]));
    const planes = SENTINEL2_BANDS.map((_, i) =>
      idx.includes(i) ? tf.slice(x, [0, idx.indexOf(i), 0, 0], [2, 1, 16, 16]) : tf.zeros([2, 1, 16, 16]),
    );
    const padded = tf.concat(planes, 1);
    expect(maxAbsDiff(part.forward(x)[1]!, full.forward(padded)[1]!)).toBeLessThanOrEqual(1e-5);
    expect(() => selectBandsStateDict(full.stateDict(), SENTINEL2_BANDS, ['B1'])).toThrow(/bands B1 are not among B2/);
    full.dispose();
    part.dispose();
  });

  it('forwardSeries encodes [B, T, C, H, W] frame by frame into [B, T, D, h, w]', () => {
    const vit = new VisionTransformer(SMALL).eval();
    const x = tf.randomNormal([2, 3, 10, 16, 16]);
    const [series] = vit.forwardSeries(x);
    expect(series!.shape).toEqual([2, 3, 16, 4, 4]);
    const frame = tf.reshape(tf.slice(x, [1, 2, 0, 0, 0], [1, 1, 10, 16, 16]), [1, 10, 16, 16]);
    expect(
      maxAbsDiff(tf.reshape(tf.slice(series!, [1, 2, 0, 0, 0], [1, 1, 16, 4, 4]), [1, 16, 4, 4]), vit.forward(frame)[0]!),
    ).toBeLessThanOrEqual(1e-5);
    expect(() => vit.forwardSeries(tf.zeros([2, 10, 16, 16]))).toThrow(/expected \[B, T, 10, H, W\]/);
    vit.dispose();
  });

  it('loads released-style files: ctpe is skipped with a note, backbone_s2. prefixes are found', () => {
    const src = new VisionTransformer(SMALL);
    const flat = new Map<string, Tensor>(src.stateDict());
    flat.set('ctpe', tf.zeros([1, 365, 48]));
    const dst = new VisionTransformer(SMALL);
    const report = dst.loadStateDict(flat);
    expect(report.ignored).toEqual(['ctpe']);
    expect(report.notes![0]).toMatch(/belongs to @skysense\/temporal-fusion/);
    const prefixed = new Map([...src.stateDict()].map(([k, v]) => [`backbone_s2.${k}`, v]));
    prefixed.set('backbone_gep.patch_embed.projection.weight', tf.zeros([1]));
    expect(dst.loadStateDict(prefixed).loaded).toHaveLength(src.stateDict().size);
    src.dispose();
    dst.dispose();
  });

  it('trains: every parameter gets a gradient; memory stays flat', () => {
    const vit = new VisionTransformer(SMALL);
    const x = tf.randomNormal([2, 10, 16, 16]);
    const loss = () => tf.addN(vit.forward(x).map((m) => tf.mean(tf.square(m)))) as tf.Scalar;
    const { value, grads } = valueAndGrads(vit, loss);
    expect(grads.size).toBe(vit.namedParameters().length);
    value.dispose();
    disposeGradients(grads);
    tf.dispose(vit.forward(x));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose(vit.forward(x));
      const r = valueAndGrads(vit, loss);
      r.value.dispose();
      disposeGradients(r.grads);
    }
    expect(tf.memory().numTensors).toBe(before);
    vit.dispose();
  });

  it('the released S2 file layout (.pth with ctpe) loads without Python and reproduces PyTorch', () => {
    const vit = VisionTransformer.fromConfig(parityKwargs('vit-skysense-small-a')).eval();
    const printed: string[] = [];
    const report = loadCheckpoint(vit, join(__dirname, 'fixtures', 'release_s2.pth'), { log: (t) => printed.push(t) });
    expect(report.missing).toEqual([]);
    expect(report.ignored).toEqual(['ctpe']);
    expect(printed[0]).toMatch(/ctpe {2}\[harmless: calendar-time position encoding; load it with @skysense\/temporal-fusion\]/);
    const out = loadParity('vit-skysense-small-a', 'output');
    const [, out1] = vit.forward(loadParity('vit-skysense-small-a', 'input').get('input')!);
    expect(maxAbsDiff(out1!, out.get('out1')!)).toBeLessThanOrEqual(1e-4);
    vit.dispose();
  });

  it('fromConfig refuses unknown arguments and unsupported bricks', () => {
    expect(() => VisionTransformer.fromConfig({ embed_dim: 64 })).toThrow(/unknown argument\(s\) embed_dim/);
    expect(() => VisionTransformer.fromConfig({ act_cfg: { type: 'ReLU' } })).toThrow(SkySenseError);
    expect(() => VisionTransformer.fromPreset('skysense-s3' as never)).toThrow(/unknown ViT preset/);
  });
});
