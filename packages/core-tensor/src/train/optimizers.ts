import { tf, type Tensor, type Variable } from '../tf';
import { SkySenseError } from '../errors';
import { assertInRange, assertInt, assertPositive, formatShape } from '../validate';
import type { Parameter } from '../module';
import { type Gradients, type ParamSource, trainableParameters } from './grads';
import type { LrSchedule } from './schedules';

/** A set of parameters sharing hyper-parameters. */
export interface ParamGroup {
  params: Parameter[];
  /** Learning rate of this group; default the optimizer's. */
  lr?: number;
  /** Weight decay of this group; default the optimizer's. */
  weightDecay?: number;
  /** A label (e.g. `layer_3_no_decay`), for logs. */
  name?: string;
}

/** A group as the optimizer holds it: `lr` is the current rate, `initialLr` the one schedules start from. */
export interface ResolvedGroup {
  params: Parameter[];
  lr: number;
  initialLr: number;
  weightDecay: number;
  name: string;
}

function isGroupList(x: ParamSource | ParamGroup[]): x is ParamGroup[] {
  return Array.isArray(x) && x.length > 0 && typeof x[0] === 'object' && x[0] !== null && 'params' in x[0];
}

/**
 * Base of the optimizers: groups, learning rates, step counting and per-parameter state.
 * @example
 * ```ts
 * import { AdamW, initBackend, Linear, Optimizer, SGD } from '@skysense/core-tensor';
 * await initBackend();
 * // Optimizer is the base of AdamW and SGD: parameter groups, schedules, state dicts for resuming
 * const model = new Linear(8, 2);
 * const optimizers: Optimizer[] = [new AdamW(model, { lr: 1e-3 }), new SGD(model, { lr: 0.01, momentum: 0.9 })];
 * for (const o of optimizers) console.log(o.constructor.name, o.stateDict().size);
 * ```
 */
export abstract class Optimizer {
  readonly groups: ResolvedGroup[];
  /** Number of steps taken. */
  stepCount = 0;
  protected readonly state = new Map<Parameter, Variable[]>();

  constructor(params: ParamSource | ParamGroup[], defaults: { lr: number; weightDecay: number }) {
    assertPositive('lr', defaults.lr);
    const groups = isGroupList(params) ? params : [{ params: trainableParameters(params) }];
    this.groups = groups.map((g, i) => {
      const lr = g.lr ?? defaults.lr;
      return { params: g.params, lr, initialLr: lr, weightDecay: g.weightDecay ?? defaults.weightDecay, name: g.name ?? `group_${i}` };
    });
    const seen = new Set<Parameter>();
    for (const g of this.groups) {
      for (const p of g.params) {
        if (seen.has(p)) throw new SkySenseError('E_ARG', `a parameter appears in more than one group (second time in '${g.name}')`);
        seen.add(p);
      }
    }
  }

  /** Sets every group's `lr` from a schedule at iteration `iter` (applied to each group's initial rate). */
  applySchedule(schedule: LrSchedule, iter: number): void {
    for (const g of this.groups) g.lr = schedule(iter, g.initialLr);
  }

  /**
   * Applies one update with `grads` (not consumed: the caller still owns them). Parameters without
   * a gradient, or frozen, are left alone.
   */
  step(grads: Gradients): void {
    this.stepCount++;
    for (const g of this.groups) {
      for (const p of g.params) {
        const grad = grads.get(p);
        if (!grad || !p.requiresGrad) continue;
        if (grad.shape.join() !== p.shape.join())
          throw new SkySenseError('E_SHAPE', `gradient of shape [${grad.shape}] for a parameter of shape [${p.shape}]`);
        tf.tidy(() => this.update(p, grad, g));
      }
    }
  }

  /** Per-parameter state tensors (created as zeros on first use). */
  protected slots(p: Parameter, count: number): Variable[] {
    let s = this.state.get(p);
    if (!s) {
      s = Array.from({ length: count }, () => tf.variable(tf.zerosLike(p.value), false));
      this.state.set(p, s);
    }
    return s;
  }

  /**
   * The per-parameter state as tensors keyed `<group>.<param>.<slot>` (positions in the groups), for
   * checkpoints; {@link Optimizer.stepCount} is saved separately. The tensors are the live state.
   */
  stateDict(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    this.groups.forEach((g, gi) => g.params.forEach((p, pi) => this.state.get(p)?.forEach((v, si) => out.set(`${gi}.${pi}.${si}`, v))));
    return out;
  }

  /**
   * Restores the state from {@link Optimizer.stateDict} (copies the values) and the step count.
   * @throws SkySenseError `E_STATE_DICT` naming a key that does not fit the groups or a parameter's shape.
   */
  loadStateDict(state: Map<string, Tensor>, stepCount: number): void {
    this.dispose();
    for (const [key, t] of state) {
      const [gi, pi, si] = key.split('.').map(Number) as [number, number, number];
      const p = this.groups[gi]?.params[pi];
      if (!p || !Number.isInteger(si) || si < 0 || t.shape.join() !== p.shape.join()) {
        throw new SkySenseError('E_STATE_DICT', `optimizer state '${key}': no parameter of shape ${formatShape(t.shape)} at that position`);
      }
      const slots = this.state.get(p) ?? [];
      slots[si] = tf.variable(tf.clone(t), false);
      this.state.set(p, slots);
    }
    this.stepCount = assertInt('stepCount', stepCount, 0);
  }

