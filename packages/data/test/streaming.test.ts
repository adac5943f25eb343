import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SkySenseError, initBackend } from '@skysense/core-tensor';
import type { Worker } from 'node:worker_threads';
import { DecodePool, InMemorySamples, StreamingSamples, indexBigEarthNet, samplesDir } from '../src/index';

const root = join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');
const dir = mkdtempSync(join(tmpdir(), 'skysense-stream-'));

describe('streaming samples (worker threads)', () => {
  beforeAll(() => initBackend());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decodes in worker threads exactly what the in-memory loader holds, prefetched or not, in the asked order', async () => {
    const { entries } = indexBigEarthNet(root, { s1: true });
    const memory = await InMemorySamples.load('bigearthnet', entries);
    const stream = new StreamingSamples('bigearthnet', entries, { workers: 2, prefetch: 1 });
    try {
      stream.prefetch(1, [4, 0, 4]);
      stream.prefetch(2, [1]); // beyond the bounded queue: ignored, decoded when taken
      for (const [key, picks] of [
        [1, [4, 0, 4]],
        [2, [1]],
        [3, [5, 3, 2]],
      ] as const) {
        const [got, want] = [await stream.take(key, picks), await memory.take(key, picks)];
        expect(got.map((s) => s.name)).toEqual(picks.map((i) => entries[i]!.name));
        got.forEach((s, i) => {
          expect(s.dates).toEqual(want[i]!.dates);
          expect(s.targets).toEqual(want[i]!.targets);
          s.images.forEach((img, k) => {
            expect([img.channels, img.width, img.height]).toEqual([want[i]!.images[k]!.channels, 120, 120]);
            expect(img.data).toEqual(want[i]!.images[k]!.data);
          });
        });
      }
    } finally {
      await stream.close();
    }
  });

  it('a decode worker that stops fails what it was given and what follows, by name, instead of hanging', async () => {
    const { entries } = indexBigEarthNet(root);
    const pool = new DecodePool({ workers: 1 });
    const thread = (pool as unknown as { threads: Worker[] }).threads[0]!;
    const pending = pool.decode('bigearthnet', entries[0]);
    await thread.terminate();
    await expect(pending).rejects.toThrow(/a decode worker stopped \(exit code \d+\) while decoding/);
    await expect(pool.decode('bigearthnet', entries[1])).rejects.toThrow(/no decode worker is running/);
    await pool.close();
  });

  it('a corrupt file fails its batch with the decoder’s error, named; workers: 0 decodes on the calling thread', async () => {
    const patch = 'S2A_MSIL2A_20170613T101031_87_48';
    cpSync(join(root, 'BigEarthNet-S2', patch), join(dir, patch), { recursive: true });
    writeFileSync(join(dir, patch, `${patch}_B03.tif`), 'II*\0 not a tiff');
    const { entries } = indexBigEarthNet(dir);
    for (const workers of [1, 0]) {
      const stream = new StreamingSamples('bigearthnet', entries, { workers });
      try {
        stream.prefetch(0, [0]);
        const err = await stream.take(0, [0]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(SkySenseError);
        expect((err as SkySenseError).code).toBe('E_FORMAT');
        expect((err as Error).message).toMatch(/_B03\.tif/);
        await expect(stream.take(1, [7])).rejects.toThrow(/sample index: expected 0 … 0, got 7/);
      } finally {
        await stream.close();
      }
    }
    expect(() => new StreamingSamples('bigearthnet', entries, { prefetch: -1 })).toThrow(/prefetch/);
  });
});
