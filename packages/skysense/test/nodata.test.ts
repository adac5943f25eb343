import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, manualSeed, tf } from '@skysense/core-tensor';
import { writeGeoTiffLike } from '@skysense/test-utils';
import { type LoadedSample, type SampleManifest, loadSample, readGeoTiff, samplesDir } from '@skysense/data';
import { SkySense, embedSample, runEmbed, sampleInputs } from '../src/index';

// A real BigEarthNet S1 + S2 pair (Austria, 2017-06-13) copied with nodata injected:
// - S2: a 24 × 24 px block of 0 in B04 (Sentinel-2 L2A's NO_DATA value), rows and columns 40–63;
// - S1: NaN in VV over rows and columns 48–71 (overlapping the S2 block on 48–63), and the zero
//   border of GRD scenes (VV = VH = 0) over columns 0–7.
const v1 = join(samplesDir(), 'bigearthnet', 'v1-s1s2-example');
const S2 = 'S2A_MSIL2A_20170613T101031_87_48';
const S1 = 'S1A_IW_GRDH_1SDV_20170613T165043_33UUP_87_48';
const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-nodata-'));
const pictures = process.env.SKYSENSE_NODATA_PICTURES;
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const inBlock = (i: number, lo: number, hi: number) => {
  const [y, x] = [Math.floor(i / 120), i % 120];
  return y >= lo && y < hi && x >= lo && x < hi;
};
const s2Hole = (i: number) => inBlock(i, 40, 64);
const s1Hole = (i: number) => inBlock(i, 48, 72) || i % 120 < 8;

async function dirtyCopy(): Promise<SampleManifest> {
  const s2 = join(dir, S2);
  const s1 = join(dir, S1);
  fs.cpSync(join(v1, 'BigEarthNet-S2', S2), s2, { recursive: true });
  fs.cpSync(join(v1, 'BigEarthNet-S1', S1), s1, { recursive: true });
  const b04 = await readGeoTiff(join(s2, `${S2}_B04.tif`));
  writeGeoTiffLike(
    join(s2, `${S2}_B04.tif`),
    b04,
    b04.bands[0]!.map((v, i) => (s2Hole(i) ? 0 : v)),
  );
  const vv = await readGeoTiff(join(s1, `${S1}_VV.tif`));
  const vh = await readGeoTiff(join(s1, `${S1}_VH.tif`));
  writeGeoTiffLike(
    join(s1, `${S1}_VV.tif`),
    vv,
    vv.bands[0]!.map((v, i) => (i % 120 < 8 ? 0 : inBlock(i, 48, 72) ? NaN : v)),
  );
  writeGeoTiffLike(
    join(s1, `${S1}_VH.tif`),
    vh,
    vh.bands[0]!.map((v, i) => (i % 120 < 8 ? 0 : v)),
  );
  return { name: 'dirty', s2: [{ folder: s2 }], s1: [{ folder: s1 }] };
}

const clean: SampleManifest = {
  name: 'clean',
  s2: [{ folder: join(v1, 'BigEarthNet-S2', S2) }],
  s1: [{ folder: join(v1, 'BigEarthNet-S1', S1) }],
};

