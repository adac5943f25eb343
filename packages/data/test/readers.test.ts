import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@skysense/core-tensor';
import { writeGeoTiffLike } from '@skysense/test-utils';
import {
  IGNORE_INDEX,
  loadSample,
  loadSentinel1,
  loadSentinel2,
  readGeoTiff,
  readImage,
  readManifest,
  readMask,
  samplesDir,
  type Raster,
} from '../src/index';

const samples = samplesDir();
const v1 = join(samples, 'bigearthnet', 'v1-s1s2-example');
const S2 = 'S2A_MSIL2A_20170613T101031_87_48';
const S1 = 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48';
const s2Dir = join(v1, 'BigEarthNet-S2', S2);
const s1Dir = join(v1, 'BigEarthNet-S1', S1);
const naip = join(samples, 'naip-timeseries', 'm_4709963_se_14_1_20150926.tif');
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-readers-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
afterEach(() => delete process.env.SKYSENSE_MAX_DECODE_BYTES);

/** A little-endian TIFF of one deflated strip whose header declares `width × height × spp` bytes. */
function declaredTiff(width: number, height: number, spp: number): Buffer {
  const data = deflateSync(Buffer.alloc(1000));
  const tags: [number, number, number, number][] = [
    [256, 4, 1, width],
    [257, 4, 1, height],
    [258, 3, 1, 8],
    [259, 3, 1, 8],
    [262, 3, 1, spp === 3 ? 2 : 1],
    [273, 4, 1, 0],
    [277, 3, 1, spp],
    [278, 4, 1, height],
    [279, 4, 1, data.length],
  ];
  const ifd = Buffer.alloc(2 + tags.length * 12 + 4);
  ifd.writeUInt16LE(tags.length, 0);
  tags.forEach(([tag, type, count, value], i) => {
    ifd.writeUInt16LE(tag, 2 + 12 * i);
    ifd.writeUInt16LE(type, 4 + 12 * i);
    ifd.writeUInt32LE(count, 6 + 12 * i);
    if (type === 3) ifd.writeUInt16LE(value, 10 + 12 * i);
    else ifd.writeUInt32LE(value, 10 + 12 * i);
  });
  const head = Buffer.from([0x49, 0x49, 42, 0, 8, 0, 0, 0]);
  const dataAt = 8 + ifd.length;
  ifd.writeUInt32LE(dataAt, 2 + 12 * 5 + 8);
  return Buffer.concat([head, ifd, data]);
}

