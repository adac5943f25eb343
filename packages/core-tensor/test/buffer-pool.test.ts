/**
 * The native kernels' buffer pool: a disposed output's array serves the next output of its length,
 * and never one that anything outside the backend can still see (a read array, a view of it).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  bufferPoolStats,
  disableNativeKernels,
  emptyBufferPool,
  enableNativeKernels,
  gelu,
  initBackend,
  linear,
  setBufferPoolLimit,
  tf,
} from '../src/index';
import { bufferPoolLimitFromEnv } from '../src/buffer-pool';
import { nativeAddon } from '../src/native';
import { expectNoLeak } from './helpers';

const N = 8192; // above the pool's minimum length
const ramp = (n: number, offset = 0) =>
  tf.tensor(
    Float32Array.from({ length: n }, (_, i) => offset + i),
    [2, n / 2],
  );
/** `a + b` by the native Add kernel: an output of the pool. */
const add = (a: tf.Tensor, b: tf.Tensor) => tf.add(a, b);

/** Runs `times` additions of N elements at once, then disposes them: they take every pooled array of that length. */
function churn(times: number): void {
  const [a, b] = [ramp(N, 1e6), ramp(N, 2e6)];
  tf.dispose(Array.from({ length: times }, () => add(a, b)));
  tf.dispose([a, b]);
}

describe.runIf(nativeAddon() !== null)('buffer pool', () => {
  beforeAll(() => initBackend({ force: 'cpu' }));
  afterEach(() => setBufferPoolLimit(256));
  afterAll(() => emptyBufferPool());

  it('serves a disposed output to the next output of its length, with the right values', () => {
    const [a, b] = [ramp(N), ramp(N, 5)];
    add(a, b).dispose();
    const before = bufferPoolStats();
    expect(before.buffers).toBeGreaterThan(0);
    const y = add(a, a);
    expect(bufferPoolStats().hits).toBe(before.hits + 1);
    expect(Array.from(y.dataSync().subarray(0, 3))).toEqual([0, 2, 4]);
    expect(y.dataSync()[N - 1]).toBe(2 * (N - 1));
    tf.dispose([a, b, y]);
  });

  it('never reuses an array the user has read (dataSync, data, array)', async () => {
    const [a, b] = [ramp(N), ramp(N, 5)];
    const y1 = add(a, b);
    const y2 = add(a, a);
    const y3 = add(b, b);
    const read1 = y1.dataSync();
    const read2 = await y2.data();
    const read3 = y3.arraySync() as number[][];
    const kept = [Float32Array.from(read1), Float32Array.from(read2)];
    tf.dispose([y1, y2, y3]);
    churn(6);
    expect(read1).toEqual(kept[0]);
    expect(read2).toEqual(kept[1]);
    expect(read3[0]![1]).toBe(12);
    tf.dispose([a, b]);
  });

  it('never reuses an array another tensor views (tfjs slices are subarrays) or shares (reshape)', () => {
    const [a, b] = [ramp(N), ramp(N, 5)];
    const y = add(a, b);
    const [row0, row1] = tf.unstack(y); // tfjs's JavaScript Slice: views of y's array
    const flat = tf.reshape(add(a, a), [N]); // shares its data with the (disposed) sum
    tf.dispose(y);
    churn(6);
    expect(row0!.dataSync()[1]).toBe(1 + 6);
    expect(row1!.dataSync()[0]).toBe(N / 2 + N / 2 + 5);
    expect(flat.dataSync()[N - 1]).toBe(2 * (N - 1));
    tf.dispose([a, b, row0!, row1!, flat]);
  });

  it('never reuses an array that came in from another backend (where anything may have read it)', () => {
    const x = tf.randomNormal([N]);
    // the gradient of the native GELU is produced after the switch to tfjs's own cpu backend
    const g = tf.grad((v: tf.Tensor) => {
      const y = gelu(v);
      disableNativeKernels();
      return tf.sum(y);
    })(x);
    const read = g.dataSync(); // read on the cpu backend
    const kept = Float32Array.from(read);
    enableNativeKernels();
    tf.add(g, 0).dispose(); // moves g's data into the native kernels' backend
    g.dispose();
    churn(6);
    expect(read).toEqual(kept);
    x.dispose();
  });

  it('keeps at most its limit, frees it on request, and reuses nothing at 0', () => {
    emptyBufferPool();
    expect(bufferPoolStats().bytes).toBe(0);
    setBufferPoolLimit(N / 2 ** 20); // N bytes: 2048 floats, under one array of N floats
    churn(3);
    expect(bufferPoolStats().bytes).toBe(0);
    setBufferPoolLimit(0);
    const { hits } = bufferPoolStats();
    churn(3);
    churn(3);
    expect(bufferPoolStats().hits).toBe(hits);
    setBufferPoolLimit(1);
    churn(3);
    churn(3);
    expect(bufferPoolStats().hits).toBeGreaterThan(hits);
    expect(bufferPoolStats().bytes).toBeLessThanOrEqual(2 ** 20);
    emptyBufferPool();
    expect(bufferPoolStats()).toMatchObject({ bytes: 0, buffers: 0 });
  });

  it('a forward pass of linear layers allocates nothing once the pool is warm, and leaks no tensor', () => {
    const x = tf.randomNormal([64, 128]);
    const w = tf.randomNormal([128, 128]);
    const bias = tf.randomNormal([128]);
    const forward = () => tf.tidy(() => linear(linear(linear(x, w, bias, 'gelu'), w, bias), w, bias));
    const ref = forward();
    const expected = Float32Array.from(ref.dataSync());
    ref.dispose();
    forward().dispose();
    const { misses } = bufferPoolStats();
    expectNoLeak(() => forward().dispose(), 3, 'linear stack');
    const y = forward();
    expect(bufferPoolStats().misses).toBe(misses);
    expect(y.dataSync()).toEqual(expected);
    tf.dispose([x, w, bias, y]);
  });

  it('refuses a SKYSENSE_BUFFER_POOL_MB that is not a number ≥ 0, naming it', () => {
    const saved = process.env.SKYSENSE_BUFFER_POOL_MB;
    try {
      for (const bad of ['lots', '-1', 'Infinity']) {
        process.env.SKYSENSE_BUFFER_POOL_MB = bad;
        expect(() => bufferPoolLimitFromEnv()).toThrow(`SKYSENSE_BUFFER_POOL_MB: expected a number of MiB ≥ 0, got '${bad}'`);
      }
      process.env.SKYSENSE_BUFFER_POOL_MB = '64';
      bufferPoolLimitFromEnv();
      expect(bufferPoolStats().limitBytes).toBe(64 * 2 ** 20);
      expect(() => setBufferPoolLimit(Number.NaN)).toThrow('setBufferPoolLimit: mb: expected a number ≥ 0, got NaN');
    } finally {
      if (saved === undefined) delete process.env.SKYSENSE_BUFFER_POOL_MB;
      else process.env.SKYSENSE_BUFFER_POOL_MB = saved;
    }
  });
});
