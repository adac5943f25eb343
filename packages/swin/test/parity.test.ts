import { beforeAll, describe, expect, it } from 'vitest';
import { parityBackends } from '@skysense/test-utils';
import { initBackend, tf, webgpuSyncReadCount, type BackendKind } from '@skysense/core-tensor';
import { SwinTransformerV2, relativeCoordsTable, relativePositionIndex } from '../src/index';
import { loadParity, maxAbsDiff, parityConfig } from './helpers';

const BACKENDS = parityBackends<BackendKind>();

describe.each(BACKENDS)('Swin V2 parity with mmcls 0.25 on %s', (backend) => {
  beforeAll(() => initBackend({ force: backend }));

  it.each(['swinv2-small-a', 'swinv2-padsmall-a'])('%s: every output within 1e-4 of PyTorch', (name) => {
    const initial = tf.memory().numTensors;
    const model = SwinTransformerV2.fromConfig(parityConfig(name).kwargs).eval();
    const weights = loadParity(name, 'weights');
    const report = model.loadStateDict(weights);
    expect(report.missing).toEqual([]);
    expect(report.unexpected).toEqual([]);
    expect(report.ignored.every((k) => /relative_(position_index|coords_table)$/.test(k))).toBe(true);
    expect(report.ignored.length).toBe(2 * 8);
    const input = loadParity(name, 'input').get('input')!;
    const expected = loadParity(name, 'output');
    const before = tf.memory().numTensors;
    const reads = webgpuSyncReadCount();
    const outs = model.forward(input);
    expect(webgpuSyncReadCount(), 'the forward pass waits for no GPU read').toBe(reads);
    outs.forEach((o, i) => expect(maxAbsDiff(o, expected.get(`out${i}`)!), `out${i}`).toBeLessThanOrEqual(1e-4));
    tf.dispose(outs);
    expect(tf.memory().numTensors - before, 'eval mode keeps one position bias per block').toBe(8);
    tf.dispose(model.forward(input));
    expect(tf.memory().numTensors - before, 'and nothing more on the next forward').toBe(8);
    model.dispose();
    tf.dispose([...weights.values(), input, ...expected.values()]);
    expect(tf.memory().numTensors).toBe(initial);
  });
});

describe('Swin V2 position-bias helpers', () => {
  beforeAll(() => initBackend());

  it('relative coords table and position index equal the buffers mmcls stored', () => {
    const w = loadParity('swinv2-small-a', 'weights');
    const table = w.get('stages.0.blocks.0.attn.w_msa.relative_coords_table')!;
    expect(table.shape).toEqual([1, 15, 15, 2]);
    expect(maxAbsDiff(tf.tensor(relativeCoordsTable([8, 8]), [1, 15, 15, 2]), table)).toBeLessThanOrEqual(1e-7);
    const index = w.get('stages.3.blocks.1.attn.w_msa.relative_position_index')!;
    expect(Array.from(index.dataSync())).toEqual(Array.from(relativePositionIndex([8, 8])));
    expect(Math.max(...relativeCoordsTable([8, 8]))).toBeCloseTo(Math.log2(9) / 3, 6);
  });

  it('the reference refuses a 128×128 input with pad_small_map=False; so do we, naming the minimum size', () => {
    const cfg = parityConfig('swinv2-small-a');
    const model = SwinTransformerV2.fromConfig(cfg.kwargs);
    const [neg] = cfg.negative_cases!;
    expect(neg!.error).toMatch(/smaller than the window size \(8\)/);
    expect(() => model.forward(tf.zeros(neg!.input_shape))).toThrow(
      /a 128×128 input gives a 4×4 map at stage 3, smaller than its window 8 .* at least 225 px per side, or set padSmallMap: true/,
    );
    model.dispose();
  });
});
