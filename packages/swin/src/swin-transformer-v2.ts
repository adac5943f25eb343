import { SWIN_V2_PRETRAINED } from './pretrained';
import {
  BatchNorm2d,
  Dropout,
  FFN,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  PatchEmbed,
  SkySenseError,
  assertInt,
  assertShape,
  formatShape,
  inferPrefix,
  interpolate,
  readConfig,
  tf,
  toStateDictSource,
  truncNormal,
  type CheckpointKeyRule,
  type FeatureEncoder,
  type LoadReport,
  type LoadStateDictOptions,
  type Parameter,
  type StateDictLike,
  type StateDictSource,
  type Tensor,
  loadPretrained,
  type PretrainedOptions,
} from '@skysense/core-tensor';
import { ShiftWindowMSA } from './window-attention';
import { type SwinV2Arch, type SwinV2ArchName, archByName } from './presets';

/**
 * mmcls `PatchMerging` on a channels-last map: corner-pad odd sides, 2×2 unfold in `nn.Unfold`
 * order (channel, kernel row, kernel column), `reduction` Linear(4C → 2C, no bias), then `norm`
 * (post-norm, 2C wide; pre-norm variant: 4C wide before the reduction).
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { PatchMerging } from '@skysense/swin';
 * await initBackend();
 * // Swin V2 downsampling (post-norm): 2 × 2 neighbours concatenated, Linear 4C → 2C, LayerNorm
 * const merge = new PatchMerging(32, 64);
 * console.log(merge.forward(tf.randomNormal([1, 16, 16, 32])).shape); // [1, 8, 8, 64], channels last
 * ```
 */
export class PatchMerging extends Module {
  readonly reduction: Linear;
  readonly norm: LayerNorm;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly isPostNorm = true,
  ) {
    super();
    this.reduction = this.registerModule('reduction', new Linear(4 * inChannels, outChannels, { bias: false }));
    this.norm = this.registerModule('norm', new LayerNorm(isPostNorm ? outChannels : 4 * inChannels));
  }

  /** @param x `[B, H, W, inChannels]` (channels last). @returns `[B, ⌈H/2⌉, ⌈W/2⌉, outChannels]`. */
  forward(x: Tensor): Tensor {
    assertShape('PatchMerging input', x, [null, null, null, this.inChannels]);
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape as [number, number, number, number];
      const padded =
        h % 2 || w % 2
          ? tf.pad(x, [
              [0, 0],
              [0, h % 2],
              [0, w % 2],
              [0, 0],
            ])
          : x;
      const [oh, ow] = [Math.ceil(h / 2), Math.ceil(w / 2)];
      const unfolded = tf.reshape(tf.transpose(tf.reshape(padded, [b, oh, 2, ow, 2, c]), [0, 1, 3, 5, 2, 4]), [b, oh, ow, 4 * c]);
      return this.isPostNorm ? this.norm.forward(this.reduction.forward(unfolded)) : this.reduction.forward(this.norm.forward(unfolded));
    });
  }
}

/** Options of one {@link SwinBlockV2}. */
export interface SwinBlockV2Options {
  windowSize: number;
  shift: boolean;
  extraNorm: boolean;
  dropPath: number;
  padSmallMap: boolean;
  pretrainedWindowSize: number;
  ffnRatio?: number;
}

/**
 * mmcls `SwinBlockV2` (residual post-norm): `x + norm1(attn(x))`, `x + norm2(ffn(x))`, optional `norm3`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SwinBlockV2 } from '@skysense/swin';
 * await initBackend();
 * // one Swin V2 block: (shifted) window attention with scaled cosine attention and post-norm residuals
 * const block = new SwinBlockV2(32, 2, { windowSize: 4, shift: true, extraNorm: false, dropPath: 0, padSmallMap: false, pretrainedWindowSize: 0 });
 * console.log(block.forward(tf.randomNormal([1, 8, 8, 32])).shape); // [1, 8, 8, 32]
 * ```
 */
export class SwinBlockV2 extends Module {
  readonly attn: ShiftWindowMSA;
  readonly norm1: LayerNorm;
  readonly ffn: FFN;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm | null;

