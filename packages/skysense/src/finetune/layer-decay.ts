import { AdamW, type Module, type ParamGroup, SkySenseError, buildParamGroups } from '@skysense/core-tensor';
import { SwinTransformerV2 } from '@skysense/swin';
import { VisionTransformer } from '@skysense/vit';

/**
 * Layer id of a Swin V2 (mmcls naming) parameter for layer-wise learning-rate decay, as SkySense's
 * `SwinV2LayerDecayOptimizerConstructor` counts layers (num_layers = Σ depths = 24 for 2-2-18-2):
 * `patch_embed` and `absolute_pos_embed` → 0; `stages.i.blocks.j` → Σ depths[<i] + j + 1;
 * `stages.i.downsample` (mmcls puts the merging at the start of stage i) → Σ depths[<i], the id of
 * the block it follows (Swin V1's downsample-at-the-end convention); anything else (output norms,
 * neck, heads) → num_layers + 1, which keeps the base rate.
 */
export function swinLayerId(name: string, depths: readonly number[], prefix = 'backbone.'): number {
  const numLayers = depths.reduce((a, b) => a + b, 0);
  if (!name.startsWith(prefix)) return numLayers + 1;
  const rest = name.slice(prefix.length);
  if (rest.startsWith('patch_embed.') || rest === 'absolute_pos_embed') return 0;
  const m = /^stages\.(\d+)\.(blocks\.(\d+)|downsample)\./.exec(rest);
  if (!m) return numLayers + 1;
  const before = depths.slice(0, Number(m[1])).reduce((a, b) => a + b, 0);
  return m[3] === undefined ? before : before + Number(m[3]) + 1;
}

/**
 * Layer id of an mmseg ViT parameter (BEiT / mmseg `LayerDecayOptimizerConstructor`): `cls_token`,
 * `pos_embed`, `patch_embed` → 0; `layers.i` → i + 1; anything else → num_layers + 1.
 */
export function vitLayerId(name: string, numLayers: number, prefix = 'backbone.'): number {
  if (!name.startsWith(prefix)) return numLayers + 1;
  const rest = name.slice(prefix.length);
  if (rest === 'cls_token' || rest === 'pos_embed' || rest.startsWith('patch_embed.')) return 0;
  const m = /^layers\.(\d+)\./.exec(rest);
  return m ? Number(m[1]) + 1 : numLayers + 1;
}

/** Options of {@link finetuneOptimizer}; the defaults are SkySense's iSAID config. */
export interface FinetuneOptimizerOptions {
  /** Base learning rate (the head's). Default 6e-5. */
  lr?: number;
  /** Default 0.01. */
  weightDecay?: number;
  /** Layer-wise decay rate of the encoder (1 = none). Default 0.9. */
  layerDecayRate?: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
}

/**
 * AdamW over the trainable parameters of a model whose encoder is registered as `backbone`, with
 * layer-wise learning-rate decay over a Swin V2 or ViT encoder and no weight decay for biases, norms
 * and position tables. Frozen parameters are left out.
 */
export function finetuneOptimizer(
  model: Module & { backbone: Module },
  o: FinetuneOptimizerOptions = {},
): { optimizer: AdamW; groups: ParamGroup[] } {
  const rate = o.layerDecayRate ?? 0.9;
  const enc = model.backbone;
  let layerDecay;
  if (rate !== 1) {
    if (enc instanceof SwinTransformerV2) {
      const depths = enc.arch.depths;
      layerDecay = { rate, numLayers: depths.reduce((a, b) => a + b, 0), layerId: (n: string) => swinLayerId(n, depths) };
    } else if (enc instanceof VisionTransformer) {
      const numLayers = enc.layers.length;
      layerDecay = { rate, numLayers, layerId: (n: string) => vitLayerId(n, numLayers) };
    } else {
      throw new SkySenseError(
        'E_ARG',
        `layerDecayRate ${rate}: layer-wise decay knows Swin V2 and ViT encoders, got ${enc.constructor.name} (use layerDecayRate 1)`,
      );
    }
  }
  const groups = buildParamGroups(model.namedParameters(), { lr: o.lr ?? 6e-5, weightDecay: o.weightDecay ?? 0.01, layerDecay });
  return { optimizer: new AdamW(groups, { betas: o.betas }), groups };
}
