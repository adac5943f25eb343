/**
 * Helpers shared by the test suites of every SkySense package (private, never published): tensor
 * comparison, the "tensor count stays flat" check, parity-fixture loading and deterministic values.
 * It imports tfjs-core directly (not a package under test), so the helpers work whether a suite
 * imports its package from `src/` or `dist/`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeArrayBuffer } from 'geotiff';
import { expect } from 'vitest';

type Values = tf.Tensor | ArrayLike<number>;

/** Max |a − b| over all elements; shapes (or lengths) must match; a NaN anywhere counts as ∞. */
export function maxAbsDiff(a: Values, b: Values): number {
  if (a instanceof tf.Tensor && b instanceof tf.Tensor) expect(a.shape).toEqual(b.shape);
  const av = a instanceof tf.Tensor ? a.dataSync() : a;
  const bv = b instanceof tf.Tensor ? b.dataSync() : b;
  expect(av.length).toBe(bv.length);
  let m = 0;
  for (let i = 0; i < av.length; i++) {
    const d = Math.abs(av[i]! - bv[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Asserts max |a − b| ≤ `tol`. */
export function expectClose(a: Values, b: Values, tol: number, label?: string): void {
  expect(maxAbsDiff(a, b), label).toBeLessThanOrEqual(tol);
}

/** Runs `fn` once to warm caches, then `reps` more times, and asserts the live tensor count does not grow. */
export function expectNoLeak(fn: () => void, reps = 3, label?: string): void {
  fn();
  const before = tf.memory().numTensors;
  for (let i = 0; i < reps; i++) fn();
  expect(tf.memory().numTensors - before, label ?? 'tensors leaked').toBe(0);
}

/**
 * The backends the parity suites run on: `SKYSENSE_TEST_BACKENDS` (comma-separated backend names,
 * e.g. `webgpu` in CI's GPU job), default `wasm,cpu` (what installs everywhere).
 */
export function parityBackends<K extends string = string>(): K[] {
  const names = (process.env.SKYSENSE_TEST_BACKENDS ?? 'wasm,cpu')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s);
  if (!names.length) throw new Error(`SKYSENSE_TEST_BACKENDS: expected backend names, got '${process.env.SKYSENSE_TEST_BACKENDS}'`);
  return names as K[];
}

/** A parity fixture folder (`config.json`, `weights` / `input` / `output.safetensors`) under a package's `test/fixtures/parity`. */
export interface ParityFixture {
  /** Path of a file of the fixture. */
  path(file: string): string;
  /** The parsed `config.json`. */
  config<T = Record<string, unknown>>(): T;
}

/** The fixture `name` under `<testDir>/fixtures/parity` (`testDir`: the calling suite's `__dirname`). */
export function parityFixture(testDir: string, name: string): ParityFixture {
  const dir = join(testDir, 'fixtures', 'parity', name);
  return {
    path: (file) => join(dir, file),
    config: <T>() => JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as T,
  };
}

/** Deterministic pseudo-random values in [-1, 1) (xorshift; independent of the library's RNG). */
export function testValues(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

/** A float32 tensor of {@link testValues}. */
export function testTensor(shape: number[], seed = 1): tf.Tensor {
  return tf.tensor(
    testValues(
      shape.reduce((a, b) => a * b, 1),
      seed,
    ),
    shape,
  );
}

/** The georeferencing a raster written by {@link writeGeoTiffLike} copies (a `Raster` of `@skysense/data` has it). */
export interface GridLike {
  width: number;
  height: number;
  origin: [number, number];
  resolution: [number, number];
  epsg: number | null;
}

/**
 * TIFF tags of a pixel-interleaved multi-band image for {@link writeGeoTiffLike}: 3 bands of 8 bits are
 * RGB; any other count is grey plus extra samples (a stacked Sentinel-2 product, say).
 */
export function bandTags(bands: number, bits: 8 | 16): Record<string, unknown> {
  const rgb = bands === 3 && bits === 8;
  return {
    SamplesPerPixel: bands,
    BitsPerSample: Array(bands).fill(bits),
    PlanarConfiguration: 1,
    PhotometricInterpretation: rgb ? 2 : 1,
    ...(rgb ? {} : { ExtraSamples: Array(bands - 1).fill(0) }),
  };
}

/**
 * Writes one band (or interleaved bands) as a GeoTIFF on the grid of `like` (same origin, pixel
 * size and projected CRS), e.g. a real sample with nodata injected; `extra` adds TIFF tags
 * (`GDAL_NODATA`, …). The sample type follows the typed array.
 */
export function writeGeoTiffLike(file: string, like: GridLike, values: ArrayBufferView, extra: Record<string, unknown> = {}): string {
  const geo = {
    ModelPixelScale: [Math.abs(like.resolution[0]), Math.abs(like.resolution[1]), 0],
    ModelTiepoint: [0, 0, 0, like.origin[0], like.origin[1], 0],
    ProjectedCSTypeGeoKey: like.epsg!,
    GTModelTypeGeoKey: 1,
    width: like.width,
    height: like.height,
    ...extra,
  };
  writeFileSync(file, Buffer.from(writeArrayBuffer(values as never, geo)));
  return file;
}
