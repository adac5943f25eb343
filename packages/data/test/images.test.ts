import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator, SkySenseError, initBackend } from '@skysense/core-tensor';
import {
  DUBAI_AERIAL_CLASSES,
  cutWindow,
  imageStats,
  loadSegmentationDataset,
  readBigEarthNetFolder,
  readImageFolder,
  readSegmentationFolder,
  randomResizedBox,
  readClassTable,
  readImage,
  readMask,
  resolveMultiCrop,
  samplesDir,
} from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'skysense-images-'));
const dubai = join(samplesDir(), 'dubai-aerial-segmentation');
beforeAll(() => initBackend());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('segmentation data', () => {
  it('cutWindow: bilinear image and nearest mask at a scale, horizontal flip, padding 0 / 255 beyond the image', () => {
    const image = { width: 2, height: 2, channels: 1, data: Float32Array.from([0, 10, 20, 30]) };
    const mask = Uint8Array.from([1, 2, 3, 4]);
    const id = cutWindow(image, mask, { scale: 1, y0: 0, x0: 0, size: 3, flip: false }, { mean: [0], std: [10] });
    expect([...id.image]).toEqual([0, 1, 0, 2, 3, 0, 0, 0, 0]);
    expect([...id.mask]).toEqual([1, 2, 255, 3, 4, 255, 255, 255, 255]);
    expect(() => cutWindow(image, mask.slice(1), { scale: 1, y0: 0, x0: 0, size: 2, flip: false }, { mean: [0], std: [1] })).toThrow(
      /cutWindow mask: expected 2×2 = 4 labels \(the image's size\), got 3/,
    );
    const flipped = cutWindow(image, mask, { scale: 1, y0: 0, x0: 0, size: 2, flip: true }, { mean: [0], std: [1] });
    expect([...flipped.image]).toEqual([10, 0, 30, 20]);
    expect([...flipped.mask]).toEqual([2, 1, 4, 3]);
    // ×2: source x = (tx + 0.5)/2 − 0.5 → −0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1)
    const up = cutWindow(image, mask, { scale: 2, y0: 0, x0: 0, size: 4, flip: false }, { mean: [0], std: [1] });
    expect([...up.image.slice(0, 4)]).toEqual([0, 2.5, 7.5, 10]);
    expect([...up.mask.slice(0, 4)]).toEqual([1, 1, 2, 2]);
  });

  it('reads the Dubai samples (JPEG images, colour masks through the class table, pairs by name) and GeoTIFF tiles', async () => {
    expect(existsSync(dubai), `set SKYSENSE_SAMPLES to the sample folder (got ${samplesDir()})`).toBe(true);
    const img = await readImage(join(dubai, 'images', 'tile1_image_part_001.jpg'));
    expect([img.width, img.height, img.channels]).toEqual([797, 644, 3]);
    expect(Math.max(...img.data.subarray(0, 5000))).toBeLessThanOrEqual(255);
    const mask = await readMask(join(dubai, 'masks', 'tile1_image_part_001.png'), DUBAI_AERIAL_CLASSES);
    const counts = Array.from({ length: 6 }, (_, k) => mask.reduce((n, v) => n + (v === k ? 1 : 0), 0));
    // colours counted independently: #3C1098 2779, #8429F6 388530, #6EC1E4 73093, #FEDD3A 4377, #E2A929 36569, #9B9B9B 7920
    expect(counts).toEqual([2779, 388530, 73093, 4377, 36569, 7920]);
    const tif = await readImage(join(samplesDir(), 'naip-timeseries', 'm_4709963_se_14_1_20090818.tif'));
    expect(tif.channels).toBeGreaterThanOrEqual(3);
    expect(tif.width * tif.height * tif.channels).toBe(tif.data.length);
    const pairs = await loadSegmentationDataset(dubai, DUBAI_AERIAL_CLASSES);
    expect(pairs.map((p) => p.name)).toEqual(Array.from({ length: 9 }, (_, i) => `tile1_image_part_00${i + 1}`));
    expect(pairs[3]!.image.height).toBe(643);
    // the classes.json shipped with the data has the annotation tool's colours, not the masks'
    await expect(readMask(join(dubai, 'masks', 'tile1_image_part_001.png'), readClassTable(join(dubai, 'classes.json')))).rejects.toThrow(
      /pixel \(0, 0\) has colour #[0-9A-F]{6}, which is not in the class table/,
    );
  });

  it('names bad images and class tables', async () => {
    const notImage = join(dir, 'x.png');
    writeFileSync(notImage, 'hello');
    await expect(readImage(notImage)).rejects.toThrow(/expected a PNG, JPEG or TIFF image, got a file starting with bytes 68 65 6c 6c/);
    const badJpeg = join(dir, 'y.jpg');
    writeFileSync(badJpeg, Buffer.from([0xff, 0xd8, 0xff, 0x00, 1, 2, 3]));
    await expect(readImage(badJpeg)).rejects.toThrow(SkySenseError);
    const table = join(dir, 'classes.json');
    writeFileSync(table, JSON.stringify([{ name: 'a', color: '#12345' }]));
    expect(() => readClassTable(table)).toThrow(/class 0: expected \{ name, color: "#RRGGBB" or \[r, g, b\] \}/);
    writeFileSync(
      table,
      JSON.stringify([
        { name: 'a', color: [1, 2, 3] },
        { title: 'b', color: '#0A0B0C' },
      ]),
    );
    expect(readClassTable(table)).toEqual([
      { name: 'a', color: [1, 2, 3] },
      { name: 'b', color: [10, 11, 12] },
    ]);
  });
});

describe('labelled dataset folders', () => {
  it('reads the Dubai segmentation folder and the BigEarthNet-S2 patches; images of 5 bands have no statistics', async () => {
    const seg = await readSegmentationFolder(dubai, DUBAI_AERIAL_CLASSES);
    expect(seg.samples).toHaveLength(9);
    expect(seg.stats).toBe(imageStats(3));
    const ben = await readBigEarthNetFolder(join(samplesDir(), 'bigearthnet', 'v1-s1s2-example', 'BigEarthNet-S2'));
    expect(ben.samples.length).toBeGreaterThan(0);
    for (const s of ben.samples) {
      expect(s.images[0]!.channels).toBe(10);
      expect(s.targets).toHaveLength(ben.classes.length);
      expect(s.targets!.some((t) => t === 1)).toBe(true);
    }
    expect(() => imageStats(5)).toThrow(/expected 3 \(RGB\) or 4 \(RGB-NIR\) bands, got 5/);
    await expect(readImageFolder(join(dir, 'nothing-here'))).rejects.toThrow(/no such folder/);
  });
});

describe('HR multi-crop boxes', () => {
  it('random boxes stay inside the tile with the asked area fraction (or the centred fallback)', () => {
    const g = new Generator(3);
    for (let i = 0; i < 200; i++) {
      const b = randomResizedBox(96, 128, [0.05, 0.4], g);
      expect(b.y >= 0 && b.x >= 0 && b.y + b.h <= 96 && b.x + b.w <= 128).toBe(true);
      expect((b.h * b.w) / (96 * 128)).toBeLessThan(0.45);
    }
    expect(() => resolveMultiCrop({ localScale: [0.5, 0.2] }, 128)).toThrow(
      /multiCrop\.localScale: expected 0 < low ≤ high ≤ 1, got \[0\.5, 0\.2\]/,
    );
  });
});
