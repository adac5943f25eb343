import { SkySenseError, assertInRange } from '@skysense/core-tensor';

/** A box `[x1, y1, x2, y2]` in pixels. */
export type Box = readonly [number, number, number, number] | readonly number[];

/** Ground truth of one image (mmdet's annotation dict): boxes with labels, and boxes to ignore (VOC `difficult`). */
export interface GroundTruth {
  bboxes: readonly Box[];
  labels: readonly number[];
  /** Boxes that count neither as hits nor as misses. Default none. */
  bboxesIgnore?: readonly Box[];
  labelsIgnore?: readonly number[];
}

/** Detections of one image, per class: `[x1, y1, x2, y2, score]` rows (mmdet's `det_results[i]`). */
export type ImageDetections = readonly (readonly (readonly number[])[])[];

/** Options of {@link evalMap}. */
export interface EvalMapOptions {
  /** IoU for a hit. Default 0.5. */
  iouThr?: number;
  /** `area` (the area under the precision envelope, default) or `11points` (VOC07). */
  mode?: 'area' | '11points';
  /** Evaluate per object size: `[min, max)` ranges of √area (mmdet's `scale_ranges`). Default: one range, all sizes. */
  scaleRanges?: readonly (readonly [number, number])[];
}

/** Per class: ground-truth count and detection count, the final recall and the AP (one entry per scale range). */
export interface ClassAP {
  numGts: number[];
  numDets: number;
  recall: number[];
  ap: number[];
}

/** {@link evalMap}'s result: the mAP per scale range (classes without ground truth left out) and the per-class figures. */
export interface MapResult {
  mAP: number[];
  classes: ClassAP[];
  /** The per-class table mmdet prints (class, gts, dets, recall, AP; the mAP last). */
  table(classNames?: readonly string[]): string;
}

const f = Math.fround;
const EPS32 = 1.1920928955078125e-7; // np.finfo(np.float32).eps

/** mmdet's numpy `bbox_overlaps` (float32, union floored at 1e-6). */
function overlaps(a: Box, b: Box): number {
  const area = (x: Box) => f(f(x[2]! - x[0]!) * f(x[3]! - x[1]!));
  const w = Math.max(f(Math.min(a[2]!, b[2]!) - Math.max(a[0]!, b[0]!)), 0);
  const h = Math.max(f(Math.min(a[3]!, b[3]!) - Math.max(a[1]!, b[1]!)), 0);
  const inter = f(w * h);
  return f(inter / Math.max(f(f(area(a) + area(b)) - inter), f(1e-6)));
}

const boxArea = (b: Box) => f(f(b[2]! - b[0]!) * f(b[3]! - b[1]!));

/** mmdet's `tpfp_default` for one image and class: per scale, which detections are hits and which are false alarms. */
function tpfp(
  dets: readonly (readonly number[])[],
  gts: readonly Box[],
  ignored: readonly Box[],
  iouThr: number,
  areas: [number, number][] | null,
) {
  const all = [...gts, ...ignored];
  const ranges = areas ?? [[-Infinity, Infinity]];
  const tp = ranges.map(() => new Float64Array(dets.length));
  const fp = ranges.map(() => new Float64Array(dets.length));
  const inRange = (a: number, [lo, hi]: [number, number]) => a >= lo && a < hi;
  if (all.length === 0) {
    ranges.forEach((r, k) => dets.forEach((d, i) => (fp[k]![i] = !areas || inRange(boxArea(d), r) ? 1 : 0)));
    return { tp, fp };
  }
  const best = dets.map((d) => {
    let [max, arg] = [-Infinity, 0];
    all.forEach((g, j) => {
      const iou = overlaps(d, g);
      if (iou > max) [max, arg] = [iou, j];
    });
    return { max, arg };
  });
  const order = dets.map((_, i) => i).sort((i, j) => dets[j]![4]! - dets[i]![4]! || i - j);
  ranges.forEach((r, k) => {
    const covered = new Uint8Array(all.length);
    const skip = (j: number) => j >= gts.length || (areas !== null && !inRange(boxArea(all[j]!), r));
    for (const i of order) {
      const { max, arg } = best[i]!;
      if (max >= iouThr) {
        if (skip(arg)) continue;
        if (!covered[arg]) {
          covered[arg] = 1;
          tp[k]![i] = 1;
        } else fp[k]![i] = 1;
      } else if (!areas || inRange(boxArea(dets[i]!), r)) fp[k]![i] = 1;
    }
  });
  return { tp, fp };
}

