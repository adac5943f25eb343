import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { AdamW, SkySenseError, disposeGradients, initBackend, shapeOnly, tf, valueAndGrads, type Tensor } from '@skysense/core-tensor';
import {
  PatchMerging,
  SWIN_V2_ARCHS,
  SwinBlockV2,
  SwinTransformerV2,
  WindowMSAV2,
  rgbNirStateDict,
  widenPatchEmbedToRgbNir,
  windowOrder,
  type SwinTransformerV2Options,
} from '../src/index';
import { fixture, maxAbsDiff } from './helpers';

/** A tiny config with the SkySense structure: 4 stages, extra norms, window 4. */
const TINY: SwinTransformerV2Options = {
  arch: { embedDims: 8, depths: [2, 2, 2, 2], numHeads: [1, 2, 2, 4], extraNormEveryNBlocks: 2 },
  windowSize: 4,
  outIndices: [0, 1, 2, 3],
  padSmallMap: true,
};

/** mmcls Swin V2 arithmetic (architecture guide §1): per block 12C² + 12C + 513h + 1536 (+2C extra norm), merge 8C² + 4C, patch embed, output norm. */
function formulaCount(a: { embedDims: number; depths: number[]; numHeads: number[]; extraNormEveryNBlocks: number }): number {
  let c = a.embedDims;
  let total = c * 3 * 16 + c + 2 * c;
  a.depths.forEach((depth, s) => {
    if (s > 0) {
      total += 8 * c * c + 4 * c;
      c *= 2;
    }
    const extra = a.extraNormEveryNBlocks ? Math.floor(depth / a.extraNormEveryNBlocks) : 0;
    total += depth * (12 * c * c + 12 * c + 513 * a.numHeads[s]! + 1536) + extra * 2 * c;
  });
  return total + 2 * c;
}

function officialCsv(): [string, number[]][] {
  return readFileSync(fixture('reference', 'skysense_hr_backbone_params.csv'), 'utf8')
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => {
      const [name, shape] = line.split(',');
      return [name!, shape!.split('x').map(Number)];
    });
}

