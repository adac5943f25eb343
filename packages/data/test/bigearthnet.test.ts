import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '@skysense/core-tensor';
import { writeGeoTiffLike } from '@skysense/test-utils';
import { BEN19_CLASSES, BEN19_FROM_BEN43, BEN43_CLASSES, decodeBigEarthNet, indexBigEarthNet, samplesDir } from '../src/index';

const root = join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');
const dir = mkdtempSync(join(tmpdir(), 'skysense-ben-'));
const names = (t: number[], classes: readonly string[]) => classes.filter((_, i) => t[i]);

describe('BigEarthNet nomenclatures and index', () => {
  beforeAll(() => initBackend());
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the 43 → 19 conversion: 11 classes dropped, every 19-class fed', () => {
    expect(BEN43_CLASSES).toHaveLength(43);
    expect(BEN19_CLASSES).toHaveLength(19);
    expect(BEN19_FROM_BEN43).toHaveLength(43);
    expect(BEN19_FROM_BEN43.filter((k) => k < 0)).toHaveLength(11);
    expect(new Set(BEN19_FROM_BEN43.filter((k) => k >= 0)).size).toBe(19);
    const to19 = (n: string) => BEN19_CLASSES[BEN19_FROM_BEN43[BEN43_CLASSES.indexOf(n)]!];
    expect(to19('Non-irrigated arable land')).toBe('Arable land');
    expect(to19('Peatbogs')).toBe('Inland wetlands');
    expect(to19('Sparsely vegetated areas')).toBe('Natural grassland and sparsely vegetated areas');
    expect(to19('Olive groves')).toBe('Permanent crops');
    expect(to19('Annual crops associated with permanent crops')).toBe('Permanent crops');
    expect(to19('Airports')).toBeUndefined();
  });

  it('indexes the real S1 + S2 pairs from their metadata: fixed class lists, dates, WGS 84 centres', async () => {
    const ben19 = indexBigEarthNet(root, { s1: true });
    expect(ben19.classes.map((c) => c.name)).toEqual(BEN19_CLASSES);
    expect(ben19.entries).toHaveLength(6);
    const finland = ben19.entries.find((e) => e.name.endsWith('_69_24'))!;
    expect(names(finland.targets, BEN19_CLASSES)).toEqual([
      'Coniferous forest',
      'Mixed forest',
      'Transitional woodland, shrub',
      'Inland wetlands',
      'Inland waters',
    ]);
    expect(finland.dates).toEqual(['2017-09-24', '2017-09-25']);
    expect(finland.s1).toMatch(/S1A_IW_GRDH_1SDV_20170925T043256_35VPK_69_24$/);
    const austria = ben19.entries.find((e) => e.name.endsWith('_87_48'))!;
    expect(austria.lat).toBeCloseTo(48.2, 0);
    expect(austria.lon).toBeCloseTo(13.7, 0);
    const ben43 = indexBigEarthNet(root, { classes: 'ben43' });
    expect(ben43.classes).toHaveLength(43);
    expect(names(ben43.entries.find((e) => e.name.endsWith('_69_24'))!.targets, BEN43_CLASSES)).toContain('Peatbogs');
    // a run's class list (here reversed, 3 classes): targets follow it, patches without any of them are listed
    const run = ['Pastures', 'Coniferous forest', 'Arable land'];
    const custom = indexBigEarthNet(root, { classes: run });
    expect(custom.entries.map((e) => [e.name.slice(-5), names(e.targets, run)])).toEqual([
      ['87_48', ['Arable land']],
      ['36_85', ['Pastures', 'Arable land']],
      ['_4_55', ['Pastures']],
      ['69_24', ['Coniferous forest']],
      ['57_38', ['Coniferous forest', 'Arable land']],
    ]);
    expect(custom.unlabelled).toEqual(['S2A_MSIL2A_20171221T112501_56_35']);
    const s = await decodeBigEarthNet(finland);
    expect(s.images.map((i) => [i.channels, i.width, i.height])).toEqual([
      [10, 120, 120],
      [2, 120, 120],
    ]);
    expect(s.dates).toEqual(finland.dates);
  });

  it('names an unknown label, a missing S1 pair, an S1 patch on another grid and a bad nomenclature', async () => {
    const patch = join(dir, 'BigEarthNet-S2', 'S2A_MSIL2A_20170613T101031_87_48');
    cpSync(join(root, 'BigEarthNet-S2', 'S2A_MSIL2A_20170613T101031_87_48'), patch, { recursive: true });
    const meta = join(patch, 'S2A_MSIL2A_20170613T101031_87_48_labels_metadata.json');
    expect(() => indexBigEarthNet(dir, { s1: true })).toThrow(/no Sentinel-1 patch under .* names it as its corresponding_s2_patch/);
    writeFileSync(meta, JSON.stringify({ ...JSON.parse(readFileSync(meta, 'utf8')), labels: ['Moon base'] }));
    expect(() => indexBigEarthNet(dir)).toThrow(/label 'Moon base' is in neither the BigEarthNet-43 nor the BigEarthNet-19 nomenclature/);
    // an S1 patch on another grid than its S2 patch
    const pair = join(dir, 'pair');
    const [s2Name, s1Name] = ['S2A_MSIL2A_20170613T101031_87_48', 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48'];
    cpSync(join(root, 'BigEarthNet-S2', s2Name), join(pair, 'BigEarthNet-S2', s2Name), { recursive: true });
    cpSync(join(root, 'BigEarthNet-S1', s1Name), join(pair, 'BigEarthNet-S1', s1Name), { recursive: true });
    const half = {
      width: 60,
      height: 60,
      origin: [404400, 5342400] as [number, number],
      resolution: [20, -20] as [number, number],
      epsg: 32633,
    };
    for (const pol of ['VV', 'VH'])
      writeGeoTiffLike(join(pair, 'BigEarthNet-S1', s1Name, `${s1Name}_${pol}.tif`), half, new Float32Array(3600).fill(-12), {
        SampleFormat: [3],
      });
    await expect(decodeBigEarthNet(indexBigEarthNet(pair, { s1: true }).entries[0]!)).rejects.toThrow(
      /the S1 patch is 60×60 px, its S2 patch .* 120×120 \(one grid\)/,
    );
    expect(() => indexBigEarthNet(dir, { classes: 'ben20' as never })).toThrow(
      /classes: expected 'ben19', 'ben43' or a list of class names, got 'ben20'/,
    );
  });
});
