import { VIT_PRETRAINED } from './pretrained';
import {
  Dropout,
  LayerNorm,
  Module,
  ModuleList,
  PatchEmbed,
  SkySenseError,
  TransformerEncoderLayer,
  assertInt,
  resolveTransformerStack,
  transformerConfigEps,
  TRANSFORMER_STACK_CONFIG_KEYS,
  TRANSFORMER_STACK_IGNORED_KEYS,
  transformerEncoderStack,
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
  type Tensor,
  type TransformerStackOptions,
  loadPretrained,
  type PretrainedOptions,
} from '@skysense/core-tensor';
import { SENTINEL1_BANDS, SENTINEL2_BANDS, VIT_PATCH_WEIGHT_KEY, selectPatchEmbedBands } from './bands';

/** Options of {@link VisionTransformer}; defaults are those of SkySense's official class (mmseg 0.x ViT with SkySense defaults). */
export interface VisionTransformerOptions extends TransformerStackOptions {
  /** Input size the position table is made for (table = (img / patch)² + 1 entries). Default 64. */
  imgSize?: number | [number, number];
  /** Default 4. */
  patchSize?: number;
  /** Input bands. Default 10. */
  inChannels?: number;
  /** Names of the input bands, for messages and band-subset helpers. Default: Sentinel-2 order for 10 bands, S1 for 2. */
  bandNames?: readonly string[];
  /** Layers whose tokens are returned; −1 = the last. Default [−1]. */
  outIndices?: number[];
  /**
   * Recorded from configs (mmseg returns `[map, cls]` pairs when set). `forward` always returns the
   * maps; {@link VisionTransformer.forwardWithCls} returns the cls tokens too. Default `false`.
   */
  outputClsToken?: boolean;
  /** LayerNorm after the patch conv. Default `false`. */
  patchNorm?: boolean;
  /** LayerNorm (`ln1`) after the last layer. Default `false`. */
  finalNorm?: boolean;
  /**
   * LayerNorm eps of every norm. Default 1e-5 (the official class); SkySense++ configs load the
   * same weights with 1e-6 — an open question which one pre-training used (difference ~1e-6).
   */
  layerNormEps?: number;
  /** Position-table resize mode. Default `bicubic`. */
  interpolateMode?: 'bicubic' | 'bilinear';
}

/** The VisionTransformer's outputs with cls tokens. */
export interface VitFeatures {
  /** `[B, D, h, w]` per out index. */
  maps: Tensor[];
  /** `[B, D]` per out index. */
  cls: Tensor[];
}

/** Preset names. */
export type VitPresetName = 'skysense-s2' | 'skysense-s1';

/** Presets as plain data (architecture guide §2). */
export const VIT_PRESETS: Readonly<Record<VitPresetName, VisionTransformerOptions>> = {
  'skysense-s2': { inChannels: 10, bandNames: SENTINEL2_BANDS },
  'skysense-s1': { inChannels: 2, bandNames: SENTINEL1_BANDS },
};

/** The released S2 file also holds the fusion's calendar table `ctpe` (skipped, or unexpected without a prefix). */
const VIT_KEY_RULES: readonly CheckpointKeyRule[] = ['ignored', 'unexpected'].map((when) => ({
  pattern: /(^|\.)ctpe$/,
  when: when as CheckpointKeyRule['when'],
  why: 'calendar-time position encoding; load it with @skysense/temporal-fusion',
}));

/** Checkpoint prefixes a loader recognises: the released flat files and the pre-training checkpoint. */
export const VIT_PREFIXES: readonly string[] = ['', 'backbone_s2.', 'backbone_s1.', 'backbone.'];

/** {@link VisionTransformerOptions} with every default filled in. */
export type ResolvedVitOptions = Required<Omit<VisionTransformerOptions, 'imgSize' | 'bandNames'>> & {
  imgSize: [number, number];
  bandNames: readonly string[];
};

function defaultBands(n: number): readonly string[] {
  if (n === SENTINEL2_BANDS.length) return SENTINEL2_BANDS;
  if (n === SENTINEL1_BANDS.length) return SENTINEL1_BANDS;
  return Array.from({ length: n }, (_, i) => `band${i + 1}`);
}

