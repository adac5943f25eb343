import {
  Module,
  SkySenseError,
  formatShape,
  nonFiniteMask,
  openCheckpoint,
  poolValidity,
  tf,
  type FeatureEncoder,
  type LoadReport,
  type Tensor,
} from '@skysense/core-tensor';
import { SwinTransformerV2 } from '@skysense/swin';
import { VisionTransformer } from '@skysense/vit';
import { MultiModalFusion, type AcquisitionDate } from '@skysense/temporal-fusion';
import { PrototypeBank } from '@skysense/geo-prototypes';
import { SKYSENSE_PRESETS, type SkySenseConfig, type SkySensePresetName } from './presets';

/** A Sentinel time series of raw (normalised) frames. */
export interface SentinelSeries {
  /** `[B, T, bands, h, w]`. */
  frames: Tensor;
  /** Acquisition date per sample and frame (S2 needs them for the calendar encoding). */
  dates?: (AcquisitionDate | null)[][];
  /** Real frames per sample (`false` = padding, e.g. a dropped cloudy frame). */
  valid?: boolean[][];
  /**
   * `[B, T, h, w]` (the frames' pixels): 1 where a frame holds data, 0 at nodata (clouds, borders);
   * such pixels should hold a fill value (the loaders use the band's valid mean). A fusion location
   * leaves a frame out where any pixel of its footprint is 0. NaN/Inf in `frames` are always treated so.
   */
  pixelValid?: Tensor;
}

/** One batch of SkySense inputs; any non-empty subset of modalities. */
export interface SkySenseInputs {
  /** `[B, 3, H, W]` normalised RGB (or RGB-NIR with a 4-band HR encoder). */
  hr?: Tensor;
  /** `[B, H, W]`: 0 where the HR image has no data (as {@link SentinelSeries.pixelValid}). */
  hrValid?: Tensor;
  s2?: SentinelSeries;
  s1?: SentinelSeries;
  /** Tile-centre latitude per sample (needed for geo-context). */
  lat?: number[];
  /** Tile-centre longitude per sample. */
  lon?: number[];
}

/** SkySense outputs. */
export interface SkySenseOutputs {
  /** F_fus^mm `[B, d, H/32, W/32]`: the fusion transformer's cls token per location. */
  fused: Tensor;
  /** F_fus `[B, 2d, …]` (Eq. 3) when the model has a prototype bank and lat/lon were given. */
  withGeoContext?: Tensor;
  /**
   * `[B, 1, H/32, W/32]`: per location, the fraction of its inputs (HR image, S2 and S1 frames) that
   * held data; present when the inputs had nodata (validity masks, dropped frames, NaN/Inf). Where
   * it is 0 the output carries no observation and is nodata.
   */
  coverage?: Tensor;
}

/** One row of {@link SkySense.breakdown}. */
export interface BreakdownRow {
  part: string;
  /** Checkpoint key prefix of the part. */
  prefix: string;
  /** Learnable parameters. */
  parameters: number;
  /** Values held in buffers (the prototype bank). */
  bufferValues: number;
}

/** Paths of the six released files (any subset), for {@link SkySense.loadReleased}. */
export interface ReleasedFiles {
  /** `skysense_model_backbone_hr.pth` */
  hr?: string;
  /** `skysense_model_backbone_s2.pth` (also carries `ctpe`) */
  s2?: string;
  /** `skysense_model_backbone_s1.pth` */
  s1?: string;
  /** `skysense_model_head_s2.pth` */
  headS2?: string;
  /** `skysense_model_head_s1.pth` */
  headS1?: string;
  /** `skysense_model_fusion.pth` */
  fusion?: string;
}

/**
 * The assembled SkySense model: HR Swin V2 + Sentinel-2 / Sentinel-1 ViTs → up-heads and calendar
 * encoding → fusion transformer → optional geo-context prototypes. Keys follow the official full
 * checkpoint: `backbone_gep.*` (HR), `backbone_s2.*`, `backbone_s1.*`, `head_s2.*`, `head_s1.*`,
 * `fusion.*`, `ctpe`, plus `glbank.prototypes` for the bank.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SkySense } from '@skysense/skysense';
 * await initBackend();
 * const model = SkySense.fromPreset('skysense-tiny').eval(); // 'skysense-2b' is the paper's model
 * const { fused, withGeoContext, coverage } = model.forward({
 *   hr: tf.randomNormal([1, 3, 128, 128]),
 *   s2: { frames: tf.randomNormal([1, 2, 10, 4, 4]), dates: [['2021-04-01', '2021-07-01']] }, // the tiny preset's 10 m frames
 *   s1: { frames: tf.randomNormal([1, 1, 2, 4, 4]) },
 *   lat: [43.6],
 *   lon: [1.44],
 * }); // fused [1, 32, 4, 4]; with the geo-context [1, 64, 4, 4]; coverage only when inputs had nodata
 * ```
 */
