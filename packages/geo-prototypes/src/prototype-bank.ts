import {
  Generator,
  Module,
  SafetensorsFile,
  SkySenseError,
  assertInRange,
  assertInt,
  categoricalColors,
  markNodata,
  defaultRng,
  formatShape,
  gatherRows,
  l2Normalize,
  matMul,
  saveSafetensors,
  sinkhornKnopp,
  stopGradient,
  tf,
  writePng,
  type Buffer,
  type Tensor,
} from '@skysense/core-tensor';
import { DEFAULT_REGION_GRID, regionIndex, type RegionGrid } from './regions';

/** Options of {@link PrototypeBank}; defaults are SkySense's sizes (architecture guide §4). */
export interface PrototypeBankOptions {
  /** Region grid; `rows · cols` regions. Default 64 × 64. */
  grid?: RegionGrid;
  /** Prototypes per region (N_p). Default 100. */
  prototypesPerRegion?: number;
  /** Feature width (the fusion width). Default 1024. */
  dims?: number;
  /** Generator for the initial prototypes (N(0, 1), then L2-normalised). Default: the global one. */
  rng?: Generator;
}

/** Options of {@link PrototypeBank.update}; defaults are the documented choices of architecture guide §4. */
export interface PrototypeUpdateOptions {
  /** EMA momentum m of Eq. 13: `P ← m·P + (1 − m)·P̄`. Default 0.99. */
  momentum?: number;
  /** Sinkhorn ε. Default 0.05. */
  epsilon?: number;
  /** Sinkhorn iterations. Default 3. */
  iterations?: number;
  /** L2-normalise the targets and the updated prototypes. Default `true`. */
  normalize?: boolean;
}

/**
 * The geo-context prototype bank `[N_R, N_p, d]` of SkySense: N_p prototypes per region of the
 * globe. Prototypes are a buffer, not parameters — they are learned by Sinkhorn assignment and
 * EMA (Eq. 11–13), never by gradients, and used downstream by attention (Eq. 3). Key `prototypes`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { PrototypeBank } from '@skysense/geo-prototypes';
 * await initBackend();
 * const bank = new PrototypeBank({ grid: { rows: 8, cols: 8 }, prototypesPerRegion: 10, dims: 32 });
 * const fused = tf.randomNormal([1, 32, 16, 16]);
 * const withContext = bank.attend(fused, [bank.regionOf(43.6, 1.44)]); // [1, 64, 16, 16]
 * ```
 */
export class PrototypeBank extends Module {
  readonly prototypes: Buffer;
  readonly grid: RegionGrid;
  readonly prototypesPerRegion: number;
  readonly dims: number;

  constructor(options: PrototypeBankOptions = {}) {
    super();
    this.grid = options.grid ?? DEFAULT_REGION_GRID;
    const regions = assertInt('grid.rows', this.grid.rows, 1) * assertInt('grid.cols', this.grid.cols, 1);
    this.prototypesPerRegion = assertInt('prototypesPerRegion', options.prototypesPerRegion ?? 100, 1);
    this.dims = assertInt('dims', options.dims ?? 1024, 1);
    const shape = [regions, this.prototypesPerRegion, this.dims];
    const rng = options.rng ?? defaultRng();
    this.prototypes = this.registerBuffer('prototypes', shape, () => {
      const v = new Float32Array(shape[0]! * shape[1]! * shape[2]!);
      for (let i = 0; i < v.length; i++) v[i] = rng.normal();
      return l2Normalize(tf.tensor3d(v, shape as [number, number, number]));
    });
  }

  /** Number of regions. */
  get regions(): number {
    return this.grid.rows * this.grid.cols;
  }

  /** Region of a location (see {@link regionIndex}). */
  regionOf(lat: number, lon: number): number {
    return regionIndex(lat, lon, this.grid);
  }

  private checkRegion(r: number, what = 'region'): void {
    assertInt(what, r, 0, this.regions - 1);
  }

  /** The prototypes of one region, `[N_p, d]`. */
  regionPrototypes(region: number): Tensor {
    this.checkRegion(region);
    return tf.tidy(() => tf.reshape(tf.slice(this.prototypes.value, [region, 0, 0], [1, -1, -1]), [this.prototypesPerRegion, this.dims]));
  }

