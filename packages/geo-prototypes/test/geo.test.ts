import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Generator, SkySenseError, initBackend, shapeOnly, tf, valueAndGrads, type Tensor } from '@skysense/core-tensor';
import { PrototypeBank, regionBounds, regionIndex } from '../src/index';

const dir = fs.mkdtempSync(join(tmpdir(), 'skysense-geo-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function close(a: Tensor | number[], b: number[], tol: number): void {
  const v = Array.isArray(a) ? a : Array.from(a.dataSync());
  expect(v.length).toBe(b.length);
  v.forEach((x, i) => expect(Math.abs(x - b[i]!), `element ${i}`).toBeLessThanOrEqual(tol));
}

describe('regions', () => {
  it('maps poles, the equator and the antimeridian onto the 64 × 64 grid', () => {
    expect(regionIndex(90, 0)).toBe(32);
    expect(regionIndex(-90, 0)).toBe(63 * 64 + 32);
    expect(regionIndex(0, 180)).toBe(32 * 64);
    expect(regionIndex(0, -180)).toBe(32 * 64);
    expect(regionIndex(0, 179.999)).toBe(32 * 64 + 63);
    expect(() => regionIndex(0, 540)).toThrow(/lon: expected a longitude in \[-180, 360\]/);
    expect(regionIndex(45.5, -73.6)).toBe(regionIndex(45.5, 286.4));
    for (const [lat, lon] of [
      [48.85, 2.35],
      [-33.9, 151.2],
      [64.1, -21.9],
    ] as const) {
      const b = regionBounds(regionIndex(lat, lon));
      expect(lat).toBeGreaterThanOrEqual(b.lat[0]);
      expect(lat).toBeLessThanOrEqual(b.lat[1]);
      expect(lon).toBeGreaterThanOrEqual(b.lon[0]);
      expect(lon).toBeLessThan(b.lon[1]);
    }
  });

  it('refuses invalid coordinates with E_LATLON', () => {
    expect(() => regionIndex(90.5, 0)).toThrow(/lat: expected a latitude in \[-90, 90\], got 90.5/);
    expect(() => regionIndex(Number.NaN, 0)).toThrow(SkySenseError);
    expect(() => regionIndex(0, Number.POSITIVE_INFINITY)).toThrow(/lon: expected a longitude in \[-180, 360\], got Infinity/);
    expect(() => regionIndex(43.6, 500)).toThrow(/lon: expected a longitude in \[-180, 360\], got 500/); // a wrong value, not a wrapped region
    expect(regionIndex(10, 350)).toBe(regionIndex(10, -10)); // the 0–360° convention is the same meridian
  });
});

describe('PrototypeBank', () => {
  beforeAll(() => initBackend());

  it('SkySense size: 4096 × 100 × 1024 = 419,430,400 values, a buffer (no gradient), L2-normalised', () => {
    const big = shapeOnly(() => new PrototypeBank());
    expect(big.stateShapes().get('prototypes')).toEqual([4096, 100, 1024]);
    expect(big.parameterCount()).toBe(0);
    const small = new PrototypeBank({ grid: { rows: 2, cols: 2 }, prototypesPerRegion: 3, dims: 4, rng: new Generator(1) });
    close(tf.norm(small.prototypes.value, 'euclidean', -1).reshape([-1]), new Array(12).fill(1), 1e-6);
    small.dispose();
  });

  it('Sinkhorn assignment: rows sum to 1; columns reach the uniform N / N_p marginal', () => {
    const bank = new PrototypeBank({ grid: { rows: 1, cols: 1 }, prototypesPerRegion: 5, dims: 8, rng: new Generator(2) });
    const f = tf.randomNormal([20, 8], 0, 1, 'float32', 3);
    const s3 = bank.assign(f, 0);
    close(tf.sum(s3, 1), new Array(20).fill(1), 1e-5);
    const s50 = bank.assign(f, 0, { iterations: 50 });
    close(tf.sum(s50, 1), new Array(20).fill(1), 1e-5);
    close(tf.sum(s50, 0), new Array(5).fill(4), 1e-3);
    bank.dispose();
  });

  it('Eq. 12–13 on a hand-computed case: weighted-mean targets and the EMA', () => {
    const bank = new PrototypeBank({ grid: { rows: 1, cols: 1 }, prototypesPerRegion: 2, dims: 2 });
    bank.prototypes.assign(
      tf.tensor3d([
        [
          [1, 0],
          [0, 1],
        ],
      ]),
    );
    const F = tf.tensor2d([
      [1, 0],
      [0, 2],
      [3, 0],
    ]);
    const S = tf.tensor2d([
      [1, 0],
      [0, 1],
      [0.5, 0.5],
    ]);
    // Sᵀ F = [[2.5, 0], [1.5, 2]], masses [1.5, 1.5] → means [[5/3, 0], [1, 4/3]]
    const targets = PrototypeBank.targets(F, S, false);
    close(targets, [5 / 3, 0, 1, 4 / 3], 1e-6);
    bank.emaRegion(0, targets, 0.9, false);
    close(bank.prototypes.value, [0.9 + 0.1 * (5 / 3), 0, 0.1, 0.9 + 0.1 * (4 / 3)], 1e-6);
    close(PrototypeBank.targets(F, S, true), [1, 0, 0.6, 0.8], 1e-6);
    bank.dispose();
  });

  it('update pulls a region’s prototypes towards its features and leaves other regions alone', () => {
    const bank = new PrototypeBank({ grid: { rows: 1, cols: 2 }, prototypesPerRegion: 2, dims: 3, rng: new Generator(4) });
    const other = Array.from(bank.regionPrototypes(1).dataSync());
    const dirs = [
      [1, 0, 0],
      [0, 1, 0],
    ];
    const fmap = tf.tensor4d(Array.from({ length: 16 }, (_, i) => dirs[i % 2]!).flat(), [4, 4, 1, 3]).transpose([2, 3, 0, 1]);
    for (let i = 0; i < 60; i++) bank.update(fmap, [0], { momentum: 0.8 });
    const sims = tf.matMul(bank.regionPrototypes(0), tf.tensor2d(dirs), false, true).dataSync();
    expect(Math.max(sims[0]!, sims[1]!)).toBeGreaterThan(0.95);
    expect(Math.max(sims[2]!, sims[3]!)).toBeGreaterThan(0.95);
    close(bank.regionPrototypes(1), other, 0);
    bank.dispose();
  });

  it('Eq. 3 attention: concat(F, softmax(F Pᵀ / √d) P), differentiable in F only', () => {
    const bank = new PrototypeBank({ grid: { rows: 1, cols: 3 }, prototypesPerRegion: 4, dims: 6, rng: new Generator(5) });
    const f = tf.randomNormal([2, 6, 2, 3], 0, 1, 'float32', 6);
    const out = bank.attend(f, [2, 0]);
    expect(out.shape).toEqual([2, 12, 2, 3]);
    close(tf.slice(out, [0, 0, 0, 0], [2, 6, 2, 3]), Array.from(f.dataSync()), 0);
    const tok = tf.reshape(tf.slice(f, [1, 0, 1, 2], [1, 6, 1, 1]), [1, 6]);
    const p = bank.regionPrototypes(0);
    const manual = tf.matMul(tf.softmax(tf.div(tf.matMul(tok, p, false, true), Math.sqrt(6))), p);
    close(tf.reshape(tf.slice(out, [1, 6, 1, 2], [1, 6, 1, 1]), [1, 6]), Array.from(manual.dataSync()), 1e-5);
    const g = tf.grad((x: Tensor) => tf.sum(bank.attend(x, [2, 0])))(f);
    expect(g.shape).toEqual(f.shape);
    expect(() => valueAndGrads(bank, () => tf.sum(bank.attend(f, [2, 0])) as tf.Scalar)).toThrow(/no trainable parameter/);
    expect(() => bank.attend(f, [3, 0])).toThrow(/regions\[0\]: expected an integer in \[0, 2\], got 3/);
    const before = tf.memory().numTensors;
    tf.dispose(bank.attend(f, [1, 1]));
    bank.update(f, [1, 1]);
    expect(tf.memory().numTensors).toBe(before);
    bank.dispose();
  });

  it('saves and loads the bank as safetensors and renders a prototype map as PNG', () => {
    const bank = new PrototypeBank({ grid: { rows: 2, cols: 4 }, prototypesPerRegion: 3, dims: 5, rng: new Generator(7) });
    const file = join(dir, 'bank.safetensors');
    bank.save(file);
    const back = PrototypeBank.load(file);
    expect(back.grid).toEqual({ rows: 2, cols: 4 });
    close(back.prototypes.value, Array.from(bank.prototypes.value.dataSync()), 0);
    const png = join(dir, 'map.png');
    bank.renderAssignmentMap(png, tf.randomNormal([5, 6, 7]), 3, 4);
    const bytes = fs.readFileSync(png);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    expect([bytes.readUInt32BE(16), bytes.readUInt32BE(20)]).toEqual([28, 24]);
    bank.dispose();
    back.dispose();
  });
});
