import { SkySenseError, tf, type Tensor } from '@skysense/core-tensor';

/** The geometry of one image of a detection batch (mmdet's `img_meta`). */
export interface DetImageMeta {
  /** `[height, width]` of the image before padding (boxes are clipped to it). */
  imgShape: readonly [number, number];
  /** `[height, width]` after this image's own padding (anchors beyond it are not trained). Default: the batch's size. */
  padShape?: readonly [number, number];
  /** `[w, h]` factor the image was resized by; predicted boxes are divided by it (mmdet `rescale=True`). Default `[1, 1]`. */
  scaleFactor?: readonly [number, number];
}

/** The gt boxes of one image: flat `[G·4]` x1, y1, x2, y2 in input pixels, and a class per box. */
export interface GtBoxes {
  boxes: Float32Array;
  labels: Int32Array;
}

/** Boxes of one image with a score each (RPN proposals): flat `[K·4]` and `[K]`, highest score first. */
export interface ScoredBoxes {
  boxes: Float32Array;
  scores: Float32Array;
}

/** The detections of one image: boxes (flat `[K·4]`, original-image pixels), scores and class indices, highest score first. */
export interface Detections extends ScoredBoxes {
  labels: Int32Array;
}

/** float32 machine epsilon, which mmdet 2.x adds to a loss's `avg_factor` before dividing. */
export const AVG_EPS = 1.1920928955078125e-7;

/**
 * The per-level dense maps `[N, A·k, H, W]` as `[N, Σ H·W·A, k]`, locations row by row and the A
 * anchors of a location together (mmdet's `permute(0, 2, 3, 1).reshape(N, -1, k)` per level).
 */
export function flattenLevels(maps: readonly Tensor[], k: number): Tensor {
  return tf.tidy(() =>
    tf.concat(
      maps.map((m) => tf.reshape(tf.transpose(m, [0, 2, 3, 1]), [m.shape[0]!, -1, k])),
      1,
    ),
  );
}

/**
 * Checks one image's gt boxes: finite, with area, labels in [0, numClasses), and (given the image's
 * `[height, width]`) overlapping the image — a box wholly outside it is a coordinate mistake (e.g.
 * boxes of the original image after a resize) that would train on padding.
 */
export function checkGt(what: string, gt: GtBoxes, numClasses: number, imgShape?: readonly [number, number]): void {
  const { boxes, labels } = gt;
  if (boxes.length !== labels.length * 4)
    throw new SkySenseError('E_ARG', `${what}: expected 4 coordinates per label (${labels.length} labels), got ${boxes.length} numbers`);
  for (let i = 0; i < labels.length; i++) {
    const [x1, y1, x2, y2] = boxes.subarray(4 * i, 4 * i + 4);
    if (![x1, y1, x2, y2].every(Number.isFinite) || !(x2! > x1! && y2! > y1!))
      throw new SkySenseError('E_ARG', `${what} box ${i}: expected finite x1 < x2 and y1 < y2, got ${x1}, ${y1}, ${x2}, ${y2}`);
    if (!Number.isInteger(labels[i]) || labels[i]! < 0 || labels[i]! >= numClasses)
      throw new SkySenseError('E_ARG', `${what} label ${i}: expected a class index in [0, ${numClasses}), got ${labels[i]}`);
    if (imgShape && !(x1! < imgShape[1] && y1! < imgShape[0] && x2! > 0 && y2! > 0))
      throw new SkySenseError(
        'E_ARG',
        `${what} box ${i}: ${x1}, ${y1}, ${x2}, ${y2} lies outside the ${imgShape[1]}×${imgShape[0]} image (boxes are in input pixels)`,
      );
  }
}

/**
 * Checks the metas of a batch of `n` images padded to `[height, width]`: `imgShape` and `padShape`
 * positive integers with `imgShape ≤ padShape ≤` the batch size, `scaleFactor` positive and finite.
 */
export function checkMetas(
  what: string,
  metas: readonly DetImageMeta[],
  n: number,
  batch: readonly [number, number],
): readonly DetImageMeta[] {
  if (metas.length !== n) throw new SkySenseError('E_ARG', `${what}: expected ${n} (one per image), got ${metas.length}`);
  metas.forEach((m, i) => {
    const pad = m.padShape ?? batch;
    const fits = (s: readonly number[] | undefined, max: readonly number[]) =>
      Array.isArray(s) && s.length === 2 && s.every((v, k) => Number.isInteger(v) && v > 0 && v <= max[k]!);
    if (!fits(m.imgShape, pad))
      throw new SkySenseError(
        'E_ARG',
        `${what}[${i}].imgShape: expected [height, width], positive integers within [${pad.join(', ')}], got ${JSON.stringify(m.imgShape)}`,
      );
    if (!fits(pad, batch))
      throw new SkySenseError(
        'E_ARG',
        `${what}[${i}].padShape: expected [height, width] within the batch's [${batch.join(', ')}], got ${JSON.stringify(pad)}`,
      );
    const sf = m.scaleFactor ?? [1, 1];
    if (sf.length !== 2 || !sf.every((v) => Number.isFinite(v) && v > 0))
      throw new SkySenseError(
        'E_ARG',
        `${what}[${i}].scaleFactor: expected [w, h], two positive numbers, got ${JSON.stringify(m.scaleFactor)}`,
      );
  });
  return metas;
}
