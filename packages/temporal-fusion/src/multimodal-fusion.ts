import {
  Module,
  SkySenseError,
  formatShape,
  gatherRows,
  poolValidity,
  tf,
  zeros,
  type Parameter,
  type Tensor,
} from '@skysense/core-tensor';
import type { AcquisitionDate } from '@skysense/core-tensor';
import { CALENDAR_DAYS, calendarRow } from './dates';
import { FusionTransformer, type FusionTransformerOptions } from './fusion-transformer';
import { UpHead } from './up-head';

/** A Sentinel time series after its encoder. */
export interface ModalitySeries {
  /** `[B, T, D, h, w]`: the encoder's last map per frame (e.g. from `VisionTransformer.forwardSeries`). */
  features: Tensor;
  /** Acquisition date of every frame, `[B][T]` (needed where the date encoding applies; `null` allowed for invalid frames). */
  dates?: (AcquisitionDate | null)[][];
  /** Which frames are real, `[B][T]` (default all): padding frames are masked out of attention. */
  valid?: boolean[][];
  /**
   * Per pixel and frame: `[B, T, H', W']` at any resolution covering the tile (e.g. the input
   * pixels), 1 where the frame holds data and 0 at nodata (clouds, borders). It is pooled to the
   * fusion grid (a location keeps a frame only if its whole footprint is valid), and a frame is left
   * out of a location's attention where it is not kept.
   */
  validMap?: Tensor;
}

/** What {@link MultiModalFusion} fuses; any non-empty subset of modalities. */
export interface FusionInputs {
  /** `[B, C, H, W]`: HR features on the fusion grid (Swin stage 3 after `norm3`). */
  hr?: Tensor;
  /** HR acquisition date per sample (only with `dateEncoding: 'all'`). */
  hrDates?: AcquisitionDate[];
  /** `[B, H', W']` at any resolution (e.g. the HR pixels): 0 where the HR image has no data (its token is left out there, pooled as `validMap`). */
  hrValid?: Tensor;
  s2?: ModalitySeries;
  s1?: ModalitySeries;
}

/** Where the calendar encoding is added. */
export type DateEncoding = 's2' | 'all' | 'none';

/** Options of {@link MultiModalFusion}; defaults are SkySense's. */
export interface MultiModalFusionOptions {
  /** Width of the Sentinel encoder maps. Default 1024. */
  vitDims?: number;
  /** Width of the fusion input tokens (HR stage-3 width). Default 2816. */
  tokenDims?: number;
  /** Up-head scale (Sentinel grid → HR stage-3 grid). Default 4. */
  upScale?: number;
  /** Which Sentinel up-heads exist. Default both. */
  sentinel?: ('s2' | 's1')[];
  /**
   * `'s2'` (default, as the official code and SkySense++): `ctpe[doy − 1]` is added to S2 tokens
   * only. `'all'`: to every modality's tokens (the paper's Eq. 2). `'none'`: no date encoding.
   */
  dateEncoding?: DateEncoding;
  /** The fusion transformer. */
  fusion?: FusionTransformerOptions;
}

type Part = { name: 'hr' | 's2' | 's1'; tokens: Tensor; frames: number; valid: boolean[][] | null; validMap: Tensor | null };

/**
 * SkySense's multi-modal temporal fusion (architecture guide §3): Sentinel maps are lifted to the HR
 * grid by the up-heads, S2 tokens get the calendar encoding `ctpe`, and per location the sequence
 * `[HR, S2 frames…, S1 frames…]` goes through the fusion transformer, whose cls token is the fused
 * feature. Keys `head_s2.*`, `head_s1.*`, `fusion.*`, `ctpe` as in the official checkpoint.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { MultiModalFusion } from '@skysense/temporal-fusion';
 * await initBackend();
 * const fusion = new MultiModalFusion({ vitDims: 32, tokenDims: 64, upScale: 1, fusion: { embedDims: 64, numLayers: 1, numHeads: 4 } });
 * const fused = fusion.forward({
 *   s2: { features: tf.randomNormal([1, 3, 32, 8, 8]), dates: [['2021-04-01', '2021-06-01', '2021-08-01']] },
 *   s1: { features: tf.randomNormal([1, 2, 32, 8, 8]) },
 * }); // [1, 64, 8, 8]
 * ```
 */