  constructor(embedDims: number, numHeads: number, o: SwinBlockV2Options) {
    super();
    const p = o.pretrainedWindowSize;
    this.attn = this.registerModule(
      'attn',
      new ShiftWindowMSA(embedDims, numHeads, o.windowSize, {
        shiftSize: o.shift ? Math.floor(o.windowSize / 2) : 0,
        dropPath: o.dropPath,
        padSmallMap: o.padSmallMap,
        pretrainedWindowSize: [p, p],
      }),
    );
    this.norm1 = this.registerModule('norm1', new LayerNorm(embedDims));
    const hidden = Math.floor(embedDims * (o.ffnRatio ?? 4));
    this.ffn = this.registerModule(
      'ffn',
      new FFN({ embedDims, feedforwardChannels: hidden, act: 'gelu', addIdentity: false, dropPath: o.dropPath }),
    );
    this.norm2 = this.registerModule('norm2', new LayerNorm(embedDims));
    this.norm3 = o.extraNorm ? this.registerModule('norm3', new LayerNorm(embedDims)) : null;
  }

  /** @param x `[B, H, W, C]` (channels last). */
  forward(x: Tensor): Tensor {
    assertShape('SwinBlockV2 input', x, [null, null, null, this.attn.embedDims]);
    return tf.tidy(() => {
      let h = tf.add(x, this.norm1.forward(this.attn.forward(x)));
      h = tf.add(h, this.norm2.forward(this.ffn.forward(h)));
      return this.norm3 ? this.norm3.forward(h) : h;
    });
  }
}

/**
 * mmcls `SwinBlockV2Sequence`: optional `downsample` (PatchMerging) then `blocks`.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SwinBlockV2Sequence } from '@skysense/swin';
 * await initBackend();
 * // one stage: optional PatchMerging, then blocks alternating plain and shifted windows
 * const stage = new SwinBlockV2Sequence(16, 2, 2, {
 *   downsample: true, isPostNorm: true, dropPaths: [0, 0], extraNormEveryNBlocks: 0, windowSize: 4, padSmallMap: false, pretrainedWindowSize: 0,
 * });
 * console.log(stage.forward(tf.randomNormal([1, 16, 16, 16])).shape); // [1, 8, 8, 32]
 * ```
 */
export class SwinBlockV2Sequence extends Module {
  readonly downsample: PatchMerging | null;
  readonly blocks: ModuleList<SwinBlockV2>;
  readonly outChannels: number;

  constructor(
    embedDims: number,
    depth: number,
    numHeads: number,
    o: { downsample: boolean; isPostNorm: boolean; dropPaths: number[]; extraNormEveryNBlocks: number } & Omit<
      SwinBlockV2Options,
      'shift' | 'extraNorm' | 'dropPath'
    >,
  ) {
    super();
    this.outChannels = o.downsample ? 2 * embedDims : embedDims;
    this.downsample = o.downsample ? this.registerModule('downsample', new PatchMerging(embedDims, this.outChannels, o.isPostNorm)) : null;
    const n = o.extraNormEveryNBlocks;
    this.blocks = this.registerModule(
      'blocks',
      new ModuleList(
        Array.from(
          { length: depth },
          (_, i) =>
            new SwinBlockV2(this.outChannels, numHeads, {
              ...o,
              shift: i % 2 === 1,
              extraNorm: n > 0 && (i + 1) % n === 0,
              dropPath: o.dropPaths[i]!,
            }),
        ),
      ),
    );
  }

  forward(x: Tensor): Tensor {
    return tf.tidy(() => {
      let h = this.downsample ? this.downsample.forward(x) : x;
      for (const block of this.blocks) h = block.forward(h);
      return h;
    });
  }
}

