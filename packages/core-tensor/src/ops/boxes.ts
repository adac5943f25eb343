import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInRange, assertPositive, formatShape } from '../validate';

/** float32 rounding, so box arithmetic matches PyTorch's float kernels operation for operation. */
const f = Math.fround;
/** mmdet's `bbox_overlaps` floors the union at this, so boxes without area give IoU 0 (torchvision: NaN). */
const EPS = f(1e-6);

/** Index of the first non-finite value, or −1. */
const firstNonFinite = (v: Float32Array) => v.findIndex((x) => !Number.isFinite(x));

function boxesOf(what: string, t: Tensor): Float32Array {
  if (t.rank !== 2 || t.shape[1] !== 4)
    throw new SkySenseError('E_SHAPE', `${what}: expected [N, 4] (x1, y1, x2, y2), got ${formatShape(t.shape)}`);
  const v = t.dataSync() as Float32Array;
  const bad = firstNonFinite(v);
  if (bad >= 0)
    throw new SkySenseError(
      'E_ARG',
      `${what}[${Math.floor(bad / 4)}]: expected finite coordinates, got ${Array.from(v.subarray(bad - (bad % 4), bad - (bad % 4) + 4)).join(', ')}`,
    );
  return v;
}

function scoresOf(what: string, t: Tensor, n: number): Float32Array {
  if (t.rank !== 1 || t.shape[0] !== n)
    throw new SkySenseError('E_SHAPE', `${what}: expected [${n}] (one per box), got ${formatShape(t.shape)}`);
  const v = t.dataSync() as Float32Array;
  const bad = firstNonFinite(v);
  if (bad >= 0) throw new SkySenseError('E_ARG', `${what}[${bad}]: expected a finite number, got ${v[bad]}`);
  return v;
}

/**
 * Pairwise IoU of two box sets (x1, y1, x2, y2), as mmdet's `bbox_overlaps` (mode `iou`, no +1
 * offset, union floored at 1e-6) and torchvision's `box_iou` compute it (the two differ only for
 * boxes without area: 0 here and in mmdet, NaN in torchvision).
 * @returns `[N, M]`.
 * @example
 * ```ts
 * import { boxIou, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const iou = boxIou(tf.tensor2d([[0, 0, 10, 10]]), tf.tensor2d([[5, 0, 15, 10], [20, 20, 30, 30]]));
 * console.log(iou.arraySync()); // [[0.333…, 0]]
 * ```
 */
export function boxIou(boxes1: Tensor, boxes2: Tensor): Tensor {
  const a = boxesOf('boxIou boxes1', boxes1);
  const b = boxesOf('boxIou boxes2', boxes2);
  const [n, m] = [a.length / 4, b.length / 4];
  const areaOf = (x: Float32Array, i: number) => f(f(x[4 * i + 2]! - x[4 * i]!) * f(x[4 * i + 3]! - x[4 * i + 1]!));
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      const w = Math.max(0, f(Math.min(a[4 * i + 2]!, b[4 * j + 2]!) - Math.max(a[4 * i]!, b[4 * j]!)));
      const h = Math.max(0, f(Math.min(a[4 * i + 3]!, b[4 * j + 3]!) - Math.max(a[4 * i + 1]!, b[4 * j + 1]!)));
      const inter = f(w * h);
      out[i * m + j] = f(inter / Math.max(f(f(areaOf(a, i) + areaOf(b, j)) - inter), EPS));
    }
  return tf.tensor2d(out, [n, m]);
}

/** Indices of `scores` from high to low (ties: lower index first). */
function order(scores: Float32Array): number[] {
  return Array.from(scores.keys()).sort((i, j) => scores[j]! - scores[i]! || i - j);
}

/**
 * Greedy NMS on typed arrays: torchvision's CPU kernel in float32 (suppress when IoU > threshold).
 * With `groups` (batched NMS, boxes already offset per group so groups never overlap) the greedy pass
 * runs within each group — the same decisions, since boxes of different groups have IoU 0 — and the
 * kept boxes come out in global score order. Pairs that do not overlap along x or y are skipped
 * before the IoU (their IoU is 0, never above a threshold ≥ 0).
 */
