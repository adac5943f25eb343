import { beforeAll, describe, expect, it } from 'vitest';
import { cropResize, initBackend, intersect, roiAlignCrops, tf, type CropBox, type Tensor } from '../src/index';
import { maxAbsDiff } from '@skysense/test-utils';

/** A `[1, 1, n, n]` map whose value is the tile-pixel x (or y) coordinate of each cell centre of `box`. */
const coordMap = (box: CropBox, n: number, axis: 'x' | 'y') =>
  tf.tensor4d(
    Array.from({ length: n * n }, (_, i) =>
      axis === 'x' ? box.x + ((i % n) + 0.5) * (box.w / n) : box.y + (Math.floor(i / n) + 0.5) * (box.h / n),
    ),
    [1, 1, n, n],
  );

beforeAll(() => initBackend());

describe('crops (the pre-training views)', () => {
  it('intersect gives the overlap, or null', () => {
    expect(intersect({ y: 0, x: 0, h: 4, w: 4 }, { y: 2, x: 3, h: 4, w: 4 })).toEqual({ y: 2, x: 3, h: 2, w: 1 });
    expect(intersect({ y: 0, x: 0, h: 2, w: 2 }, { y: 2, x: 0, h: 2, w: 2 })).toBeNull();
  });

  it('cropResize samples the box at its cell centres: the whole tile at its own size is the tile; a ramp stays a ramp', () => {
    const tile = tf.randomNormal([2, 3, 12, 12], 0, 1, 'float32', 1);
    expect(
      maxAbsDiff(
        cropResize(
          tile,
          [
            { y: 0, x: 0, h: 12, w: 12 },
            { y: 0, x: 0, h: 12, w: 12 },
          ],
          12,
        ),
        tile,
      ),
    ).toBeLessThan(1e-5);
    // a horizontal ramp value = x: box x ∈ [4, 12) resized to 4 px samples x = 5, 7, 9, 11 (bin centres − 0.5)
    const ramp = tf.tile(tf.reshape(tf.range(0, 16, 1, 'float32'), [1, 1, 1, 16]), [1, 1, 12, 1]);
    const out = cropResize(ramp, [{ y: 2, x: 4, h: 8, w: 8 }], 4);
    expect([...out.slice([0, 0, 0, 0], [1, 1, 1, 4]).dataSync()].map((v) => Math.round(v * 1e4) / 1e4)).toEqual([4.5, 6.5, 8.5, 10.5]);
  });

  it('roiAlignCrops brings two overlapping crops onto the same ground: their coordinate maps agree over the overlap', () => {
    const a: CropBox = { y: 0, x: 0, h: 64, w: 64 };
    const b: CropBox = { y: 16, x: 24, h: 64, w: 64 };
    const o = intersect(a, b)!;
    for (const axis of ['x', 'y'] as const) {
      const fa = roiAlignCrops(coordMap(a, 8, axis), [a], [o], 4);
      const fb = roiAlignCrops(coordMap(b, 8, axis), [b], [o], 4);
      expect(maxAbsDiff(fa, fb)).toBeLessThan(1e-4);
      // and the grid is the overlap's own cell centres
      const want = Array.from({ length: 16 }, (_, i) =>
        axis === 'x' ? o.x + ((i % 4) + 0.5) * (o.w / 4) : o.y + (Math.floor(i / 4) + 0.5) * (o.h / 4),
      );
      [...fa.dataSync()].forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 3));
    }
    const region = roiAlignCrops(
      tf.reshape(tf.range(0, 16, 1, 'float32'), [1, 1, 4, 4]),
      [{ y: 0, x: 0, h: 8, w: 8 }],
      [{ y: 2, x: 2, h: 4, w: 4 }],
      2,
    );
    expect([...region.dataSync()]).toEqual([5, 6, 9, 10]);
    const g = tf.grad((m: Tensor) => tf.sum(roiAlignCrops(m, [a], [o], 4)))(coordMap(a, 8, 'x'));
    expect(tf.sum(g).dataSync()[0]).toBeCloseTo(16, 4);
  });
});
