import { beforeAll, describe, expect, it } from 'vitest';
import {
  adaptiveAvgPool2d,
  conv2d,
  gatherRows,
  interpolate,
  invertPermutation,
  linear,
  cosineWindowAttention,
  permuteRows,
  matMul,
  pixelShuffle,
  poolValidity,
  initBackend,
  windowMerge,
  windowOrder,
  windowPartition,
  resampleMatrix,
  tf,
  type Tensor,
} from '../src/index';
import { TEST_BACKENDS, expectClose, expectNoLeak, loadFixture, numericGrad, testTensor, useBackend } from './helpers';

/** Direct float64 convolution from the PyTorch definition. */
function naiveConv(
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  s: number[],
  p: number[],
  d: number[],
  groups: number,
): { data: Float64Array; shape: number[] } {
  const [N, C, H, W] = x.shape as number[];
  const [O, Cg, KH, KW] = w.shape as number[];
  const OH = Math.floor((H! + 2 * p[0]! - d[0]! * (KH! - 1) - 1) / s[0]!) + 1;
  const OW = Math.floor((W! + 2 * p[1]! - d[1]! * (KW! - 1) - 1) / s[1]!) + 1;
  const xv = x.dataSync(),
    wv = w.dataSync(),
    bv = b?.dataSync();
  const out = new Float64Array(N! * O! * OH * OW);
  const og = O! / groups;
  for (let n = 0; n < N!; n++)
    for (let o = 0; o < O!; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = bv ? bv[o]! : 0;
          const g = Math.floor(o / og);
          for (let c = 0; c < Cg!; c++)
            for (let i = 0; i < KH!; i++)
              for (let j = 0; j < KW!; j++) {
                const ih = oh * s[0]! - p[0]! + i * d[0]!;
                const iw = ow * s[1]! - p[1]! + j * d[1]!;
                if (ih < 0 || iw < 0 || ih >= H! || iw >= W!) continue;
                acc += xv[((n * C! + g * Cg! + c) * H! + ih) * W! + iw]! * wv[((o * Cg! + c) * KH! + i) * KW! + j]!;
              }
          out[((n * O! + o) * OH + oh) * OW + ow] = acc;
        }
  return { data: out, shape: [N!, O!, OH, OW] };
}

/** PyTorch's bilinear / bicubic sampling written pointwise (not as matrices), float64. */
function naiveResize(
  x: Float32Array,
  h: number,
  w: number,
  oh: number,
  ow: number,
  mode: 'bilinear' | 'bicubic',
  ac: boolean,
): Float64Array {
  const src = (o: number, inS: number, outS: number) => {
    if (ac) return outS > 1 ? (o * (inS - 1)) / (outS - 1) : 0;
    const r = ((o + 0.5) * inS) / outS - 0.5;
    return mode === 'bilinear' ? Math.max(r, 0) : r;
  };
  const at = (i: number, j: number) => x[Math.min(Math.max(i, 0), h - 1) * w + Math.min(Math.max(j, 0), w - 1)]!;
  const A = -0.75;
  const k = (t: number) => {
    const a = Math.abs(t);
    return a <= 1 ? (A + 2) * a ** 3 - (A + 3) * a ** 2 + 1 : a < 2 ? A * a ** 3 - 5 * A * a ** 2 + 8 * A * a - 4 * A : 0;
  };
  const out = new Float64Array(oh * ow);
  for (let i = 0; i < oh; i++)
    for (let j = 0; j < ow; j++) {
      const sy = src(i, h, oh),
        sx = src(j, w, ow);
      const y0 = Math.floor(sy),
        x0 = Math.floor(sx);
      let v = 0;
      if (mode === 'bilinear') {
        const y1 = Math.min(y0 + 1, h - 1),
          x1 = Math.min(x0 + 1, w - 1);
        const ly = sy - y0,
          lx = sx - x0;
        v = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
      } else {
        for (let a = -1; a <= 2; a++) for (let b = -1; b <= 2; b++) v += k(sy - (y0 + a)) * k(sx - (x0 + b)) * at(y0 + a, x0 + b);
      }
      out[i * ow + j] = v;
    }
  return out;
}

