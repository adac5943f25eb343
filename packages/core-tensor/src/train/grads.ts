import { tf, type Scalar, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import type { Module, Parameter } from '../module';

/** Gradients keyed by the parameter they belong to. */
export type Gradients = Map<Parameter, Tensor>;

/** What to differentiate: a module (its trainable parameters), named parameters, or parameters. */
export type ParamSource = Module | Iterable<Parameter | [string, Parameter]>;

/** The trainable parameters of a source, in order. */
export function trainableParameters(source: ParamSource): Parameter[] {
  const items = 'namedParameters' in source ? (source as Module).namedParameters() : [...source];
  return items.map((p) => (Array.isArray(p) ? p[1] : p)).filter((p) => p.requiresGrad);
}

/**
 * Evaluates `loss` and its gradient with respect to every trainable parameter of `source` (frozen
 * parameters get none). The caller owns `value` and the gradient tensors (dispose them, or use
 * {@link disposeGradients}).
 * @throws SkySenseError `E_ARG` if there is no trainable parameter or the loss is not a scalar.
 * @example
 * ```ts
 * import { disposeGradients, initBackend, Linear, tf, valueAndGrads } from '@skysense/core-tensor';
 * await initBackend();
 * const model = new Linear(4, 1);
 * const x = tf.randomNormal([8, 4]);
 * // the loss's value and d(loss)/d(parameter) for every trainable parameter, by name
 * const { value, grads } = valueAndGrads(model, () => tf.mean(tf.square(model.forward(x))) as tf.Scalar);
 * console.log(value.dataSync()[0], [...grads.keys()]); // … ['weight', 'bias']
 * disposeGradients(grads);
 * tf.dispose([x, value]);
 * ```
 */
export function valueAndGrads(source: ParamSource, loss: () => Scalar): { value: Scalar; grads: Gradients } {
  const params = trainableParameters(source);
  if (params.length === 0) throw new SkySenseError('E_ARG', 'valueAndGrads: no trainable parameter to differentiate');
  const byName = new Map(params.map((p) => [p.value.name, p]));
  const { value, grads } = tf.variableGrads(
    () => {
      const l = loss();
      if (l.rank !== 0) throw new SkySenseError('E_SHAPE', `valueAndGrads: loss must be a scalar, got shape [${l.shape.join(', ')}]`);
      return l;
    },
    params.map((p) => p.value),
  );
  const out: Gradients = new Map();
  for (const [name, g] of Object.entries(grads)) out.set(byName.get(name)!, g);
  return { value, grads: out };
}

/** Disposes every gradient tensor of a map. */
export function disposeGradients(grads: Gradients): void {
  for (const g of grads.values()) g.dispose();
}

/**
 * Global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_`: if the L2 norm over all
 * gradients exceeds `maxNorm`, every gradient is scaled by `maxNorm / (norm + 1e-6)`.
 * @returns the norm before clipping and the (new) gradients; the input map is disposed when replaced.
 * @example
 * ```ts
 * import { clipGradNorm, disposeGradients, initBackend, Linear, tf, valueAndGrads } from '@skysense/core-tensor';
 * await initBackend();
 * const model = new Linear(4, 1);
 * const { value, grads } = valueAndGrads(model, () => tf.sum(model.forward(tf.fill([2, 4], 100))) as tf.Scalar);
 * const clipped = clipGradNorm(grads, 1); // torch.nn.utils.clip_grad_norm_
 * console.log(clipped.totalNorm); // the norm before clipping
 * disposeGradients(clipped.grads);
 * value.dispose();
 * ```
 */
export function clipGradNorm(grads: Gradients, maxNorm: number): { totalNorm: number; grads: Gradients } {
  if (!(maxNorm > 0)) throw new SkySenseError('E_ARG', `clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const totalNorm = tf.tidy(() =>
    Math.sqrt([...grads.values()].reduce((acc, g) => acc + (tf.sum(tf.square(g)).dataSync()[0] as number), 0)),
  );
  const coef = maxNorm / (totalNorm + 1e-6);
  if (coef >= 1) return { totalNorm, grads };
  const clipped: Gradients = new Map([...grads].map(([p, g]) => [p, tf.mul(g, coef)]));
  disposeGradients(grads);
  return { totalNorm, grads: clipped };
}
