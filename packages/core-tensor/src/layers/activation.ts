import { tf, type Tensor } from '../tf';
import { SkySenseError } from '../errors';
import { Identity, UnaryModule, type FusedActivation } from './containers';
import { nativeGelu } from '../ops/fused';
import { gpuGelu } from '../ops/webgpu-kernels';

/**
 * GELU. `approximate: 'none'` (default, PyTorch's and mmcv's) is the exact erf form
 * `x · Φ(x)`; `'tanh'` is the tanh approximation.
 */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return tf.tidy(() => {
    if (approximate === 'tanh') {
      const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
      return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
    }
    return nativeGelu(x) ?? gpuGelu(x) ?? tf.mul(tf.mul(0.5, x), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  });
}

/**
 * `nn.GELU(approximate)`.
 * @example
 * ```ts
 * import { GELU, initBackend, tf } from '@skysense/core-tensor';
 * await initBackend();
 * const y = new GELU().forward(tf.tensor1d([-1, 0, 1])); // exact erf form, as torch.nn.GELU()
 * const fast = new GELU('tanh'); // the tanh approximation
 * console.log(y.arraySync(), fast.approximate);
 * ```
 */
export class GELU extends UnaryModule {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
    if (approximate !== 'none' && approximate !== 'tanh')
      throw new SkySenseError('E_ARG', `GELU approximate: expected 'none' or 'tanh', got '${String(approximate)}'`);
  }

  forward(x: Tensor): Tensor {
    return gelu(x, this.approximate);
  }

  /** `'gelu'` for the exact form (a Linear before it applies it in its GEMM's output pass in eval mode). */
  override get fusableActivation(): FusedActivation | undefined {
    return this.approximate === 'none' ? 'gelu' : undefined;
  }
}

/**
 * `nn.ReLU`.
 * @example
 * ```ts
 * import { initBackend, ReLU, tf } from '@skysense/core-tensor';
 * await initBackend();
 * console.log(new ReLU().forward(tf.tensor1d([-1, 0, 2])).arraySync()); // [0, 0, 2]
 * ```
 */
export class ReLU extends UnaryModule {
  forward(x: Tensor): Tensor {
    return tf.relu(x);
  }
}

/** The activations configs name (`act_cfg=dict(type=…)` in mmcv). */
export type ActivationName = 'relu' | 'gelu' | 'gelu-tanh' | 'identity';

/** Builds an activation module from its config name. */
export function makeActivation(name: ActivationName): UnaryModule {
  switch (name) {
    case 'relu':
      return new ReLU();
    case 'gelu':
      return new GELU('none');
    case 'gelu-tanh':
      return new GELU('tanh');
    case 'identity':
      return new Identity();
    default:
      throw new SkySenseError('E_ARG', `activation: expected relu, gelu, gelu-tanh or identity, got '${String(name)}'`);
  }
}