/** Options of {@link SwinTransformerV2}; defaults are mmcls 0.25's. */
export interface SwinTransformerV2Options {
  /** Architecture name (`tiny` … `giant`) or numbers. Default `tiny`. */
  arch?: SwinV2ArchName | SwinV2Arch;
  /** Input size the absolute position table is made for. Default 256. */
  imgSize?: number | [number, number];
  /** Default 4. */
  patchSize?: number;
  /** Input bands (3 = RGB, 4 = RGB-NIR). Default 3. */
  inChannels?: number;
  /** One window size, or one per stage. Default 8. */
  windowSize?: number | number[];
  /** Dropout after the patch embedding. Default 0. */
  dropRate?: number;
  /** Stochastic depth, linearly increasing over all blocks. Default 0.1. */
  dropPathRate?: number;
  /** Stages whose (normed) output is returned. Default [3]. */
  outIndices?: number[];
  /** Learnable absolute position table (resized bicubically to the input grid). Default `false`. */
  useAbsPosEmbed?: boolean;
  /** Resize mode of the absolute position table. Default `bicubic`. */
  interpolateMode?: 'bicubic' | 'bilinear';
  /** Stages 0 … n (and the patch embedding) are frozen and kept in eval mode; −1 = none. Default −1. */
  frozenStages?: number;
  /** Keep BatchNorm layers in eval mode while training. Default `false`. */
  normEval?: boolean;
  /** Pad maps smaller than a window instead of refusing them (not a SkySense setting). Default `false`. */
  padSmallMap?: boolean;
  /** Per-stage window size of pre-training (0 = none). Default [0, 0, 0, 0]. */
  pretrainedWindowSizes?: number[];
  /** PatchMerging normalises after the reduction. Default `true`. */
  isPostNorm?: boolean;
}

/** Keys of an official checkpoint that the model never loads (always recomputed, or not part of it). */
export const SWIN_IGNORED_KEYS: readonly RegExp[] = [/^mask_token$/, /relative_position_index$/, /relative_coords_table$/];

/** The output norms are optional in checkpoints (the released HR file has none of norm0–2). */
export const SWIN_OPTIONAL_KEYS: readonly RegExp[] = [/^norm\d+\.(weight|bias)$/];

function stageSides(side: number, patch: number, stages: number): number[] {
  const out = [Math.ceil(side / patch)];
  for (let i = 1; i < stages; i++) out.push(Math.ceil(out[i - 1]! / 2));
  return out;
}

/**
 * Swin Transformer V2 exactly as mmcls 0.25 (and SkySense's `models/swin_transformer_v2.py`)
 * computes it: key names, parameter order, padding, shifting and masking rules, cosine attention
 * with continuous position bias, post-norm blocks and patch merging.
 *
 * Input `[B, inChannels, H, W]`; output one `[B, C_i, H_i, W_i]` map per `outIndices` entry.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { SwinTransformerV2 } from '@skysense/swin';
 * await initBackend();
 * const hr = SwinTransformerV2.fromPreset('skysense-hr');      // the 655 M-parameter HR encoder
 * const feats = hr.eval().forward(tf.zeros([1, 3, 256, 256])); // 4 maps: 352×64², …, 2816×8²
 * ```
 */
export class SwinTransformerV2 extends Module implements FeatureEncoder {
  readonly arch: SwinV2Arch;
  readonly patchEmbed: PatchEmbed;
  readonly absolutePosEmbed: Parameter | null;
  readonly stages: ModuleList<SwinBlockV2Sequence>;
  readonly outNorms: Map<number, LayerNorm>;
  readonly options: Required<Omit<SwinTransformerV2Options, 'arch' | 'windowSize' | 'imgSize'>> & {
    windowSizes: number[];
    imgSize: [number, number];
  };
  private readonly dropAfterPos: Dropout;

