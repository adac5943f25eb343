import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeArrayBuffer } from 'geotiff';
import { SENTINEL2_BANDS, SkySenseError, dayOfYear, initBackend } from '@skysense/core-tensor';
import {
  findAcquisitionDate,
  loadSample,
  loadSentinel1,
  loadSentinel2,
  readGeoTiff,
  readManifest,
  rasterCentre,
  samplesDir,
} from '../src/index';

const samples = samplesDir();
const v1 = join(samples, 'bigearthnet', 'v1-s1s2-example');
const s2Folder = (p: string) => join(v1, 'BigEarthNet-S2', p);
const s1Folder = (p: string) => join(v1, 'BigEarthNet-S1', p);
const AUSTRIA_S2 = 'S2A_MSIL2A_20170613T101031_87_48';
const AUSTRIA_S1 = 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48';
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-data-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Inverse transverse Mercator (Snyder 1987, eq. 8-12…8-25), WGS 84, independent of proj4. */
function utmToLatLon(x: number, y: number, zone: number, south = false): [number, number] {
  const a = 6378137;
  const f = 1 / 298.257223563;
  const k0 = 0.9996;
  const e2 = f * (2 - f);
  const ep2 = e2 / (1 - e2);
  const M = (south ? y - 10_000_000 : y) / k0;
  const mu = M / (a * (1 - e2 / 4 - (3 * e2 ** 2) / 64 - (5 * e2 ** 3) / 256));
  const e1 = (1 - Math.sqrt(1 - e2)) / (1 + Math.sqrt(1 - e2));
  const phi1 =
    mu +
    ((3 * e1) / 2 - (27 * e1 ** 3) / 32) * Math.sin(2 * mu) +
    ((21 * e1 ** 2) / 16 - (55 * e1 ** 4) / 32) * Math.sin(4 * mu) +
    ((151 * e1 ** 3) / 96) * Math.sin(6 * mu) +
    ((1097 * e1 ** 4) / 512) * Math.sin(8 * mu);
  const C1 = ep2 * Math.cos(phi1) ** 2;
  const T1 = Math.tan(phi1) ** 2;
  const N1 = a / Math.sqrt(1 - e2 * Math.sin(phi1) ** 2);
  const R1 = (a * (1 - e2)) / (1 - e2 * Math.sin(phi1) ** 2) ** 1.5;
  const D = (x - 500_000) / (N1 * k0);
  const lat =
    phi1 -
    ((N1 * Math.tan(phi1)) / R1) *
      (D ** 2 / 2 -
        ((5 + 3 * T1 + 10 * C1 - 4 * C1 ** 2 - 9 * ep2) * D ** 4) / 24 +
        ((61 + 90 * T1 + 298 * C1 + 45 * T1 ** 2 - 252 * ep2 - 3 * C1 ** 2) * D ** 6) / 720);
  const lon =
    (D - ((1 + 2 * T1 + C1) * D ** 3) / 6 + ((5 - 2 * C1 + 28 * T1 - 3 * C1 ** 2 + 8 * ep2 + 24 * T1 ** 2) * D ** 5) / 120) /
    Math.cos(phi1);
  return [(lat * 180) / Math.PI, (zone - 1) * 6 - 180 + 3 + (lon * 180) / Math.PI];
}