export class SkySense extends Module {
  readonly hr: SwinTransformerV2 | null;
  readonly s2: VisionTransformer | null;
  readonly s1: VisionTransformer | null;
  readonly neck: MultiModalFusion;
  readonly geo: PrototypeBank | null;

  constructor(readonly config: SkySenseConfig) {
    super();
    if (!config.hr && !config.s2 && !config.s1) throw new SkySenseError('E_ARG', 'SkySense: configure at least one of hr, s2, s1');
    this.neck = new MultiModalFusion({
      ...config.fusion,
      sentinel: [...(config.s2 ? ['s2' as const] : []), ...(config.s1 ? ['s1' as const] : [])],
    });
    this.adoptMembers(this.neck);
    this.hr = config.hr ? this.registerModule('backbone_gep', new SwinTransformerV2(config.hr)) : null;
    this.s2 = config.s2 ? this.registerModule('backbone_s2', new VisionTransformer(config.s2)) : null;
    this.s1 = config.s1 ? this.registerModule('backbone_s1', new VisionTransformer(config.s1)) : null;
    this.geo = config.geo ? this.registerModule('glbank', new PrototypeBank(config.geo)) : null;
    if (this.hr && this.hr.stageChannels.at(-1) !== this.neck.tokenDims) {
      throw new SkySenseError(
        'E_ARG',
        `SkySense: the HR encoder ends at width ${this.hr.stageChannels.at(-1)} but the fusion takes ${this.neck.tokenDims}`,
      );
    }
  }

  /** Builds a preset, optionally dropping or overriding parts. */
  static fromPreset(name: SkySensePresetName, overrides: Partial<Record<keyof SkySenseConfig, object | null>> = {}): SkySense {
    const preset = SKYSENSE_PRESETS[name];
    if (!preset)
      throw new SkySenseError('E_ARG', `unknown SkySense preset '${name}'; expected one of ${Object.keys(SKYSENSE_PRESETS).join(', ')}`);
    const config: Record<string, object | undefined> = { ...preset };
    for (const [k, v] of Object.entries(overrides)) config[k] = v === null ? undefined : { ...(config[k] ?? {}), ...v };
    return new SkySense(config as SkySenseConfig);
  }

  /** Encodes, fuses and (with lat/lon and a bank) adds geo-context. */
  forward(inputs: SkySenseInputs): SkySenseOutputs {
    const { hr, s2, s1, ...out } = this.forwardFeatures(inputs);
    tf.dispose([hr, s2, s1].filter((t): t is Tensor => t !== undefined));
    return out;
  }

  /**
   * {@link SkySense.forward} that also returns each modality's encoder features (what pre-training's
   * per-modality losses need): `hr` `[B, C, H/32, W/32]`, `s2` / `s1` `[B·T, D, h, w]` (frames folded,
   * batch-major). The caller owns every returned tensor.
   */
  forwardFeatures(inputs: SkySenseInputs): SkySenseOutputs & { hr?: Tensor; s2?: Tensor; s1?: Tensor } {
    const clean = sanitizeInputs(inputs);
    let parts: ReturnType<SkySense['encode']> | undefined;
    let features: { hr?: Tensor; s2?: Tensor; s1?: Tensor } = {};
    let fused: Tensor | undefined;
    let coverage: Tensor | null = null;
    try {
      parts = this.encode(clean.inputs);
      const fold = (f?: Tensor) => f && tf.tidy(() => tf.reshape(f, [f.shape[0]! * f.shape[1]!, ...f.shape.slice(2)]));
      features = { hr: parts.hr, s2: fold(parts.s2?.features), s1: fold(parts.s1?.features) };
      ({ fused, coverage } = this.neck.forwardWithCoverage(parts));
      const out = { ...features, fused, ...(coverage ? { coverage } : {}) };
      if (!this.geo || !inputs.lat || !inputs.lon) return out;
      const b = fused.shape[0]!;
      if (inputs.lat.length !== b || inputs.lon.length !== b) {
        throw new SkySenseError('E_LATLON', `lat/lon: expected ${b} values each, got ${inputs.lat.length} and ${inputs.lon.length}`);
      }
      const regions = inputs.lat.map((lat, i) => this.geo!.regionOf(lat, inputs.lon![i]!));
      return { ...out, withGeoContext: this.geo.attend(fused, regions) };
    } catch (e) {
      tf.dispose([...Object.values(features), fused, coverage ?? undefined].filter((t): t is Tensor => t !== undefined));
      throw e;
    } finally {
      tf.dispose(
        [parts?.s2?.features, parts?.s1?.features, ...(parts?.owned ?? []), ...clean.owned].filter((t): t is Tensor => t !== undefined),
      );
    }
  }