  constructor(options: SwinTransformerV2Options = {}) {
    super();
    const arch = typeof options.arch === 'object' ? options.arch : archByName(options.arch ?? 'tiny');
    if (!arch)
      throw new SkySenseError(
        'E_ARG',
        `arch: expected one of tiny, small, base, large, huge, giant or an arch object, got '${String(options.arch)}'`,
      );
    this.arch = arch;
    const stages = arch.depths.length;
    if (arch.numHeads.length !== stages) throw new SkySenseError('E_ARG', `arch: ${stages} depths but ${arch.numHeads.length} numHeads`);
    const ws = options.windowSize ?? 8;
    const windowSizes = typeof ws === 'number' ? Array<number>(stages).fill(ws) : ws;
    if (windowSizes.length !== stages)
      throw new SkySenseError('E_ARG', `windowSize: expected ${stages} values (one per stage), got ${windowSizes.length}`);
    const img = options.imgSize ?? 256;
    this.options = {
      patchSize: assertInt('patchSize', options.patchSize ?? 4, 1),
      inChannels: assertInt('inChannels', options.inChannels ?? 3, 1),
      windowSizes,
      imgSize: typeof img === 'number' ? [img, img] : img,
      dropRate: options.dropRate ?? 0,
      dropPathRate: options.dropPathRate ?? 0.1,
      outIndices: options.outIndices ?? [3],
      useAbsPosEmbed: options.useAbsPosEmbed ?? false,
      interpolateMode: options.interpolateMode ?? 'bicubic',
      frozenStages: options.frozenStages ?? -1,
      normEval: options.normEval ?? false,
      padSmallMap: options.padSmallMap ?? false,
      pretrainedWindowSizes: options.pretrainedWindowSizes ?? Array<number>(stages).fill(0),
      isPostNorm: options.isPostNorm ?? true,
    };
    const o = this.options;
    for (const i of o.outIndices) assertInt('outIndices[]', i, 0, stages - 1);
    o.outIndices = [...new Set(o.outIndices)].sort((a, b) => a - b); // forward returns maps in stage order
    this.patchEmbed = this.registerModule(
      'patch_embed',
      new PatchEmbed({ inChannels: o.inChannels, embedDims: arch.embedDims, kernelSize: o.patchSize, norm: true }),
    );
    const [gh, gw] = this.patchEmbed.outputSize(o.imgSize[0], o.imgSize[1]);
    this.absolutePosEmbed = o.useAbsPosEmbed
      ? this.registerParameter('absolute_pos_embed', [1, gh * gw, arch.embedDims], truncNormal(0.02))
      : null;
    this.dropAfterPos = this.registerModule('drop_after_pos', new Dropout(o.dropRate));
    const total = arch.depths.reduce((a, b) => a + b, 0);
    const dpr = Array.from({ length: total }, (_, i) => (total > 1 ? (o.dropPathRate * i) / (total - 1) : 0));
    let width = arch.embedDims;
    let offset = 0;
    this.stages = this.registerModule(
      'stages',
      new ModuleList(
        arch.depths.map((depth, i) => {
          const stage = new SwinBlockV2Sequence(width, depth, arch.numHeads[i]!, {
            downsample: i > 0,
            isPostNorm: o.isPostNorm,
            dropPaths: dpr.slice(offset, offset + depth),
            extraNormEveryNBlocks: arch.extraNormEveryNBlocks,
            windowSize: windowSizes[i]!,
            padSmallMap: o.padSmallMap,
            pretrainedWindowSize: o.pretrainedWindowSizes[i] ?? 0,
          });
          offset += depth;
          width = stage.outChannels;
          return stage;
        }),
      ),
    );
    this.outNorms = new Map(o.outIndices.map((i) => [i, this.registerModule(`norm${i}`, new LayerNorm(this.stages.at(i)!.outChannels))]));
    this.train();
  }

  /** Output widths of the four stages (352, 704, 1408, 2816 for huge). */
  get stageChannels(): number[] {
    return [...this.stages].map((s) => s.outChannels);
  }

  /**
   * The smallest input side (px) that every stage accepts with `padSmallMap: false` (225 for
   * the SkySense HR encoder).
   */
  minInputSide(): number {
    const o = this.options;
    for (let side = 1; ; side++) {
      if (stageSides(side, o.patchSize, o.windowSizes.length).every((s, i) => s >= o.windowSizes[i]!)) return side;
    }
  }