describe.each(TEST_BACKENDS)('ops on %s', (backend) => {
  beforeAll(() => useBackend(backend));

  it('matMul matches tf.matMul for every transpose flag and broadcast batch', () => {
    const a = testTensor([2, 3, 5], 1),
      b = testTensor([5, 4], 2);
    expectClose(matMul(a, b), tf.matMul(a, tf.tile(tf.expandDims(b, 0), [2, 1, 1])), 1e-6);
    const at = testTensor([2, 5, 3], 3),
      bt = testTensor([1, 4, 5], 4);
    expectClose(matMul(at, bt, true, true), tf.matMul(at, tf.tile(bt, [2, 1, 1]), true, true), 1e-6);
  });

  it('matMul gradients equal the closed form, summed over broadcast batch axes', () => {
    const a = testTensor([2, 3, 5], 5),
      b = testTensor([4, 5], 6);
    const [ga, gb] = tf.grads((x: Tensor, y: Tensor) => tf.sum(tf.mul(matMul(x, y, false, true), testTensor([2, 3, 4], 7))))([a, b]);
    const dy = testTensor([2, 3, 4], 7);
    expectClose(ga!, tf.matMul(dy, tf.tile(tf.expandDims(b, 0), [2, 1, 1])), 1e-5);
    expectClose(gb!, tf.sum(tf.matMul(dy, a, true, false), 0), 1e-5);
  });

  it('matMul broadcasts batch axes that do not end the other operand (PyTorch rules), with gradients', () => {
    const [a, b] = [testTensor([2, 1, 5, 7], 3), testTensor([3, 7, 4], 4)];
    const expected = tf.matMul(tf.tile(a, [1, 3, 1, 1]), tf.tile(tf.expandDims(b, 0), [2, 1, 1, 1]));
    expectClose(matMul(a, b), expected, 1e-5);
    const [ga, gb] = tf.grads((x: Tensor, y: Tensor) => tf.sum(matMul(x, y)))([a, b]);
    const ones = tf.ones([2, 3, 5, 4]);
    expectClose(ga!, tf.sum(tf.matMul(ones, tf.tile(tf.expandDims(b, 0), [2, 1, 1, 1]), false, true), 1, true), 1e-5);
    expectClose(gb!, tf.sum(tf.matMul(tf.tile(a, [1, 3, 1, 1]), ones, true, false), 0), 1e-5);
  });

  it('matMul refuses mismatched inner dimensions with both shapes', () => {
    expect(() => matMul(tf.ones([2, 3]), tf.ones([4, 2]))).toThrow(/inner dimensions differ: a \[2, 3\] and b \[4, 2\]/);
  });

  const convCases: [
    string,
    number[],
    number[],
    { stride?: [number, number]; padding?: [number, number]; dilation?: [number, number]; groups?: number },
  ][] = [
    ['3x3 pad 1', [2, 4, 7, 6], [5, 4, 3, 3], { padding: [1, 1] }],
    ['patch 4 stride 4', [1, 3, 8, 12], [6, 3, 4, 4], { stride: [4, 4] }],
    ['stride 2, asymmetric pad', [1, 2, 9, 7], [3, 2, 3, 2], { stride: [2, 2], padding: [1, 0] }],
    ['dilation 2', [1, 2, 9, 9], [3, 2, 3, 3], { dilation: [2, 2], padding: [2, 2] }],
    ['groups 2', [1, 4, 6, 6], [6, 2, 3, 3], { groups: 2, padding: [1, 1] }],
    ['stride 2 with dilation 2', [1, 2, 11, 11], [2, 2, 3, 3], { stride: [2, 2], dilation: [2, 2], padding: [1, 1] }],
  ];

  it.each(convCases)('conv2d %s matches the direct definition', (_n, xs, ws, o) => {
    const x = testTensor(xs, 11),
      w = testTensor(ws, 12),
      b = testTensor([ws[0]!], 13);
    const ref = naiveConv(x, w, b, o.stride ?? [1, 1], o.padding ?? [0, 0], o.dilation ?? [1, 1], o.groups ?? 1);
    const y = conv2d(x, w, b, o);
    expect(y.shape).toEqual(ref.shape);
    expectClose(y, ref.data, 1e-5);
  });

  it.each(convCases)('conv2d %s gradients match finite differences', (_n, xs, ws, o) => {
    const x = testTensor(xs, 21),
      w = testTensor(ws, 22),
      dy = testTensor(naiveConv(x, w, null, o.stride ?? [1, 1], o.padding ?? [0, 0], o.dilation ?? [1, 1], o.groups ?? 1).shape, 23);
    const loss = (xi: Tensor, wi: Tensor) => tf.sum(tf.mul(conv2d(xi, wi, null, o), dy));
    const [gx, gw] = tf.grads(loss)([x, w]);
    expectClose(
      gw!,
      numericGrad((wi) => loss(x, wi), w),
      2e-3,
    );
    expectClose(
      gx!,
      numericGrad((xi) => loss(xi, w), x),
      2e-3,
    );
  });

  it('conv2d names the mismatch', () => {
    expect(() => conv2d(tf.ones([1, 3, 8, 8]), tf.ones([4, 2, 3, 3]))).toThrow(/expected input channels 2/);
    expect(() => conv2d(tf.ones([1, 2, 2, 2]), tf.ones([4, 2, 3, 3]))).toThrow(/smaller than the \(dilated\) kernel 3x3/);
  });

  it('bilinear interpolate of [[1,2],[3,4]] to 4x4 gives PyTorch values', () => {
    const y = interpolate(tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]), { size: [4, 4], mode: 'bilinear', alignCorners: false });
    expectClose(y, [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4], 1e-6);
  });

  it('bicubic interpolate of [[1,2],[3,4]] to 4x4 gives PyTorch values (A = -0.75, clamped border)', () => {
    const y = interpolate(tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]), { size: [4, 4], mode: 'bicubic', alignCorners: false });
    expectClose(
      y,
      [
        0.68359375, 1.015625, 1.5625, 1.89453125, 1.34765625, 1.6796875, 2.2265625, 2.55859375, 2.44140625, 2.7734375, 3.3203125,
        3.65234375, 3.10546875, 3.4375, 3.984375, 4.31640625,
      ],
      1e-6,
    );
  });

  it.each([
    ['bilinear', false, [5, 7], [3, 11]],
    ['bilinear', true, [5, 7], [9, 4]],
    ['bicubic', false, [4, 4], [6, 5]],
    ['bicubic', true, [6, 3], [4, 8]],
  ] as const)('%s (alignCorners %s) %j → %j matches the pointwise definition', (mode, ac, [h, w], [oh, ow]) => {
    const x = testTensor([1, 1, h, w], 31);
    const y = interpolate(x, { size: [oh, ow], mode, alignCorners: ac });
    expectClose(y, naiveResize(x.dataSync() as Float32Array, h, w, oh, ow, mode, ac), 1e-5);
  });

  it('nearest and scaleFactor follow PyTorch index rules', () => {
    expect(Array.from(resampleMatrix(3, 5, 'nearest'))).toEqual([1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1]);
    const y = interpolate(tf.tensor4d([1, 2, 3], [1, 1, 1, 3]), { scaleFactor: [1, 2], mode: 'nearest' });
    expectClose(y, [1, 1, 2, 2, 3, 3], 0);
    expect(() => interpolate(tf.ones([1, 1, 2, 2]), { size: [3, 3], mode: 'nearest', alignCorners: false })).toThrow(
      /alignCorners is only valid/,
    );
  });

  it('adaptive average pooling uses overlapping PyTorch bins', () => {
    const x = tf.tensor4d([1, 2, 3, 4, 5], [1, 1, 1, 5]);
    // bins for 5 → 3: [0,2), [1,4), [3,5)
    expectClose(adaptiveAvgPool2d(x, [1, 3]), [1.5, 3, 4.5], 1e-6);
  });

  it('pixelShuffle puts channel c·r² + i·r + j at (h·r + i, w·r + j)', () => {
    const x = tf.range(0, 8, 1, 'float32').reshape([1, 8, 1, 1]);
    const y = pixelShuffle(x, 2);
    expect(y.shape).toEqual([1, 2, 2, 2]);
    expectClose(y, [0, 1, 2, 3, 4, 5, 6, 7], 0);
    expect(() => pixelShuffle(tf.ones([1, 6, 2, 2]), 2)).toThrow(/channels 6 .* not divisible by upscaleFactor² = 4/);
  });

  it('interpolate and gatherRows are differentiable and leak nothing', () => {
    const x = testTensor([1, 2, 3, 4], 41);
    const g = tf.grad((t: Tensor) => tf.sum(interpolate(t, { size: [5, 7], mode: 'bicubic', alignCorners: false })))(x);
    expect(g.shape).toEqual(x.shape);
    const table = testTensor([5, 3], 42);
    const gt = tf.grad((t: Tensor) => tf.sum(gatherRows(t, [0, 2, 2])))(table);
    expectClose(gt, [1, 1, 1, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0], 0);
    expect(() => gatherRows(table, [5])).toThrow(/index 5 is outside \[0, 4\]/);
    expectNoLeak(() => {
      tf.dispose(tf.grad((t: Tensor) => tf.sum(interpolate(t, { size: [5, 7], mode: 'bilinear', alignCorners: false })))(x));
      tf.dispose(tf.grad((t: Tensor) => tf.sum(gatherRows(t, [1, 1])))(table));
      tf.tidy(() => {
        tf.grads((a: Tensor, b: Tensor) => tf.sum(conv2d(a, b, null, { padding: 1 })))([
          testTensor([1, 2, 4, 4], 1),
          testTensor([3, 2, 3, 3], 2),
        ]);
      });
    });
  });

  it('permuteRows reorders along an axis, its gradient is the inverse reordering, and it refuses non-permutations', () => {
    const x = testTensor([4, 2], 43);
    const v = x.arraySync() as number[][];
    const perm = Int32Array.from([2, 0, 3, 1]);
    expectClose(permuteRows(x, perm), [...v[2]!, ...v[0]!, ...v[3]!, ...v[1]!], 0);
    const w = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
    expectClose(tf.grad((t: Tensor) => tf.sum(tf.mul(permuteRows(t, perm), w)))(x), [3, 4, 7, 8, 1, 2, 5, 6], 0);
    expect(() => permuteRows(x, Int32Array.from([0, 1, 1, 3]))).toThrow(
      /permuteRows \(axis 0 of \[4, 2\]\): expected a permutation of 0 … 3 \(4 indices\), got 4 indices that are not one/,
    );
    expect(() => permuteRows(x, Int32Array.from([0, 1, 2]))).toThrow(/got 3 indices/);
    expect(() => permuteRows(x, Int32Array.from([0, 5, 2, 1]))).toThrow(/not one/);
    expect(() => permuteRows(x, perm, 2)).toThrow(
      /permuteRows: axis: expected an integer in \[0, 1\] for a tensor of shape \[4, 2\], got 2/,
    );
    expectClose(
      permuteRows(x, Int32Array.from([1, 0]), 1),
      [v[0]![1]!, v[0]![0]!, v[1]![1]!, v[1]![0]!, v[2]![1]!, v[2]![0]!, v[3]![1]!, v[3]![0]!],
      0,
    );
    expectClose(tf.grad((t: Tensor) => tf.sum(tf.mul(permuteRows(t, Int32Array.from([1, 0]), 1), w)))(x), [2, 1, 4, 3, 6, 5, 8, 7], 0);
    expect(Array.from(invertPermutation(perm, 4))).toEqual([1, 3, 0, 2]);
    expectNoLeak(() => tf.dispose(tf.grad((t: Tensor) => tf.sum(permuteRows(t, perm)))(x)));
  });

  it('windowPartition follows windowOrder (roll by −shift, then windows), windowMerge undoes it, gradients flow, bad grids are named', () => {
    const [b, h, w, c, ws] = [2, 8, 12, 3, 4];
    const x = testTensor([b, h, w, c], 11);
    for (const shift of [0, 2]) {
      const win = windowPartition(x, ws, shift);
      expect(win.shape).toEqual([(b * h * w) / (ws * ws), ws * ws, c]);
      const order = windowOrder(h, w, ws, shift);
      const expected = tf.reshape(tf.gather(tf.reshape(x, [b, h * w, c]), tf.tensor1d(order, 'int32'), 1), [-1, ws * ws, c]);
      expectClose(win, expected, 0);
      expectClose(windowMerge(win, b, h, w, ws, shift), x, 0);
      const g = tf.grad((t: Tensor) => tf.sum(tf.mul(windowPartition(t, ws, shift), expected)))(x);
      expectClose(g, x, 0);
    }
    expectNoLeak(() => tf.dispose(tf.grad((t: Tensor) => tf.sum(windowMerge(windowPartition(t, ws, 2), b, h, w, ws, 2)))(x)));
    expect(() => windowPartition(tf.ones([1, 6, 8, 2]), 4, 0)).toThrow(/windowPartition: expected a map of whole 4×4 windows, got 6×8/);
    expect(() => windowPartition(tf.ones([1, 8, 8, 2]), 4, 4)).toThrow(/windowPartition: shift: expected an integer in \[0, 4\), got 4/);
    expect(() => windowMerge(tf.ones([3, 16, 2]), 1, 8, 8, 4, 0)).toThrow(
      /windowMerge: expected \[4, 16, C\] windows of 1 8×8 maps, got \[3, 16, 2\]/,
    );
  });

  it('linear and cosineWindowAttention name the argument whose shape is wrong', () => {
    expect(() => linear(tf.ones([2, 3]), tf.ones([4, 2]), null)).toThrow(
      /linear: expected x \[\.\.\., in\], weight \[out, in\], bias \[out\]; got x \[2, 3\], weight \[4, 2\]/,
    );
    expect(() => linear(tf.ones([2, 3]), tf.ones([4, 3]), tf.ones([3]))).toThrow(/and bias \[3\]/);
    const [qkv, scale, bias] = [tf.ones([4, 9, 12]), tf.ones([2]), tf.ones([2, 9, 9])];
    const call = (o: Partial<Parameters<typeof cosineWindowAttention>[0]>) => () =>
      cosineWindowAttention({ qkv, scale, bias, mask: null, heads: 2, ...o });
    expect(call({ qkv: tf.ones([4, 9, 10]) })).toThrow(
      /cosineWindowAttention: qkv: expected \[B, N, 3·C\] with C divisible by 2 heads, got \[4, 9, 10\]/,
    );
    expect(call({ scale: tf.ones([2, 1, 1]) })).toThrow(/scale: expected \[2\], got \[2, 1, 1\]/);
    expect(call({ bias: tf.ones([2, 8, 9]) })).toThrow(/bias: expected \[2, 9, 9\], got \[2, 8, 9\]/);
    expect(call({ mask: tf.ones([3, 9, 9]) })).toThrow(/mask: expected \[nW, 9, 9\] with nW dividing the 4 windows, got \[3, 9, 9\]/);
    expect(call({ heads: 0 })).toThrow(/heads: expected a positive integer, got 0/);
  });

  it('bicubic resize of a position table matches PyTorch (vit-skysense-resize-a)', () => {
    const w = loadFixture('vit-skysense-resize-a', 'weights');
    const out = loadFixture('vit-skysense-resize-a', 'output');
    const grid = tf.tidy(() =>
      tf.transpose(tf.reshape(tf.slice(w.get('pos_embed')!, [0, 1, 0], [1, 16, 64]), [1, 4, 4, 64]), [0, 3, 1, 2]),
    );
    const resized = interpolate(grid, { size: [6, 5], mode: 'bicubic', alignCorners: false });
    const flat = tf.reshape(tf.transpose(resized, [0, 2, 3, 1]), [1, 30, 64]);
    expectClose(flat, tf.slice(out.get('pos_embed_resized')!, [0, 1, 0], [1, 30, 64]), 1e-5);
  });
});

