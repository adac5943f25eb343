import { Generator, defaultRng } from './rng';
import { SkySenseError } from './errors';
import { assertPositive } from './validate';

/**
 * An initialiser fills a new parameter: it receives the shape and a generator and returns the
 * values in row-major order. Values are computed in float64 in JavaScript and stored as float32,
 * so they do not depend on the backend.
 */
export type Initializer = (shape: readonly number[], rng: Generator) => Float32Array;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** PyTorch's fan computation (`torch.nn.init._calculate_fan_in_and_fan_out`). */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) {
    throw new SkySenseError('E_ARG', `fans: expected a weight of rank >= 2, got shape [${shape.join(', ')}]`);
  }
  const receptive = numel(shape.slice(2));
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

function fill(shape: readonly number[], f: () => number): Float32Array {
  const out = new Float32Array(numel(shape));
  for (let i = 0; i < out.length; i++) out[i] = f();
  return out;
}

/** Every value `value`. */
export function constant(value: number): Initializer {
  return (shape) => new Float32Array(numel(shape)).fill(value);
}

/** Zeros. */
export const zeros: Initializer = constant(0);
/** Ones. */
export const ones: Initializer = constant(1);

/** Uniform in [low, high). */
export function uniform(low = 0, high = 1): Initializer {
  return (shape, rng) => fill(shape, () => rng.uniform(low, high));
}

/** Normal with the given mean and standard deviation. */
export function normal(mean = 0, std = 1): Initializer {
  assertPositive('std', std);
  return (shape, rng) => fill(shape, () => rng.normal(mean, std));
}

/**
 * Truncated normal as `torch.nn.init.trunc_normal_` (inverse-CDF method): values of N(mean, std²)
 * restricted to [a, b] (absolute bounds, default ±2). timm and mmcv use std 0.02 for transformers.
 */
export function truncNormal(std = 1, mean = 0, a = -2, b = 2): Initializer {
  assertPositive('std', std);
  if (!(a < b)) throw new SkySenseError('E_ARG', `truncNormal: expected a < b, got a=${a}, b=${b}`);
  const cdf = (x: number) => (1 + erf(x / Math.SQRT2)) / 2;
  const l = cdf((a - mean) / std);
  const u = cdf((b - mean) / std);
  return (shape, rng) =>
    fill(shape, () => {
      const p = rng.uniform(2 * l - 1, 2 * u - 1);
      const v = erfinv(p) * std * Math.SQRT2 + mean;
      return Math.min(b, Math.max(a, v));
    });
}

/** PyTorch's `calculate_gain` for the nonlinearities initialisers take. */
export function gain(nonlinearity: 'linear' | 'relu' | 'leaky_relu' | 'tanh' | 'sigmoid' | 'gelu', param = 0.01): number {
  switch (nonlinearity) {
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
      return Math.sqrt(2 / (1 + param * param));
    case 'tanh':
      return 5 / 3;
    default:
      return 1;
  }
}

/** Options of the Kaiming initialisers (PyTorch defaults). */
export interface KaimingOptions {
  /** Negative slope of the rectifier (used with `leaky_relu`). Default 0. */
  a?: number;
  /** `fan_in` (default) preserves forward variance, `fan_out` backward. */
  mode?: 'fan_in' | 'fan_out';
  /** Default `leaky_relu`, as PyTorch. */
  nonlinearity?: 'relu' | 'leaky_relu' | 'linear';
}

function kaimingStd(shape: readonly number[], o: KaimingOptions): number {
  const f = fans(shape);
  const fan = o.mode === 'fan_out' ? f.fanOut : f.fanIn;
  return gain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan);
}

/** `torch.nn.init.kaiming_uniform_`. With `a = √5` it is PyTorch's default Linear/Conv weight init. */
export function kaimingUniform(o: KaimingOptions = {}): Initializer {
  return (shape, rng) => {
    const bound = Math.sqrt(3) * kaimingStd(shape, o);
    return fill(shape, () => rng.uniform(-bound, bound));
  };
}

/** `torch.nn.init.kaiming_normal_`. */
export function kaimingNormal(o: KaimingOptions = {}): Initializer {
  return (shape, rng) => {
    const std = kaimingStd(shape, o);
    return fill(shape, () => rng.normal(0, std));
  };
}

/** `torch.nn.init.xavier_uniform_`. */
export function xavierUniform(g = 1): Initializer {
  return (shape, rng) => {
    const { fanIn, fanOut } = fans(shape);
    const bound = g * Math.sqrt(6 / (fanIn + fanOut));
    return fill(shape, () => rng.uniform(-bound, bound));
  };
}

/** `torch.nn.init.xavier_normal_`. */
export function xavierNormal(g = 1): Initializer {
  return (shape, rng) => {
    const { fanIn, fanOut } = fans(shape);
    const std = g * Math.sqrt(2 / (fanIn + fanOut));
    return fill(shape, () => rng.normal(0, std));
  };
}

/** PyTorch's default bias init for Linear/Conv: uniform(±1/√fan_in) of the weight's fan-in. */
export function fanInUniform(fanIn: number): Initializer {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniform(-bound, bound);
}

/** Runs an initialiser with the default generator unless one is given. */
export function initValues(init: Initializer, shape: readonly number[], rng: Generator = defaultRng()): Float32Array {
  return init(shape, rng);
}

/** Error function (Numerical Recipes' Chebyshev fit of erfc; fractional error < 1.2e-7). */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}

const ERFINV_CENTRAL = [
  2.81022636e-8, 3.43273939e-7, -3.5233877e-6, -4.39150654e-6, 2.1858087e-4, -1.25372503e-3, -4.17768164e-3, 0.246640727, 1.50140941,
];
const ERFINV_TAIL = [
  -2.00214257e-4, 1.00950558e-4, 1.34934322e-3, -3.67342844e-3, 5.73950773e-3, -7.6224613e-3, 9.43887047e-3, 1.00167406, 2.83297682,
];

/** Inverse error function on (-1, 1): Giles' single-precision approximation refined by Newton steps. */
export function erfinv(y: number): number {
  if (y <= -1) return -Infinity;
  if (y >= 1) return Infinity;
  let w = -Math.log((1 - y) * (1 + y));
  const central = w < 5;
  w = central ? w - 2.5 : Math.sqrt(w) - 3;
  let x = 0;
  for (const c of central ? ERFINV_CENTRAL : ERFINV_TAIL) x = c + x * w;
  x *= y;
  for (let i = 0; i < 2; i++) {
    const slope = (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x);
    if (slope < 1e-300) break;
    x -= (erf(x) - y) / slope;
  }
  return x;
}
