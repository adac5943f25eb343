import { SkySenseError, assertInt } from '@skysense/core-tensor';

/** Per-class and summary scores of a segmentation (mmseg's `mIoU` + `mFscore`), as fractions in [0, 1]. */
export interface SegmentationScores {
  /** Per class: intersection / union; NaN for a class absent from both prediction and ground truth. */
  iou: number[];
  /** Per class: 2·P·R / (P + R); NaN where undefined. */
  f1: number[];
  /** Per class: intersection / predicted area (NaN if never predicted). */
  precision: number[];
  /** Per class: intersection / ground-truth area (NaN if absent from the ground truth). */
  recall: number[];
  /** Mean of the defined per-class IoUs (NaN classes skipped, as mmseg's `nanmean`). */
  mIoU: number;
  /** Mean of the defined per-class F1s. */
  mF1: number;
  /** Overall (pixel) accuracy: correct / labelled pixels (mmseg's `aAcc`). */
  oa: number;
}

/** Binary change-detection scores for the change class (index 1). */
export interface ChangeScores {
  precision: number;
  recall: number;
  f1: number;
  /** IoU of the change class. */
  iou: number;
  oa: number;
}

const nanmean = (v: number[]) => {
  const ok = v.filter((x) => !Number.isNaN(x));
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
};
const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);

/**
 * A confusion matrix accumulated over images: `matrix[t * numClasses + p]` counts pixels (or
 * samples) of ground-truth class `t` predicted as `p`; targets equal to `ignoreIndex` are skipped.
 * Scores are computed from the accumulated counts, so they are those of the whole dataset.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { ConfusionMatrix } from '@skysense/heads';
 * await initBackend();
 * const cm = new ConfusionMatrix(3); // label 255 is ignored
 * cm.update([0, 1, 2, 2, 1], [0, 1, 1, 2, 255]);
 * console.log(cm.table(['water', 'land', 'road'])); // per-class IoU, F1, precision, recall; mIoU; OA
 * ```
 */
export class ConfusionMatrix {
  /** Row-major counts, rows = ground truth, columns = prediction. */
  readonly matrix: Float64Array;

  constructor(
    readonly numClasses: number,
    readonly ignoreIndex = 255,
  ) {
    assertInt('ConfusionMatrix numClasses', numClasses, 1);
    this.matrix = new Float64Array(numClasses * numClasses);
  }

  /**
   * Adds one image's (or batch's) predictions. Both arrays hold class indices, flattened in the same order.
   * @throws SkySenseError `E_SHAPE` if the lengths differ, `E_ARG` for an index outside [0, numClasses).
   */
  update(prediction: ArrayLike<number>, target: ArrayLike<number>): this {
    const k = this.numClasses;
    if (prediction.length !== target.length)
      throw new SkySenseError('E_SHAPE', `ConfusionMatrix.update: prediction has ${prediction.length} values, target ${target.length}`);
    for (let i = 0; i < target.length; i++) {
      const t = target[i]!;
      if (t === this.ignoreIndex) continue;
      const p = prediction[i]!;
      if (!(t >= 0 && t < k && Number.isInteger(t)))
        throw new SkySenseError(
          'E_ARG',
          `ConfusionMatrix.update target[${i}]: expected a class in [0, ${k}) or ${this.ignoreIndex}, got ${t}`,
        );
      if (!(p >= 0 && p < k && Number.isInteger(p)))
        throw new SkySenseError('E_ARG', `ConfusionMatrix.update prediction[${i}]: expected a class in [0, ${k}), got ${p}`);
      this.matrix[t * k + p]! += 1;
    }
    return this;
  }

  /** Count of ground truth `t` predicted as `p`. */
  at(t: number, p: number): number {
    return this.matrix[t * this.numClasses + p]!;
  }

  /** IoU, F1, precision, recall per class, their means and the overall accuracy. */
  scores(): SegmentationScores {
    const k = this.numClasses;
    const classes = [...Array(k).keys()];
    const tp = classes.map((c) => this.at(c, c));
    const label = classes.map((c) => classes.reduce((s, p) => s + this.at(c, p), 0));
    const pred = classes.map((c) => classes.reduce((s, t) => s + this.at(t, c), 0));
    const iou = classes.map((c) => ratio(tp[c]!, label[c]! + pred[c]! - tp[c]!));
    const precision = classes.map((c) => ratio(tp[c]!, pred[c]!));
    const recall = classes.map((c) => ratio(tp[c]!, label[c]!));
    const f1 = classes.map((c) => ratio(2 * precision[c]! * recall[c]!, precision[c]! + recall[c]!));
    const total = label.reduce((a, b) => a + b, 0);
    return {
      iou,
      f1,
      precision,
      recall,
      mIoU: nanmean(iou),
      mF1: nanmean(f1),
      oa: ratio(
        tp.reduce((a, b) => a + b, 0),
        total,
      ),
    };
  }