/** mmdet's `average_precision` for one scale. */
function averagePrecisionOf(recalls: number[], precisions: number[], mode: 'area' | '11points'): number {
  if (mode === '11points') {
    let sum = 0;
    for (let t = 0; t < 11; t++) {
      const thr = t * 0.1;
      const precs = precisions.filter((_, i) => recalls[i]! >= thr);
      sum = f(sum + (precs.length ? Math.max(...precs) : 0));
    }
    return f(sum / 11);
  }
  const mrec = [0, ...recalls, 1];
  const mpre = [0, ...precisions, 0];
  for (let i = mpre.length - 1; i > 0; i--) mpre[i - 1] = Math.max(mpre[i - 1]!, mpre[i]!);
  let ap = 0;
  for (let i = 0; i + 1 < mrec.length; i++) if (mrec[i + 1] !== mrec[i]) ap += (mrec[i + 1]! - mrec[i]!) * mpre[i + 1]!;
  return f(ap);
}

function checkInputs(detections: readonly ImageDetections[], annotations: readonly GroundTruth[]): number {
  if (detections.length !== annotations.length)
    throw new SkySenseError('E_ARG', `evalMap: ${detections.length} images of detections but ${annotations.length} annotations`);
  if (detections.length === 0) throw new SkySenseError('E_ARG', 'evalMap: no images to evaluate');
  const numClasses = detections[0]!.length;
  detections.forEach((d, i) => {
    if (d.length !== numClasses)
      throw new SkySenseError('E_ARG', `evalMap detections[${i}]: expected ${numClasses} classes (as image 0), got ${d.length}`);
    d.forEach((c, k) =>
      c.forEach((row, r) => {
        if (row.length !== 5 || !row.every(Number.isFinite))
          throw new SkySenseError(
            'E_ARG',
            `evalMap detections[${i}][${k}][${r}]: expected [x1, y1, x2, y2, score], got ${JSON.stringify(row)}`,
          );
      }),
    );
  });
  annotations.forEach((a, i) => {
    if (a.bboxes.length !== a.labels.length)
      throw new SkySenseError('E_ARG', `evalMap annotations[${i}]: ${a.bboxes.length} boxes but ${a.labels.length} labels`);
    if ((a.bboxesIgnore?.length ?? 0) !== (a.labelsIgnore?.length ?? 0))
      throw new SkySenseError(
        'E_ARG',
        `evalMap annotations[${i}]: ${a.bboxesIgnore?.length ?? 0} ignored boxes but ${a.labelsIgnore?.length ?? 0} labels`,
      );
    [...a.bboxes, ...(a.bboxesIgnore ?? [])].forEach((b, j) => {
      if (b.length !== 4 || !b.every(Number.isFinite))
        throw new SkySenseError('E_ARG', `evalMap annotations[${i}] box ${j}: expected [x1, y1, x2, y2], got ${JSON.stringify(b)}`);
    });
    [...a.labels, ...(a.labelsIgnore ?? [])].forEach((l) => {
      if (!Number.isInteger(l) || l < 0 || l >= numClasses)
        throw new SkySenseError('E_ARG', `evalMap annotations[${i}]: label ${l} is not a class of the detections (0 … ${numClasses - 1})`);
    });
  });
  return numClasses;
}

/**
 * Detection mAP as mmdet 2.x's `eval_map` computes it (`tpfp_default`): per class, detections of all
 * images in decreasing score order; a detection is a hit when its best-overlapping box (IoU ≥
 * `iouThr`) is a not-yet-matched ground truth, nothing when that box is ignored (difficult), a
 * false alarm otherwise; AP by area under the precision envelope or VOC07's 11 points; the mean over
 * classes that have ground truth.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { evalMap } from '@skysense/heads';
 * await initBackend();
 * const detections = [[[[10, 10, 50, 40, 0.9], [200, 200, 220, 230, 0.8]], []]]; // one image, two classes
 * const annotations = [{ bboxes: [[12, 10, 50, 42]], labels: [0] }];
 * const result = evalMap(detections, annotations, { iouThr: 0.5 });
 * console.log(result.mAP, result.table(['building', 'tank'])); // [1]: the class without ground truth is left out
 * ```
 */