  private encode(inputs: SkySenseInputs) {
    const need = (name: string, enc: unknown) => {
      if (!enc) throw new SkySenseError('E_ARG', `SkySense: input '${name}' given, but the model has no ${name} encoder`);
    };
    if (inputs.hr) need('hr', this.hr);
    if (inputs.s2) need('s2', this.s2);
    if (inputs.s1) need('s1', this.s1);
    const series = (enc: VisionTransformer | null, s?: SentinelSeries) => {
      if (!s) return undefined;
      if (s.frames.rank !== 5)
        throw new SkySenseError('E_SHAPE', `frames: expected [B, T, bands, h, w], got ${formatShape(s.frames.shape)}`);
      const maps = enc!.forwardSeries(s.frames);
      tf.dispose(maps.slice(0, -1));
      const features = maps.at(-1)!;
      return { features, dates: s.dates, valid: s.valid, validMap: onFeatureGrid(s.pixelValid, features, owned) };
    };
    const owned: Tensor[] = [];
    let hr: Tensor | undefined;
    let s2: ReturnType<typeof series>;
    try {
      if (inputs.hr) {
        const outs = this.hr!.forward(inputs.hr);
        tf.dispose(outs.slice(0, -1));
        hr = outs.at(-1)!;
      }
      const pooled = inputs.hrValid && hr ? onFeatureGrid(tf.expandDims(inputs.hrValid, 1), hr, owned, true) : undefined;
      const hrValid = pooled && tf.squeeze(pooled, [1]);
      if (hrValid) owned.push(hrValid);
      s2 = series(this.s2, inputs.s2);
      return { hr, hrValid, s2, s1: series(this.s1, inputs.s1), owned };
    } catch (e) {
      tf.dispose([hr, s2?.features, ...owned].filter((t): t is Tensor => t !== undefined));
      throw e;
    }
  }

  /**
   * Parameters per part, computed from shapes (works on a shape-only model in seconds):
   * the HR / S2 / S1 encoders, up-heads, fusion, `ctpe` and the prototype bank (a buffer).
   */
  breakdown(): BreakdownRow[] {
    const count = (prefix: string) => {
      let params = 0;
      let buffers = 0;
      const paramNames = new Set(this.namedParameters().map(([n]) => n));
      for (const [k, shape] of this.stateShapes()) {
        if (!(k === prefix || k.startsWith(`${prefix}.`))) continue;
        const n = shape.reduce((a, b) => a * b, 1);
        if (paramNames.has(k)) params += n;
        else buffers += n;
      }
      return { parameters: params, bufferValues: buffers };
    };
    const rows: [string, string][] = [
      ['HR encoder (Swin V2)', 'backbone_gep'],
      ['S2 encoder (ViT)', 'backbone_s2'],
      ['S1 encoder (ViT)', 'backbone_s1'],
      ['S2 up-head', 'head_s2'],
      ['S1 up-head', 'head_s1'],
      ['fusion transformer', 'fusion'],
      ['calendar encoding ctpe', 'ctpe'],
      ['geo-context prototype bank', 'glbank'],
    ];
    return rows.map(([part, prefix]) => ({ part, prefix, ...count(prefix) })).filter((r) => r.parameters + r.bufferValues > 0);
  }