describe('real BigEarthNet samples (SKYSENSE_SAMPLES)', () => {
  beforeAll(() => initBackend());

  it('finds the samples', () => {
    expect(fs.existsSync(v1), `set SKYSENSE_SAMPLES to the sample folder (got ${samples})`).toBe(true);
  });

  it('reads single-band GeoTIFFs with their georeferencing', async () => {
    const r = await readGeoTiff(join(s2Folder(AUSTRIA_S2), `${AUSTRIA_S2}_B05.tif`));
    expect([r.width, r.height, r.dtype, r.epsg]).toEqual([60, 60, 'uint16', 32633]);
    expect(r.origin).toEqual([404400, 5342400]);
    expect(r.resolution).toEqual([20, -20]);
    expect(r.bounds).toEqual([404400, 5341200, 405600, 5342400]);
    const win = await readGeoTiff(join(s2Folder(AUSTRIA_S2), `${AUSTRIA_S2}_B02.tif`), { window: [10, 20, 14, 22] });
    expect([win.width, win.height, win.bands[0]!.length]).toEqual([4, 2, 8]);
    expect(win.origin).toEqual([404400 + 10 * 10, 5342400 - 20 * 10]);
    await expect(readGeoTiff(join(dir, 'nope.tif'))).rejects.toThrow(/nope\.tif: no such file/);
    fs.writeFileSync(join(dir, 'broken.tif'), 'not a tiff');
    await expect(readGeoTiff(join(dir, 'broken.tif'))).rejects.toThrow(
      /E_FORMAT: .*broken\.tif: not a valid TIFF \(no II\/MM byte-order mark\)/,
    );
  });

  it('NAD83 / UTM (EPSG:269xx, the NAIP tiles) projects to lat/lon like an independent UTM inverse', async () => {
    const r = await readGeoTiff(join(samples, 'naip-timeseries', 'm_4709963_se_14_1_20200831.tif'));
    expect(r.epsg).toBe(26914);
    const c = rasterCentre(r);
    const [lat, lon] = utmToLatLon((r.bounds[0] + r.bounds[2]) / 2, (r.bounds[1] + r.bounds[3]) / 2, 14);
    expect(Math.abs(c.lat - lat)).toBeLessThan(1e-6);
    expect(Math.abs(c.lon - lon)).toBeLessThan(1e-6);
    expect(c.lat).toBeCloseTo(47.02, 2); // North Dakota
  });

  it('assembles Sentinel-2 in SkySense order on the 10 m grid, 20 m bands resampled bilinearly', async () => {
    const s2 = await loadSentinel2({ folder: s2Folder(AUSTRIA_S2) });
    expect(s2.names).toEqual([...SENTINEL2_BANDS]);
    expect([s2.bands.length, s2.height, s2.width]).toEqual([10, 120, 120]);
    const b02 = await readGeoTiff(join(s2Folder(AUSTRIA_S2), `${AUSTRIA_S2}_B02.tif`));
    expect(Array.from(s2.bands[0]!.subarray(0, 50))).toEqual(Array.from(b02.bands[0]!.subarray(0, 50)));
    const b05 = (await readGeoTiff(join(s2Folder(AUSTRIA_S2), `${AUSTRIA_S2}_B05.tif`))).bands[0]!;
    const at = (y: number, x: number) => b05[Math.min(Math.max(y, 0), 59) * 60 + Math.min(Math.max(x, 0), 59)]!;
    for (const [y, x] of [
      [0, 0],
      [7, 31],
      [64, 119],
      [119, 5],
      [50, 50],
    ] as const) {
      const sy = Math.max((y + 0.5) / 2 - 0.5, 0);
      const sx = Math.max((x + 0.5) / 2 - 0.5, 0);
      const [y0, x0] = [Math.floor(sy), Math.floor(sx)];
      const [ly, lx] = [sy - y0, sx - x0];
      const want = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x0 + 1)) + ly * ((1 - lx) * at(y0 + 1, x0) + lx * at(y0 + 1, x0 + 1));
      expect(Math.abs(s2.bands[3]![y * 120 + x]! - want), `B5 at ${y},${x}`).toBeLessThan(1e-2);
    }
  });

  it('missing bands are an error listing them, or filled on request (v2 six-band patches)', async () => {
    const six = join(samples, 'bigearthnet', 'v2-s2-6band', 'train', 'sample_000003');
    await expect(loadSentinel2({ folder: six })).rejects.toThrow(/missing Sentinel-2 band\(s\) B5, B6, B7, B8A/);
    const filled = await loadSentinel2({ folder: six }, { missing: 'mean' });
    expect(filled.filled).toEqual(['B5', 'B6', 'B7', 'B8A']);
    expect(filled.bands[3]![0]).toBeCloseTo(950.68368468, 3);
    expect([filled.height, filled.width]).toEqual([120, 120]);
  });

  it('Sentinel-1: VV, VH in dB; linear input converted with 10·log10', async () => {
    const s1 = await loadSentinel1({ folder: s1Folder(AUSTRIA_S1) });
    expect(s1.names).toEqual(['VV', 'VH']);
    const vv = s1.bands[0]!;
    const mean = vv.reduce((a, b) => a + b, 0) / vv.length;
    expect(mean).toBeGreaterThan(-25);
    expect(mean).toBeLessThan(5);
    const src = s1.grid;
    const linear = (band: Float32Array) => Float32Array.from(band, (v) => 10 ** (v / 10));
    const geo = {
      ModelPixelScale: [10, 10, 0],
      ModelTiepoint: [0, 0, 0, src.origin[0], src.origin[1], 0],
      ProjectedCSTypeGeoKey: 32633,
      GTModelTypeGeoKey: 1,
      width: 120,
      height: 120,
    };
    fs.writeFileSync(join(dir, 'x_VV.tif'), Buffer.from(writeArrayBuffer(linear(s1.bands[0]!), { ...geo })));
    fs.writeFileSync(join(dir, 'x_VH.tif'), Buffer.from(writeArrayBuffer(linear(s1.bands[1]!), { ...geo })));
    const fromLinear = await loadSentinel1({ vv: join(dir, 'x_VV.tif'), vh: join(dir, 'x_VH.tif') }, { units: 'linear' });
    for (let i = 0; i < 14400; i += 97) expect(Math.abs(fromLinear.bands[0]![i]! - vv[i]!)).toBeLessThan(1e-3);
  });

  it('acquisition dates from BigEarthNet metadata and file names → day of year', () => {
    const s2 = findAcquisitionDate(join(s2Folder(AUSTRIA_S2), `${AUSTRIA_S2}_B02.tif`));
    const s1 = findAcquisitionDate(join(s1Folder(AUSTRIA_S1), `${AUSTRIA_S1}_VV.tif`));
    expect([s2, s1]).toEqual(['2017-06-13', '2017-06-13']);
    expect(dayOfYear(s2!)).toBe(164);
    expect(findAcquisitionDate(join(samples, 'naip-timeseries', 'm_4709963_se_14_1_20150926.tif'))).toBe('2015-09-26');
    expect(findAcquisitionDate(join(dir, 'no_date_here.tif'))).toBeNull();
  });

  it('tile centres agree within 0.01° with the metadata corners converted independently', async () => {
    for (const patch of fs.readdirSync(join(v1, 'BigEarthNet-S2'))) {
      const meta = JSON.parse(fs.readFileSync(join(s2Folder(patch), `${patch}_labels_metadata.json`), 'utf8'));
      const zone = Number(/UTM zone (\d+)/.exec(meta.projection)![1]);
      const c = meta.coordinates;
      const [lat, lon] = utmToLatLon((c.ulx + c.lrx) / 2, (c.uly + c.lry) / 2, zone);
      const r = await readGeoTiff(join(s2Folder(patch), `${patch}_B02.tif`));
      const centre = rasterCentre(r);
      expect(Math.abs(centre.lat - lat), patch).toBeLessThan(0.01);
      expect(Math.abs(centre.lon - lon), patch).toBeLessThan(0.01);
    }
  });

  it('refuses manifest options it does not know instead of taking the default', async () => {
    const base = { name: 'austria', s2: [{ folder: s2Folder(AUSTRIA_S2) }], s1: [{ folder: s1Folder(AUSTRIA_S1) }] };
    await expect(loadSample({ ...base, missingBands: 'bogus' as never })).rejects.toThrow(
      /austria: missingBands: expected 'error' or 'mean', got "bogus"/,
    );
    await expect(loadSample({ ...base, s1: [{ folder: s1Folder(AUSTRIA_S1), units: 'furlongs' as never }] })).rejects.toThrow(
      /austria: s1\[0\]\.units: expected 'db' or 'linear', got "furlongs"/,
    );
  });

  it('loads a manifest sample into normalised model tensors', async () => {
    const manifest = join(dir, 'sample.json');
    fs.writeFileSync(
      manifest,
      JSON.stringify({ name: 'austria', s2: [{ folder: s2Folder(AUSTRIA_S2) }], s1: [{ folder: s1Folder(AUSTRIA_S1) }] }),
    );
    const [m] = readManifest(manifest);
    const s = await loadSample(m!);
    expect(s.s2!.frames.shape).toEqual([1, 1, 10, 120, 120]);
    expect(s.s1!.frames.shape).toEqual([1, 1, 2, 120, 120]);
    expect(s.s2!.dates).toEqual(['2017-06-13']);
    expect(s.lat).toBeCloseTo(48.2, 0);
    const meanAbs = s.s2!.frames.abs().mean().dataSync()[0]!;
    expect(meanAbs).toBeGreaterThan(0.05);
    expect(meanAbs).toBeLessThan(3);
    fs.writeFileSync(manifest, JSON.stringify({ s2: [{ folder: s2Folder(AUSTRIA_S2), date: '2017-02-30' }] }));
    await expect(loadSample(readManifest(manifest)[0]!)).rejects.toThrow(/2017-02-30 is not a calendar date/);
    fs.writeFileSync(manifest, JSON.stringify({ s1: [{ folder: s1Folder(AUSTRIA_S1) }], lat: 95, lon: 0 }));
    await expect(loadSample(readManifest(manifest)[0]!)).rejects.toThrow(SkySenseError);
  });
});