function nmsIndices(boxes: Float32Array, scores: Float32Array, iouThreshold: number, groups?: ArrayLike<number>): Int32Array {
  const n = scores.length;
  const [x1, y1, x2, y2, area] = Array.from({ length: 5 }, () => new Float32Array(n));
  for (let i = 0; i < n; i++) {
    [x1[i], y1[i], x2[i], y2[i]] = [boxes[4 * i]!, boxes[4 * i + 1]!, boxes[4 * i + 2]!, boxes[4 * i + 3]!];
    area[i] = f(f(x2[i]! - x1[i]!) * f(y2[i]! - y1[i]!));
  }
  const suppressed = new Uint8Array(n);
  const idx = order(scores);
  const byGroup = new Map<number, number[]>();
  for (const i of idx) {
    const g = groups ? groups[i]! : 0;
    (byGroup.get(g) ?? byGroup.set(g, []).get(g)!).push(i);
  }
  for (const run of byGroup.values()) {
    for (let a = 0; a < run.length; a++) {
      const i = run[a]!;
      if (suppressed[i]) continue;
      const [ix1, iy1, ix2, iy2, ia] = [x1[i]!, y1[i]!, x2[i]!, y2[i]!, area[i]!];
      for (let b = a + 1; b < run.length; b++) {
        const j = run[b]!;
        if (suppressed[j]) continue;
        const w = f(Math.min(ix2, x2[j]!) - Math.max(ix1, x1[j]!));
        if (!(w > 0)) continue;
        const h = f(Math.min(iy2, y2[j]!) - Math.max(iy1, y1[j]!));
        if (!(h > 0)) continue;
        const inter = f(w * h);
        if (f(inter / f(f(ia + area[j]!) - inter)) > iouThreshold) suppressed[j] = 1;
      }
    }
  }
  return Int32Array.from(idx.filter((i) => !suppressed[i]));
}

/**
 * Non-maximum suppression (torchvision `nms`, mmcv `nms`): boxes in decreasing score order, each
 * dropping the later ones that overlap it by IoU > `iouThreshold`.
 * @returns the kept indices, int32, highest score first.
 * @example
 * ```ts
 * import { initBackend, nms, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const boxes = tf.tensor2d([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]);
 * console.log(nms(boxes, tf.tensor1d([0.9, 0.8, 0.7]), 0.5).arraySync()); // [0, 2]
 * ```
 */
export function nms(boxes: Tensor, scores: Tensor, iouThreshold: number): Tensor {
  assertInRange('nms iouThreshold', iouThreshold, 0, 1);
  const b = boxesOf('nms boxes', boxes);
  return tf.tensor1d(nmsIndices(b, scoresOf('nms scores', scores, b.length / 4), iouThreshold), 'int32');
}

/**
 * NMS within each class at once (mmcv `batched_nms` / torchvision `batched_nms`): every box is
 * shifted by `idx · (max coordinate + 1)` so boxes of different classes never overlap, then one NMS.
 * @param idxs `[N]` class (or image) index per box.
 * @returns the kept indices, int32, highest score first.
 * @example
 * ```ts
 * import { batchedNms, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const boxes = tf.tensor2d([[0, 0, 10, 10], [1, 1, 11, 11]]);
 * const keep = batchedNms(boxes, tf.tensor1d([0.9, 0.8]), tf.tensor1d([0, 1], 'int32'), 0.5);
 * console.log(keep.arraySync()); // [0, 1]: same place, different classes
 * ```
 */
export function batchedNms(boxes: Tensor, scores: Tensor, idxs: Tensor, iouThreshold: number): Tensor {
  assertInRange('batchedNms iouThreshold', iouThreshold, 0, 1);
  const b = boxesOf('batchedNms boxes', boxes);
  const n = b.length / 4;
  const s = scoresOf('batchedNms scores', scores, n);
  const ids = scoresOf('batchedNms idxs', idxs, n);
  const badId = ids.findIndex((i) => !Number.isInteger(i) || i < 0);
  if (badId >= 0) throw new SkySenseError('E_ARG', `batchedNms idxs[${badId}]: expected a class index (an integer ≥ 0), got ${ids[badId]}`);
  const max = b.reduce((m, v) => Math.max(m, v), -Infinity);
  const shifted = new Float32Array(b.length);
  for (let i = 0; i < n; i++) {
    const offset = f(ids[i]! * f(max + 1));
    for (let k = 0; k < 4; k++) shifted[4 * i + k] = f(b[4 * i + k]! + offset);
  }
  // groups never overlap once offset when every coordinate is ≥ 0 (else mmcv's offset boxes may, and one pass decides as it does)
  const separate = b.every((v) => v >= 0);
  return tf.tensor1d(nmsIndices(shifted, s, iouThreshold, separate ? ids : undefined), 'int32');
}