  /**
   * Loads the released files (any subset) by path: `backbone.` prefixes are recognised, `ctpe` is
   * taken from the S2 file, Swin's harmless differences are skipped (see each report).
   * @returns one report per file loaded.
   */
  loadReleased(files: ReleasedFiles, options: { log?: boolean | ((text: string) => void) } = {}): Record<string, LoadReport> {
    const targets: [keyof ReleasedFiles, Module | null][] = [
      ['hr', this.hr],
      ['s2', this.s2],
      ['s1', this.s1],
      ['headS2', this.neck.headS2],
      ['headS1', this.neck.headS1],
      ['fusion', this.neck.fusion],
    ];
    const reports: Record<string, LoadReport> = {};
    for (const [name, module] of targets) {
      const file = files[name];
      if (!file) continue;
      if (!module) throw new SkySenseError('E_ARG', `loadReleased: a ${name} file was given but the model has no ${name} part`);
      const ckpt = openCheckpoint(file);
      try {
        reports[name] = module.loadStateDict(ckpt, {
          prefix: module === this.neck.fusion ? (ckpt.keys().some((k) => k.startsWith('backbone.')) ? 'backbone.' : '') : undefined,
        });
        if (name === 's2' && ckpt.keys().includes('ctpe')) this.loadCtpe(ckpt.read('ctpe'), file);
      } finally {
        ckpt.close();
      }
      const log = options.log ?? false;
      if (log) (typeof log === 'function' ? log : console.log)(`${name}: ${reports[name].loaded.length} tensors from ${file}`);
    }
    return reports;
  }

  private loadCtpe(ctpe: Tensor, file: string): void {
    try {
      const want = this.neck.ctpe.shape;
      if (ctpe.shape.join() !== want.join()) {
        throw new SkySenseError(
          'E_STATE_DICT',
          `${file}: ctpe has shape ${formatShape(ctpe.shape)}, the fusion expects ${formatShape(want)} (a table for the 1024-wide ViT output is not supported)`,
        );
      }
      this.neck.ctpe.assign(ctpe);
    } finally {
      ctpe.dispose();
    }
  }
}

/**
 * A pixel validity mask (`[B, T, H, W]`) on the grid of the features computed from it (`[B, T, D, h, w]`,
 * or `[B, D, h, w]` with `single`): a feature location counts as valid only if every pixel of its
 * patch was. The result is added to `owned`.
 */
function onFeatureGrid(valid: Tensor | undefined, features: Tensor, owned: Tensor[], single = false): Tensor | undefined {
  if (!valid) return undefined;
  const [h, w] = features.shape.slice(-2) as [number, number];
  const [b, t, H, W] = valid.shape as number[];
  const pooled = tf.tidy(() => tf.reshape(poolValidity(tf.reshape(valid, [b! * t!, H!, W!]), h, w), [b!, t!, h, w]));
  owned.push(pooled);
  if (single) owned.push(valid);
  return pooled;
}

/**
 * Inputs with NaN/Inf replaced by 0 and marked invalid (merged into `pixelValid` / `hrValid`), and
 * validity masks checked against their inputs' shapes. `owned`: the tensors made here.
 */
function sanitizeInputs(inputs: SkySenseInputs): { inputs: SkySenseInputs; owned: Tensor[] } {
  const owned: Tensor[] = [];
  const merge = (given: Tensor | undefined, found: Tensor | undefined, name: string, shape: number[]) => {
    if (given && given.shape.join() !== shape.join())
      throw new SkySenseError('E_SHAPE', `${name}: expected ${formatShape(shape)} (one flag per pixel), got ${formatShape(given.shape)}`);
    if (!found) return given;
    const m = given ? tf.tidy(() => tf.mul(tf.cast(given, 'float32'), found)) : found;
    owned.push(m);
    return m;
  };
  const out: SkySenseInputs = { ...inputs };
  try {
    sanitizeInto(inputs, out, owned, merge);
  } catch (e) {
    tf.dispose(owned);
    throw e;
  }
  return { inputs: out, owned };
}

