import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator, SkySenseError, initBackend, tf } from '@skysense/core-tensor';
import { loadSample, readClassTable, readGeoTiff, readImage, readManifest, samplesDir } from '../src/index';

// Seeded mutation fuzzing of the loaders on the real samples: every mutated input must either load
// or be refused with a SkySenseError (never another exception, a hang or a memory blow-up). The
// figures (inputs per format, loads / refusals, peak RSS) are printed and, with
// SKYSENSE_FUZZ_REPORT=<file>, written as JSON.
const samples = samplesDir();
const v1 = join(samples, 'bigearthnet', 'v1-s1s2-example');
const S2 = 'S2A_MSIL2A_20170613T101031_87_48';
const S1 = 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48';
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-fuzz-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** One random change to a file's bytes: flipped bytes, a cut, a scrambled header, a repeated block, or a field set to a huge value. */
function mutate(bytes: Buffer, g: Generator): Buffer {
  const out = Buffer.from(bytes);
  const at = (n = out.length) => g.randint(Math.max(1, n));
  switch (g.randint(5)) {
    case 0:
      for (let k = 1 + g.randint(16); k > 0; k--) out[at()] = g.randint(256);
      return out;
    case 1:
      return out.subarray(0, at());
    case 2:
      for (let k = 0; k < 24; k++) out[at(Math.min(out.length, 512))] = g.randint(256);
      return out;
    case 3: {
      const from = at();
      const len = 1 + g.randint(4096);
      return Buffer.concat([out.subarray(0, from), out.subarray(from, from + len), out.subarray(from)]);
    }
    default: {
      const p = at(Math.min(out.length, 1024) - 4);
      out.writeUInt32LE([0xffffffff, 0x7fffffff, 20000, 0][g.randint(4)]!, p);
      return out;
    }
  }
}

/** JSON-level changes: drop or retype a key, or put a hostile value somewhere. */
function mutateJson(value: unknown, g: Generator): unknown {
  const hostile = [null, 0, -5, 1e308, 'bogus', '../../escape', [], {}, true, 'NaN', '2017-02-30'];
  if (Array.isArray(value)) {
    if (value.length === 0 || g.random() < 0.15) return hostile[g.randint(hostile.length)];
    const copy = [...value];
    const i = g.randint(copy.length);
    copy[i] = mutateJson(copy[i], g);
    return copy;
  }
  if (value && typeof value === 'object') {
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const keys = Object.keys(copy);
    if (keys.length === 0 || g.random() < 0.15) return hostile[g.randint(hostile.length)];
    const k = keys[g.randint(keys.length)]!;
    if (g.random() < 0.3) delete copy[k];
    else copy[k] = mutateJson(copy[k], g);
    return copy;
  }
  return hostile[g.randint(hostile.length)];
}

interface Tally {
  format: string;
  tried: number;
  loaded: number;
  refused: number;
  codes: Record<string, number>;
  peakRssMB: number;
}

const tallies: Tally[] = [];

async function fuzz(
  format: string,
  n: number,
  make: (g: Generator, k: number) => string,
  load: (file: string) => Promise<unknown>,
): Promise<Tally> {
  const g = new Generator(17);
  const t: Tally = { format, tried: 0, loaded: 0, refused: 0, codes: {}, peakRssMB: 0 };
  const escaped: string[] = [];
  for (let k = 0; k < n; k++) {
    const file = make(g, k);
    t.tried++;
    try {
      const r = await load(file);
      tf.dispose(collectTensors(r));
      t.loaded++;
    } catch (e) {
      if (e instanceof SkySenseError) {
        t.refused++;
        t.codes[e.code] = (t.codes[e.code] ?? 0) + 1;
      } else escaped.push(`#${k}: ${(e as Error)?.stack ?? String(e)}`);
    }
    const rss = Math.round(process.memoryUsage().rss / 2 ** 20);
    t.peakRssMB = Math.max(t.peakRssMB, rss);
  }
  expect(escaped, `${format}: errors that are not SkySenseErrors`).toEqual([]);
  tallies.push(t);
  return t;
}