/** Means and standard deviations of the four deltas (mmdet's `target_means` / `target_stds`). */
export interface DeltaNormalization {
  /** Default `[0, 0, 0, 0]`. */
  means?: readonly number[];
  /** Default `[1, 1, 1, 1]` (Faster R-CNN's RoI head uses `[0.1, 0.1, 0.2, 0.2]`). */
  stds?: readonly number[];
}

const NORM_DEFAULT = { means: [0, 0, 0, 0], stds: [1, 1, 1, 1] };

function checkNorm(what: string, norm: DeltaNormalization): void {
  for (const key of ['means', 'stds'] as const) {
    const v = norm[key];
    if (v !== undefined && (v.length !== 4 || !v.every(Number.isFinite)))
      throw new SkySenseError('E_ARG', `${what} ${key}: expected 4 numbers (x, y, w, h), got ${JSON.stringify(v)}`);
  }
  if (norm.stds?.some((s) => s === 0)) throw new SkySenseError('E_ARG', `${what} stds: must not be 0, got ${JSON.stringify(norm.stds)}`);
}

/**
 * mmdet's `bbox2delta` (`DeltaXYWHBBoxCoder.encode`): the regression targets that move `proposals`
 * onto `gt`, `((gx − px) / pw, (gy − py) / ph, log(gw / pw), log(gh / ph))`, normalised.
 * @returns `[N, 4]`.
 * @throws SkySenseError `E_ARG` for a proposal or gt box without area (its log size would be −∞), `E_SHAPE` for shapes other than `[N, 4]`.
 * @example
 * ```ts
 * import { bbox2delta, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const deltas = bbox2delta(tf.tensor2d([[0, 0, 10, 10]]), tf.tensor2d([[2, 0, 12, 20]]), { stds: [0.1, 0.1, 0.2, 0.2] });
 * console.log(deltas.arraySync()); // [[2, 5, 0, 3.466]]
 * ```
 */
export function bbox2delta(proposals: Tensor, gt: Tensor, norm: DeltaNormalization = {}): Tensor {
  if (proposals.shape.join() !== gt.shape.join())
    throw new SkySenseError('E_SHAPE', `bbox2delta: proposals ${formatShape(proposals.shape)} and gt ${formatShape(gt.shape)} differ`);
  if (proposals.rank !== 2 || proposals.shape[1] !== 4)
    throw new SkySenseError('E_SHAPE', `bbox2delta proposals: expected [N, 4] (x1, y1, x2, y2), got ${formatShape(proposals.shape)}`);
  checkNorm('bbox2delta', norm);
  for (const [what, t] of [
    ['proposals', proposals],
    ['gt', gt],
  ] as const) {
    const v = boxesOf(`bbox2delta ${what}`, t);
    for (let i = 0; i < v.length; i += 4)
      if (!(v[i + 2]! > v[i]! && v[i + 3]! > v[i + 1]!))
        throw new SkySenseError(
          'E_ARG',
          `bbox2delta ${what}[${i / 4}]: expected x2 > x1 and y2 > y1 (a box with area), got ${Array.from(v.subarray(i, i + 4)).join(', ')}`,
        );
  }
  const { means, stds } = { ...NORM_DEFAULT, ...norm };
  return tf.tidy(() => {
    const [px1, py1, px2, py2] = tf.split(proposals, 4, 1);
    const [gx1, gy1, gx2, gy2] = tf.split(gt, 4, 1);
    const [pw, ph] = [tf.sub(px2!, px1!), tf.sub(py2!, py1!)];
    const [gw, gh] = [tf.sub(gx2!, gx1!), tf.sub(gy2!, gy1!)];
    const centre = (a: Tensor, b: Tensor) => tf.mul(tf.add(a, b), 0.5);
    const d = [
      tf.div(tf.sub(centre(gx1!, gx2!), centre(px1!, px2!)), pw),
      tf.div(tf.sub(centre(gy1!, gy2!), centre(py1!, py2!)), ph),
      tf.log(tf.div(gw, pw)),
      tf.log(tf.div(gh, ph)),
    ];
    return tf.concat(
      d.map((v, i) => tf.div(tf.sub(v, means[i]!), stds[i]!)),
      1,
    );
  });
}

