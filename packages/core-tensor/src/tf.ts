import * as tf from '@tensorflow/tfjs';

/**
 * The TensorFlow.js namespace every SkySense package computes with. Import it from here (not from
 * `@tensorflow/tfjs` directly) so that all packages share one engine, one backend and one
 * registry of kernels and gradients.
 */
export { tf };
/** Tensor types re-exported for convenience. */
export type { Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Scalar, Variable, DataType, Rank } from '@tensorflow/tfjs';