  /**
   * Checks an input shape `[N, C, H, W]` against the model (band count, and with `padSmallMap: false`
   * the reference's small-map rule) without running anything — it works on a shape-only model.
   * @returns the `[h, w]` token grid of every stage.
   * @throws SkySenseError `E_SHAPE` naming the stage, its size, the window and the minimum input side.
   */
  validateInput(shape: readonly number[]): [number, number][] {
    const o = this.options;
    if (shape.length !== 4 || shape[1] !== o.inChannels) {
      const bands = o.inChannels === 3 ? ' (R, G, B)' : o.inChannels === 4 ? ' (R, G, B, NIR)' : '';
      throw new SkySenseError('E_SHAPE', `SwinTransformerV2 input: expected [N, ${o.inChannels}${bands}, H, W], got ${formatShape(shape)}`);
    }
    const hs = stageSides(shape[2]!, o.patchSize, o.windowSizes.length);
    const ws = stageSides(shape[3]!, o.patchSize, o.windowSizes.length);
    const bad = o.padSmallMap ? -1 : hs.findIndex((h, i) => Math.min(h, ws[i]!) < o.windowSizes[i]!);
    if (bad >= 0) {
      throw new SkySenseError(
        'E_SHAPE',
        `SwinTransformerV2 input: a ${shape[2]}×${shape[3]} input gives a ${hs[bad]}×${ws[bad]} map at stage ${bad}, smaller than its window ${o.windowSizes[bad]} ` +
          `(padSmallMap is false, as in every SkySense config). Use inputs of at least ${this.minInputSide()} px per side, or set padSmallMap: true.`,
      );
    }
    return hs.map((h, i) => [h, ws[i]!]);
  }

  /** Keys the released files and this model disagree on by design (labelled in load reports). */
  override checkpointKeyRules(): readonly CheckpointKeyRule[] {
    return SWIN_KEY_RULES;
  }

  /** Channels of the maps {@link SwinTransformerV2.forward} returns (one per `outIndices` entry). */
  get featureChannels(): number[] {
    return this.options.outIndices.map((i) => this.stages.at(i)!.outChannels);
  }

  /** Runs the encoder. @returns one `[B, C_i, H_i, W_i]` map per `outIndices` entry, in stage order. */
  forward(x: Tensor): Tensor[] {
    this.validateInput(x.shape);
    if (x.dtype !== 'float32') throw new SkySenseError('E_DTYPE', `SwinTransformerV2 input: expected float32, got ${x.dtype}`);
    return tf.tidy(() => {
      let t = this.patchEmbed.forward(x);
      if (this.absolutePosEmbed) t = tf.add(t, this.resizedPosEmbed(t.shape[1]!, t.shape[2]!));
      t = this.dropAfterPos.forward(t);
      const outs: Tensor[] = [];
      [...this.stages].forEach((stage, i) => {
        t = stage.forward(t);
        const norm = this.outNorms.get(i);
        if (norm) outs.push(tf.transpose(norm.forward(t), [0, 3, 1, 2]));
      });
      return outs;
    });
  }

  /** The absolute position table as a `[1, h, w, C]` map for an `h × w` token grid. */
  private resizedPosEmbed(h: number, w: number): Tensor {
    const [gh, gw] = this.patchEmbed.outputSize(this.options.imgSize[0], this.options.imgSize[1]);
    const c = this.arch.embedDims;
    const table = tf.reshape(this.absolutePosEmbed!.value, [1, gh, gw, c]);
    if (gh === h && gw === w) return table;
    const nchw = tf.transpose(table, [0, 3, 1, 2]);
    return tf.transpose(interpolate(nchw, { size: [h, w], mode: this.options.interpolateMode, alignCorners: false }), [0, 2, 3, 1]);
  }

  /** Training mode with mmcls's rules: frozen stages stay in eval mode and `normEval` keeps BatchNorm in eval. */
  override train(mode = true): this {
    super.train(mode);
    const fs = this.options?.frozenStages ?? -1;
    if (fs >= 0) {
      this.patchEmbed.eval().freeze();
      [...this.stages].slice(0, fs + 1).forEach((s) => s.eval().freeze());
      for (const [i, norm] of this.outNorms) if (i <= fs) norm.freeze();
    }
    if (mode && this.options?.normEval) for (const [, m] of this.namedModules()) if (m instanceof BatchNorm2d) m.eval();
    return this;
  }

