import type { Module } from './module';
import type { Tensor } from './tf';

/**
 * The contract of an encoder under a task head (timm's `features_only` model with its
 * `feature_info`): `forward` maps an input batch to a list of feature maps `[B, C_i, H_i, W_i]`,
 * and `featureChannels[i]` is `C_i`, known before any forward pass, so heads can be built to fit.
 * Swin V2 and the Sentinel ViT implement it; any `Module` that does can sit under a `Segmentor`,
 * `Classifier` or `ChangeDetector`.
 */
export interface FeatureEncoder<I = Tensor> extends Module {
  forward(x: I): Tensor[];
  /** Channels of each output map, in output order. */
  readonly featureChannels: readonly number[];
}
