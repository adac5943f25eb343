import { tf, type Tensor } from '../tf';
import { assertInRange, assertInt, assertPositive, assertShape } from '../validate';
import { Module } from '../module';
import { SkySenseError } from '../errors';
import { ModuleList } from './containers';
import { type ActivationName } from './activation';
import { Dropout } from './dropout';
import { FFN } from './ffn';
import { MultiheadAttention } from './multihead-attention';
import { LayerNorm } from './norm';

/** Options of {@link MmcvMultiheadAttention}, with mmcv 1.x defaults. */
export interface MmcvAttentionOptions {
  /** Attention-weight dropout. Default 0. */
  attnDrop?: number;
  /** Dropout on the attention output. Default 0. */
  projDrop?: number;
  /** Biases of the q/k/v and output projections. Default `true`. */
  bias?: boolean;
  /** Tokens are `[B, N, C]` (default `true`, as mmseg's ViT passes). */
  batchFirst?: boolean;
}

/**
 * mmcv's `MultiheadAttention` wrapper: holds `torch.nn.MultiheadAttention` as `attn` (hence the
 * `attn.attn.in_proj_weight` keys of mmseg checkpoints) and returns `identity + proj_drop(attention)`.
 * @example
 * ```ts
 * import { initBackend, MmcvMultiheadAttention, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // mmcv's MultiheadAttention wrapper: attn.in_proj_weight, attn.out_proj.*, plus the residual
 * const attn = new MmcvMultiheadAttention(64, 4, { batchFirst: true });
 * console.log(attn.forward(tf.randomNormal([2, 17, 64])).shape); // [2, 17, 64]
 * ```
 */
export class MmcvMultiheadAttention extends Module {
  readonly attn: MultiheadAttention;
  private readonly projDrop: Dropout;

  constructor(embedDims: number, numHeads: number, options: MmcvAttentionOptions = {}) {
    super();
    this.attn = this.registerModule(
      'attn',
      new MultiheadAttention(embedDims, numHeads, {
        dropout: options.attnDrop ?? 0,
        bias: options.bias ?? true,
        batchFirst: options.batchFirst ?? true,
      }),
    );
    this.projDrop = this.registerModule('proj_drop', new Dropout(options.projDrop ?? 0));
  }

  /** Self-attention of `x` plus `identity` (default `x`); `keyPaddingMask` `[B, N]` bool marks padding. */
  forward(x: Tensor, identity: Tensor = x, keyPaddingMask?: Tensor): Tensor {
    return tf.tidy(() => tf.add(identity, this.projDrop.forward(this.attn.forward(x, x, x, { keyPaddingMask }).output)));
  }
}

/** Options of {@link TransformerEncoderLayer}, with mmseg 0.x defaults. */
export interface TransformerEncoderLayerOptions {
  embedDims: number;
  numHeads: number;
  feedforwardChannels: number;
  /** Dropout after attention and inside the FFN. Default 0. */
  dropRate?: number;
  /** Attention-weight dropout. Default 0. */
  attnDropRate?: number;
  /** Drop-path on the FFN branch only (as mmseg's ViT). Default 0. */
  dropPathRate?: number;
  /** Default 2. */
  numFcs?: number;
  /** Default `true`. */
  qkvBias?: boolean;
  /** Default `gelu` (exact erf). */
  act?: ActivationName;
  /** LayerNorm eps. Default 1e-5 (mmcv's LN default). */
  normEps?: number;
  /** Default `true`. */
  batchFirst?: boolean;
}

/**
 * mmseg 0.x `TransformerEncoderLayer` (pre-norm): `x + attn(ln1(x))`, then `x + ffn(ln2(x))`.
 * Keys `ln1.*`, `attn.attn.{in_proj_weight, in_proj_bias, out_proj.*}`, `ln2.*`,
 * `ffn.layers.0.0.*`, `ffn.layers.1.*` — the Sentinel ViT and the fusion transformer of SkySense.
 * @example
 * ```ts
 * import { initBackend, tf, TransformerEncoderLayer } from '@skysense/core-tensor';
 * await initBackend();
 * // mmseg 0.x ViT layer: ln1 → attn → ln2 → ffn, pre-norm with residuals
 * const layer = new TransformerEncoderLayer({ embedDims: 64, numHeads: 4, feedforwardChannels: 256 });
 * console.log(layer.forward(tf.randomNormal([2, 17, 64])).shape); // [2, 17, 64]
 * ```
 */
export class TransformerEncoderLayer extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MmcvMultiheadAttention;
  readonly ln2: LayerNorm;
  readonly ffn: FFN;

  constructor(o: TransformerEncoderLayerOptions) {
    super();
    assertInt('embedDims', o.embedDims, 1);
    const eps = assertPositive('normEps', o.normEps ?? 1e-5);
    const drop = assertInRange('dropRate', o.dropRate ?? 0, 0, 1);
    this.ln1 = this.registerModule('ln1', new LayerNorm(o.embedDims, { eps }));
    this.attn = this.registerModule(
      'attn',
      new MmcvMultiheadAttention(o.embedDims, o.numHeads, {
        attnDrop: o.attnDropRate,
        projDrop: drop,
        bias: o.qkvBias,
        batchFirst: o.batchFirst,
      }),
    );
    this.ln2 = this.registerModule('ln2', new LayerNorm(o.embedDims, { eps }));
    this.ffn = this.registerModule(
      'ffn',
      new FFN({
        embedDims: o.embedDims,
        feedforwardChannels: o.feedforwardChannels,
        numFcs: o.numFcs,
        ffnDrop: drop,
        dropPath: o.dropPathRate,
        act: o.act ?? 'gelu',
      }),
    );
  }

  /** `x` `[B, N, C]` (batch-first); `keyPaddingMask` `[B, N]` bool marks padding tokens. */
  forward(x: Tensor, keyPaddingMask?: Tensor): Tensor {
    assertShape('TransformerEncoderLayer input', x, [null, null, this.ffn.embedDims]);
    return tf.tidy(() => {
      const h = this.attn.forward(this.ln1.forward(x), x, keyPaddingMask);
      return this.ffn.forward(this.ln2.forward(h), h);
    });
  }
}