describe('poolValidity', () => {
  beforeAll(() => initBackend());

  it('a cell is valid only if its whole footprint is, for sizes that divide, that do not, and when enlarging', () => {
    const H = 797;
    const mask = new Float32Array(H * H).fill(1);
    for (let y = 1; y <= 30; y++) for (let x = 0; x < H; x++) mask[y * H + x] = 0; // rows 1–30
    mask[500 * H + 700] = 0; // one pixel
    const valid = tf.tensor3d(mask, [1, H, H]);
    const before = tf.memory().numTensors;
    for (const [h, w] of [
      [25, 25],
      [797, 797],
      [1594, 1594],
    ])
      poolValidity(valid, h!, w!).dispose(); // nothing left behind
    expect(tf.memory().numTensors).toBe(before);
    const p = poolValidity(valid, 25, 25); // 797 / 25 = 31.88 px per cell
    const a = p.arraySync() as number[][][];
    expect(a[0]![0]!.every((v) => v === 0)).toBe(true); // rows 0–31 hold the hole
    expect(a[0]![1]!.every((v) => v === 1)).toBe(true); // cell 1 covers rows ⌊31.88⌋ = 31 … 63
    // bilinear resizing reads two rows per cell and missed this hole entirely
    expect(a[0]![15]![21]).toBe(0); // pixel (500, 700): row 500 / 31.88 = 15.7, col 700 / 31.88 = 21.96
    expect(a[0]![15]!.filter((v) => v === 0)).toHaveLength(1);
    const even = poolValidity(
      // the nodata pixel (0, 2) lies in cell (0, 1)
      tf.tensor3d([1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 4, 4]),
      2,
      2,
    ).arraySync();
    expect(even).toEqual([
      [
        [1, 0],
        [1, 1],
      ],
    ]);
    const up = poolValidity(tf.tensor3d([1, 0, 1, 1], [1, 2, 2]), 4, 4).arraySync();
    expect(up).toEqual([
      [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
      ],
    ]);
    tf.dispose([valid, p]);
  });
});