describe('nodata on a real BigEarthNet pair', () => {
  let a: LoadedSample;
  let b: LoadedSample;
  beforeAll(async () => {
    await initBackend();
    a = await loadSample(clean);
    b = await loadSample(await dirtyCopy());
  });
  afterAll(() => tf.dispose([a.s2!.frames, a.s1!.frames, b.s2!.frames, b.s1!.frames]));

  it('the loader masks exactly the injected pixels, fills them (no NaN), and leaves every other value as in the clean run', () => {
    const n = 120 * 120;
    expect(Array.from(b.s2!.pixelValid, (v, i) => v === (s2Hole(i) ? 0 : 1)).every(Boolean)).toBe(true);
    expect(Array.from(b.s1!.pixelValid, (v, i) => v === (s1Hole(i) ? 0 : 1)).every(Boolean)).toBe(true);
    expect(b.nodata.s2![0]).toBeCloseTo(576 / n, 6);
    const s1Masked = Array.from({ length: n }, (_, i) => s1Hole(i)).filter(Boolean).length;
    expect(b.nodata.s1![0]).toBeCloseTo(s1Masked / n, 6);
    expect(b.nodata.dropped).toEqual({ s2: [], s1: [] });
    expect(a.nodata).toEqual({ s2: [0], s1: [0], dropped: { s2: [], s1: [] } });
    for (const key of ['s2', 's1'] as const) {
      const [x, y] = [a[key]!.frames.dataSync(), b[key]!.frames.dataSync()];
      const valid = b[key]!.pixelValid;
      let outside = 0;
      for (let k = 0; k < y.length; k++) {
        expect(Number.isFinite(y[k]!)).toBe(true);
        if (valid[k % n]) outside = Math.max(outside, Math.abs(x[k]! - y[k]!));
      }
      expect(outside, key).toBe(0);
    }
  });

  it('the model: outputs finite, coverage 1/2 where one modality is masked and 0 where both are, fusion exact elsewhere', () => {
    manualSeed(0);
    const model = SkySense.fromPreset('skysense-tiny', { hr: null }).eval();
    const run = (s: LoadedSample) => {
      const { inputs, owned } = sampleInputs(s);
      const out = model.forward(inputs);
      tf.dispose(owned);
      return out;
    };
    const before = tf.memory().numTensors;
    const ca = run(a);
    const cb = run(b);
    expect(ca.coverage).toBeUndefined();
    const [, d, h, w] = cb.fused.shape as number[];
    const fused = cb.fused.dataSync();
    expect(fused.every(Number.isFinite)).toBe(true);
    const cov = cb.coverage!.dataSync();
    // the tiny preset fuses on the pixel grid (ViT patches of 4 px, up-head ×4); a frame is left out
    // of a location whose ViT patch holds any nodata pixel (the injected blocks are patch-aligned)
    expect([h, w]).toEqual([120, 120]);
    const at = (y: number, x: number) => cov[y * w! + x]!;
    expect(at(41, 41)).toBe(0.5); // S2 block only, S1 valid
    expect(at(52, 60)).toBe(0); // both masked
    expect(at(70, 70)).toBe(0.5); // S1 NaN block only
    expect(at(100, 3)).toBe(0.5); // S1 zero border
    expect(at(100, 100)).toBe(1);
    expect(Array.from(cov).filter((c) => c === 0).length).toBe(16 * 16); // px 48–63 in both blocks
    // Receptive field: the S2/S1 ViTs attend globally, so every output location depends on every
    // input pixel and the fused map changes (slightly) everywhere when pixels are filled; exact
    // equality outside the mask holds where the model is per-pixel, the fusion. Given the clean
    // encoder features, masking frames per location leaves fully covered locations bit-for-bit.
    const cleanRel = tf.tidy(() => {
      const diff = tf.abs(tf.sub(ca.fused, cb.fused));
      const full = tf.reshape(tf.equal(cb.coverage!, 1), [1, 1, h!, w!]);
      return tf.div(tf.max(tf.where(tf.broadcastTo(full, diff.shape), diff, tf.zerosLike(diff))), tf.max(tf.abs(ca.fused))).dataSync()[0]!;
    });
    expect(cleanRel).toBeGreaterThan(0); // the encoders' global attention
    tf.dispose([ca.fused, cb.fused, cb.coverage!, ca.withGeoContext, cb.withGeoContext].filter((t) => t !== undefined));
    expect(tf.memory().numTensors).toBe(before);
    const features = tf.tidy(() => {
      const s2 = model.s2!.forwardSeries(a.s2!.frames);
      const s1 = model.s1!.forwardSeries(a.s1!.frames);
      const keep = [s2.at(-1)!, s1.at(-1)!];
      return keep;
    });
    const series = (f: tf.Tensor, dates: string[], valid?: Uint8Array) => ({
      features: f,
      dates: [dates],
      validMap: valid && tf.tensor4d(Float32Array.from(valid), [1, 1, 120, 120]),
    });
    const x = model.neck.forwardWithCoverage({ s2: series(features[0]!, a.s2!.dates), s1: series(features[1]!, a.s1!.dates) });
    const ys2 = series(features[0]!, a.s2!.dates, b.s2!.pixelValid);
    const ys1 = series(features[1]!, a.s1!.dates, b.s1!.pixelValid);
    const y = model.neck.forwardWithCoverage({ s2: ys2, s1: ys1 });
    const [fx, fy, c] = [x.fused.dataSync(), y.fused.dataSync(), y.coverage!.dataSync()];
    let full = 0;
    let masked = 0;
    for (let k = 0; k < fx.length; k++) {
      const loc = k % (h! * w!);
      const delta = Math.abs(fx[k]! - fy[k]!);
      if (c[loc] === 1) full = Math.max(full, delta);
      else masked = Math.max(masked, delta);
    }
    expect(full).toBe(0);
    expect(masked).toBeGreaterThan(1e-3);
    expect(d).toBe(32);
    tf.dispose([...features, x.fused, y.fused, y.coverage!, ys2.validMap!, ys1.validMap!]);
    model.dispose();
  });

  it('a frame that is mostly nodata is dropped from the series: the output equals the run without that frame', async () => {
    const holey = join(dir, 'holey');
    fs.cpSync(join(v1, 'BigEarthNet-S2', S2), holey, { recursive: true });
    const b02 = await readGeoTiff(join(holey, `${S2}_B02.tif`));
    writeGeoTiffLike(
      join(holey, `${S2}_B02.tif`),
      b02,
      b02.bands[0]!.map((v, i) => (i < 0.7 * 14400 ? NaN : v)),
    );
    const two = await loadSample({
      name: 'two',
      s2: [{ folder: join(v1, 'BigEarthNet-S2', S2) }, { folder: holey, date: '2017-07-01' }],
      lat: 47.5,
      lon: 14.5,
    });
    const one = await loadSample({ name: 'one', s2: [{ folder: join(v1, 'BigEarthNet-S2', S2) }], lat: 47.5, lon: 14.5 });
    expect(two.s2!.frameValid).toEqual([true, false]);
    expect(two.nodata.dropped.s2).toEqual([1]);
    expect(two.nodata.s2![1]).toBeCloseTo(0.7, 3);
    manualSeed(0);
    const model = SkySense.fromPreset('skysense-tiny', { hr: null, s1: null, geo: null }).eval();
    const out = (s: LoadedSample) => {
      const { inputs, owned } = sampleInputs(s);
      const o = model.forward(inputs);
      tf.dispose(owned);
      const v = o.fused.dataSync().slice();
      tf.dispose([o.fused, o.coverage].filter((t) => t !== undefined));
      return v;
    };
    const [f2, f1] = [out(two), out(one)];
    let err = 0;
    let scale = 0;
    for (let k = 0; k < f1.length; k++) ((err = Math.max(err, Math.abs(f2[k]! - f1[k]!))), (scale = Math.max(scale, Math.abs(f1[k]!))));
    expect(err / scale).toBeLessThan(1e-5);
    tf.dispose([two.s2!.frames, one.s2!.frames]);
    model.dispose();
  });

  it('embed writes the coverage into fused.safetensors, marks nodata in the pictures and reports it', () => {
    manualSeed(0);
    const model = SkySense.fromPreset('skysense-tiny', { hr: null }).eval();
    const out = pictures ?? join(dir, 'embed');
    const summary = embedSample(model, b, join(out, 'dirty'));
    expect(summary.files).toEqual(['fused.safetensors', 'pca.png', 'prototypes.png', 's2-rgb.png']);
    expect(summary.nodata.s2![0]).toBeCloseTo(0.04, 6);
    expect(summary.nodata.output).toBeCloseTo(256 / 14400, 6);
    expect(summary.nodata.outputPartial).toBeGreaterThan(0.1);
    expect(Number.isFinite(summary.fusedMean) && Number.isFinite(summary.fusedStd)).toBe(true);
    embedSample(model, a, join(out, 'clean'));
    model.dispose();
  });

  it('runEmbed on a manifest frees every sample it loads (tensor count flat across calls) and reports nodata per sample', async () => {
    const manifest = join(dir, 'manifest.json');
    fs.writeFileSync(
      manifest,
      JSON.stringify({ samples: [clean, { name: 'dirty', s2: [{ folder: join(dir, S2) }], s1: [{ folder: join(dir, S1) }] }] }),
    );
    const lines: string[] = [];
    const once = () => runEmbed({ manifest, out: join(dir, 'embed-manifest'), log: (l) => lines.push(l) });
    await once();
    const before = tf.memory().numTensors;
    const summaries = await once();
    expect(tf.memory().numTensors).toBe(before);
    expect(summaries.map((x) => x.name)).toEqual(['clean', 'dirty']);
    expect(lines.find((l) => l.startsWith('dirty:'))).toMatch(/nodata S2 4\.0%, S1 \d+\.\d%; output 1\.8% nodata, \d+\.\d% partly masked/);
  });
});