/**
 * SkySense's Sentinel encoder: the mmseg 0.x `VisionTransformer` with SkySense's defaults (patch 4,
 * 64 px / 257-entry position table, no patch norm, no final norm). Key names are mmseg's
 * (`layers.N.ln1`, `layers.N.attn.attn.in_proj_weight`, …) so the released files load as they are.
 * Input `[B, bands, H, W]`; output one `[B, D, ⌈H/4⌉, ⌈W/4⌉]` map per `outIndices` entry.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { VisionTransformer } from '@skysense/vit';
 * await initBackend();
 * const s2 = VisionTransformer.fromPreset('skysense-s2', { outIndices: [5, 11, 17, 23] });
 * const [f] = s2.eval().forward(tf.zeros([1, 10, 64, 64])); // [1, 1024, 16, 16]
 * ```
 */
export class VisionTransformer extends Module implements FeatureEncoder {
  readonly options: ResolvedVitOptions;
  readonly clsToken: Parameter;
  readonly posEmbed: Parameter;
  readonly patchEmbed: PatchEmbed;
  readonly layers: ModuleList<TransformerEncoderLayer>;
  readonly finalNormLayer: LayerNorm | null;
  private readonly dropAfterPos: Dropout;
  /** Position-table grid `[h, w]`. */
  readonly posGrid: [number, number];

  constructor(options: VisionTransformerOptions = {}) {
    super();
    const img = options.imgSize ?? 64;
    const inChannels = assertInt('inChannels', options.inChannels ?? 10, 1);
    const o: ResolvedVitOptions = {
      imgSize: typeof img === 'number' ? [img, img] : img,
      patchSize: assertInt('patchSize', options.patchSize ?? 4, 1),
      inChannels,
      bandNames: options.bandNames ?? defaultBands(inChannels),
      ...resolveTransformerStack(options),
      outIndices: options.outIndices ?? [-1],
      outputClsToken: options.outputClsToken ?? false,
      patchNorm: options.patchNorm ?? false,
      finalNorm: options.finalNorm ?? false,
      interpolateMode: options.interpolateMode ?? 'bicubic',
    };
    if (o.bandNames.length !== inChannels)
      throw new SkySenseError('E_ARG', `bandNames: ${o.bandNames.length} names for inChannels ${inChannels}`);
    o.outIndices = o.outIndices.map((i) => (i < 0 ? o.numLayers + i : i));
    o.outIndices.forEach((i) => assertInt('outIndices[]', i, 0, o.numLayers - 1));
    o.outIndices = [...new Set(o.outIndices)].sort((a, b) => a - b); // forward returns maps in layer order
    if (o.outputClsToken && !o.withClsToken) throw new SkySenseError('E_ARG', 'outputClsToken needs withClsToken');
    this.options = o;
    const d = o.embedDims;
    this.posGrid = [Math.floor(o.imgSize[0] / o.patchSize), Math.floor(o.imgSize[1] / o.patchSize)];
    this.clsToken = this.registerParameter('cls_token', [1, 1, d], truncNormal(0.02));
    this.posEmbed = this.registerParameter('pos_embed', [1, this.posGrid[0] * this.posGrid[1] + 1, d], truncNormal(0.02));
    this.patchEmbed = this.registerModule(
      'patch_embed',
      new PatchEmbed({ inChannels, embedDims: d, kernelSize: o.patchSize, norm: o.patchNorm }),
    );
    this.dropAfterPos = this.registerModule('drop_after_pos', new Dropout(o.dropRate));
    this.layers = this.registerModule('layers', transformerEncoderStack(o));
    this.finalNormLayer = o.finalNorm ? this.registerModule('ln1', new LayerNorm(d, { eps: o.layerNormEps })) : null;
  }

  /**
   * Builds a preset and loads its released checkpoint ({@link VIT_PRETRAINED}: file, prefix, input
   * bands and normalisation), from `options.weights`, the cache, or `options.url`.
   * @throws SkySenseError `E_WEIGHTS` when the file is not found (saying where it comes from).
   */
  static fromPretrained(name: VitPresetName, options: PretrainedOptions = {}): Promise<VisionTransformer> {
    const config = VIT_PRETRAINED[name];
    if (!config)
      throw new SkySenseError('E_ARG', `unknown ViT preset '${name}'; expected one of ${Object.keys(VIT_PRETRAINED).join(', ')}`);
    return loadPretrained(name, config, () => VisionTransformer.fromPreset(name), options);
  }

  /** Builds a preset (`skysense-s2`, `skysense-s1`) with overrides. */
  static fromPreset(name: VitPresetName, overrides: VisionTransformerOptions = {}): VisionTransformer {
    const preset = VIT_PRESETS[name];
    if (!preset) throw new SkySenseError('E_ARG', `unknown ViT preset '${name}'; expected one of ${Object.keys(VIT_PRESETS).join(', ')}`);
    return new VisionTransformer({ ...preset, ...overrides });
  }

