import { SkySenseError, assertPositive, formatShape, tf, type Tensor } from '@skysense/core-tensor';

/** Options of {@link crossEntropyLoss}, with mmseg's defaults. */
export interface CrossEntropyOptions {
  /** Target value that contributes nothing. Default 255. */
  ignoreIndex?: number;
  /** Per-class weight (length = classes); each pixel's loss is multiplied by its class's weight. Default none. */
  classWeight?: readonly number[];
  /**
   * Average over the non-ignored targets only. Default `false`, mmseg 0.x's default (`avg_non_ignore`):
   * the mean runs over every target, ignored ones counting as 0.
   */
  avgNonIgnore?: boolean;
  /** Multiplies the loss (`loss_weight`; 0.4 for SkySense's auxiliary head). Default 1. */
  lossWeight?: number;
}

/**
 * Softmax cross-entropy as mmseg's `CrossEntropyLoss` computes it: per-target `−w[y]·log softmax(x)[y]`
 * (0 where `y == ignoreIndex`), averaged (see `avgNonIgnore`), times `lossWeight`.
 * @param logits `[N, C]` or `[N, C, H, W]`.
 * @param target int32 `[N]` or `[N, H, W]` with values in [0, C) or `ignoreIndex`.
 * @throws SkySenseError naming the argument for a shape, dtype or class-value mismatch.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { crossEntropyLoss } from '@skysense/heads';
 * await initBackend();
 * // mmseg CrossEntropyLoss: mean over non-ignored pixels (255), optional class weights
 * const logits = tf.randomNormal([2, 5, 8, 8]);
 * const target = tf.fill([2, 8, 8], 1, 'int32');
 * console.log(crossEntropyLoss(logits, target, { classWeight: [1, 2, 1, 1, 1] }).dataSync()[0]);
 * ```
 */
export function crossEntropyLoss(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = 255, classWeight, avgNonIgnore = false, lossWeight = 1 } = options;
  const c = logits.shape[1]!;
  const expected = [logits.shape[0]!, ...logits.shape.slice(2)];
  if (!(logits.rank === 2 || logits.rank === 4))
    throw new SkySenseError('E_SHAPE', `crossEntropyLoss logits: expected [N, C] or [N, C, H, W], got ${formatShape(logits.shape)}`);
  if (target.shape.join() !== expected.join())
    throw new SkySenseError(
      'E_SHAPE',
      `crossEntropyLoss target: expected ${formatShape(expected)} (logits ${formatShape(logits.shape)}), got ${formatShape(target.shape)}`,
    );
  if (target.dtype !== 'int32')
    throw new SkySenseError('E_DTYPE', `crossEntropyLoss target: expected int32 class indices, got ${target.dtype}`);
  if (classWeight && classWeight.length !== c)
    throw new SkySenseError('E_ARG', `crossEntropyLoss classWeight: expected ${c} weights, got ${classWeight.length}`);
  assertPositive('crossEntropyLoss lossWeight', lossWeight);
  const labels = target.dataSync() as Int32Array;
  let valid = 0;
  labels.forEach((v, i) => {
    if (v === ignoreIndex) return;
    if (v < 0 || v >= c)
      throw new SkySenseError(
        'E_ARG',
        `crossEntropyLoss target: expected class indices in [0, ${c}) or ignoreIndex ${ignoreIndex}, got ${v} at flat index ${i}`,
      );
    valid += 1;
  });
  return tf.tidy(() => {
    const flat = logits.rank === 4 ? tf.reshape(tf.transpose(logits, [0, 2, 3, 1]), [-1, c]) : logits;
    const keep = tf.notEqual(tf.reshape(target, [-1]), ignoreIndex);
    const safe = tf.where(keep, tf.reshape(target, [-1]), tf.zerosLike(tf.reshape(target, [-1])));
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(flat), tf.oneHot(safe, c)), 1));
    const w = classWeight ? tf.gather(tf.tensor1d([...classWeight]), safe) : tf.onesLike(nll);
    const per = tf.mul(tf.mul(nll, w), tf.cast(keep, 'float32'));
    const denom = avgNonIgnore ? Math.max(valid, 1) : labels.length;
    return tf.mul(tf.div(tf.sum(per), denom), lossWeight);
  });
}

/**
 * Mean binary cross-entropy on logits (multi-label classification, mmcls `CrossEntropyLoss(use_sigmoid=True)`),
 * in the stable form `max(x, 0) − x·y + log(1 + e^−|x|)`.
 * @param logits `[N, C]`; @param target `[N, C]` of 0/1 (float32).
 */
export function binaryCrossEntropyLoss(logits: Tensor, target: Tensor, lossWeight = 1): Tensor {
  if (logits.shape.join() !== target.shape.join())
    throw new SkySenseError(
      'E_SHAPE',
      `binaryCrossEntropyLoss target: expected ${formatShape(logits.shape)} (the logits' shape), got ${formatShape(target.shape)}`,
    );
  assertPositive('binaryCrossEntropyLoss lossWeight', lossWeight);
  return tf.tidy(() => tf.mul(tf.mean(sigmoidCrossEntropy(logits, tf.cast(target, 'float32'))), lossWeight));
}

/** Binary cross-entropy on logits per element, `max(x, 0) − x·t + log(1 + e^−|x|)` (PyTorch's stable form), not reduced. */
export function sigmoidCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  return tf.tidy(() => tf.add(tf.sub(tf.relu(logits), tf.mul(logits, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(logits))))));
}