/** Options of {@link delta2bbox}. */
export interface Delta2BboxOptions extends DeltaNormalization {
  /** Image `[height, width]` to clip the boxes to. Default: no clipping. */
  maxShape?: readonly [number, number];
  /** Largest allowed |log| scale change, as a ratio: `|dw|, |dh| ≤ |log(whRatioClip)|`. Default 16 / 1000. */
  whRatioClip?: number;
}

/**
 * mmdet's `delta2bbox` (`DeltaXYWHBBoxCoder.decode`): applies `deltas` (4 per class) to `rois`,
 * clamping the log-scale changes and, with `maxShape`, clipping to the image.
 * @param rois `[N, 4]`.
 * @param deltas `[N, 4·k]`.
 * @returns `[N, 4·k]` boxes.
 * @example
 * ```ts
 * import { delta2bbox, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const boxes = delta2bbox(tf.tensor2d([[0, 0, 10, 10]]), tf.tensor2d([[0.1, 0, 0, 0.5]]), { maxShape: [32, 32] });
 * console.log(boxes.arraySync()); // [[1, 0, 11, 13.24]]: y1 = −3.24 clipped to the image
 * ```
 */
export function delta2bbox(rois: Tensor, deltas: Tensor, options: Delta2BboxOptions = {}): Tensor {
  const { means, stds } = { ...NORM_DEFAULT, ...options };
  const maxRatio = Math.abs(Math.log(assertPositive('delta2bbox whRatioClip', options.whRatioClip ?? 16 / 1000)));
  checkNorm('delta2bbox', options);
  if (rois.rank !== 2 || rois.shape[1] !== 4 || deltas.rank !== 2 || deltas.shape[0] !== rois.shape[0] || deltas.shape[1]! % 4 !== 0)
    throw new SkySenseError(
      'E_SHAPE',
      `delta2bbox: expected rois [N, 4] and deltas [N, 4·k], got ${formatShape(rois.shape)} and ${formatShape(deltas.shape)}`,
    );
  return tf.tidy(() => {
    const k = deltas.shape[1]! / 4;
    const d = tf.reshape(deltas, [-1, k, 4]);
    const denorm = tf.add(tf.mul(d, tf.tensor1d(stds as number[])), tf.tensor1d(means as number[]));
    const [dx, dy, dw, dh] = tf.split(denorm, 4, 2).map((t) => tf.reshape(t, [-1, k]));
    const [x1, y1, x2, y2] = tf.split(rois, 4, 1);
    const [px, py] = [tf.mul(tf.add(x1!, x2!), 0.5), tf.mul(tf.add(y1!, y2!), 0.5)];
    const [pw, ph] = [tf.sub(x2!, x1!), tf.sub(y2!, y1!)];
    const gw = tf.mul(pw, tf.exp(tf.clipByValue(dw!, -maxRatio, maxRatio)));
    const gh = tf.mul(ph, tf.exp(tf.clipByValue(dh!, -maxRatio, maxRatio)));
    const gx = tf.add(px, tf.mul(pw, dx!));
    const gy = tf.add(py, tf.mul(ph, dy!));
    let parts = [tf.sub(gx, tf.mul(gw, 0.5)), tf.sub(gy, tf.mul(gh, 0.5)), tf.add(gx, tf.mul(gw, 0.5)), tf.add(gy, tf.mul(gh, 0.5))];
    if (options.maxShape) {
      const [h, w] = options.maxShape;
      parts = parts.map((p, i) => tf.clipByValue(p, 0, i % 2 === 0 ? w : h));
    }
    return tf.reshape(tf.stack(parts, 2), [-1, 4 * k]);
  });
}