  /**
   * Loads mmcls / SkySense weights with the official loader rules: a `backbone.` prefix is found
   * and stripped automatically, `mask_token` and the relative-position buffers are skipped (they
   * are recomputed), `norm0`–`norm3` may be absent (they keep LayerNorm defaults and are listed in
   * `missing`), a differently sized `absolute_pos_embed` is resized bicubically, and everything
   * else follows PyTorch's strict rules.
   */
  override loadStateDict(dict: StateDictLike, options: LoadStateDictOptions = {}): LoadReport {
    const source = toStateDictSource(dict);
    const prefix = options.prefix ?? inferPrefix(source.keys(), this.stateShapes().keys(), ['', 'backbone.']);
    return super.loadStateDict(this.adaptPosEmbed(source, prefix), {
      ...options,
      prefix,
      ignore: [...SWIN_IGNORED_KEYS, ...(options.ignore ?? [])],
      optional: [...SWIN_OPTIONAL_KEYS, ...(options.optional ?? [])],
    });
  }

  /** mmcls `_prepare_abs_pos_embed`: a checkpoint table made for another grid is resized to ours. */
  private adaptPosEmbed(source: StateDictSource, prefix: string): StateDictSource {
    const key = `${prefix}absolute_pos_embed`;
    const want = this.absolutePosEmbed?.shape;
    if (!want || ![...source.keys()].includes(key) || source.shape(key)[1] === want[1]) return source;
    const [gh, gw] = this.patchEmbed.outputSize(this.options.imgSize[0], this.options.imgSize[1]);
    const c = this.arch.embedDims;
    return {
      keys: () => source.keys(),
      shape: (k) => (k === key ? want : source.shape(k)),
      read: (k) => {
        const t = source.read(k);
        if (k !== key) return t;
        const side = Math.round(Math.sqrt(t.shape[1]!));
        const out = tf.tidy(() => {
          const grid = tf.transpose(tf.reshape(t, [1, side, side, c]), [0, 3, 1, 2]);
          return tf.reshape(
            tf.transpose(interpolate(grid, { size: [gh, gw], mode: this.options.interpolateMode, alignCorners: false }), [0, 2, 3, 1]),
            [1, gh * gw, c],
          );
        });
        t.dispose();
        return out;
      },
    };
  }

  /**
   * Builds a preset and loads its released checkpoint ({@link SWIN_V2_PRETRAINED}: file, prefix,
   * input bands and normalisation), from `options.weights`, the cache, or `options.url`.
   * @throws SkySenseError `E_ARG` for a preset without released weights, `E_WEIGHTS` when the file is not found (saying where it comes from).
   */
  static fromPretrained(name: SwinV2PresetName, options: PretrainedOptions = {}): Promise<SwinTransformerV2> {
    const config = SWIN_V2_PRETRAINED[name];
    if (!config)
      throw new SkySenseError(
        'E_ARG',
        `no released weights for Swin V2 preset '${name}'; these have some: ${Object.keys(SWIN_V2_PRETRAINED).join(', ')}`,
      );
    return loadPretrained(name, config, () => SwinTransformerV2.fromPreset(name), options);
  }

  /** Builds the model from a preset name (see {@link SWIN_V2_PRESETS}), with overrides. */
  static fromPreset(name: SwinV2PresetName, overrides: SwinTransformerV2Options = {}): SwinTransformerV2 {
    const preset = SWIN_V2_PRESETS[name];
    if (!preset)
      throw new SkySenseError('E_ARG', `unknown Swin V2 preset '${name}'; expected one of ${Object.keys(SWIN_V2_PRESETS).join(', ')}`);
    return new SwinTransformerV2({ ...preset, ...overrides });
  }

  /**
   * Builds the model from the reference's own keyword arguments (an mmcls/mmseg config's
   * `backbone` dict, or a fixture's `kwargs`): snake_case names, `arch` as a name or a dict.
   * Arguments that do not change the computation (`with_cp`, `init_cfg`, `type`) are accepted;
   * unsupported values (another norm or patch config) are refused.
   */
  static fromConfig(kwargs: Record<string, unknown>): SwinTransformerV2 {
    return new SwinTransformerV2(swinOptionsFromConfig(kwargs));
  }
}