export class MultiModalFusion extends Module {
  readonly ctpe: Parameter;
  readonly headS2: UpHead | null;
  readonly headS1: UpHead | null;
  readonly fusion: FusionTransformer;
  readonly dateEncoding: DateEncoding;
  readonly tokenDims: number;

  /**
   * Builds the fusion from the official config's arguments: the up-heads' `UPHead(in_dim, out_dim,
   * up_scale)` and the fusion `TransformerEncoder(**kwargs)` (`embed_dims`, `num_layers`, `num_heads`,
   * `mlp_ratio`, `qkv_bias`, dropout rates, `norm_cfg.eps`).
   */
  static fromConfig(head: { in_dim?: number; out_dim?: number; up_scale?: number }, fusion: Record<string, unknown>): MultiModalFusion {
    const f = fusion as Record<string, never>;
    return new MultiModalFusion({
      vitDims: head.in_dim,
      tokenDims: head.out_dim,
      upScale: head.up_scale,
      fusion: {
        embedDims: f.embed_dims,
        numLayers: f.num_layers,
        numHeads: f.num_heads,
        mlpRatio: f.mlp_ratio,
        qkvBias: f.qkv_bias,
        dropPathRate: f.drop_path_rate,
        dropRate: f.drop_rate,
        attnDropRate: f.attn_drop_rate,
        layerNormEps: (fusion.norm_cfg as { eps?: number } | undefined)?.eps,
      },
    });
  }

  constructor(options: MultiModalFusionOptions = {}) {
    super();
    const vit = options.vitDims ?? 1024;
    this.tokenDims = options.tokenDims ?? 2816;
    const up = options.upScale ?? 4;
    const sentinel = options.sentinel ?? ['s2', 's1'];
    this.dateEncoding = options.dateEncoding ?? 's2';
    if (!['s2', 'all', 'none'].includes(this.dateEncoding))
      throw new SkySenseError('E_ARG', `dateEncoding: expected s2, all or none, got '${this.dateEncoding}'`);
    this.ctpe = this.registerParameter('ctpe', [1, CALENDAR_DAYS, this.tokenDims], zeros);
    this.headS2 = sentinel.includes('s2') ? this.registerModule('head_s2', new UpHead(vit, this.tokenDims, up)) : null;
    this.headS1 = sentinel.includes('s1') ? this.registerModule('head_s1', new UpHead(vit, this.tokenDims, up)) : null;
    this.fusion = this.registerModule('fusion', new FusionTransformer({ inputDims: this.tokenDims, ...options.fusion }));
  }

  /** Lifts a series `[B, T, D, h, w]` to `[B, T, C, h·up, w·up]` with its up-head (before the date encoding). */
  upsample(modality: 's2' | 's1', features: Tensor): Tensor {
    const head = modality === 's2' ? this.headS2 : this.headS1;
    if (!head) throw new SkySenseError('E_ARG', `this fusion has no ${modality} up-head`);
    if (features.rank !== 5)
      throw new SkySenseError('E_SHAPE', `${modality}.features: expected [B, T, ${head.inDim}, h, w], got ${formatShape(features.shape)}`);
    const [b, t, d, h, w] = features.shape as number[];
    return tf.tidy(() => {
      const up = head.forward(tf.reshape(features, [b! * t!, d!, h!, w!]));
      return tf.reshape(up, [b!, t!, ...up.shape.slice(1)]);
    });
  }

  /** Calendar rows `[B, T, C]` for dates `[B][T]`. */
  private dateTokens(
    name: string,
    dates: (AcquisitionDate | null)[][] | undefined,
    b: number,
    t: number,
    valid: boolean[][] | null,
  ): Tensor {
    if (!dates || dates.length !== b || dates.some((row) => row.length !== t)) {
      throw new SkySenseError(
        'E_DATE',
        `${name}.dates: expected ${b} × ${t} acquisition dates (date encoding '${this.dateEncoding}'), got ${dates ? `${dates.length} rows` : 'none'}`,
      );
    }
    const rows = dates.flatMap((row, i) =>
      row.map((d, j) =>
        d === null && valid && !valid[i]![j] ? 0 : calendarRow(d as AcquisitionDate, `${name} frame ${j} of sample ${i}`),
      ),
    );
    return tf.reshape(gatherRows(tf.reshape(this.ctpe.value, [CALENDAR_DAYS, this.tokenDims]), rows), [b, t, this.tokenDims]);
  }