describe('SwinTransformerV2', () => {
  beforeAll(() => initBackend());

  it('the huge preset has exactly the official parameter list (names, shapes, order) without allocating', () => {
    const before = tf.memory().numBytes;
    const huge = shapeOnly(() => SwinTransformerV2.fromPreset('huge'));
    const csv = officialCsv();
    expect(csv).toHaveLength(429);
    expect([...huge.stateShapes()]).toEqual(csv);
    expect(huge.parameterCount()).toBe(655_074_704);
    const hr = shapeOnly(() => SwinTransformerV2.fromPreset('skysense-hr'));
    const keys = [...hr.stateShapes().keys()];
    expect(keys).toHaveLength(435);
    expect(keys.slice(-8)).toEqual([
      'norm0.weight',
      'norm0.bias',
      'norm1.weight',
      'norm1.bias',
      'norm2.weight',
      'norm2.bias',
      'norm3.weight',
      'norm3.bias',
    ]);
    expect(hr.parameterCount()).toBe(655_079_632);
    expect(hr.stageChannels).toEqual([352, 704, 1408, 2816]);
    expect(tf.memory().numBytes).toBe(before);
  });

  it('every mmcls arch preset has the parameter count of the spec formula', () => {
    expect(SWIN_V2_ARCHS.tiny).toEqual({ embedDims: 96, depths: [2, 2, 6, 2], numHeads: [3, 6, 12, 24], extraNormEveryNBlocks: 0 });
    expect(formulaCount(SWIN_V2_ARCHS.huge)).toBe(655_074_704);
    for (const [name, arch] of Object.entries(SWIN_V2_ARCHS)) {
      expect(shapeOnly(() => new SwinTransformerV2({ arch })).parameterCount(), name).toBe(formulaCount(arch));
    }
  });

  it('224×224 on the huge preset is refused with the minimum size and the padSmallMap alternative; padSmallMap accepts it', () => {
    const huge = shapeOnly(() => SwinTransformerV2.fromPreset('skysense-hr'));
    expect(huge.minInputSide()).toBe(225);
    expect(() => huge.validateInput([1, 3, 224, 224])).toThrow(
      /224×224 input gives a 7×7 map at stage 3, smaller than its window 8 .*at least 225 px per side, or set padSmallMap: true/,
    );
    expect(huge.validateInput([1, 3, 225, 225])).toEqual([
      [57, 57],
      [29, 29],
      [15, 15],
      [8, 8],
    ]);
    const padded = shapeOnly(() => SwinTransformerV2.fromPreset('skysense-hr', { padSmallMap: true }));
    expect(padded.validateInput([1, 3, 224, 224])).toEqual([
      [56, 56],
      [28, 28],
      [14, 14],
      [7, 7],
    ]);
    expect(() => huge.validateInput([1, 4, 256, 256])).toThrow(/expected \[N, 3 \(R, G, B\), H, W\], got \[1, 4, 256, 256\]/);
    // the building blocks name their own input, not an inner layer's
    const merge = new PatchMerging(32, 64);
    expect(() => merge.forward(tf.zeros([1, 16, 16, 31]))).toThrow(
      /^E_SHAPE: PatchMerging input: expected shape \[\*, \*, \*, 32\], got \[1, 16, 16, 31\] \(dimension 3 is 31, expected 32\)$/,
    );
    merge.dispose();
    const block = new SwinBlockV2(32, 2, {
      windowSize: 4,
      shift: true,
      extraNorm: false,
      dropPath: 0,
      padSmallMap: false,
      pretrainedWindowSize: 0,
    });
    expect(() => block.forward(tf.zeros([1, 8, 8, 31]))).toThrow(
      /^E_SHAPE: SwinBlockV2 input: expected shape \[\*, \*, \*, 32\], got \[1, 8, 8, 31\]/,
    );
    expect(() => block.attn.forward(tf.zeros([1, 8, 8, 31]))).toThrow(/^E_SHAPE: ShiftWindowMSA input: expected shape \[\*, \*, \*, 32\]/);
    block.dispose();
    // the same rule on a small model that actually runs: window 8, a 7×7 last stage
    const small = new SwinTransformerV2({ ...TINY, windowSize: 8, padSmallMap: true }).eval();
    const outs = small.forward(tf.randomNormal([1, 3, 224, 224]));
    expect(outs.map((o) => o.shape)).toEqual([
      [1, 8, 56, 56],
      [1, 16, 28, 28],
      [1, 32, 14, 14],
      [1, 64, 7, 7],
    ]);
    expect(outs.every((o) => Number.isFinite(tf.sum(o).dataSync()[0]!))).toBe(true);
    tf.dispose(outs);
    small.dispose();
  });

  it('odd input sides are corner-padded by the patch embedding and the merges', () => {
    const m = new SwinTransformerV2({ ...TINY, padSmallMap: false }).eval();
    const outs = m.forward(tf.randomNormal([1, 3, 100, 103]));
    expect(outs.map((o) => o.shape)).toEqual([
      [1, 8, 25, 26],
      [1, 16, 13, 13],
      [1, 32, 7, 7],
      [1, 64, 4, 4],
    ]);
    tf.dispose(outs);
    m.dispose();
  });

  it('windowOrder is torch.roll(x, −shift) then window_partition, as grid positions', () => {
    expect(Array.from(windowOrder(4, 4, 2, 1).subarray(0, 8))).toEqual([5, 6, 9, 10, 7, 4, 11, 8]);
    const [b, h, w, ws, shift] = [1, 6, 4, 2, 1];
    const grid = tf.reshape(tf.range(0, b * h * w, 1, 'int32'), [b, h, w]);
    const rollAxis = (t: Tensor, axis: number) => {
      const n = t.shape[axis]!;
      const [head, tail] = tf.split(t, [shift, n - shift], axis);
      return tf.concat([tail!, head!], axis);
    };
    const rolled = rollAxis(rollAxis(grid, 1), 2);
    const windows = tf.transpose(tf.reshape(rolled, [b, h / ws, ws, w / ws, ws]), [0, 1, 3, 2, 4]);
    expect(Array.from(windowOrder(h, w, ws, shift))).toEqual(Array.from(windows.dataSync()));
  });

  it('tensor count is flat across repeated forward passes', () => {
    const m = new SwinTransformerV2(TINY).eval();
    const x = tf.randomNormal([1, 3, 64, 64]);
    tf.dispose(m.forward(x));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(m.forward(x));
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('training: gradients reach every parameter, drop-path is active, frozen stages get none', () => {
    const m = new SwinTransformerV2({ ...TINY, dropPathRate: 0.5 });
    const x = tf.randomNormal([2, 3, 32, 32]);
    const a = m.forward(x);
    const b = m.forward(x);
    expect(maxAbsDiff(a[3]!, b[3]!)).toBeGreaterThan(0);
    const full = new SwinTransformerV2({ ...TINY, dropPathRate: 0 });
    const loss = () => tf.addN(full.forward(x).map((o) => tf.mean(tf.square(o)))) as tf.Scalar;
    const { value, grads } = valueAndGrads(full, loss);
    expect(grads.size).toBe(full.namedParameters().length);
    const zero = full
      .namedParameters()
      .filter(([, p]) => tf.tidy(() => tf.max(tf.abs(grads.get(p)!)).dataSync()[0]) === 0)
      .map(([n]) => n);
    expect(zero).toEqual([]);
    value.dispose();
    disposeGradients(grads);
    m.eval();
    expect(maxAbsDiff(m.forward(x)[3]!, m.forward(x)[3]!)).toBe(0);
    const frozen = new SwinTransformerV2({ ...TINY, frozenStages: 1 });
    const names = frozen.namedParameters();
    const r = valueAndGrads(frozen, () => tf.mean(tf.square(frozen.forward(x)[3]!)) as tf.Scalar);
    const withGrad = names.filter(([, p]) => r.grads.has(p)).map(([n]) => n);
    expect(
      withGrad.some(
        (n) =>
          n.startsWith('patch_embed') ||
          n.startsWith('stages.0.') ||
          n.startsWith('stages.1.') ||
          n.startsWith('norm0') ||
          n.startsWith('norm1'),
      ),
    ).toBe(false);
    expect(withGrad.some((n) => n.startsWith('stages.2.'))).toBe(true);
    expect(frozen.stages.at(0)!.training).toBe(false);
    expect(frozen.stages.at(2)!.training).toBe(true);
    r.value.dispose();
    disposeGradients(r.grads);
    tf.dispose([...a, ...b, x]);
    m.dispose();
    full.dispose();
    frozen.dispose();
  });

  it('loads official-style checkpoints: backbone. prefix, mask_token, buffers, optional output norms, mismatches refused', () => {
    const src = new SwinTransformerV2({ ...TINY, outIndices: [3] });
    const ckpt = new Map<string, Tensor>();
    for (const [k, t] of src.stateDict()) ckpt.set(`backbone.${k}`, t);
    ckpt.set('backbone.mask_token', tf.zeros([1, 1, 8]));
    ckpt.set('backbone.stages.0.blocks.0.attn.w_msa.relative_position_index', tf.zeros([16, 16]));
    const dst = new SwinTransformerV2(TINY);
    const report = dst.loadStateDict(ckpt);
    expect(report.missing).toEqual(['norm0.weight', 'norm0.bias', 'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias']);
    expect(report.ignored.sort()).toEqual(['backbone.mask_token', 'backbone.stages.0.blocks.0.attn.w_msa.relative_position_index']);
    expect(maxAbsDiff(dst.stages.at(1)!.downsample!.reduction.weight.value, src.stages.at(1)!.downsample!.reduction.weight.value)).toBe(0);
    ckpt.delete('backbone.stages.1.blocks.0.norm1.bias');
    expect(() => dst.loadStateDict(ckpt)).toThrow(/missing key\(s\): stages\.1\.blocks\.0\.norm1\.bias/);
    ckpt.set('backbone.stages.1.blocks.0.norm1.bias', tf.zeros([17]));
    expect(() => dst.loadStateDict(ckpt, { strict: false })).toThrow(
      /size mismatch for \d+ key\(s\): stages\.1\.blocks\.0\.norm1\.bias: checkpoint \[17\], module \[16\]/,
    );
    src.dispose();
    dst.dispose();
  });

  it('widens the patch embedding to RGB-NIR with a copy of the red slice, as the official converter', () => {
    const rgb = new SwinTransformerV2(TINY);
    const dict = rgbNirStateDict(rgb.stateDict());
    const w = dict.get('patch_embed.projection.weight')!;
    expect(w.shape).toEqual([8, 4, 4, 4]);
    expect(maxAbsDiff(tf.slice(w, [0, 3, 0, 0], [-1, 1, -1, -1]), tf.slice(w, [0, 0, 0, 0], [-1, 1, -1, -1]))).toBe(0);
    const rgbn = new SwinTransformerV2({ ...TINY, inChannels: 4 });
    expect(rgbn.loadStateDict(dict).loaded).toHaveLength(dict.size);
    expect(() => widenPatchEmbedToRgbNir(w)).toThrow(/expected \[C, 3, k, k\] \(RGB\), got \[8, 4, 4, 4\]/);
    rgb.dispose();
    rgbn.dispose();
  });

  it('absolute position table: resized to the input grid, and a checkpoint table of another grid is resized on load', () => {
    const m = new SwinTransformerV2({ ...TINY, useAbsPosEmbed: true, imgSize: 32 }).eval();
    expect(m.absolutePosEmbed!.shape).toEqual([1, 64, 8]);
    expect(m.forward(tf.zeros([1, 3, 48, 48]))[0]!.shape).toEqual([1, 8, 12, 12]);
    const other = new SwinTransformerV2({ ...TINY, useAbsPosEmbed: true, imgSize: 64 });
    const report = m.loadStateDict(other.stateDict());
    expect(report.loaded).toContain('absolute_pos_embed');
    m.dispose();
    other.dispose();
  });

  it('fromConfig takes mmcls keyword arguments and refuses unknown ones', () => {
    const m = shapeOnly(() =>
      SwinTransformerV2.fromConfig({
        type: 'SwinTransformerV2',
        arch: 'huge',
        out_indices: [0, 1, 2, 3],
        drop_path_rate: 0.2,
        with_cp: false,
      }),
    );
    expect(m.parameterCount()).toBe(655_079_632);
    expect(() => SwinTransformerV2.fromConfig({ arch: 'tiny', windw_size: 8 })).toThrow(/unknown argument\(s\) windw_size/);
    expect(() => SwinTransformerV2.fromConfig({ arch: 'tiny', norm_cfg: { type: 'BN' } })).toThrow(SkySenseError);
    expect(() => new SwinTransformerV2({ arch: 'enormous' as never })).toThrow(/arch: expected one of tiny/);
  });

  it('in eval mode the position bias is computed once, and again after an optimizer step changes the weights', () => {
    const attn = new WindowMSAV2(16, [4, 4], 2);
    const spy = vi.spyOn(attn, 'positionBias');
    const x = tf.randomNormal([2, 16, 16]);
    attn.eval();
    const before = attn.forward(x);
    tf.dispose([attn.forward(x), attn.forward(x)]);
    expect(spy).toHaveBeenCalledTimes(1);
    const opt = new AdamW(attn, { lr: 0.05 });
    attn.train();
    const { value, grads } = valueAndGrads(attn, () => tf.mean(tf.square(attn.forward(x))) as tf.Scalar);
    opt.step(grads);
    disposeGradients(grads);
    value.dispose();
    attn.eval();
    const after = attn.forward(x);
    const fresh = new WindowMSAV2(16, [4, 4], 2);
    fresh.loadStateDict(attn.stateDict());
    fresh.eval();
    const want = fresh.forward(x);
    expect(maxAbsDiff(before, after), 'the step changed the output').toBeGreaterThan(1e-3);
    expect(maxAbsDiff(after, want), 'the kept bias follows the new weights').toBeLessThanOrEqual(1e-6);
    tf.dispose([x, before, after, want]);
    attn.dispose();
    fresh.dispose();
  });
});