/**
 * Options shared by the mmseg-style stacks of {@link TransformerEncoderLayer} (SkySense's Sentinel ViT
 * and its fusion transformer), with the defaults both use.
 */
export interface TransformerStackOptions {
  /** Token width. Default 1024. */
  embedDims?: number;
  /** Default 24. */
  numLayers?: number;
  /** Default 16. */
  numHeads?: number;
  /** FFN width = mlpRatio · embedDims. Default 4. */
  mlpRatio?: number;
  /** Default `true`. */
  qkvBias?: boolean;
  /** Default 0. */
  dropRate?: number;
  /** Default 0. */
  attnDropRate?: number;
  /** Drop-path rate, rising linearly over the layers, FFN branch only. Default 0.3. */
  dropPathRate?: number;
  /** Prepend a cls token. Default `true`. */
  withClsToken?: boolean;
  /** LayerNorm eps. Default 1e-5. */
  layerNormEps?: number;
}

/** Fills in and checks the defaults of {@link TransformerStackOptions}. */
export function resolveTransformerStack(o: TransformerStackOptions): Required<TransformerStackOptions> {
  return {
    embedDims: assertInt('embedDims', o.embedDims ?? 1024, 1),
    numLayers: assertInt('numLayers', o.numLayers ?? 24, 1),
    numHeads: assertInt('numHeads', o.numHeads ?? 16, 1),
    mlpRatio: assertPositive('mlpRatio', o.mlpRatio ?? 4),
    qkvBias: o.qkvBias ?? true,
    dropRate: assertInRange('dropRate', o.dropRate ?? 0, 0, 1),
    attnDropRate: assertInRange('attnDropRate', o.attnDropRate ?? 0, 0, 1),
    dropPathRate: assertInRange('dropPathRate', o.dropPathRate ?? 0.3, 0, 1),
    withClsToken: o.withClsToken ?? true,
    layerNormEps: assertPositive('layerNormEps', o.layerNormEps ?? 1e-5),
  };
}

/** `numLayers` pre-norm layers whose drop-path rises linearly from 0 to `dropPathRate` (mmseg's `dpr`). */
export function transformerEncoderStack(o: Required<TransformerStackOptions>): ModuleList<TransformerEncoderLayer> {
  const dpr = (i: number) => (o.numLayers > 1 ? (o.dropPathRate * i) / (o.numLayers - 1) : 0);
  return new ModuleList(
    Array.from(
      { length: o.numLayers },
      (_, i) =>
        new TransformerEncoderLayer({
          embedDims: o.embedDims,
          numHeads: o.numHeads,
          feedforwardChannels: Math.floor(o.mlpRatio * o.embedDims),
          dropRate: o.dropRate,
          attnDropRate: o.attnDropRate,
          dropPathRate: dpr(i),
          qkvBias: o.qkvBias,
          normEps: o.layerNormEps,
        }),
    ),
  );
}

/** The reference keyword arguments every mmcv/mmseg transformer stack takes (snake_case), for `readConfig`. */
export const TRANSFORMER_STACK_CONFIG_KEYS: readonly string[] = [
  'embed_dims',
  'num_layers',
  'num_heads',
  'mlp_ratio',
  'qkv_bias',
  'drop_rate',
  'attn_drop_rate',
  'drop_path_rate',
  'with_cls_token',
  'output_cls_token',
  'norm_cfg',
  'act_cfg',
  'num_fcs',
];

/** Reference keyword arguments of a transformer stack that do not change the computation (ignored by `readConfig`). */
export const TRANSFORMER_STACK_IGNORED_KEYS: readonly string[] = ['type', 'norm_eval', 'with_cp', 'init_cfg'];

/**
 * Checks the mmcv `norm_cfg` / `act_cfg` / `num_fcs` of a reference transformer config (only LN,
 * GELU and two FFN layers exist here) and returns the LayerNorm eps it sets, if any.
 * @throws SkySenseError `E_UNSUPPORTED` naming the setting.
 */
export function transformerConfigEps(what: string, normCfg: unknown, actCfg: unknown, numFcs: unknown): number | undefined {
  const norm = normCfg as { type?: string; eps?: number } | undefined;
  if (norm?.type !== undefined && norm.type !== 'LN')
    throw new SkySenseError('E_UNSUPPORTED', `${what} config: norm_cfg type '${norm.type}' (only LN)`);
  const act = actCfg as { type?: string } | undefined;
  if (act?.type !== undefined && act.type !== 'GELU')
    throw new SkySenseError('E_UNSUPPORTED', `${what} config: act_cfg type '${act.type}' (only GELU)`);
  if (numFcs !== undefined && numFcs !== 2) throw new SkySenseError('E_UNSUPPORTED', `${what} config: num_fcs ${String(numFcs)} (only 2)`);
  return norm?.eps;
}