  /** Precision, recall, F1 and IoU of the change class (1) of a two-class matrix, and the overall accuracy. */
  changeScores(): ChangeScores {
    if (this.numClasses !== 2)
      throw new SkySenseError('E_ARG', `changeScores: expected a 2-class (no change / change) matrix, got ${this.numClasses} classes`);
    const s = this.scores();
    return { precision: s.precision[1]!, recall: s.recall[1]!, f1: s.f1[1]!, iou: s.iou[1]!, oa: s.oa };
  }

  /** The scores as a fixed-width table (percentages, as mmseg prints them), one row per class and a summary row. */
  table(classNames?: readonly string[]): string {
    const s = this.scores();
    const names = classNames ?? [...Array(this.numClasses).keys()].map(String);
    const pct = (v: number) => (Number.isNaN(v) ? 'n/a' : (100 * v).toFixed(2)).padStart(8);
    const w = Math.max(5, ...names.map((n) => n.length));
    const rows = names.map((n, c) => `${n.padEnd(w)} ${pct(s.iou[c]!)} ${pct(s.f1[c]!)} ${pct(s.precision[c]!)} ${pct(s.recall[c]!)}`);
    return [
      `${'class'.padEnd(w)} ${'IoU'.padStart(8)} ${'F1'.padStart(8)} ${'Prec'.padStart(8)} ${'Recall'.padStart(8)}`,
      ...rows,
      `${'mean'.padEnd(w)} ${pct(s.mIoU)} ${pct(s.mF1)}`,
      `OA ${(100 * s.oa).toFixed(2)}  mIoU ${(100 * s.mIoU).toFixed(2)}  mF1 ${(100 * s.mF1).toFixed(2)}`,
    ].join('\n');
  }
}

/**
 * Average precision of one class as mmcls computes it: samples sorted by descending score, precision
 * taken at each positive, summed and divided by the number of positives; targets of −1 ("difficult")
 * are ignored. NaN for a class with no positive.
 */
export function averagePrecision(scores: ArrayLike<number>, targets: ArrayLike<number>): number {
  if (scores.length !== targets.length)
    throw new SkySenseError('E_SHAPE', `averagePrecision: ${scores.length} scores but ${targets.length} targets`);
  const order = [...Array(scores.length).keys()].sort((a, b) => scores[b]! - scores[a]!);
  let tp = 0,
    seen = 0,
    sum = 0;
  for (const i of order) {
    const t = targets[i]!;
    if (t === -1) continue;
    seen += 1;
    if (t === 1) {
      tp += 1;
      sum += tp / seen;
    }
  }
  return tp ? sum / tp : NaN;
}

/**
 * Multi-label mean average precision over classes (classes without a positive are skipped).
 * @param scores `[N][C]` probabilities or logits; @param targets `[N][C]` of 0/1 (−1 = ignore).
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { meanAveragePrecision } from '@skysense/heads';
 * await initBackend();
 * // multi-label classification (BigEarthNet): per-class AP over samples, and their mean
 * const scores = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]];
 * const targets = [[1, 0], [0, 1], [1, 1]];
 * console.log(meanAveragePrecision(scores, targets)); // { ap: [1, 1], mAP: 1 }
 * ```
 */
export function meanAveragePrecision(
  scores: readonly ArrayLike<number>[],
  targets: readonly ArrayLike<number>[],
): { ap: number[]; mAP: number } {
  if (scores.length !== targets.length)
    throw new SkySenseError('E_SHAPE', `meanAveragePrecision: ${scores.length} score rows but ${targets.length} target rows`);
  if (scores.length === 0) throw new SkySenseError('E_ARG', 'meanAveragePrecision: expected at least one sample, got none');
  const c = scores[0]?.length ?? 0;
  scores.forEach((r, i) => {
    if (r.length !== c || targets[i]!.length !== c)
      throw new SkySenseError(
        'E_SHAPE',
        `meanAveragePrecision row ${i}: expected ${c} scores and targets, got ${r.length} and ${targets[i]!.length}`,
      );
  });
  const ap = [...Array(c).keys()].map((k) =>
    averagePrecision(
      scores.map((r) => r[k]!),
      targets.map((r) => r[k]!),
    ),
  );
  return { ap, mAP: nanmean(ap) };
}
