import { tf, type Tensor, type Variable, type DataType } from './tf';
import { SkySenseError } from './errors';
import { summarizeList } from './limits';
import { formatShape } from './validate';
import { type Initializer, initValues } from './init';
import type { Generator } from './rng';

/** A checkpoint key a model expects to be missing, unexpected or skipped by design, and why that is harmless. */
export interface CheckpointKeyRule {
  /** Matches the key relative to the module that declares the rule. */
  pattern: RegExp;
  when: 'missing' | 'unexpected' | 'ignored';
  why: string;
}

let shapeOnlyDepth = 0;

/**
 * Builds modules without allocating any tensor: parameters and buffers record only their shape
 * and dtype. Use it to list and count the parameters of a multi-billion-parameter model.
 * Asking such a parameter for its value throws `E_SHAPE_ONLY`.
 * @example
 * ```ts
 * import { initBackend, Linear, shapeOnly } from '@skysense/core-tensor';
 * await initBackend();
 * const model = shapeOnly(() => new Linear(50_000, 50_000));
 * model.parameterCount(); // 2_500_050_000, no memory used
 * ```
 */

export function shapeOnly<T>(build: () => T): T {
  shapeOnlyDepth++;
  try {
    return build();
  } finally {
    shapeOnlyDepth--;
  }
}

/** Whether modules constructed now are shape-only (inside {@link shapeOnly}). */
export function isBuildingShapeOnly(): boolean {
  return shapeOnlyDepth > 0;
}

/** The dtypes SkySense parameters and buffers use (PyTorch int64 buffers are stored as int32). */
export type StateDType = 'float32' | 'int32';

/**
 * A learnable tensor of a module: PyTorch's `nn.Parameter`.
 * @example
 * ```ts
 * import { initBackend, Module, zeros } from '@skysense/core-tensor';
 * await initBackend();
 * class WithToken extends Module {
 *   readonly clsToken = this.registerParameter('cls_token', [1, 1, 64], zeros); // trainable
 * }
 * const m = new WithToken();
 * console.log(m.clsToken.shape, m.clsToken.requiresGrad); // [1, 1, 64] true
 * m.clsToken.requiresGrad = false; // frozen: optimizers and valueAndGrads skip it
 * ```
 */
export class Parameter {
  private variable: Variable | null;

  constructor(
    /** Shape of the tensor. */
    readonly shape: readonly number[],
    value: Tensor | null,
    requiresGrad = true,
  ) {
    this.variable = value ? tf.variable(value, requiresGrad, undefined, 'float32') : null;
    this._requiresGrad = requiresGrad;
  }

  private _requiresGrad: boolean;

  /** The live tensor (a `tf.Variable`). @throws SkySenseError `E_SHAPE_ONLY` in shape-only mode. */
  get value(): Variable {
    if (!this.variable)
      throw new SkySenseError(
        'E_SHAPE_ONLY',
        `parameter of shape ${formatShape(this.shape)} was built in shape-only mode and has no value`,
      );
    return this.variable;
  }

  /** Whether the tensor exists (false in shape-only mode or after dispose). */
  get allocated(): boolean {
    return this.variable !== null;
  }

  /** Number of elements. */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** Whether optimizers and gradient helpers update it (`requires_grad`). */
  get requiresGrad(): boolean {
    return this._requiresGrad;
  }

  set requiresGrad(v: boolean) {
    this._requiresGrad = v;
    if (this.variable) this.variable.trainable = v;
  }

  /** Replaces the values in place (shape must match; dtype is cast). */
  assign(t: Tensor): void {
    tf.tidy(() => this.value.assign(t.dtype === 'float32' ? t : tf.cast(t, 'float32')));
  }

  /** Frees the tensor. */
  dispose(): void {
    this.variable?.dispose();
    this.variable = null;
  }
}

/**
 * A non-learnable state tensor of a module (running statistics, counters): PyTorch's buffer.
 * @example
 * ```ts
 * import { initBackend, Module, tf } from '@skysense/core-tensor';
 * await initBackend();
 * class Scaler extends Module {
 *   // a buffer is state without gradients; persistent ones are saved with the weights
 *   readonly mean = this.registerBuffer('mean', [3], () => tf.tensor1d([0.485, 0.456, 0.406]));
 * }
 * const m = new Scaler();
 * m.mean.assign(tf.tensor1d([0.5, 0.5, 0.5]));
 * console.log([...m.stateDict().keys()], m.mean.value.shape); // ['mean'] [3]
 * ```
 */
