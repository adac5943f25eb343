import { SkySenseError } from '../errors';
import { assertInRange, assertInt, assertPositive } from '../validate';
import type { Parameter } from '../module';
import type { ParamGroup } from './optimizers';

/** Layer-wise learning-rate decay, as mmseg's `LayerDecayOptimizerConstructor` family. */
export interface LayerDecayOptions {
  /** Decay rate per layer (e.g. 0.9). */
  rate: number;
  /** Number of layers of the backbone (e.g. 24 for Swin-V2 2-2-18-2). Ids run 0 … numLayers + 1. */
  numLayers: number;
  /** Layer id of a parameter: 0 for embeddings, 1 … numLayers for blocks, numLayers + 1 for the head. */
  layerId: (name: string) => number;
}

/** Options of {@link buildParamGroups}. */
export interface ParamGroupOptions {
  /** Base learning rate. */
  lr: number;
  /** Weight decay of decayed parameters. */
  weightDecay: number;
  /**
   * Parameters that get no weight decay. Default: 1-D tensors (norms, biases), names ending in
   * `.bias`, and names whose last part is in {@link DEFAULT_NO_DECAY_NAMES}.
   */
  noDecay?: (name: string, p: Parameter) => boolean;
  /** Layer-wise learning-rate decay; without it every parameter gets `lr`. */
  layerDecay?: LayerDecayOptions;
}

/** Position tables and tokens that transformer recipes exclude from weight decay. */
export const DEFAULT_NO_DECAY_NAMES: readonly string[] = [
  'pos_embed',
  'cls_token',
  'absolute_pos_embed',
  'relative_position_bias_table',
  'logit_scale',
  'mask_token',
  'ctpe',
];

/** The default no-decay rule (see {@link ParamGroupOptions.noDecay}). */
export function defaultNoDecay(name: string, p: Parameter): boolean {
  const last = name.split('.').pop()!;
  return p.shape.length <= 1 || name.endsWith('.bias') || DEFAULT_NO_DECAY_NAMES.includes(last);
}

/**
 * Splits named parameters into optimizer groups: decay / no-decay, and with `layerDecay` one
 * pair per layer whose rate is `lr · rate^(numLayers + 1 − layerId)` (mmseg: `num_layers + 2`
 * ids, `scale = rate ** (num_layers − layer_id − 1)`). Frozen parameters are left out.
 * Groups are named `layer_{id}_{decay|no_decay}` as mmseg does.
 */
export function buildParamGroups(named: Iterable<[string, Parameter]>, options: ParamGroupOptions): ParamGroup[] {
  const lr = assertPositive('lr', options.lr);
  const wd = assertInRange('weightDecay', options.weightDecay, 0, Infinity);
  const noDecay = options.noDecay ?? defaultNoDecay;
  const ld = options.layerDecay;
  if (ld) {
    assertInRange('layerDecay.rate', ld.rate, 0, 1);
    assertInt('layerDecay.numLayers', ld.numLayers, 1);
  }
  const groups = new Map<string, ParamGroup>();
  for (const [name, p] of named) {
    if (!p.requiresGrad) continue;
    const decay = !noDecay(name, p);
    let id = 0;
    let scale = 1;
    if (ld) {
      id = ld.layerId(name);
      if (!Number.isInteger(id) || id < 0 || id > ld.numLayers + 1) {
        throw new SkySenseError('E_ARG', `layerId('${name}') returned ${id}, expected an integer in [0, ${ld.numLayers + 1}]`);
      }
      scale = ld.rate ** (ld.numLayers + 1 - id);
    }
    const key = `layer_${id}_${decay ? 'decay' : 'no_decay'}`;
    let g = groups.get(key);
    if (!g) {
      g = { name: key, params: [], lr: lr * scale, weightDecay: decay ? wd : 0 };
      groups.set(key, g);
    }
    g.params.push(p);
  }
  return [...groups.values()];
}