  private checkValid(name: string, valid: boolean[][] | undefined, b: number, t: number): boolean[][] | null {
    if (!valid) return null;
    if (valid.length !== b || valid.some((r) => r.length !== t))
      throw new SkySenseError('E_SHAPE', `${name}.valid: expected ${b} × ${t} flags, got ${valid.length} rows`);
    return valid;
  }

  /** Validates the inputs' shapes and returns the common `[B, H, W]` grid. */
  private grid(inputs: FusionInputs): [number, number, number] {
    const sizes: [string, number, number, number][] = [];
    if (inputs.hr) {
      const hr = inputs.hr;
      if (hr.rank !== 4 || hr.shape[1] !== this.tokenDims)
        throw new SkySenseError('E_SHAPE', `hr: expected [B, ${this.tokenDims}, H, W], got ${formatShape(hr.shape)}`);
      sizes.push(['hr', hr.shape[0]!, hr.shape[2]!, hr.shape[3]!]);
    }
    for (const name of ['s2', 's1'] as const) {
      const f = inputs[name]?.features;
      if (!f) continue;
      const head = name === 's2' ? this.headS2 : this.headS1;
      if (!head) throw new SkySenseError('E_ARG', `this fusion has no ${name} up-head`);
      if (f.rank !== 5 || f.shape[2] !== head.inDim)
        throw new SkySenseError('E_SHAPE', `${name}.features: expected [B, T, ${head.inDim}, h, w], got ${formatShape(f.shape)}`);
      sizes.push([name, f.shape[0]!, f.shape[3]! * head.upScale, f.shape[4]! * head.upScale]);
    }
    if (sizes.length === 0) throw new SkySenseError('E_ARG', 'fusion inputs: give at least one of hr, s2, s1');
    const [first, ...rest] = sizes;
    for (const s of rest) {
      if (s[1] !== first![1] || s[2] !== first![2] || s[3] !== first![3]) {
        throw new SkySenseError(
          'E_SHAPE',
          `fusion inputs: ${s[0]} gives batch ${s[1]} on a ${s[2]}×${s[3]} grid, but ${first![0]} gives batch ${first![1]} on ${first![2]}×${first![3]}`,
        );
      }
    }
    return [first![1], first![2], first![3]];
  }

  /** Padding flags `[B·H·W, L]` (true = padding) when any frame is invalid, as a whole (`valid`) or per location (`validMap`). */
  private paddingMask(parts: Part[], [b, h, w]: [number, number, number]): Tensor | null {
    if (!parts.some((p) => p.valid || p.validMap)) return null;
    const perPart = parts.map((p) => {
      let padded: Tensor = tf.zeros([b, h * w, p.frames], 'bool');
      if (p.valid) {
        const flags = tf.tensor3d(
          p.valid.map((row) => [row.map((v) => (v ? 0 : 1))]),
          [b, 1, p.frames],
          'int32',
        );
        padded = tf.logicalOr(padded, tf.cast(flags, 'bool'));
      }
      if (p.validMap) {
        const map = tf.reshape(tf.transpose(p.validMap.reshape([b, p.frames, h * w]), [0, 2, 1]), [b, h * w, p.frames]);
        padded = tf.logicalOr(padded, tf.less(map, 0.5));
      }
      return padded;
    });
    return tf.reshape(tf.concat(perPart, 2), [b * h * w, -1]);
  }

  /** A validity map pooled to the grid: `[B, T, h, w]`. */
  private validOnGrid(name: string, map: Tensor | undefined, [b, t, h, w]: number[]): Tensor | null {
    if (!map) return null;
    if (map.rank !== 4 || map.shape[0] !== b || map.shape[1] !== t)
      throw new SkySenseError('E_SHAPE', `${name}: expected [${b}, ${t}, H, W], got ${formatShape(map.shape)}`);
    const [, , H, W] = map.shape as number[];
    return tf.reshape(poolValidity(tf.reshape(map, [b * t, H!, W!]), h!, w!), [b, t, h!, w!]);
  }