export class Buffer {
  private variable: Variable | null;

  constructor(
    /** Shape of the tensor. */
    readonly shape: readonly number[],
    /** Stored dtype. */
    readonly dtype: StateDType,
    value: Tensor | null,
    /** Whether it is part of `stateDict()` (PyTorch's `persistent`). */
    readonly persistent: boolean,
  ) {
    this.variable = value ? tf.variable(value.dtype === dtype ? value : tf.cast(value, dtype), false, undefined, dtype) : null;
  }

  /** The live tensor. @throws SkySenseError `E_SHAPE_ONLY` in shape-only mode. */
  get value(): Variable {
    if (!this.variable)
      throw new SkySenseError('E_SHAPE_ONLY', `buffer of shape ${formatShape(this.shape)} was built in shape-only mode and has no value`);
    return this.variable;
  }

  /** Whether the tensor exists. */
  get allocated(): boolean {
    return this.variable !== null;
  }

  /** Replaces the values in place (shape must match; dtype is cast). */
  assign(t: Tensor): void {
    tf.tidy(() => this.value.assign(t.dtype === this.dtype ? t : tf.cast(t, this.dtype as DataType)));
  }

  /** Frees the tensor. */
  dispose(): void {
    this.variable?.dispose();
    this.variable = null;
  }
}

