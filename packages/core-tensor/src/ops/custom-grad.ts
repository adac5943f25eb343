import { tf, type Tensor } from '../tf';

/**
 * Runs `forward` on `inputs` with a hand-written gradient: `backward(dy, inputs)` returns one
 * gradient per input. The inputs are kept alive for the backward pass by tfjs.
 */
export function withGradient(
  inputs: Tensor[],
  forward: (xs: Tensor[]) => Tensor,
  backward: (dy: Tensor, xs: Tensor[]) => Tensor[],
): Tensor {
  const op = tf.customGrad(((...args: (Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const xs = args as Tensor[];
    save(xs);
    return { value: forward(xs), gradFunc: (dy: Tensor | Tensor[], saved: Tensor[]) => backward(dy as Tensor, saved) };
  }) as Parameters<typeof tf.customGrad>[0]);
  return op(...inputs);
}

/** The value of `x` with no gradient flowing back through it (PyTorch's `detach`). */
export function stopGradient(x: Tensor): Tensor {
  return withGradient(
    [x],
    ([v]) => tf.clone(v!),
    (_dy, [v]) => [tf.zerosLike(v!)],
  );
}