  /** Builds the model from the reference's keyword arguments (snake_case, as in a fixture's `kwargs` or an mmseg config). */
  static fromConfig(kwargs: Record<string, unknown>): VisionTransformer {
    return new VisionTransformer(vitOptionsFromConfig(kwargs));
  }

  /**
   * Checks an input shape; a wrong band count names the bands the encoder expects.
   * @returns the token grid `[h, w]`.
   */
  validateInput(shape: readonly number[]): [number, number] {
    const o = this.options;
    if (shape.length !== 4)
      throw new SkySenseError('E_SHAPE', `VisionTransformer input: expected [N, ${o.inChannels}, H, W], got ${formatShape(shape)}`);
    if (shape[1] !== o.inChannels) {
      throw new SkySenseError(
        'E_BANDS',
        `VisionTransformer input: expected ${o.inChannels} bands (${o.bandNames.join(', ')}) at dimension 1, got ${shape[1]} in ${formatShape(shape)}. ` +
          'For a subset of the bands, build the model with those bands and load selectBandsStateDict(...).',
      );
    }
    return [Math.ceil(shape[2]! / o.patchSize), Math.ceil(shape[3]! / o.patchSize)];
  }

  /** Keys the released files and this model disagree on by design (labelled in load reports). */
  override checkpointKeyRules(): readonly CheckpointKeyRule[] {
    return VIT_KEY_RULES;
  }

  /** Channels of the maps {@link VisionTransformer.forward} returns: the embedding width, once per out index. */
  get featureChannels(): number[] {
    return this.options.outIndices.map(() => this.options.embedDims);
  }

  /** Runs the encoder. @returns `[B, D, h, w]` per out index. */
  forward(x: Tensor): Tensor[] {
    return this.run(x, false).maps;
  }

  /** Runs the encoder and also returns the cls token of each out index (`output_cls_token=True` in mmseg). */
  forwardWithCls(x: Tensor): VitFeatures {
    if (!this.options.withClsToken) throw new SkySenseError('E_ARG', 'forwardWithCls: the model was built with withClsToken: false');
    return this.run(x, true);
  }

  /**
   * Encodes a time series frame by frame: `[B, T, bands, H, W]` → one `[B, T, D, h, w]` per out
   * index (frames are a batch for the encoder).
   */
  forwardSeries(x: Tensor): Tensor[] {
    if (x.rank !== 5)
      throw new SkySenseError(
        'E_SHAPE',
        `forwardSeries input: expected [B, T, ${this.options.inChannels}, H, W], got ${formatShape(x.shape)}`,
      );
    const [b, t, c, h, w] = x.shape as [number, number, number, number, number];
    this.validateInput([b * t, c, h, w]);
    return tf.tidy(() => this.forward(tf.reshape(x, [b * t, c, h, w])).map((m) => tf.reshape(m, [b, t, ...m.shape.slice(1)])));
  }

  private run(x: Tensor, withCls: boolean): VitFeatures {
    const [h, w] = this.validateInput(x.shape);
    if (x.dtype !== 'float32') throw new SkySenseError('E_DTYPE', `VisionTransformer input: expected float32, got ${x.dtype}`);
    const o = this.options;
    const kept = tf.tidy(() => {
      const b = x.shape[0]!;
      const d = o.embedDims;
      const patches = tf.reshape(this.patchEmbed.forward(x), [b, h * w, d]);
      let tokens = tf.concat([tf.tile(this.clsToken.value, [b, 1, 1]), patches], 1);
      tokens = this.dropAfterPos.forward(tf.add(tokens, this.positionTable(h, w)));
      if (!o.withClsToken) tokens = tf.slice(tokens, [0, 1, 0], [b, h * w, d]);
      const maps: Tensor[] = [];
      const cls: Tensor[] = [];
      [...this.layers].forEach((layer, i) => {
        tokens = layer.forward(tokens);
        if (i === o.numLayers - 1 && this.finalNormLayer) tokens = this.finalNormLayer.forward(tokens);
        if (!o.outIndices.includes(i)) return;
        const start = o.withClsToken ? 1 : 0;
        maps.push(tf.transpose(tf.reshape(tf.slice(tokens, [0, start, 0], [b, h * w, d]), [b, h, w, d]), [0, 3, 1, 2]));
        if (withCls) cls.push(tf.reshape(tf.slice(tokens, [0, 0, 0], [b, 1, d]), [b, d]));
      });
      return [...maps, ...cls];
    });
    return { maps: kept.slice(0, o.outIndices.length), cls: kept.slice(o.outIndices.length) };
  }

