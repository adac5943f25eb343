import * as tf from '@tensorflow/tfjs-core';
// tfjs-core ships its gradients and chained ops (`t.reshape(…)`) as ES modules only (the full
// @tensorflow/tfjs bundles them the same way): the build inlines these two files; they register
// into tfjs-core's global registry and Tensor prototype.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import '@tensorflow/tfjs-backend-cpu';

/**
 * The TensorFlow.js namespace every SkySense package computes with (`@tensorflow/tfjs-core`, with
 * every gradient registered and the JavaScript `cpu` backend). Import it from here (not from
 * `@tensorflow/tfjs-core` directly) so that all packages share one engine, one backend and one
 * registry of kernels and gradients.
 */
export { tf };
/** Tensor types re-exported for convenience. */
export type { Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Scalar, Variable, DataType, Rank } from '@tensorflow/tfjs-core';