export function evalMap(
  detections: readonly ImageDetections[],
  annotations: readonly GroundTruth[],
  options: EvalMapOptions = {},
): MapResult {
  const numClasses = checkInputs(detections, annotations);
  // mmdet holds boxes and scores as float32 arrays: round them as it does, before any arithmetic
  const f32 = (rows: readonly (readonly number[])[]) => rows.map((r) => r.map(f));
  detections = detections.map((d) => d.map(f32));
  annotations = annotations.map((a) => ({ ...a, bboxes: f32(a.bboxes), bboxesIgnore: a.bboxesIgnore && f32(a.bboxesIgnore) }));
  const iouThr = assertInRange('evalMap iouThr', options.iouThr ?? 0.5, 0, 1);
  const mode = options.mode ?? 'area';
  if (mode !== 'area' && mode !== '11points')
    throw new SkySenseError('E_ARG', `evalMap mode: expected 'area' or '11points', got '${String(mode)}'`);
  options.scaleRanges?.forEach(([lo, hi], i) => {
    if (!(lo >= 0 && hi > lo))
      throw new SkySenseError('E_ARG', `evalMap scaleRanges[${i}]: expected [min, max) with 0 ≤ min < max, got [${lo}, ${hi}]`);
  });
  const areas = options.scaleRanges ? options.scaleRanges.map(([lo, hi]) => [lo * lo, hi * hi] as [number, number]) : null;
  const scales = areas?.length ?? 1;
  const classes: ClassAP[] = Array.from({ length: numClasses }, (_, c) => {
    const rows: { score: number; tp: number[]; fp: number[] }[] = [];
    const numGts = new Array<number>(scales).fill(0);
    annotations.forEach((a, i) => {
      const gts = a.bboxes.filter((_, j) => a.labels[j] === c);
      const ignored = (a.bboxesIgnore ?? []).filter((_, j) => a.labelsIgnore![j] === c);
      const dets = detections[i]![c]!;
      const { tp, fp } = tpfp(dets, gts, ignored, iouThr, areas);
      dets.forEach((d, k) => rows.push({ score: d[4]!, tp: tp.map((t) => t[k]!), fp: fp.map((t) => t[k]!) }));
      gts.forEach((g) =>
        (areas ?? [[-Infinity, Infinity]]).forEach(([lo, hi], s) => (numGts[s]! += boxArea(g) >= lo && boxArea(g) < hi ? 1 : 0)),
      );
    });
    rows.sort((a, b) => b.score - a.score);
    const perScale = numGts.map((n, s) => {
      let [tp, fp] = [0, 0];
      const recalls: number[] = [];
      const precisions: number[] = [];
      for (const r of rows) {
        tp += r.tp[s]!;
        fp += r.fp[s]!;
        recalls.push(tp / Math.max(n, EPS32));
        precisions.push(f(f(tp) / Math.max(f(tp + fp), EPS32)));
      }
      return { recall: recalls.at(-1) ?? 0, ap: averagePrecisionOf(recalls, precisions, mode) };
    });
    return { numGts, numDets: rows.length, recall: perScale.map((p) => p.recall), ap: perScale.map((p) => p.ap) };
  });
  const mAP = Array.from({ length: scales }, (_, s) => {
    const withGt = classes.filter((c) => c.numGts[s]! > 0);
    return withGt.length ? f(withGt.reduce((sum, c) => f(sum + c.ap[s]!), 0) / withGt.length) : 0;
  });
  return { mAP, classes, table: (names) => mapTable(mAP, classes, names) };
}

function mapTable(mAP: number[], classes: ClassAP[], names?: readonly string[]): string {
  const pad = (s: string, n: number) => s.padStart(n);
  return mAP
    .map((m, s) => {
      const rows = classes.map(
        (c, k) =>
          `${(names?.[k] ?? String(k)).padEnd(16)}${pad(String(c.numGts[s]), 6)}${pad(String(c.numDets), 7)}${pad(c.recall[s]!.toFixed(3), 8)}${pad(c.ap[s]!.toFixed(3), 8)}`,
      );
      return [
        `${'class'.padEnd(16)}${pad('gts', 6)}${pad('dets', 7)}${pad('recall', 8)}${pad('AP', 8)}`,
        ...rows,
        `${'mAP'.padEnd(37)}${pad(m.toFixed(3), 8)}`,
      ].join('\n');
    })
    .join('\n\n');
}
