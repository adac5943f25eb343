import { Generator, SkySenseError, assertInRange, assertInt, boxIou, defaultRng, tf } from '@skysense/core-tensor';

/**
 * What {@link MaxIoUAssigner} decided for each box (mmdet's `AssignResult`): `gtInds[i]` is 0 for a
 * negative, −1 for ignored, `j + 1` when box i is assigned to gt box j.
 */
export interface AssignResult {
  gtInds: Int32Array;
  /** IoU of each box with its best gt box. */
  maxOverlaps: Float32Array;
  /** The assigned gt's label for positives, −1 otherwise. */
  labels: Int32Array;
}

/** Options of {@link MaxIoUAssigner} (mmdet 2.x names; Faster R-CNN's RPN: 0.7 / 0.3 / 0.3 with low-quality matches, RCNN: 0.5 / 0.5 / 0.5 without). */
export interface MaxIoUAssignerOptions {
  /** IoU at or above which a box is positive. */
  posIouThr: number;
  /** IoU below which a box is negative (boxes in between are ignored). */
  negIouThr: number;
  /** Smallest IoU for a low-quality match. Default 0. */
  minPosIou?: number;
  /** Give each gt box the boxes that overlap it most, even below `posIouThr`. Default true. */
  matchLowQuality?: boolean;
  /** With low-quality matches, every box tied at the gt's best IoU (not just the first). Default true. */
  gtMaxAssignAll?: boolean;
}

/**
 * mmdet 2.x's `MaxIoUAssigner`: each box takes the gt box it overlaps most; IoU ≥ `posIouThr` is
 * positive, `[0, negIouThr)` negative, the rest ignored; then (with `matchLowQuality`) every gt box
 * claims its best-overlapping boxes if that IoU reaches `minPosIou`, later gt boxes winning ties.
 * With no gt boxes every box is negative.
 * @example
 * ```ts
 * import { initBackend } from '@skysense/core-tensor';
 * import { MaxIoUAssigner } from '@skysense/heads';
 * await initBackend();
 * const assigner = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.3 });
 * const anchors = Float32Array.of(0, 0, 10, 10, 5, 5, 15, 15, 40, 40, 50, 50);
 * console.log(assigner.assign(anchors, Float32Array.of(1, 1, 11, 11), Int32Array.of(2)).gtInds); // Int32Array [1, 0, 0]
 * ```
 */
export class MaxIoUAssigner {
  readonly options: Required<MaxIoUAssignerOptions>;

  constructor(options: MaxIoUAssignerOptions) {
    this.options = { minPosIou: 0, matchLowQuality: true, gtMaxAssignAll: true, ...options };
    assertInRange('MaxIoUAssigner posIouThr', this.options.posIouThr, 0, 1);
    assertInRange('MaxIoUAssigner negIouThr', this.options.negIouThr, 0, this.options.posIouThr);
    assertInRange('MaxIoUAssigner minPosIou', this.options.minPosIou, 0, 1);
  }

  /**
   * @param boxes flat `[N·4]` (x1, y1, x2, y2) anchors or proposals.
   * @param gt flat `[G·4]` gt boxes; @param gtLabels `[G]` their classes.
   */
  assign(boxes: Float32Array, gt: Float32Array, gtLabels: Int32Array): AssignResult {
    const [n, g] = [boxes.length / 4, gt.length / 4];
    if (gtLabels.length !== g)
      throw new SkySenseError('E_ARG', `MaxIoUAssigner gtLabels: expected ${g} (one per gt box), got ${gtLabels.length}`);
    const out: AssignResult = { gtInds: new Int32Array(n).fill(-1), maxOverlaps: new Float32Array(n), labels: new Int32Array(n).fill(-1) };
    if (n === 0) return out;
    if (g === 0) {
      out.gtInds.fill(0);
      return out;
    }
    const overlaps = tf.tidy(() => boxIou(tf.tensor2d(gt, [g, 4]), tf.tensor2d(boxes, [n, 4])).dataSync() as Float32Array);
    const argmax = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let best = -1;
      for (let j = 0; j < g; j++) if (overlaps[j * n + i]! > best) [best, argmax[i]] = [overlaps[j * n + i]!, j];
      out.maxOverlaps[i] = best;
    }
    const { posIouThr, negIouThr, minPosIou, matchLowQuality, gtMaxAssignAll } = this.options;
    for (let i = 0; i < n; i++) {
      const v = out.maxOverlaps[i]!;
      if (v >= 0 && v < negIouThr) out.gtInds[i] = 0;
      if (v >= posIouThr) out.gtInds[i] = argmax[i]! + 1;
    }
    if (matchLowQuality) {
      for (let j = 0; j < g; j++) {
        const row = overlaps.subarray(j * n, (j + 1) * n);
        let [best, at] = [-1, 0];
        row.forEach((v, i) => v > best && ([best, at] = [v, i]));
        if (best < minPosIou) continue;
        if (gtMaxAssignAll) row.forEach((v, i) => v === best && (out.gtInds[i] = j + 1));
        else out.gtInds[at] = j + 1;
      }
    }
    out.gtInds.forEach((k, i) => k > 0 && (out.labels[i] = gtLabels[k - 1]!));
    return out;
  }
}