  /**
   * The fusion input `[B·H·W, L, C]` (location index `(b·H + y)·W + x`), its padding mask
   * `[B·H·W, L]` (null when every frame is valid) and the grid `[B, H, W]`.
   */
  buildSequence(inputs: FusionInputs): { sequence: Tensor; mask: Tensor | null; grid: [number, number, number] } {
    const grid = this.grid(inputs);
    const [b, h, w] = grid;
    const kept = tf.tidy(() => {
      const parts: Part[] = [];
      if (inputs.hr) {
        let tokens = tf.reshape(tf.transpose(inputs.hr, [0, 2, 3, 1]), [b, h * w, 1, this.tokenDims]);
        if (this.dateEncoding === 'all')
          tokens = tf.add(
            tokens,
            tf.reshape(
              this.dateTokens(
                'hr',
                inputs.hrDates?.map((d) => [d]),
                b,
                1,
                null,
              ),
              [b, 1, 1, this.tokenDims],
            ),
          );
        const hv = inputs.hrValid;
        if (hv && hv.rank !== 3) throw new SkySenseError('E_SHAPE', `hrValid: expected [${b}, H, W], got ${formatShape(hv.shape)}`);
        const validMap = this.validOnGrid('hrValid', hv && tf.expandDims(hv, 1), [b, 1, h, w]);
        parts.push({ name: 'hr', tokens, frames: 1, valid: null, validMap });
      }
      for (const name of ['s2', 's1'] as const) {
        const series = inputs[name];
        if (!series) continue;
        const up = this.upsample(name, series.features);
        const t = up.shape[1]!;
        const valid = this.checkValid(name, series.valid, b, t);
        let tokens = tf.reshape(tf.transpose(up, [0, 3, 4, 1, 2]), [b, h * w, t, this.tokenDims]);
        if (this.dateEncoding === 'all' || (this.dateEncoding === 's2' && name === 's2')) {
          tokens = tf.add(tokens, tf.expandDims(this.dateTokens(name, series.dates, b, t, valid), 1));
        }
        parts.push({ name, tokens, frames: t, valid, validMap: this.validOnGrid(`${name}.validMap`, series.validMap, [b, t, h, w]) });
      }
      const sequence = tf.reshape(
        tf.concat(
          parts.map((p) => p.tokens),
          2,
        ),
        [b * h * w, -1, this.tokenDims],
      );
      const mask = this.paddingMask(parts, grid);
      return mask ? [sequence, mask] : [sequence];
    });
    return { sequence: kept[0]!, mask: kept[1] ?? null, grid };
  }

  /** Fuses the inputs into `[B, embedDims, H, W]` (F_fus^mm: the cls token per location). */
  forward(inputs: FusionInputs): Tensor {
    const { fused, coverage } = this.forwardWithCoverage(inputs);
    coverage?.dispose();
    return fused;
  }

  /**
   * {@link MultiModalFusion.forward} that also says, per location, which fraction of its tokens
   * (HR, S2 and S1 frames) held data: `coverage` `[B, 1, H, W]`, null when every frame is valid
   * everywhere. Where it is 0 no observation is left: the output there is the cls token alone
   * (finite, but data-free), and should be treated as nodata.
   */
  forwardWithCoverage(inputs: FusionInputs): { fused: Tensor; coverage: Tensor | null } {
    const { sequence, mask, grid } = this.buildSequence(inputs);
    const [b, h, w] = grid;
    try {
      const fused = tf.tidy(() => {
        const tokens = this.fusion.forward(sequence, mask ?? undefined);
        return tf.transpose(tf.reshape(tokens, [b, h, w, tokens.shape[1]!]), [0, 3, 1, 2]);
      });
      const coverage = mask && tf.tidy(() => tf.reshape(tf.sub(1, tf.mean(tf.cast(mask, 'float32'), 1)), [b, 1, h, w]));
      return { fused, coverage };
    } finally {
      tf.dispose([sequence, ...(mask ? [mask] : [])]);
    }
  }
}
