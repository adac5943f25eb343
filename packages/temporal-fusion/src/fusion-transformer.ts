import {
  Linear,
  Module,
  ModuleList,
  SkySenseError,
  TransformerEncoderLayer,
  assertInt,
  formatShape,
  readConfig,
  resolveTransformerStack,
  tf,
  transformerConfigEps,
  TRANSFORMER_STACK_CONFIG_KEYS,
  TRANSFORMER_STACK_IGNORED_KEYS,
  transformerEncoderStack,
  truncNormal,
  type Parameter,
  type Tensor,
  type TransformerStackOptions,
} from '@skysense/core-tensor';

/** Options of {@link FusionTransformer}; defaults are SkySense's fusion (architecture guide §3). */
export interface FusionTransformerOptions extends TransformerStackOptions {
  /** Width of the incoming tokens (the up-heads' and Swin's 2816). Default 2816. */
  inputDims?: number;
  /** Output the cls token per sequence (F_fus^mm) instead of the other tokens. Default `true`. */
  outputClsToken?: boolean;
}

/**
 * SkySense's fusion `TransformerEncoder`: `porj_linear` [sic] projects every token to the fusion
 * width, the cls token is prepended, then mmseg-style pre-norm layers, no final norm; the output is
 * the cls token. Keys `cls_token`, `porj_linear.*`, `layers.N.*`, as `skysense_model_fusion.pth`.
 * Sequences of different lengths share a batch through a key-padding mask.
 * @example
 * ```ts
 * import { initBackend, tf } from '@skysense/core-tensor';
 * import { FusionTransformer } from '@skysense/temporal-fusion';
 * await initBackend();
 * // per-location sequences over time and modalities → the cls token (porj_linear, cls_token, layers)
 * const fusion = new FusionTransformer({ inputDims: 64, embedDims: 32, numLayers: 2, numHeads: 4 });
 * const tokens = tf.randomNormal([16, 5, 64]); // 16 locations × 5 tokens
 * console.log(fusion.forward(tokens).shape); // [16, 32]
 * ```
 */
export class FusionTransformer extends Module {
  readonly options: Required<FusionTransformerOptions>;
  readonly clsToken: Parameter;
  readonly porjLinear: Linear;
  readonly layers: ModuleList<TransformerEncoderLayer>;

  constructor(options: FusionTransformerOptions = {}) {
    super();
    const o: Required<FusionTransformerOptions> = {
      inputDims: assertInt('inputDims', options.inputDims ?? 2816, 1),
      ...resolveTransformerStack(options),
      outputClsToken: options.outputClsToken ?? true,
    };
    if (o.outputClsToken && !o.withClsToken) throw new SkySenseError('E_ARG', 'outputClsToken needs withClsToken');
    this.options = o;
    this.clsToken = this.registerParameter('cls_token', [1, 1, o.embedDims], truncNormal(0.02));
    this.porjLinear = this.registerModule('porj_linear', new Linear(o.inputDims, o.embedDims));
    this.layers = this.registerModule('layers', transformerEncoderStack(o));
  }

  /** From the reference keyword arguments (snake_case). */
  static fromConfig(kwargs: Record<string, unknown>): FusionTransformer {
    const { normCfg, actCfg, numFcs, ...rest } = readConfig(
      'TransformerEncoder',
      kwargs,
      ['input_dims', ...TRANSFORMER_STACK_CONFIG_KEYS],
      TRANSFORMER_STACK_IGNORED_KEYS,
    );
    const layerNormEps = transformerConfigEps('TransformerEncoder', normCfg, actCfg, numFcs);
    return new FusionTransformer({ ...(rest as FusionTransformerOptions), layerNormEps });
  }

  /**
   * @param x `[N, L, inputDims]` token sequences.
   * @param keyPaddingMask `[N, L]` bool, `true` for padding tokens (never attended to).
   * @returns `[N, embedDims]` (the cls token) with `outputClsToken`, else `[N, L, embedDims]`.
   */
  forward(x: Tensor, keyPaddingMask?: Tensor): Tensor {
    const o = this.options;
    if (x.rank !== 3 || x.shape[2] !== o.inputDims)
      throw new SkySenseError('E_SHAPE', `FusionTransformer input: expected [N, L, ${o.inputDims}], got ${formatShape(x.shape)}`);
    if (keyPaddingMask && (keyPaddingMask.shape[0] !== x.shape[0] || keyPaddingMask.shape[1] !== x.shape[1])) {
      throw new SkySenseError(
        'E_SHAPE',
        `FusionTransformer keyPaddingMask: expected [${x.shape[0]}, ${x.shape[1]}], got ${formatShape(keyPaddingMask.shape)}`,
      );
    }
    return tf.tidy(() => {
      const [n, l] = [x.shape[0]!, x.shape[1]!];
      let t = this.porjLinear.forward(x);
      let mask = keyPaddingMask;
      if (o.withClsToken) {
        t = tf.concat([tf.tile(this.clsToken.value, [n, 1, 1]), t], 1);
        if (mask) mask = tf.concat([tf.zeros([n, 1], 'bool'), mask], 1);
      }
      for (const layer of this.layers) t = layer.forward(t, mask);
      if (o.outputClsToken) return tf.reshape(tf.slice(t, [0, 0, 0], [n, 1, o.embedDims]), [n, o.embedDims]);
      return o.withClsToken ? tf.slice(t, [0, 1, 0], [n, l, o.embedDims]) : t;
    });
  }
}