  /**
   * The position table for an `h × w` token grid, as the reference computes it: the stored table
   * when the token *count* matches (even for a differently shaped grid), else the cls entry plus the
   * grid resized with `interpolateMode` (align_corners false).
   */
  positionTable(h: number, w: number): Tensor {
    const [ph, pw] = this.posGrid;
    if (h * w === ph * pw) return this.posEmbed.value;
    return tf.tidy(() => {
      const d = this.options.embedDims;
      const table = this.posEmbed.value;
      const grid = tf.transpose(tf.reshape(tf.slice(table, [0, 1, 0], [1, ph * pw, d]), [1, ph, pw, d]), [0, 3, 1, 2]);
      const resized = interpolate(grid, { size: [h, w], mode: this.options.interpolateMode, alignCorners: false });
      return tf.concat([tf.slice(table, [0, 0, 0], [1, 1, d]), tf.reshape(tf.transpose(resized, [0, 2, 3, 1]), [1, h * w, d])], 1);
    });
  }

  /**
   * Loads the released flat files (or a pre-training checkpoint: `backbone_s2.` / `backbone_s1.`
   * prefixes are found automatically). The extra top-level `ctpe` (the calendar position encoding)
   * belongs to `@skysense/temporal-fusion`: it is skipped and a note says where to load it.
   */
  override loadStateDict(dict: StateDictLike, options: LoadStateDictOptions = {}): LoadReport {
    const source = toStateDictSource(dict);
    const prefix = options.prefix ?? inferPrefix(source.keys(), this.stateShapes().keys(), VIT_PREFIXES);
    const report = super.loadStateDict(source, { ...options, prefix, ignore: ['ctpe', ...(options.ignore ?? [])] });
    if (report.ignored.includes(`${prefix}ctpe`) || report.ignored.includes('ctpe')) {
      report.notes = [
        ...(report.notes ?? []),
        "'ctpe' (calendar-time position encoding) belongs to @skysense/temporal-fusion: load it there",
      ];
    }
    return report;
  }
}

/**
 * A copy of a ViT state dict whose patch embedding keeps only `subset` of `bandNames` (see
 * {@link selectPatchEmbedBands}); load it into a model built with `inChannels: subset.length,
 * bandNames: subset`. The caller disposes the new weight tensor.
 * @example
 * ```ts
 * import { initBackend, loadSafetensors } from '@skysense/core-tensor';
 * import { SENTINEL2_BANDS, VisionTransformer, selectBandsStateDict } from '@skysense/vit';
 * await initBackend();
 * // keep the patch-embedding input channels of the bands you have (here 4 of the 10)
 * const mine = ['B2', 'B3', 'B4', 'B8'];
 * const state = selectBandsStateDict(loadSafetensors('skysense_model_backbone_s2.safetensors'), SENTINEL2_BANDS, mine);
 * VisionTransformer.fromPreset('skysense-s2', { inChannels: 4, bandNames: mine }).loadStateDict(state, { strict: false });
 * ```
 */
export function selectBandsStateDict(
  dict: Map<string, Tensor>,
  bandNames: readonly string[],
  subset: readonly string[],
  prefix = '',
): Map<string, Tensor> {
  const key = prefix + VIT_PATCH_WEIGHT_KEY;
  const w = dict.get(key);
  if (!w) throw new SkySenseError('E_STATE_DICT', `selectBandsStateDict: the state dict has no '${key}'`);
  return new Map([...dict].map(([k, v]) => [k, k === key ? selectPatchEmbedBands(v, bandNames, subset) : v]));
}

/** Translates the reference `VisionTransformer(**kwargs)` arguments to {@link VisionTransformerOptions}. */
export function vitOptionsFromConfig(kwargs: Record<string, unknown>): VisionTransformerOptions {
  const { normCfg, actCfg, numFcs, outIndices, ...rest } = readConfig(
    'VisionTransformer',
    kwargs,
    [
      'img_size',
      'patch_size',
      'in_channels',
      'out_indices',
      'patch_norm',
      'final_norm',
      'interpolate_mode',
      ...TRANSFORMER_STACK_CONFIG_KEYS,
    ],
    [...TRANSFORMER_STACK_IGNORED_KEYS, 'pretrained'],
  );
  const layerNormEps = transformerConfigEps('VisionTransformer', normCfg, actCfg, numFcs);
  return {
    ...(rest as VisionTransformerOptions),
    outIndices: outIndices === undefined ? undefined : typeof outIndices === 'number' ? [outIndices] : (outIndices as number[]),
    layerNormEps,
  };
}
