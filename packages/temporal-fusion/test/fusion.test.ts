import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SkySenseError, initBackend, loadSafetensors, tf, type BackendKind, type Tensor } from '@skysense/core-tensor';
import { MultiModalFusion, calendarRow, dayOfYear, type MultiModalFusionOptions } from '../src/index';
import { maxAbsDiff, parityBackends } from '@skysense/test-utils';

const fixture = (f: string) => loadSafetensors(join(__dirname, 'fixtures', 'parity', 'upfusion-small-a', `${f}.safetensors`));
const SMALL: MultiModalFusionOptions = {
  vitDims: 64,
  tokenDims: 48,
  upScale: 4,
  fusion: { embedDims: 32, numLayers: 2, numHeads: 4, mlpRatio: 4, dropPathRate: 0.3 },
};

function randomModel(seed: number): MultiModalFusion {
  const m = new MultiModalFusion({ ...SMALL, fusion: { ...SMALL.fusion, numLayers: 1 } }).eval();
  m.ctpe.assign(tf.randomNormal(m.ctpe.shape as number[], 0, 0.5, 'float32', seed));
  return m;
}

describe.each(parityBackends<BackendKind>())('fusion parity with the official UPHead + ctpe + TransformerEncoder on %s', (backend) => {
  beforeAll(() => initBackend({ force: backend }));

  it('up-heads, the fusion input sequence, cls tokens and the fused map match PyTorch', () => {
    const m = new MultiModalFusion(SMALL).eval();
    const report = m.loadStateDict(fixture('weights'));
    expect(report).toMatchObject({ missing: [], unexpected: [], mismatched: [] });
    const inp = fixture('input');
    const out = fixture('output');
    const doy = Array.from(inp.get('doy')!.dataSync()).map(Number);
    const inputs = {
      hr: inp.get('hr_feat')!,
      s2: { features: inp.get('s2_feat')!, dates: [doy] },
      s1: { features: inp.get('s1_feat')! },
    };
    expect(maxAbsDiff(m.upsample('s2', inputs.s2.features), out.get('s2_up')!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(m.upsample('s1', inputs.s1.features), out.get('s1_up')!)).toBeLessThanOrEqual(1e-5);
    const { sequence, mask } = m.buildSequence(inputs);
    expect(mask).toBeNull();
    expect(maxAbsDiff(sequence, out.get('fusion_input')!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(m.fusion.forward(sequence), out.get('fused_tokens')!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(m.forward(inputs), out.get('fused')!)).toBeLessThanOrEqual(1e-4);
    m.dispose();
  });
});

describe('MultiModalFusion', () => {
  beforeAll(() => initBackend());

  it('a masked batch of unequal series equals running each sample alone', () => {
    const m = randomModel(1);
    const hr = tf.randomNormal([2, 48, 4, 4], 0, 1, 'float32', 2);
    const s2 = tf.randomNormal([2, 3, 64, 1, 1], 0, 1, 'float32', 3);
    const s1 = tf.randomNormal([2, 2, 64, 1, 1], 0, 1, 'float32', 4);
    const s2Valid = [
      [true, false, true],
      [true, true, true],
    ];
    const s1Valid = [
      [false, false],
      [true, false],
    ];
    const dates = [
      [10, null, 200],
      ['2020-03-01', '2020-06-15', new Date(Date.UTC(2020, 11, 31))],
    ];
    const batch = m.forward({ hr, s2: { features: s2, dates, valid: s2Valid }, s1: { features: s1, valid: s1Valid } });
    const pick = (t: Tensor, b: number, frames: number[]) =>
      tf.concat(
        frames.map((f) => tf.slice(t, [b, f, 0, 0, 0], [1, 1, -1, -1, -1])),
        1,
      );
    const alone0 = m.forward({
      hr: tf.slice(hr, [0, 0, 0, 0], [1, -1, -1, -1]),
      s2: { features: pick(s2, 0, [0, 2]), dates: [[10, 200]] },
    });
    const alone1 = m.forward({
      hr: tf.slice(hr, [1, 0, 0, 0], [1, -1, -1, -1]),
      s2: { features: pick(s2, 1, [0, 1, 2]), dates: [dates[1]! as string[]] },
      s1: { features: pick(s1, 1, [0]) },
    });
    expect(maxAbsDiff(tf.slice(batch, [0, 0, 0, 0], [1, -1, -1, -1]), alone0)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(tf.slice(batch, [1, 0, 0, 0], [1, -1, -1, -1]), alone1)).toBeLessThanOrEqual(1e-5);
    m.dispose();
  });

  it('every subset of modalities runs; mismatched grids are refused', () => {
    const m = randomModel(5);
    const hr = tf.randomNormal([1, 48, 4, 4]);
    const s2 = { features: tf.randomNormal([1, 2, 64, 1, 1]), dates: [[1, 2]] };
    const s1 = { features: tf.randomNormal([1, 3, 64, 1, 1]) };
    const subsets = [{ hr }, { s2 }, { s1 }, { s2, s1 }, { hr, s2 }, { hr, s1 }, { hr, s2, s1 }];
    for (const inputs of subsets) expect(m.forward(inputs).shape).toEqual([1, 32, 4, 4]);
    expect(() => m.forward({})).toThrow(/give at least one of hr, s2, s1/);
    expect(() => m.forward({ hr: tf.zeros([1, 48, 8, 8]), s1 })).toThrow(/s1 gives batch 1 on a 4×4 grid, but hr gives batch 1 on 8×8/);
    expect(() => m.forward({ s2: { features: s2.features } })).toThrow(/s2\.dates: expected 1 × 2 acquisition dates/);
    m.dispose();
  });

  it('date encoding: S2 only by default, all modalities or none on request', () => {
    const inputs = {
      hr: tf.randomNormal([1, 48, 4, 4]),
      hrDates: [100],
      s2: { features: tf.randomNormal([1, 2, 64, 1, 1]), dates: [[5, 6]] },
      s1: { features: tf.randomNormal([1, 1, 64, 1, 1]), dates: [[7]] },
    };
    const outs = (['s2', 'all', 'none'] as const).map((dateEncoding) => {
      const m = new MultiModalFusion({ ...SMALL, dateEncoding, fusion: { ...SMALL.fusion, numLayers: 1 } }).eval();
      m.loadStateDict(randomModel(9).stateDict());
      const y = m.forward(inputs);
      m.dispose();
      return y;
    });
    expect(maxAbsDiff(outs[0]!, outs[1]!)).toBeGreaterThan(1e-4);
    expect(maxAbsDiff(outs[0]!, outs[2]!)).toBeGreaterThan(1e-4);
    const all = new MultiModalFusion({ ...SMALL, dateEncoding: 'all' });
    expect(() => all.forward({ hr: inputs.hr })).toThrow(/hr\.dates: expected 1 × 1/);
    all.dispose();
  });

  it('dates: Date, ISO or day of year; leap-year 31 December clamps into the table; bad dates name the frame', () => {
    expect(dayOfYear('2021-01-01')).toBe(1);
    expect(dayOfYear(new Date(Date.UTC(2021, 6, 14)))).toBe(195);
    expect(dayOfYear('2020-12-31T23:00:00Z')).toBe(366);
    expect(calendarRow('2020-12-31')).toBe(364);
    expect(calendarRow('2021-12-31')).toBe(364);
    expect(calendarRow(1)).toBe(0);
    expect(() => dayOfYear(0, 's2 frame 2 of sample 0')).toThrow(
      /s2 frame 2 of sample 0: day of year must be an integer in \[1, 366\], got 0/,
    );
    expect(() => dayOfYear(367)).toThrow(SkySenseError);
    expect(() => dayOfYear('2021-02-29')).toThrow(/is not a calendar date/);
    expect(() => dayOfYear('14/07/2021')).toThrow(/expected an ISO date/);
    const m = randomModel(3);
    expect(() => m.forward({ s2: { features: tf.zeros([1, 2, 64, 1, 1]), dates: [[10, 400]] } })).toThrow(
      /s2 frame 1 of sample 0: day of year/,
    );
    m.dispose();
  });

  it('tensor count is flat across calls', () => {
    const m = randomModel(4);
    const inputs = {
      hr: tf.randomNormal([1, 48, 4, 4]),
      s2: { features: tf.randomNormal([1, 2, 64, 1, 1]), dates: [[1, 2]], valid: [[true, false]] },
    };
    tf.dispose(m.forward(inputs));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(m.forward(inputs));
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe('UpHead initialisation', () => {
  beforeAll(() => initBackend());

  it('is ICNR: a fresh head maps a constant map to 4×4-constant blocks (no checkerboard)', async () => {
    const { UpHead } = await import('../src/index');
    const head = new UpHead(8, 3, 4);
    const y = head.forward(tf.randomNormal([1, 8, 2, 2]));
    const blocks = tf.reshape(y, [1, 3, 2, 4, 2, 4]);
    const spread = tf.sub(tf.max(blocks, [3, 5]), tf.min(blocks, [3, 5]));
    expect(tf.max(spread).dataSync()[0]).toBeLessThan(1e-6);
    head.dispose();
  });
});