/** Whether tfjs is recording operations for gradients (inside `valueAndGrads`, `tf.grad`, …). */
export function recordingGradients(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

/**
 * A tensor a module computes from its parameters and buffers alone (Swin V2's position bias, from its
 * MLP), made with {@link Module.registerDerived}: in eval mode, when no gradients are recorded, it is
 * computed once and kept — what ONNX Runtime's constant folding does to such a subgraph — and
 * computed again as soon as one of the module's parameters or buffers has new data (every `assign`:
 * an optimizer step, EMA, `loadStateDict`). In training mode, or while gradients are recorded, it is
 * computed afresh each call, so gradients reach the parameters. `compute` must read nothing but the
 * module's own parameters and buffers (and constants); writing into a parameter's values in place
 * (not through `assign`) is not seen.
 */
export class DerivedTensor {
  private kept: Tensor | null = null;
  private key: readonly object[] = [];

  constructor(
    private readonly owner: Module,
    private readonly compute: () => Tensor,
  ) {}

  /** The tensor. Call it inside `tf.tidy` and never dispose what it returns (it may be the kept one). */
  get(): Tensor {
    if (this.owner.training || recordingGradients()) return this.compute();
    const key = [...this.owner.namedParameters(), ...this.owner.namedBuffers()].map(([, p]) => p.value.dataId);
    if (!this.kept || this.kept.isDisposed || key.length !== this.key.length || key.some((k, i) => k !== this.key[i])) {
      this.dispose();
      this.kept = tf.keep(tf.tidy(this.compute));
      this.key = key;
    }
    return this.kept;
  }

  /** Frees the kept tensor (the next eval-mode `get` computes it again). */
  dispose(): void {
    this.kept?.dispose();
    this.kept = null;
    this.key = [];
  }
}

/**
 * Where `loadStateDict` reads tensors from: a plain object or `Map` of tensors, or a lazy source
 * (such as an open safetensors file) that reads one tensor at a time.
 */
export interface StateDictSource {
  /** Every key, in file order. */
  keys(): Iterable<string>;
  /** Shape of one entry, without reading its data. */
  shape(key: string): readonly number[];
  /** Reads one entry as a new tensor (the caller disposes it). */
  read(key: string): Tensor;
}

/** Anything `loadStateDict` accepts. */
export type StateDictLike = StateDictSource | Map<string, Tensor> | Record<string, Tensor>;

/** One key whose shape differs between the checkpoint and the module. */
export interface ShapeMismatch {
  key: string;
  expected: readonly number[];
  actual: readonly number[];
}

/** What `loadStateDict` did, with PyTorch's names. */
export interface LoadReport {
  /** Keys of the module that the checkpoint lacks. */
  missing: string[];
  /** Keys of the checkpoint (after the prefix) that the module lacks. */
  unexpected: string[];
  /** Keys present on both sides with different shapes (always an error, as in PyTorch). */
  mismatched: ShapeMismatch[];
  /** Checkpoint keys skipped on purpose (outside the prefix, or matched by `ignore`). */
  ignored: string[];
  /** Keys loaded. */
  loaded: string[];
  /** Human-readable remarks added by model loaders (e.g. where a skipped key belongs). */
  notes?: string[];
}

/** Options of `loadStateDict`. */
export interface LoadStateDictOptions {
  /** Missing or unexpected keys are an error (PyTorch's `strict`). Default `true`. */
  strict?: boolean;
  /** Only checkpoint keys starting with this prefix are considered, with the prefix removed (e.g. `backbone.`). Default none. */
  prefix?: string;
  /** Checkpoint keys (after the prefix) to skip silently, as exact names or patterns. */
  ignore?: readonly (string | RegExp)[];
  /**
   * Module keys that may be absent even in strict mode (they keep their initial values and are
   * still listed in `missing`), as exact names or patterns.
   */
  optional?: readonly (string | RegExp)[];
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** PyTorch's rule: a one-element `[1]` entry loads into a 0-dim slot (writers that cannot store 0-dim tensors produce it). */
const isScalarAsOneElement = (file: readonly number[], slot: readonly number[]) => slot.length === 0 && file.length === 1 && file[0] === 1;

function matchesAny(key: string, patterns: readonly (string | RegExp)[]): boolean {
  return patterns.some((p) => (typeof p === 'string' ? p === key : p.test(key)));
}

/**
 * The first of `candidates` (e.g. `['', 'backbone.', 'module.']`) under which the checkpoint keys
 * cover most of the module's keys — how a loader recognises `backbone.`-prefixed files.
 */
export function inferPrefix(checkpointKeys: Iterable<string>, moduleKeys: Iterable<string>, candidates: readonly string[]): string {
  const keys = [...checkpointKeys];
  const wanted = new Set(moduleKeys);
  let best = candidates[0] ?? '';
  let bestHits = -1;
  for (const prefix of candidates) {
    const hits = keys.filter((k) => k.startsWith(prefix) && wanted.has(k.slice(prefix.length))).length;
    if (hits > bestHits) [best, bestHits] = [prefix, hits];
  }
  return best;
}

/** Wraps any state-dict form as a {@link StateDictSource} (lazy sources are returned as they are). */
export function toStateDictSource(dict: StateDictLike): StateDictSource {
  if (typeof (dict as StateDictSource).read === 'function' && typeof (dict as StateDictSource).shape === 'function') {
    return dict as StateDictSource;
  }
  const map = dict instanceof Map ? dict : new Map(Object.entries(dict as Record<string, Tensor>));
  return {
    keys: () => map.keys(),
    shape: (k) => map.get(k)!.shape,
    read: (k) => tf.clone(map.get(k)!),
  };
}

/**
 * Base class of every SkySense layer and model, modelled on `torch.nn.Module`: parameters,
 * buffers and child modules registered under names, so `stateDict()` keys are PyTorch's dotted
 * names (`stages.0.blocks.1.attn.w_msa.qkv.weight`) in registration order and official
 * checkpoints load without renaming.
 * @example
 * ```ts
 * import { initBackend, Linear, Module, tf, type Tensor } from '@skysense/core-tensor';
 * await initBackend();
 * class TwoLayers extends Module {
 *   readonly fc1 = this.registerModule('fc1', new Linear(8, 16));
 *   readonly fc2 = this.registerModule('fc2', new Linear(16, 2));
 *   forward(x: Tensor): Tensor {
 *     return tf.tidy(() => this.fc2.forward(tf.relu(this.fc1.forward(x))));
 *   }
 * }
 * const net = new TwoLayers();
 * console.log(net.parameterCount(), [...net.stateDict().keys()]); // 178 ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
 * net.eval(); // train() / eval() switch dropout and batch norm, as in PyTorch
 * ```
 */
export abstract class Module {
  /** Training mode (dropout, drop-path and batch statistics active). Modules start in training mode, as in PyTorch. */
  training = true;
  private readonly params = new Map<string, Parameter>();
  private readonly buffers = new Map<string, Buffer>();
  private readonly children = new Map<string, Module>();
  private readonly derived: DerivedTensor[] = [];

  /**
   * Creates and registers a parameter. In shape-only mode no tensor is allocated.
   * @param init fills the values (see `init.ts`); `rng` picks the generator (default: the global one).
   */
  protected registerParameter(name: string, shape: readonly number[], init: Initializer, rng?: Generator): Parameter {
    this.checkName(name);
    const value = isBuildingShapeOnly() ? null : tf.tensor(initValues(init, shape, rng), shape as number[], 'float32');
    const p = new Parameter(shape, value);
    value?.dispose();
    this.params.set(name, p);
    return p;
  }

  /** Creates and registers a buffer. `persistent: false` keeps it out of `stateDict()`. */
  protected registerBuffer(
    name: string,
    shape: readonly number[],
    make: () => Tensor,
    options: { dtype?: StateDType; persistent?: boolean } = {},
  ): Buffer {
    this.checkName(name);
    const value = isBuildingShapeOnly() ? null : tf.tidy(make);
    if (value && (value.shape.length !== shape.length || value.shape.some((d, i) => d !== shape[i]))) {
      throw new SkySenseError('E_SHAPE', `buffer ${name}: declared shape ${formatShape(shape)} but made ${formatShape(value.shape)}`);
    }
    const b = new Buffer(shape, options.dtype ?? 'float32', value, options.persistent ?? true);
    value?.dispose();
    this.buffers.set(name, b);
    return b;
  }

  /**
   * Registers a tensor computed from this module's parameters and buffers alone (`compute` reads no
   * input): kept between eval-mode calls until one of them changes — see {@link DerivedTensor}.
   */
  protected registerDerived(compute: () => Tensor): DerivedTensor {
    const d = new DerivedTensor(this, compute);
    this.derived.push(d);
    return d;
  }

  /** Registers a child module under `name` and returns it. */
  protected registerModule<M extends Module>(name: string, module: M): M {
    this.checkName(name);
    this.children.set(name, module);
    return module;
  }

  /**
   * Registers another module's parameters, buffers and children under their own names in this
   * module (the objects are shared, not copied), so a wrapper can expose a part's keys at its top
   * level — e.g. the assembled SkySense model exposes the fusion's `ctpe`, `head_s2.*` and
   * `fusion.*` exactly as the official checkpoint names them.
   */
  protected adoptMembers(source: Module): void {
    for (const [n, p] of source.params) {
      this.checkName(n);
      this.params.set(n, p);
    }
    for (const [n, b] of source.buffers) {
      this.checkName(n);
      this.buffers.set(n, b);
    }
    for (const [n, m] of source.children) this.registerModule(n, m);
  }

  private checkName(name: string): void {
    if (!name || name.includes('.')) throw new SkySenseError('E_ARG', `module member name must be non-empty without '.', got '${name}'`);
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name)) {
      throw new SkySenseError('E_ARG', `module member '${name}' is already registered`);
    }
  }

  /**
   * Keys (relative to this module) that checkpoints lack or carry by design, with why that is
   * harmless; load reports label them instead of alarming the user. Default: none. Models override
   * it (Swin V2: its recomputed buffers and the released file's missing output norms).
   */
  checkpointKeyRules(): readonly CheckpointKeyRule[] {
    return [];
  }

  /** Direct children with their names, in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** Every module of the tree (this one first, name `''`), depth-first in registration order. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, m] of this.children) out.push(...m.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  /** Every parameter with its dotted name, in PyTorch's order. */
  namedParameters(prefix = ''): [string, Parameter][] {
    return this.collect(prefix, (m) => m.params);
  }

  /** Every buffer with its dotted name, in PyTorch's order. */
  namedBuffers(prefix = ''): [string, Buffer][] {
    return this.collect(prefix, (m) => m.buffers);
  }

  private collect<T>(prefix: string, pick: (m: Module) => Map<string, T>): [string, T][] {
    const out: [string, T][] = [];
    for (const [name, m] of this.namedModules(prefix)) {
      for (const [n, v] of pick(m)) out.push([name ? `${name}.${n}` : n, v]);
    }
    return out;
  }

  /** Parameters and persistent buffers in `state_dict()` order (each module's parameters, its buffers, then its children). */
  namedTensors(prefix = ''): [string, Parameter | Buffer][] {
    const out: [string, Parameter | Buffer][] = [];
    for (const [n, p] of this.params) out.push([prefix + n, p]);
    for (const [n, b] of this.buffers) if (b.persistent) out.push([prefix + n, b]);
    for (const [n, m] of this.children) out.push(...m.namedTensors(`${prefix}${n}.`));
    return out;
  }

  /**
   * The state dict: PyTorch names → live tensors (not copies; do not dispose them). Persistent
   * buffers are included, as in PyTorch.
   */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedTensors().map(([k, s]) => [k, s.value as Tensor]));
  }

  /** Name → shape of every state-dict entry; works in shape-only mode. */
  stateShapes(): Map<string, readonly number[]> {
    return new Map(this.namedTensors().map(([k, s]) => [k, s.shape]));
  }

  /**
   * Loads tensors by name, with PyTorch's rules: in strict mode (default) missing or unexpected
   * keys are an error; a shape mismatch is an error in every mode (a `[1]` entry loads into a 0-dim
   * slot, as in PyTorch). Every shape is checked before
   * anything is written, so a failed load leaves the module unchanged. Tensors from a lazy source
   * are read and released one at a time.
   * @returns the load report (also attached as `details` to the error when it fails).
   * @throws SkySenseError `E_STATE_DICT`.
   */
  loadStateDict(dict: StateDictLike, options: LoadStateDictOptions = {}): LoadReport {
    const source = toStateDictSource(dict);
    const { strict = true, prefix = '', ignore = [], optional = [] } = options;
    const own = new Map(this.namedTensors());
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [], ignored: [], loaded: [] };
    const plan: [string, string, Parameter | Buffer][] = [];
    const seen = new Set<string>();
    for (const fileKey of source.keys()) {
      if (!fileKey.startsWith(prefix)) {
        report.ignored.push(fileKey);
        continue;
      }
      const key = fileKey.slice(prefix.length);
      if (matchesAny(key, ignore)) {
        report.ignored.push(fileKey);
        continue;
      }
      const slot = own.get(key);
      if (!slot) {
        report.unexpected.push(key);
        continue;
      }
      seen.add(key);
      const shape = source.shape(fileKey);
      if (!sameShape(shape, slot.shape) && !isScalarAsOneElement(shape, slot.shape)) {
        report.mismatched.push({ key, expected: slot.shape, actual: shape });
        continue;
      }
      plan.push([fileKey, key, slot]);
    }
    for (const key of own.keys()) if (!seen.has(key)) report.missing.push(key);
    const problems = describeProblems(report, strict, (k) => matchesAny(k, optional));
    if (problems)
      throw new SkySenseError('E_STATE_DICT', `error(s) loading state dict into ${this.constructor.name}: ${problems}`, {
        details: report,
      });
    for (const [fileKey, key, slot] of plan) {
      const t = source.read(fileKey);
      try {
        tf.tidy(() => slot.assign(slot.shape.length === t.rank ? t : tf.reshape(t, [])));
      } finally {
        t.dispose();
      }
      report.loaded.push(key);
    }
    return report;
  }

  /** Sets training mode recursively (`train(false)` = `eval()`). Returns this. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /** Sets evaluation mode recursively. Returns this. */
  eval(): this {
    return this.train(false);
  }

  /** Stops gradients and optimizer updates for every parameter (`requires_grad_(False)`). */
  freeze(): this {
    for (const [, p] of this.namedParameters()) p.requiresGrad = false;
    return this;
  }

  /** Re-enables gradients for every parameter. */
  unfreeze(): this {
    for (const [, p] of this.namedParameters()) p.requiresGrad = true;
    return this;
  }

  /** Number of parameter elements (optionally only trainable ones); works in shape-only mode. */
  parameterCount(options: { trainableOnly?: boolean } = {}): number {
    return this.namedParameters()
      .filter(([, p]) => !options.trainableOnly || p.requiresGrad)
      .reduce((a, [, p]) => a + p.numel, 0);
  }

  /** The trainable `tf.Variable`s, in parameter order (what gradient helpers differentiate). */
  trainableVariables(): Variable[] {
    return this.namedParameters()
      .filter(([, p]) => p.requiresGrad)
      .map(([, p]) => p.value);
  }

  /** Frees every parameter, buffer and kept derived tensor of the tree. */
  dispose(): void {
    for (const [, m] of this.namedModules()) for (const d of m.derived) d.dispose();
    for (const [, p] of this.namedParameters()) p.dispose();
    for (const [, b] of this.namedBuffers()) b.dispose();
  }
}

function describeProblems(r: LoadReport, strict: boolean, isOptional: (key: string) => boolean): string {
  const parts: string[] = [];
  if (r.mismatched.length) {
    parts.push(
      `size mismatch for ${r.mismatched.length} key(s): ${summarizeList(
        r.mismatched.map((m) => `${m.key}: checkpoint ${formatShape(m.actual)}, module ${formatShape(m.expected)}`),
        3,
      )}`,
    );
  }
  const missing = r.missing.filter((k) => !isOptional(k));
  if (strict && missing.length) parts.push(`${missing.length} missing key(s): ${summarizeList(missing)}`);
  if (strict && r.unexpected.length) parts.push(`${r.unexpected.length} unexpected key(s): ${summarizeList(r.unexpected)}`);
  return parts.join('. ');
}
