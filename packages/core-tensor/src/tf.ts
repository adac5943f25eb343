import * as tf from '@tensorflow/tfjs-core';
// tfjs-core ships its gradients and chained ops (`t.reshape(…)`) as ES modules only, so the build
// inlines these two files and the tfjs-core modules they import (a second copy of those ops, about
// 0.4 MB), as the full @tensorflow/tfjs bundle does. That is sound because tfjs-core keeps its engine,
// kernel and gradient registries and its Tensor class in globals: the inlined copy registers into,
// and computes with, the same ones as `@tensorflow/tfjs-core` below.
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