/** Translates mmcls `SwinTransformerV2(**kwargs)` arguments to {@link SwinTransformerV2Options}. */
export function swinOptionsFromConfig(kwargs: Record<string, unknown>): SwinTransformerV2Options {
  const { normCfg, patchCfg, stageCfgs, arch, ...rest } = readConfig(
    'SwinTransformerV2',
    kwargs,
    [
      'arch',
      'img_size',
      'patch_size',
      'in_channels',
      'window_size',
      'drop_rate',
      'drop_path_rate',
      'out_indices',
      'use_abs_pos_embed',
      'interpolate_mode',
      'frozen_stages',
      'norm_eval',
      'pad_small_map',
      'norm_cfg',
      'stage_cfgs',
      'patch_cfg',
      'pretrained_window_sizes',
    ],
    ['type', 'with_cp', 'init_cfg'],
  );
  const norm = normCfg as { type?: string } | undefined;
  if (norm && norm.type !== 'LN')
    throw new SkySenseError('E_UNSUPPORTED', `SwinTransformerV2 config: norm_cfg type '${norm.type}' (only LN is supported)`);
  if (patchCfg && Object.keys(patchCfg).length) throw new SkySenseError('E_UNSUPPORTED', 'SwinTransformerV2 config: a non-empty patch_cfg');
  const stage = stageCfgs as { downsample_cfg?: { is_post_norm?: boolean } } | undefined;
  const extra = [
    ...Object.keys(stage ?? {}).filter((k) => k !== 'downsample_cfg'),
    ...Object.keys(stage?.downsample_cfg ?? {}).filter((k) => k !== 'is_post_norm'),
  ];
  if (extra.length)
    throw new SkySenseError(
      'E_UNSUPPORTED',
      `SwinTransformerV2 config: stage_cfgs ${JSON.stringify(stage)} (only downsample_cfg.is_post_norm)`,
    );
  const a = arch as string | Record<string, unknown> | undefined;
  return {
    ...(rest as SwinTransformerV2Options),
    arch:
      typeof a === 'object' && a !== null
        ? {
            embedDims: a.embed_dims as number,
            depths: a.depths as number[],
            numHeads: a.num_heads as number[],
            extraNormEveryNBlocks: (a.extra_norm_every_n_blocks as number | undefined) ?? 0,
          }
        : (a as SwinV2ArchName | undefined),
    isPostNorm: stage?.downsample_cfg?.is_post_norm,
  };
}

const SWIN_KEY_RULES: readonly CheckpointKeyRule[] = [
  { pattern: /(^|\.)mask_token$/, when: 'ignored', why: 'pre-training mask token, not used by the encoder' },
  { pattern: /relative_(position_index|coords_table)$/, when: 'ignored', why: 'Swin V2 buffer, recomputed at construction' },
  {
    pattern: /^norm[0-3]\.(weight|bias)$/,
    when: 'missing',
    why: 'output norm absent from the released HR file; starts at LayerNorm defaults (1, 0)',
  },
];

/** Preset names: the mmcls archs, and `skysense-hr` (= `huge` configured as SkySense's downstream configs). */
export type SwinV2PresetName = 'tiny' | 'small' | 'base' | 'large' | 'huge' | 'giant' | 'skysense-hr';

/**
 * Presets as plain data. `huge` keeps mmcls's class defaults (`outIndices` [3]); `skysense-hr` is
 * the HR encoder as SkySense's segmentation/detection configs build it: huge arch, window 8,
 * all four stage outputs, drop-path 0.2, no small-map padding.
 */
export const SWIN_V2_PRESETS: Readonly<Record<SwinV2PresetName, SwinTransformerV2Options>> = {
  tiny: { arch: 'tiny' },
  small: { arch: 'small' },
  base: { arch: 'base' },
  large: { arch: 'large' },
  huge: { arch: 'huge' },
  giant: { arch: 'giant' },
  'skysense-hr': { arch: 'huge', windowSize: 8, outIndices: [0, 1, 2, 3], dropPathRate: 0.2, padSmallMap: false },
};