  /** Frees the optimizer state. */
  dispose(): void {
    for (const s of this.state.values()) s.forEach((v) => v.dispose());
    this.state.clear();
  }

  protected abstract update(p: Parameter, grad: Tensor, group: ResolvedGroup): void;
}

/** Options of {@link AdamW}, with PyTorch's defaults. */
export interface AdamWOptions {
  /** Default 1e-3. */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay. Default 1e-2. */
  weightDecay?: number;
}

/**
 * `torch.optim.AdamW`: `p ← p·(1 − lr·wd)`, then Adam with bias correction:
 * `p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)`.
 * @example
 * ```ts
 * import { initBackend, AdamW, Linear, disposeGradients, tf, valueAndGrads } from '@skysense/core-tensor';
 * await initBackend();
 * const model = new Linear(8, 1);
 * const optimizer = new AdamW(model, { lr: 1e-3, weightDecay: 0.05 });
 * const x = tf.randomNormal([4, 8]);
 * const { value, grads } = valueAndGrads(model, () => tf.mean(tf.square(model.forward(x))) as tf.Scalar);
 * optimizer.step(grads);
 * disposeGradients(grads);
 * tf.dispose([x, value]);
 * ```
 */
export class AdamW extends Optimizer {
  private readonly betas: [number, number];
  private readonly eps: number;

  constructor(params: ParamSource | ParamGroup[], options: AdamWOptions = {}) {
    super(params, { lr: options.lr ?? 1e-3, weightDecay: options.weightDecay ?? 1e-2 });
    this.betas = options.betas ?? [0.9, 0.999];
    this.betas.forEach((b, i) => assertInRange(`betas[${i}]`, b, 0, 0.999999999));
    this.eps = assertPositive('eps', options.eps ?? 1e-8);
  }

  protected update(p: Parameter, grad: Tensor, g: ResolvedGroup): void {
    const [m, v] = this.slots(p, 2) as [Variable, Variable];
    const [b1, b2] = this.betas;
    const t = this.stepCount;
    const w = p.value;
    if (g.weightDecay) w.assign(tf.mul(w, 1 - g.lr * g.weightDecay));
    m.assign(tf.add(tf.mul(m, b1), tf.mul(grad, 1 - b1)));
    v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(grad), 1 - b2)));
    const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(1 - b2 ** t)), this.eps);
    w.assign(tf.sub(w, tf.mul(tf.div(m, denom), g.lr / (1 - b1 ** t))));
  }
}

/** Options of {@link SGD}, with PyTorch's defaults. */
export interface SGDOptions {
  lr: number;
  /** Default 0. */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** L2 penalty added to the gradient. Default 0. */
  weightDecay?: number;
  /** Default false. */
  nesterov?: boolean;
}

/**
 * `torch.optim.SGD` with momentum, dampening, weight decay and Nesterov, as PyTorch defines them.
 * @example
 * ```ts
 * import { disposeGradients, initBackend, Linear, SGD, tf, valueAndGrads } from '@skysense/core-tensor';
 * await initBackend();
 * const model = new Linear(8, 1);
 * const sgd = new SGD(model, { lr: 0.01, momentum: 0.9, weightDecay: 1e-4, nesterov: true }); // torch.optim.SGD
 * const x = tf.randomNormal([4, 8]);
 * const { value, grads } = valueAndGrads(model, () => tf.mean(tf.square(model.forward(x))) as tf.Scalar);
 * sgd.step(grads);
 * disposeGradients(grads);
 * tf.dispose([x, value]);
 * ```
 */
export class SGD extends Optimizer {
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  private readonly started = new Set<Parameter>();

  constructor(params: ParamSource | ParamGroup[], options: SGDOptions) {
    super(params, { lr: options.lr, weightDecay: options.weightDecay ?? 0 });
    this.momentum = assertInRange('momentum', options.momentum ?? 0, 0, 1);
    this.dampening = assertInRange('dampening', options.dampening ?? 0, 0, 1);
    this.nesterov = options.nesterov ?? false;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new SkySenseError('E_ARG', 'SGD: Nesterov momentum requires momentum > 0 and dampening 0');
    }
  }

  protected update(p: Parameter, grad: Tensor, g: ResolvedGroup): void {
    const w = p.value;
    let d = g.weightDecay ? tf.add(grad, tf.mul(w, g.weightDecay)) : grad;
    if (this.momentum) {
      const [buf] = this.slots(p, 1) as [Variable];
      if (!this.started.has(p)) {
        buf.assign(d);
        this.started.add(p);
      } else {
        buf.assign(tf.add(tf.mul(buf, this.momentum), tf.mul(d, 1 - this.dampening)));
      }
      d = this.nesterov ? tf.add(d, tf.mul(buf, this.momentum)) : buf;
    }
    w.assign(tf.sub(w, tf.mul(d, g.lr)));
  }
}