  private checkFeatures(features: Tensor, regions: readonly number[]): void {
    if (features.rank !== 4 || features.shape[1] !== this.dims)
      throw new SkySenseError('E_SHAPE', `features: expected [B, ${this.dims}, H, W], got ${formatShape(features.shape)}`);
    if (regions.length !== features.shape[0])
      throw new SkySenseError('E_ARG', `regions: expected one per sample (${features.shape[0]}), got ${regions.length}`);
    regions.forEach((r, i) => this.checkRegion(r, `regions[${i}]`));
  }

  /**
   * Eq. 3: every location attends to its region's prototypes,
   * `concat(F, softmax(F·P_rᵀ/√d)·P_r)` → `[B, 2d, H, W]`. Differentiable in `features`; the bank
   * itself receives no gradient.
   * @param regions one region index per sample.
   */
  attend(features: Tensor, regions: readonly number[]): Tensor {
    this.checkFeatures(features, regions);
    return tf.tidy(() => {
      const [b, d, h, w] = features.shape as number[];
      const tokens = tf.reshape(tf.transpose(features, [0, 2, 3, 1]), [b!, h! * w!, d!]);
      const protos = stopGradient(gatherRows(this.prototypes.value, [...regions]));
      const weights = tf.softmax(tf.div(matMul(tokens, protos, false, true), Math.sqrt(d!)), -1);
      const context = matMul(weights, protos);
      return tf.transpose(tf.reshape(tf.concat([tokens, context], 2), [b!, h!, w!, 2 * d!]), [0, 3, 1, 2]);
    });
  }

  /** Eq. 11: cosine similarity of features `[N, d]` to a region's prototypes → `[N, N_p]`. */
  similarity(features: Tensor, region: number): Tensor {
    return tf.tidy(() => matMul(l2Normalize(features), l2Normalize(this.regionPrototypes(region)), false, true));
  }

  /** Eq. 12: Sinkhorn-Knopp assignment of features `[N, d]` to a region's prototypes → `[N, N_p]` (rows sum to 1). */
  assign(features: Tensor, region: number, options: PrototypeUpdateOptions = {}): Tensor {
    return tf.tidy(() => sinkhornKnopp(this.similarity(features, region), { epsilon: options.epsilon, iterations: options.iterations }));
  }

  /**
   * Update targets P̄ = Sᵀ·F per prototype, divided by each prototype's assignment mass (a
   * weighted mean; the raw product's scale grows with N) and, with `normalize`, L2-normalised.
   */
  static targets(features: Tensor, assignment: Tensor, normalize = true): Tensor {
    return tf.tidy(() => {
      const sums = matMul(assignment, features, true, false);
      const mass = tf.maximum(tf.reshape(tf.sum(assignment, 0), [-1, 1]), 1e-12);
      const mean = tf.div(sums, mass);
      return normalize ? l2Normalize(mean) : mean;
    });
  }

  /** Eq. 13 for one region: `P_r ← m·P_r + (1 − m)·P̄` (then L2-normalised with `normalize`). */
  emaRegion(region: number, targets: Tensor, momentum: number, normalize = true): void {
    this.checkRegion(region);
    const updated = this.ema(this.regionPrototypes(region), targets, momentum, normalize);
    this.writeRegions(new Map([[region, updated]]));
  }

  private ema(current: Tensor, targets: Tensor, momentum: number, normalize: boolean): Tensor {
    assertInRange('momentum', momentum, 0, 1);
    if (targets.shape[0] !== this.prototypesPerRegion || targets.shape[1] !== this.dims) {
      throw new SkySenseError(
        'E_SHAPE',
        `targets: expected [${this.prototypesPerRegion}, ${this.dims}], got ${formatShape(targets.shape)}`,
      );
    }
    return tf.tidy(() => {
      const updated = tf.add(tf.mul(current, momentum), tf.mul(targets, 1 - momentum));
      return normalize ? l2Normalize(updated) : updated;
    });
  }

  /** Replaces the given regions' prototypes with one rebuild of the bank (consumes the tensors). */
  private writeRegions(updates: Map<number, Tensor>): void {
    tf.tidy(() => {
      const all = this.prototypes.value;
      const parts: Tensor[] = [];
      let next = 0;
      for (const region of [...updates.keys()].sort((a, b) => a - b)) {
        if (region > next) parts.push(tf.slice(all, [next, 0, 0], [region - next, -1, -1]));
        parts.push(tf.expandDims(updates.get(region)!, 0));
        next = region + 1;
      }
      if (next < this.regions) parts.push(tf.slice(all, [next, 0, 0], [this.regions - next, -1, -1]));
      this.prototypes.assign(tf.concat(parts, 0));
    });
    tf.dispose([...updates.values()]);
  }

