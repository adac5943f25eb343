import { tf, type Tensor } from '../tf';
import { assertInRange, assertInt, formatShape } from '../validate';
import { SkySenseError } from '../errors';
import { Module } from '../module';
import { type ActivationName, makeActivation } from './activation';
import { Dropout, DropPath } from './dropout';
import { Identity, Sequential, type UnaryModule } from './containers';
import { Linear } from './linear';

/** Options of {@link FFN}, with mmcv 1.x defaults. */
export interface FFNOptions {
  /** Token width. Default 256. */
  embedDims?: number;
  /** Hidden width. Default 1024. */
  feedforwardChannels?: number;
  /** Number of Linear layers, at least 2. Default 2. */
  numFcs?: number;
  /** Activation after every Linear but the last. Default `relu` (mmcv's default; ViTs pass `gelu`). */
  act?: ActivationName;
  /** Dropout after each activation and after the last Linear. Default 0. */
  ffnDrop?: number;
  /** Drop-path rate on the output branch (mmcv `dropout_layer=DropPath`). Default 0. */
  dropPath?: number;
  /** Add the identity (residual). Default `true`. */
  addIdentity?: boolean;
}

/**
 * mmcv's `FFN`: `layers = [[Linear, act, Dropout] × (numFcs − 1), Linear, Dropout]`, so the keys are
 * `layers.0.0.weight`, …, `layers.1.weight` exactly as mmcv/mmseg checkpoints name them; output =
 * `identity + dropPath(layers(x))`.
 * @example
 * ```ts
 * import { FFN, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * // mmcv FFN: Linear → GELU → Linear plus the identity; keys layers.0.0.weight, layers.1.weight
 * const ffn = new FFN({ embedDims: 64, feedforwardChannels: 256, act: 'gelu' });
 * console.log(ffn.forward(tf.randomNormal([2, 17, 64])).shape); // [2, 17, 64]
 * ```
 */
export class FFN extends Module {
  readonly layers: Sequential;
  private readonly dropoutLayer: UnaryModule;
  readonly addIdentity: boolean;
  readonly embedDims: number;

  constructor(options: FFNOptions = {}) {
    super();
    const embed = assertInt('embedDims', options.embedDims ?? 256, 1);
    this.embedDims = embed;
    const hidden = assertInt('feedforwardChannels', options.feedforwardChannels ?? 1024, 1);
    const numFcs = assertInt('numFcs', options.numFcs ?? 2, 2);
    const drop = assertInRange('ffnDrop', options.ffnDrop ?? 0, 0, 1);
    const blocks: UnaryModule[] = [];
    let inC = embed;
    for (let i = 0; i < numFcs - 1; i++) {
      blocks.push(new Sequential(new Linear(inC, hidden), makeActivation(options.act ?? 'relu'), new Dropout(drop)));
      inC = hidden;
    }
    blocks.push(new Linear(hidden, embed), new Dropout(drop));
    this.layers = this.registerModule('layers', new Sequential(...blocks));
    const dp = options.dropPath ?? 0;
    this.dropoutLayer = dp > 0 ? this.registerModule('dropout_layer', new DropPath(dp)) : new Identity();
    this.addIdentity = options.addIdentity ?? true;
  }

  /** `identity` defaults to `x`, as in mmcv. */
  forward(x: Tensor, identity?: Tensor): Tensor {
    if (x.shape.at(-1) !== this.embedDims)
      throw new SkySenseError('E_SHAPE', `FFN input: expected last dimension ${this.embedDims}, got ${formatShape(x.shape)}`);
    return tf.tidy(() => {
      const out = this.dropoutLayer.forward(this.layers.forward(x));
      return this.addIdentity ? tf.add(identity ?? x, out) : out;
    });
  }
}