function sanitizeInto(
  inputs: SkySenseInputs,
  out: SkySenseInputs,
  owned: Tensor[],
  merge: (given: Tensor | undefined, found: Tensor | undefined, name: string, shape: number[]) => Tensor | undefined,
): void {
  if (inputs.hr) {
    const bad = nonFiniteMask(inputs.hr, 1);
    if (bad) owned.push(bad.x, bad.valid);
    const [b, , h, w] = inputs.hr.shape as number[];
    out.hr = bad?.x ?? inputs.hr;
    out.hrValid = merge(inputs.hrValid, bad?.valid, 'hrValid', [b!, h!, w!]);
  }
  for (const key of ['s2', 's1'] as const) {
    const s = inputs[key];
    if (!s || s.frames.rank !== 5) continue;
    const bad = nonFiniteMask(s.frames, 2);
    if (bad) owned.push(bad.x, bad.valid);
    const [b, t, , h, w] = s.frames.shape as number[];
    out[key] = { ...s, frames: bad?.x ?? s.frames, pixelValid: merge(s.pixelValid, bad?.valid, `${key}.pixelValid`, [b!, t!, h!, w!]) };
  }
}

/** Formats a breakdown as a table with totals (released modules vs. the prototype bank). */
export function formatBreakdown(rows: BreakdownRow[]): string {
  const fmt = (n: number) => n.toLocaleString('en-US');
  const width = Math.max(...rows.map((r) => r.part.length));
  const lines = rows.map(
    (r) => `${r.part.padEnd(width)}  ${fmt(r.parameters + r.bufferValues).padStart(13)}${r.bufferValues ? '  (buffer)' : ''}`,
  );
  const modules = rows.filter((r) => r.prefix !== 'glbank').reduce((a, r) => a + r.parameters + r.bufferValues, 0);
  const all = rows.reduce((a, r) => a + r.parameters + r.bufferValues, 0);
  lines.push('-'.repeat(width + 15));
  lines.push(`${'released modules'.padEnd(width)}  ${fmt(modules).padStart(13)}`);
  lines.push(`${'total'.padEnd(width)}  ${fmt(all).padStart(13)}  (${(all / 1e9).toFixed(3)} B)`);
  return lines.join('\n');
}

/**
 * SkySense as a {@link @skysense/core-tensor!FeatureEncoder} over {@link SkySenseInputs}, so a task head (a `Classifier`,
 * say) sits on the multi-modal model like on any encoder: one output map, F_fus (the fused map ⊕ its
 * geo-context, `2·d` channels) when `geoContext`, else the fused map (`d`). The model's keys stay
 * its own (`backbone_gep.*`, `fusion.*`, `ctpe`, …), with the wrapper's owner adding its prefix.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SkySense, SkySenseEncoder } from '@skysense/skysense';
 * await initBackend();
 * // the full model as a FeatureEncoder: one fused map, for the task heads and Finetuner
 * const encoder = new SkySenseEncoder(SkySense.fromPreset('skysense-tiny'), true);
 * const [map] = encoder.eval().forward({
 *   s2: { frames: tf.randomNormal([1, 2, 10, 4, 4]), dates: [['2021-04-01', '2021-07-01']] },
 *   lat: [43.6],
 *   lon: [1.44],
 * });
 * console.log(encoder.featureChannels, map!.shape); // [64] [1, 64, 4, 4]
 * ```
 */
export class SkySenseEncoder extends Module implements FeatureEncoder<SkySenseInputs> {
  readonly featureChannels: readonly number[];

  constructor(
    readonly model: SkySense,
    readonly geoContext = false,
  ) {
    super();
    if (geoContext && !model.geo)
      throw new SkySenseError('E_ARG', 'SkySenseEncoder geoContext: the model has no prototype bank (build it with a geo config)');
    this.adoptMembers(model);
    this.featureChannels = [model.neck.fusion.options.embedDims * (geoContext ? 2 : 1)];
  }

  /** `[F]` with `F` `[B, C, H/32, W/32]`; with `geoContext` the inputs need lat/lon. */
  forward(inputs: SkySenseInputs): Tensor[] {
    if (this.geoContext && (!inputs.lat || !inputs.lon))
      throw new SkySenseError('E_LATLON', 'SkySenseEncoder: geoContext needs lat and lon for every sample');
    const { fused, withGeoContext } = this.model.forward(inputs);
    if (!this.geoContext) {
      withGeoContext?.dispose();
      return [fused];
    }
    fused.dispose();
    return [withGeoContext!];
  }
}
