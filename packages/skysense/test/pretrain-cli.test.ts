import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@skysense/core-tensor';
import { runPretrain, samplesDir } from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'skysense-pretrain-cli-'));

describe('runPretrain on the real BigEarthNet S1+S2 samples', () => {
  beforeAll(() => initBackend());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a run that dies after its step-2 checkpoint and is resumed gives the uninterrupted loss sequence', async () => {
    const common = { data: samplesDir(), steps: 4, batchSize: 2, crop: 16, checkpointEvery: 2, seed: 1, log: () => {} };
    const straight = (await runPretrain({ ...common, out: join(dir, 'a') })).map((m) => m.loss);
    expect(straight).toHaveLength(4);
    expect(straight.every(Number.isFinite)).toBe(true);
    const crash = (line: string) => {
      if (line.startsWith('step 3/')) throw new Error('simulated crash');
    };
    await expect(runPretrain({ ...common, out: join(dir, 'b'), log: crash })).rejects.toThrow(/simulated crash/);
    const resumed = (await runPretrain({ ...common, out: join(dir, 'b'), resume: true })).map((m) => m.loss);
    expect(resumed).toEqual(straight.slice(2));
    const logged = readFileSync(join(dir, 'b', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(logged.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    expect(logged.map((l) => l.loss)).toEqual(straight);
  });

  it('names a missing checkpoint and a folder without pairs', async () => {
    await expect(runPretrain({ out: join(dir, 'none'), data: samplesDir(), resume: true, log: () => {} })).rejects.toThrow(/--resume: no checkpoint at .*checkpoint.safetensors/);
    await expect(runPretrain({ out: join(dir, 'none'), data: dir, log: () => {} })).rejects.toThrow(/no Sentinel-2 \+ Sentinel-1 pairs found/);
  });
});