/**
 * mmdet's `add_gt_as_proposals`: the gt boxes put in front of the proposals, each assigned to itself
 * (IoU 1, its own label). Returns the new box list and assignment.
 */
export function withGtAsProposals(
  boxes: Float32Array,
  assign: AssignResult,
  gt: Float32Array,
  gtLabels: Int32Array,
): { boxes: Float32Array; assign: AssignResult } {
  const g = gtLabels.length;
  const cat = <T extends Float32Array | Int32Array>(a: T, b: T): T => {
    const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  return {
    boxes: cat(gt, boxes),
    assign: {
      gtInds: cat(
        Int32Array.from({ length: g }, (_, j) => j + 1),
        assign.gtInds,
      ),
      maxOverlaps: cat(new Float32Array(g).fill(1), assign.maxOverlaps),
      labels: cat(Int32Array.from(gtLabels), assign.labels),
    },
  };
}

/** The boxes a sampler picked: positive and negative indices into the assigned boxes. */
export interface SampledBoxes {
  pos: Int32Array;
  neg: Int32Array;
}

/** Where a sampler is called: the training stage and the image of the batch. */
export interface SampleContext {
  stage: 'rpn' | 'rcnn';
  image: number;
}

/** Picks the boxes a detection loss is computed on; {@link RandomSampler} is mmdet's. Tests inject recorded choices through this. */
export interface BoxSampler {
  sample(assign: AssignResult, context: SampleContext): SampledBoxes;
}

/**
 * A sampler's choice checked against the assignment: positives must be assigned boxes, negatives
 * background, every index in range (a custom sampler's mistake is named, not trained on).
 */
export function checkSample(what: string, assign: AssignResult, s: SampledBoxes): SampledBoxes {
  const n = assign.gtInds.length;
  const bad = (inds: Int32Array, ok: (k: number) => boolean) =>
    Array.from(inds).find((i) => !(Number.isInteger(i) && i >= 0 && i < n && ok(assign.gtInds[i]!)));
  const pos = bad(s.pos, (k) => k > 0);
  if (pos !== undefined) throw new SkySenseError('E_ARG', `${what}: positive index ${pos} is not a box assigned to a gt box (of ${n})`);
  const neg = bad(s.neg, (k) => k === 0);
  if (neg !== undefined) throw new SkySenseError('E_ARG', `${what}: negative index ${neg} is not a background box (of ${n})`);
  return s;
}

/** Options of {@link RandomSampler} (RPN: 256 / 0.5; RCNN: 512 / 0.25). */
export interface RandomSamplerOptions {
  /** Boxes per image. */
  num: number;
  /** Fraction of them that may be positive. */
  posFraction: number;
  /** At most this many negatives per positive; −1 = no bound (default). */
  negPosUb?: number;
  /** Random source (seeded for reproducible, resumable runs). Default the process-wide generator. */
  rng?: Generator;
}

/**
 * mmdet 2.x's `RandomSampler`: up to `num · posFraction` positives, the rest negatives, each drawn
 * uniformly without replacement when there are more candidates than places (all of them otherwise),
 * returned in index order as mmdet's `unique()` leaves them.
 * @example
 * ```ts
 * import { Generator } from '@skysense/core-tensor';
 * import { RandomSampler } from '@skysense/heads';
 * const sampler = new RandomSampler({ num: 4, posFraction: 0.25, rng: new Generator(0) });
 * const gtInds = Int32Array.of(1, 1, 0, 0, 0, 0, -1);
 * const { pos, neg } = sampler.sample({ gtInds, maxOverlaps: new Float32Array(7), labels: new Int32Array(7) });
 * console.log(pos.length, neg.length); // 1 3
 * ```
 */
export class RandomSampler implements BoxSampler {
  private readonly rng: Generator;

  constructor(readonly options: RandomSamplerOptions) {
    assertInt('RandomSampler num', options.num, 1);
    assertInRange('RandomSampler posFraction', options.posFraction, 0, 1);
    assertInt('RandomSampler negPosUb', options.negPosUb ?? -1, -1);
    this.rng = options.rng ?? defaultRng();
  }

  sample(assign: AssignResult): SampledBoxes {
    const { num, posFraction, negPosUb = -1 } = this.options;
    const where = (test: (k: number) => boolean) => Int32Array.from(assign.gtInds.keys()).filter((i) => test(assign.gtInds[i]!));
    const pos = this.choose(
      where((k) => k > 0),
      Math.floor(num * posFraction),
    );
    let numNeg = num - pos.length;
    if (negPosUb >= 0) numNeg = Math.min(numNeg, negPosUb * Math.max(1, pos.length));
    return {
      pos,
      neg: this.choose(
        where((k) => k === 0),
        numNeg,
      ),
    };
  }

  /** `k` of `gallery` at random (partial Fisher–Yates), or all of it, in index order (mmdet's `unique()`). */
  private choose(gallery: Int32Array, k: number): Int32Array {
    if (gallery.length <= k) return gallery;
    const g = Int32Array.from(gallery);
    for (let i = 0; i < k; i++) {
      const j = i + this.rng.randint(g.length - i);
      [g[i], g[j]] = [g[j]!, g[i]!];
    }
    return g.slice(0, k).sort();
  }
}
