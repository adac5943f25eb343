import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { assertInt, formatShape } from '../validate';
import { fanInUniform, kaimingUniform, type Initializer } from '../init';
import type { Parameter } from '../module';
import { matMul } from '../ops/matmul';
import { UnaryModule, type FusedActivation } from './containers';
import { gelu } from './activation';
import { nativeLinear } from '../ops/fused';
import { gpuLinear } from '../ops/webgpu-kernels';

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Add a learnable bias. Default `true`. */
  bias?: boolean;
  /** Weight initialiser. Default PyTorch's: kaiming-uniform with a = √5 (uniform ±1/√in). */
  weightInit?: Initializer;
  /** Bias initialiser. Default PyTorch's: uniform ±1/√in. */
  biasInit?: Initializer;
}

/**
 * `nn.Linear`: `y = x Wᵀ + b` over the last axis; weight `[out, in]`, bias `[out]`.
 * @example
 * ```ts
 * import { initBackend, Linear, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const fc = new Linear(1024, 10); // weight [10, 1024] as torch.nn.Linear
 * console.log(fc.forward(tf.randomNormal([4, 1024])).shape); // [4, 10]
 * ```
 */
export class Linear extends UnaryModule {
  /** `[outFeatures, inFeatures]`. */
  readonly weight: Parameter;
  /** `[outFeatures]`, or null without bias. */
  readonly bias: Parameter | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions = {},
  ) {
    super();
    assertInt('inFeatures', inFeatures, 1);
    assertInt('outFeatures', outFeatures, 1);
    this.weight = this.registerParameter('weight', [outFeatures, inFeatures], options.weightInit ?? kaimingUniform({ a: Math.sqrt(5) }));
    this.bias = options.bias === false ? null : this.registerParameter('bias', [outFeatures], options.biasInit ?? fanInUniform(inFeatures));
  }

  forward(x: Tensor): Tensor {
    this.forwardCheck(x);
    return linear(x, this.weight.value, this.bias?.value ?? null);
  }

  private forwardCheck(x: Tensor): void {
    if (x.rank < 1 || x.shape[x.rank - 1] !== this.inFeatures) {
      throw new SkySenseError('E_SHAPE', `Linear input: expected last dimension ${this.inFeatures}, got shape ${formatShape(x.shape)}`);
    }
  }

  /** `gelu(forward(x))`, the GELU applied by the native linear kernel where it runs (see {@link linear}). */
  override forwardWithActivation(x: Tensor, activation: FusedActivation): Tensor {
    this.forwardCheck(x);
    return linear(x, this.weight.value, this.bias?.value ?? null, activation);
  }
}

/**
 * `F.linear`: `x·wᵀ + b` over the last axis of `x` (`w [out, in]`, `b [out]` or null), then
 * `activation` (default none; `'gelu'`: the exact GELU). With the native kernels the bias and the
 * GELU are applied in the GEMM's kernel; on the webgpu backend the bias is.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null, activation?: FusedActivation): Tensor {
  const [outF, inF] = weight.shape as [number, number];
  if (weight.rank !== 2 || x.rank < 1 || x.shape[x.rank - 1] !== inF || (bias && (bias.rank !== 1 || bias.shape[0] !== outF))) {
    const b = bias ? ` and bias ${formatShape(bias.shape)}` : '';
    throw new SkySenseError(
      'E_SHAPE',
      `linear: expected x [..., in], weight [out, in], bias [out]; got x ${formatShape(x.shape)}, weight ${formatShape(weight.shape)}${b}`,
    );
  }
  if (activation !== undefined && activation !== 'gelu')
    throw new SkySenseError('E_ARG', `linear: activation: expected 'gelu' or none, got '${String(activation)}'`);
  return tf.tidy(() => {
    const flat = tf.reshape(x, [-1, inF]);
    const withAct = bias && activation ? nativeLinear(flat, weight, bias, activation) : null;
    if (withAct) return tf.reshape(withAct, [...x.shape.slice(0, -1), outF]);
    const fused = bias ? (nativeLinear(flat, weight, bias) ?? gpuLinear(flat, weight, bias)) : null;
    let y = fused ?? matMul(flat, weight, false, true);
    if (bias && !fused) y = tf.add(y, bias);
    if (activation) y = gelu(y);
    return tf.reshape(y, [...x.shape.slice(0, -1), outF]);
  });
}
