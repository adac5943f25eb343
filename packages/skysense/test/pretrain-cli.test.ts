import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator, initBackend } from '@skysense/core-tensor';
import { bandTags, writeGeoTiffLike } from '@skysense/test-utils';
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

  it('pre-trains on co-registered HR + S2 + S1 triples of a manifest, the HR resampled onto the fusion grid', async () => {
    const g = new Generator(4);
    const grid = (px: number, n: number) => ({
      width: n,
      height: n,
      origin: [600000, 5500000] as [number, number],
      resolution: [px, -px] as [number, number],
      epsg: 32633,
    });
    const hr = writeGeoTiffLike(
      join(dir, 'hr.tif'),
      grid(1, 80),
      Uint8Array.from({ length: 3 * 80 * 80 }, () => g.randint(256)),
      bandTags(3, 8),
    );
    const s2 = writeGeoTiffLike(
      join(dir, 's2.tif'),
      grid(10, 8),
      Uint16Array.from({ length: 10 * 64 }, () => 200 + g.randint(3000)),
      bandTags(10, 16),
    );
    const db = () => Float32Array.from({ length: 64 }, () => -20 + 10 * g.random());
    const [vv, vh] = ['vv', 'vh'].map((b) => writeGeoTiffLike(join(dir, `${b}.tif`), grid(10, 8), db(), { SampleFormat: [3] }));
    const sample = (name: string) => ({
      name,
      hr,
      s2: [{ file: s2, bandMap: ['B2', 'B3', 'B4', 'B5', 'B6', 'B7', 'B8', 'B8A', 'B11', 'B12'], date: '2021-06-01' }],
      s1: [{ vv, vh, date: '2021-06-03' }],
      anyDtype: true,
    });
    const manifest = join(dir, 'triples.json');
    writeFileSync(manifest, JSON.stringify([sample('a'), sample('b')]));
    const lines: string[] = [];
    const metrics = await runPretrain({
      data: manifest,
      out: join(dir, 'triples'),
      steps: 2,
      batchSize: 2,
      seed: 3,
      ablate: ['pixel'],
      log: (l) => lines.push(l),
    });
    // the progress line sums each source's terms, the ablated pixel term left out
    expect(lines.find((l) => l.startsWith('step 1/'))).toMatch(/mgcl [\d.]+ \[hr [\d.]+, s2 [\d.]+, s1 [\d.]+, fusion [\d.]+\]/);
    expect(Object.keys(metrics[0]!.terms).some((k) => k.endsWith('.pixel'))).toBe(false);
    expect(lines.filter((l) => /HR 80 × 80 px resampled \(bilinear\) to 256 × 256, 32 HR pixels per Sentinel pixel/.test(l))).toHaveLength(
      2,
    );
    expect(
      Object.keys(metrics[0]!.terms)
        .filter((k) => k.endsWith('.image'))
        .sort(),
    ).toEqual(['fusion.image', 'hr.image', 's1.image', 's2.image']);
    expect(Object.keys(metrics[0]!.terms).filter((k) => k.startsWith('align.')).length).toBeGreaterThan(0);
    expect(metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    await expect(runPretrain({ data: manifest, out: join(dir, 'bad'), ablate: ['colour' as never], log: () => {} })).rejects.toThrow(
      /ablate: expected terms among pixel, object, image, fusion, align, gcpl, got "colour"/,
    );
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