function collectTensors(r: unknown): tf.Tensor[] {
  if (r instanceof tf.Tensor) return [r];
  if (r && typeof r === 'object')
    return Object.values(r).flatMap((v) =>
      v instanceof tf.Tensor ? [v] : v && typeof v === 'object' && !ArrayBuffer.isView(v) ? collectTensors(v) : [],
    );
  return [];
}

const bytesOf = (f: string) => fs.readFileSync(f);
const writer = (name: string, base: Buffer) => (g: Generator, k: number) => {
  const f = join(dir, `${name}-${k}`);
  fs.writeFileSync(f, mutate(base, g));
  return f;
};

describe('fuzzing the loaders (seeded, bounded)', () => {
  beforeAll(() => initBackend());
  afterAll(() => {
    const lines = tallies.map(
      (t) =>
        `${t.format.padEnd(34)} ${String(t.tried).padStart(4)} tried  ${String(t.loaded).padStart(4)} loaded  ${String(t.refused).padStart(4)} refused (${Object.entries(
          t.codes,
        )
          .map(([c, n]) => `${c} ${n}`)
          .join(', ')})  peak RSS ${t.peakRssMB} MB`,
    );
    console.log(`fuzz figures:\n${lines.join('\n')}`);
    if (process.env.SKYSENSE_FUZZ_REPORT) fs.writeFileSync(process.env.SKYSENSE_FUZZ_REPORT, JSON.stringify(tallies, null, 2));
  });

  it('GeoTIFF: a Sentinel-2 band (uint16 strips) and a NAIP COG (deflate tiles)', async () => {
    await fuzz('GeoTIFF, S2 band (strips)', 150, writer('b02.tif', bytesOf(join(v1, 'BigEarthNet-S2', S2, `${S2}_B02.tif`))), (f) =>
      readGeoTiff(f),
    );
    const t = await fuzz(
      'GeoTIFF, NAIP COG (deflate tiles)',
      60,
      writer('naip.tif', bytesOf(join(samples, 'naip-timeseries', 'm_4709963_se_14_1_20150926.tif'))),
      (f) => readGeoTiff(f),
    );
    expect(t.peakRssMB).toBeLessThan(2048);
  }, 300_000);

  it('images: PNG masks and JPEG tiles through readImage', async () => {
    await fuzz(
      'PNG (Dubai mask)',
      120,
      writer('mask.png', bytesOf(join(samples, 'dubai-aerial-segmentation', 'masks', 'tile1_image_part_001.png'))),
      (f) => readImage(f),
    );
    const t = await fuzz(
      'JPEG (Dubai tile)',
      80,
      writer('tile.jpg', bytesOf(join(samples, 'dubai-aerial-segmentation', 'images', 'tile1_image_part_001.jpg'))),
      (f) => readImage(f),
    );
    expect(t.peakRssMB).toBeLessThan(2048);
  }, 300_000);

  it('JSON: sample manifests (read and loaded) and class tables', async () => {
    const manifest = {
      samples: [
        {
          name: 'a',
          s2: [{ folder: join(v1, 'BigEarthNet-S2', S2) }],
          s1: [{ folder: join(v1, 'BigEarthNet-S1', S1), units: 'db' }],
          lat: 47.5,
          lon: 14.5,
        },
      ],
    };
    const text = JSON.stringify(manifest);
    await fuzz(
      'manifest JSON',
      120,
      (g, k) => {
        const f = join(dir, `manifest-${k}.json`);
        fs.writeFileSync(f, g.random() < 0.7 ? JSON.stringify(mutateJson(manifest, g)) : mutate(Buffer.from(text), g));
        return f;
      },
      async (f) => {
        const loaded = [];
        for (const m of readManifest(f)) loaded.push(await loadSample(m));
        return loaded;
      },
    );
    const classes = fs.readFileSync(join(samples, 'dubai-aerial-segmentation', 'classes.json'));
    await fuzz(
      'class table JSON',
      120,
      (g, k) => {
        const f = join(dir, `classes-${k}.json`);
        fs.writeFileSync(f, g.random() < 0.7 ? JSON.stringify(mutateJson(JSON.parse(classes.toString()), g)) : mutate(classes, g));
        return f;
      },
      async (f) => readClassTable(f),
    );
  }, 300_000);
});
