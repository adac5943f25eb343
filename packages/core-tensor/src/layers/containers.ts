import { tf, type Tensor } from '../tf';
import { Module } from '../module';

/**
 * A module with one tensor in and one tensor out, the kind {@link Sequential} chains.
 * @example
 * ```ts
 * import { initBackend, Linear, Sequential, tf, UnaryModule, type Tensor } from '@skysense/core-tensor';
 * await initBackend();
 * // a one-input, one-output layer fits in Sequential
 * class Scale extends UnaryModule {
 *   constructor(private readonly k: number) {
 *     super();
 *   }
 *   forward(x: Tensor): Tensor {
 *     return tf.mul(x, this.k);
 *   }
 * }
 * console.log(new Sequential(new Linear(2, 2), new Scale(0.5)).forward(tf.ones([1, 2])).shape); // [1, 2]
 * ```
 */
export abstract class UnaryModule extends Module {
  /** Runs the module. */
  abstract forward(x: Tensor): Tensor;

  /**
   * The activation this module is, where a layer before it can apply it in its own kernel
   * ({@link Sequential} fuses them in eval mode); undefined for any other module.
   */
  get fusableActivation(): FusedActivation | undefined {
    return undefined;
  }

  /**
   * `activation(forward(x))` in one kernel, or null where this module cannot fuse it (the default).
   * {@link Sequential} calls it in eval mode for a module followed by an activation.
   */
  forwardWithActivation(_x: Tensor, _activation: FusedActivation): Tensor | null {
    return null;
  }
}

/** Activations a layer can apply in its own kernel: the exact (erf) GELU. */
export type FusedActivation = 'gelu';

/**
 * Passes its input through unchanged (`nn.Identity`).
 * @example
 * ```ts
 * import { Identity, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const x = tf.ones([2, 3]);
 * console.log(new Identity().forward(x) === x); // true: a placeholder where a layer is optional
 * ```
 */
export class Identity extends UnaryModule {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/**
 * Children named `0`, `1`, … applied in order (`nn.Sequential`).
 * @example
 * ```ts
 * import { GELU, initBackend, Linear, Sequential, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const mlp = new Sequential(new Linear(8, 32), new GELU(), new Linear(32, 1));
 * console.log(mlp.forward(tf.randomNormal([4, 8])).shape); // [4, 1]; keys '0.weight', '2.bias', … as nn.Sequential
 * ```
 */
export class Sequential extends UnaryModule {
  private readonly items: UnaryModule[];

  constructor(...modules: UnaryModule[]) {
    super();
    this.items = modules.map((m, i) => this.registerModule(String(i), m));
  }

  /** Number of children. */
  get length(): number {
    return this.items.length;
  }

  /** The i-th child. */
  at(i: number): UnaryModule | undefined {
    return this.items[i];
  }

  /**
   * Runs the modules in order. In eval mode a module followed by an activation it can apply in its
   * own kernel (a Linear followed by the exact GELU, with the native kernels) runs both at once.
   */
  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      let h = x;
      for (let i = 0; i < this.items.length; i++) {
        const act = this.training ? undefined : this.items[i + 1]?.fusableActivation;
        const fused = act ? this.items[i]!.forwardWithActivation(h, act) : null;
        h = fused ?? this.items[i]!.forward(h);
        if (fused) i++;
      }
      return h;
    });
  }
}

/**
 * An indexed list of child modules named `0`, `1`, … (`nn.ModuleList`).
 * @example
 * ```ts
 * import { initBackend, Linear, ModuleList, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const layers = new ModuleList([new Linear(8, 8), new Linear(8, 8)]);
 * const y = [...layers].reduce((h, layer) => layer.forward(h), tf.randomNormal([2, 8]));
 * console.log(y.shape, [...layers.stateDict().keys()][0]); // [2, 8] '0.weight'
 * ```
 */
export class ModuleList<M extends Module = Module> extends Module implements Iterable<M> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.push(m);
  }

  /** Appends a module under the next index. */
  push(m: M): M {
    this.items.push(this.registerModule(String(this.items.length), m));
    return m;
  }

  /** Number of children. */
  get length(): number {
    return this.items.length;
  }

  /** The i-th child. */
  at(i: number): M | undefined {
    return this.items[i];
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/**
 * Child modules under given names (`nn.ModuleDict`): their keys are `<name>.<key>`.
 * @example
 * ```ts
 * import { initBackend, Linear, ModuleDict } from '@skysense/core-tensor';
 * await initBackend();
 * const heads = new ModuleDict({ s2: new Linear(16, 4), s1: new Linear(16, 4) });
 * console.log([...heads.stateDict().keys()]); // ['s2.weight', 's2.bias', 's1.weight', 's1.bias']
 * const s2Head = heads.get('s2');
 * ```
 */
export class ModuleDict<M extends Module = Module> extends Module {
  private readonly items = new Map<string, M>();

  constructor(modules: Iterable<[string, M]> | Record<string, M> = {}) {
    super();
    const entries = Symbol.iterator in Object(modules) ? (modules as Iterable<[string, M]>) : Object.entries(modules as Record<string, M>);
    for (const [name, m] of entries) this.items.set(name, this.registerModule(name, m));
  }

  /** The child called `name`. */
  get(name: string): M | undefined {
    return this.items.get(name);
  }

  /** `[name, module]` pairs in insertion order. */
  entries(): [string, M][] {
    return [...this.items];
  }
}