  /**
   * One geo-context learning step on the student's fused features `[B, d, H, W]` (Eq. 11–13): per
   * sample, Sinkhorn-assign its locations to its region's prototypes and move them by EMA towards
   * the assignment-weighted means. Samples of the same region are applied in order; the bank is
   * rewritten once per call. No gradient flows.
   */
  update(features: Tensor, regions: readonly number[], options: PrototypeUpdateOptions = {}): void {
    this.checkFeatures(features, regions);
    const m = options.momentum ?? 0.99;
    const normalize = options.normalize ?? true;
    const current = new Map<number, Tensor>();
    regions.forEach((region, i) => {
      const next = tf.tidy(() => {
        const [, d, h, w] = features.shape as number[];
        const f = stopGradient(tf.reshape(tf.transpose(tf.slice(features, [i, 0, 0, 0], [1, -1, -1, -1]), [0, 2, 3, 1]), [h! * w!, d!]));
        const protos = current.get(region) ?? this.regionPrototypes(region);
        const assignment = sinkhornKnopp(matMul(l2Normalize(f), l2Normalize(protos), false, true), {
          epsilon: options.epsilon,
          iterations: options.iterations,
        });
        return this.ema(protos, PrototypeBank.targets(f, assignment, normalize), m, normalize);
      });
      current.get(region)?.dispose();
      current.set(region, next);
    });
    this.writeRegions(current);
  }

  /** Index `[H, W]` of the most similar prototype of `region` for every location of one feature map `[d, H, W]`. */
  nearestPrototype(features: Tensor, region: number): Int32Array {
    if (features.rank !== 3 || features.shape[0] !== this.dims)
      throw new SkySenseError('E_SHAPE', `features: expected [${this.dims}, H, W], got ${formatShape(features.shape)}`);
    return tf.tidy(() => {
      const [d, h, w] = features.shape as number[];
      const tokens = tf.reshape(tf.transpose(features, [1, 2, 0]), [h! * w!, d!]);
      return tf.argMax(this.similarity(tokens, region), 1).dataSync() as Int32Array;
    });
  }

  /**
   * Renders the prototype assignment of one feature map `[d, H, W]` as a PNG (each location coloured
   * by its most similar prototype, as the paper's Fig. 5), each location `scale` pixels wide. With
   * `coverage` (`[H·W]`, e.g. `SkySenseOutputs.coverage`) nodata is marked ({@link @skysense/core-tensor!markNodata}).
   */
  renderAssignmentMap(file: string, features: Tensor, region: number, scale = 8, coverage?: ArrayLike<number>): void {
    const [, h, w] = features.shape as number[];
    const idx = this.nearestPrototype(features, region);
    const colors = categoricalColors(this.prototypesPerRegion);
    const W = w! * scale;
    const rgb = new Uint8Array(h! * scale * W * 3);
    for (let y = 0; y < h! * scale; y++) {
      for (let x = 0; x < W; x++) rgb.set(colors[idx[Math.floor(y / scale) * w! + Math.floor(x / scale)]!]!, (y * W + x) * 3);
    }
    writePng(file, coverage ? markNodata(rgb, coverage, w!, h!, scale) : rgb, W, h! * scale);
  }

  /** Saves the bank (`prototypes`) as safetensors with the grid in the metadata, atomically. */
  save(file: string): void {
    saveSafetensors(file, this, { metadata: { grid_rows: String(this.grid.rows), grid_cols: String(this.grid.cols) } });
  }

  /** Loads a bank saved by {@link PrototypeBank.save} (sizes read from the file). */
  static load(file: string): PrototypeBank {
    const f = SafetensorsFile.open(file);
    try {
      const [regions, np, d] = f.shape('prototypes') as [number, number, number];
      const rows = Number(f.metadata.grid_rows ?? Math.sqrt(regions));
      const grid = { rows, cols: regions / rows };
      if (!Number.isInteger(grid.cols))
        throw new SkySenseError('E_SAFETENSORS', `${file}: ${regions} regions do not fit a grid of ${rows} rows`);
      const bank = new PrototypeBank({ grid, prototypesPerRegion: np, dims: d, rng: new Generator(0) });
      bank.loadStateDict(f);
      return bank;
    } finally {
      f.close();
    }
  }
}
