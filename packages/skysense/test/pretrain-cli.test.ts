import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
    appendFileSync(join(dir, 'b', 'metrics.jsonl'), '{"step": 4, "lo'); // a line torn by the crash
    const resumed = (await runPretrain({ ...common, out: join(dir, 'b'), resume: true })).map((m) => m.loss);
    expect(resumed).toEqual(straight.slice(2));
    const logged = readFileSync(join(dir, 'b', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; loss: number });
    expect(logged.map((l) => l.step)).toEqual([1, 2, 3, 4]);
    expect(logged.map((l) => l.loss)).toEqual(straight);
  });

  it('pre-trains the HR branch on the NAIP tiles (HR + fusion terms, no alignment with one modality)', async () => {
    const metrics = await runPretrain({
      data: samplesDir(),
      hr: true,
      out: join(dir, 'hr'),
      steps: 2,
      batchSize: 2,
      seed: 2,
      log: () => {},
    });
    expect(metrics).toHaveLength(2);
    expect(Object.keys(metrics[0]!.terms).sort()).toEqual([
      'fusion.image',
      'fusion.object',
      'fusion.pixel',
      'hr.image',
      'hr.object',
      'hr.pixel',
    ]);
    expect(metrics.every((m) => Number.isFinite(m.loss) && m.align === 0)).toBe(true);
  });

  it('names a missing checkpoint and a folder without pairs', async () => {
    await expect(runPretrain({ out: join(dir, 'none'), data: samplesDir(), resume: true, log: () => {} })).rejects.toThrow(
      /--resume: no checkpoint at .*checkpoint.safetensors/,
    );
    await expect(runPretrain({ out: join(dir, 'none'), data: dir, log: () => {} })).rejects.toThrow(
      /no Sentinel-2 \+ Sentinel-1 pairs found/,
    );
    await expect(runPretrain({ out: join(dir, 'none'), data: dir, hr: true, log: () => {} })).rejects.toThrow(/no NAIP HR tiles/);
    await expect(runPretrain({ out: join(dir, 'none'), data: samplesDir(), hr: true, crop: 4096, log: () => {} })).rejects.toThrow(
      /images of at least 4096 px are needed \(--crop\), got 72\d × 934/,
    );
  });
});