describe('readers refuse what they cannot read', () => {
  let b02: Raster;
  beforeAll(async () => {
    await initBackend();
    b02 = await readGeoTiff(join(s2Dir, `${S2}_B02.tif`));
  });

  it('a GeoTIFF cut short is refused before decoding, naming the strip and the sizes', async () => {
    const whole = fs.readFileSync(naip);
    for (const keep of [0.5, 0.9]) {
      const cut = join(dir, `cut-${keep}.tif`);
      fs.writeFileSync(cut, whole.subarray(0, Math.floor(whole.length * keep)));
      await expect(readGeoTiff(cut)).rejects.toThrow(
        /E_FORMAT: .*cut-0\.\d\.tif: truncated — tile \d+ of \d+ ends at byte \d+, the file has \d+ bytes/,
      );
    }
    const s2cut = join(dir, 'b02-cut.tif');
    const b = fs.readFileSync(join(s2Dir, `${S2}_B02.tif`));
    fs.writeFileSync(s2cut, b.subarray(0, b.length - 100));
    await expect(readGeoTiff(s2cut)).rejects.toThrow(/truncated — strip \d+ of \d+ ends at byte/);
  });

  it('sizes the header declares are checked against the decode budget before any allocation', async () => {
    const bomb = join(dir, 'bomb.tif');
    fs.writeFileSync(bomb, declaredTiff(20000, 20000, 3));
    const t0 = performance.now();
    const rss0 = process.memoryUsage().rss;
    await expect(readGeoTiff(bomb)).rejects.toThrow(
      /^E_LIMIT: .*bomb\.tif: decoding needs 9\.6 GB \(20000 × 20000 px × 3 band\(s\), stored and as float32\), over the 4\.3 GB budget/,
    );
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(200e6);
    process.env.SKYSENSE_MAX_DECODE_BYTES = '1M';
    await expect(readGeoTiff(naip)).rejects.toThrow(/E_LIMIT: .*over the 1\.0 MB budget/);
    await expect(readImage(join(samples, 'dubai-aerial-segmentation', 'images', 'tile1_image_part_001.jpg'))).rejects.toThrow(
      /E_LIMIT: .*tile1_image_part_001\.jpg: decoding exceeds the 1\.0 MB budget/,
    );
    await expect(readImage(join(samples, 'dubai-aerial-segmentation', 'masks', 'tile1_image_part_001.png'))).rejects.toThrow(
      /E_LIMIT: .*tile1_image_part_001\.png: decoding needs 10 MB \(797 × 644 px, decoded and as float32 planes\)/,
    );
  });

  it('label masks keep their values: nodata becomes the ignore index, never a filled mean; a short BigTIFF header is refused', async () => {
    const labels = Uint8Array.from({ length: 14400 }, (_, i) => (i < 100 ? 0 : 1 + (i % 5)));
    const file = writeGeoTiffLike(join(dir, 'labels.tif'), b02, labels, { GDAL_NODATA: '0' });
    const classes = Array.from({ length: 6 }, (_, k) => ({ name: `c${k}`, color: [k, k, k] as [number, number, number] }));
    const mask = await readMask(file, classes);
    expect(Array.from(mask.subarray(0, 100)).every((v) => v === IGNORE_INDEX)).toBe(true);
    expect(Array.from(mask.subarray(100, 110))).toEqual(Array.from(labels.subarray(100, 110)));
    fs.writeFileSync(join(dir, 'short.tif'), Buffer.from([0x49, 0x49, 0x2b, 0, 8, 0, 0, 0, 0, 0]));
    await expect(readGeoTiff(join(dir, 'short.tif'))).rejects.toThrow(
      /E_FORMAT: .*short\.tif: not a valid TIFF \(a BigTIFF header needs 16 bytes\)/,
    );
  });

  it('Sentinel-2: an 8-bit file is refused (anyDtype reads it), a multi-band file given as one band is refused', async () => {
    const folder = join(dir, 'u8');
    fs.cpSync(s2Dir, folder, { recursive: true });
    writeGeoTiffLike(
      join(folder, `${S2}_B02.tif`),
      b02,
      Uint8Array.from(b02.bands[0]!, (v) => Math.min(255, v / 8)),
    );
    await expect(loadSentinel2({ folder })).rejects.toThrow(
      /E_DTYPE: .*B02\.tif: Sentinel-2 reflectance \(L2A ×10000\) is stored as uint16, int16, uint32, int32, float32, float64, this file holds uint8 \(an 8-bit rendering\?\); pass anyDtype: true/,
    );
    expect((await loadSentinel2({ folder }, { anyDtype: true })).bands).toHaveLength(10);
    const bands = Object.fromEntries(
      fs
        .readdirSync(s2Dir)
        .flatMap((f) => (/_(B\d\d|B8A)\.tif$/.exec(f) ? [[/_(B\d\d|B8A)\.tif$/.exec(f)![1]!.replace(/^B0/, 'B'), join(s2Dir, f)]] : [])),
    );
    await expect(loadSentinel2({ bands: { ...bands, B2: naip } })).rejects.toThrow(
      /E_BANDS: .*20150926\.tif: given as band B2, expected a one-band file, got 4 bands \(for a multi-band file give \{ file, bandMap \}/,
    );
  });

  it('Sentinel-1: integer files are refused; the nodata tag, NaN and the zero border are masked', async () => {
    const vv = await readGeoTiff(join(s1Dir, `${S1}_VV.tif`));
    const folder = join(dir, 's1');
    fs.mkdirSync(folder);
    writeGeoTiffLike(
      join(folder, 'x_VV.tif'),
      vv,
      Int16Array.from(vv.bands[0]!, (v) => Math.round(v * 100)),
    );
    writeGeoTiffLike(
      join(folder, 'x_VH.tif'),
      vv,
      Int16Array.from(vv.bands[0]!, (v) => Math.round(v * 100)),
    );
    await expect(loadSentinel1({ folder })).rejects.toThrow(
      /E_DTYPE: .*x_VV\.tif: Sentinel-1 backscatter \(dB or linear power\) is stored as float32, float64, this file holds int16/,
    );
    const band = vv.bands[0]!.map((v, i) => (i % 120 < 4 ? 0 : i < 240 ? -9999 : i === 5000 ? NaN : v));
    writeGeoTiffLike(join(folder, 'x_VV.tif'), vv, band, { GDAL_NODATA: '-9999' });
    writeGeoTiffLike(
      join(folder, 'x_VH.tif'),
      vv,
      vv.bands[0]!.map((v, i) => (i % 120 < 4 ? 0 : v)),
      { GDAL_NODATA: '-9999' },
    );
    const r = await readGeoTiff(join(folder, 'x_VV.tif'));
    expect(r.nodata).toBe(-9999);
    const s1 = await loadSentinel1({ folder });
    const expected = (i: number) => !(i % 120 < 4 || i < 240 || i === 5000);
    expect(Array.from(s1.valid, (v, i) => v === (expected(i) ? 1 : 0)).every(Boolean)).toBe(true);
    expect(s1.bands.every((b) => b.every(Number.isFinite))).toBe(true);
    // a float32 nodata value its decimal tag does not spell exactly (GDAL writes -3.40282e+38 for -FLT_MAX)
    const maxed = Float32Array.from(vv.bands[0]!, (v, i) => (i < 120 ? -3.4028234663852886e38 : v));
    writeGeoTiffLike(join(folder, 'x_VV.tif'), vv, maxed, { GDAL_NODATA: '-3.40282e+38' });
    const flt = await readGeoTiff(join(folder, 'x_VV.tif'));
    expect(Array.from(flt.valid.subarray(0, 240), (v, i) => v === (i < 120 ? 0 : 1)).every(Boolean)).toBe(true);
  });

  it('Sentinel-2 SCL: cloud, shadow, cirrus and no-data classes are masked on the 10 m grid', async () => {
    const folder = join(dir, 'scl');
    fs.cpSync(s2Dir, folder, { recursive: true });
    const b05 = await readGeoTiff(join(s2Dir, `${S2}_B05.tif`)); // a 20 m grid, like SCL
    const scl = Uint8Array.from({ length: 60 * 60 }, (_, i) => (Math.floor(i / 60) < 10 ? 9 : Math.floor(i / 60) < 20 ? 3 : 4));
    writeGeoTiffLike(join(folder, `${S2}_SCL.tif`), b05, scl);
    const s2 = await loadSentinel2({ folder });
    // SCL rows 0–19 (cloud, shadow) cover 10 m rows 0–39; bilinear resampling marks row 40 too (it reads row 19)
    const rowValid = (y: number) => s2.valid.subarray(y * 120, (y + 1) * 120).every((v) => v === 1);
    expect([0, 20, 39, 40, 41, 80].map(rowValid)).toEqual([false, false, false, false, true, true]);
    const none = await loadSentinel2({ folder }, { sclInvalid: [] });
    expect(none.valid.every((v) => v === 1)).toBe(true);
  });

  it('manifests: entries of the wrong form are named; a normalisation std of 0 is refused; a sample with no usable frame is refused', async () => {
    const m = (body: unknown) => {
      const f = join(dir, `m-${Math.random().toString(36).slice(2)}.json`);
      fs.writeFileSync(f, JSON.stringify(body));
      return f;
    };
    expect(() => readManifest(m({ name: 'x', s1: [{ vv: 'a.tif' }] }))).toThrow(
      /E_DATA: .*sample 0 \(x\): s1\[0\]: expected \{ "folder" \} or \{ "vv", "vh" \} \(both files\), got \{"vv":"a\.tif"\}/,
    );
    expect(() => readManifest(m({ s2: [{}] }))).toThrow(
      /sample 0: s2\[0\]: expected \{ "folder" \}, \{ "bands": \{ "B02": …, … \} \} or \{ "file", "bandMap" \} \(band names or "auto"\), got \{\}/,
    );
    expect(() => readManifest(m({ s2: 'folder' }))).toThrow(/s2: expected a list of frames, got "folder"/);
    // option values are not paths (0.2 made 'lee' and 'auto' absolute paths)
    const [kept] = readManifest(m({ s2: [{ file: 'x.tif', bandMap: 'auto' }], s1: [{ vv: 'a.tif', vh: 'b.tif', speckleFilter: 'lee' }] }));
    expect([(kept!.s2![0] as { bandMap: string }).bandMap, kept!.s1![0]!.speckleFilter]).toEqual(['auto', 'lee']);
    expect((kept!.s2![0] as { file: string }).file).toMatch(/^\/.*x\.tif$/);
    fs.writeFileSync(join(dir, 'broken.json'), '{ "s2": [');
    expect(() => readManifest(join(dir, 'broken.json'))).toThrow(/E_DATA: manifest .*broken\.json: not valid JSON \(/);
    const badMeta = join(dir, 'bad-meta');
    fs.cpSync(s2Dir, badMeta, { recursive: true });
    fs.writeFileSync(join(badMeta, `${S2}_labels_metadata.json`), '{"acquisition_date": ');
    await expect(loadSample({ name: 'm', s2: [{ folder: badMeta }] })).rejects.toThrow(
      /^E_DATA: labels metadata .*bad-meta\/S2A_MSIL2A_20170613T101031_87_48_labels_metadata\.json: not valid JSON \(/,
    );
    await expect(loadSample({ name: 'd', s2: [{ folder: s2Dir }], anyDtype: 'yes' as unknown as boolean })).rejects.toThrow(
      /E_ARG: d: anyDtype: expected true or false, got "yes"/,
    );
    const norm = { s2: { mean: Array(10).fill(0), std: [0, ...Array(9).fill(1)] } };
    await expect(loadSample({ name: 'z', s2: [{ folder: s2Dir }], normalization: norm })).rejects.toThrow(
      /E_ARG: z s2: normalisation std\[0\]: expected a finite number > 0, got 0/,
    );
    const empty = join(dir, 'empty');
    fs.cpSync(s2Dir, empty, { recursive: true });
    writeGeoTiffLike(join(empty, `${S2}_B03.tif`), b02, new Float32Array(14400).fill(NaN));
    await expect(loadSample({ name: 'e', s2: [{ folder: empty }] })).rejects.toThrow(
      /E_DATA: e: nothing usable — S2 frames are 100% nodata \(frames over maxInvalid 0\.5 are dropped\)/,
    );
  });
});
