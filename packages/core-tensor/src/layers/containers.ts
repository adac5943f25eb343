import { tf, type Tensor } from '../tf';
import { Module } from '../module';

/** A module with one tensor in and one tensor out, the kind {@link Sequential} chains. */
export abstract class UnaryModule extends Module {
  /** Runs the module. */
  abstract forward(x: Tensor): Tensor;
}

/** Passes its input through unchanged (`nn.Identity`). */
export class Identity extends UnaryModule {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** Children named `0`, `1`, … applied in order (`nn.Sequential`). */
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

  forward(x: Tensor): Tensor {
    return tf.tidy(() => this.items.reduce((h, m) => m.forward(h), x));
  }
}

/** An indexed list of child modules named `0`, `1`, … (`nn.ModuleList`). */
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

/** Child modules under given names (`nn.ModuleDict`): their keys are `<name>.<key>`. */
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
