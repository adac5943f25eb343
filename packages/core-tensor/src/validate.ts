import type { Tensor } from '@tensorflow/tfjs-core';
import { SkySenseError } from './errors';

/**
 * One entry of an expected shape: a fixed size, `null` for "any size", or a symbol such as `'N'`
 * that must take the same size everywhere it appears in one check.
 */
export type DimSpec = number | string | null;

/** Formats a shape as `[1, 3, 224, 224]`. */
export function formatShape(shape: readonly (number | string | null)[]): string {
  return `[${shape.map((d) => (d === null ? '*' : String(d))).join(', ')}]`;
}

/**
 * Checks that `t` has the rank and sizes of `expected` and returns the sizes bound to symbols.
 * @param name the argument's name, used in the error message.
 * @throws SkySenseError `E_SHAPE` naming the argument, the expected and the actual shape.
 */
export function assertShape(name: string, t: Tensor | readonly number[], expected: readonly DimSpec[]): Record<string, number> {
  const shape = Array.isArray(t) ? (t as readonly number[]) : (t as Tensor).shape;
  const bound: Record<string, number> = {};
  const fail = (why: string): never => {
    throw new SkySenseError('E_SHAPE', `${name}: expected shape ${formatShape(expected)}, got ${formatShape(shape)}${why}`);
  };
  if (shape.length !== expected.length) fail(` (rank ${shape.length}, expected rank ${expected.length})`);
  expected.forEach((e, i) => {
    const actual = shape[i]!;
    if (e === null) return;
    if (typeof e === 'number') {
      if (actual !== e) fail(` (dimension ${i} is ${actual}, expected ${e})`);
      return;
    }
    if (bound[e] === undefined) bound[e] = actual;
    else if (bound[e] !== actual) fail(` (${e} is ${bound[e]} at one place and ${actual} at dimension ${i})`);
  });
  return bound;
}

/** Checks the rank of a tensor. @throws SkySenseError `E_SHAPE`. */
export function assertRank(name: string, t: Tensor, ranks: number | readonly number[]): void {
  const allowed = typeof ranks === 'number' ? [ranks] : ranks;
  if (!allowed.includes(t.rank)) {
    throw new SkySenseError(
      'E_SHAPE',
      `${name}: expected a tensor of rank ${allowed.join(' or ')}, got rank ${t.rank} with shape ${formatShape(t.shape)}`,
    );
  }
}

/** Checks the dtype of a tensor. @throws SkySenseError `E_DTYPE`. */
export function assertDtype(name: string, t: Tensor, dtypes: string | readonly string[]): void {
  const allowed = typeof dtypes === 'string' ? [dtypes] : dtypes;
  if (!allowed.includes(t.dtype)) {
    throw new SkySenseError('E_DTYPE', `${name}: expected dtype ${allowed.join(' or ')}, got ${t.dtype}`);
  }
}

/** Checks that a number is an integer within `[min, max]`. @throws SkySenseError `E_ARG`. */
export function assertInt(name: string, v: unknown, min = -Infinity, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new SkySenseError('E_ARG', `${name}: expected an integer ${range}, got ${String(v)}`);
  }
  return v;
}

/** Checks that a number is finite and strictly positive. @throws SkySenseError `E_ARG`. */
export function assertPositive(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new SkySenseError('E_ARG', `${name}: expected a finite number > 0, got ${String(v)}`);
  }
  return v;
}

/** Checks that a number is finite and within `[min, max]`. @throws SkySenseError `E_ARG`. */
export function assertInRange(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new SkySenseError('E_ARG', `${name}: expected a number in [${min}, ${max}], got ${String(v)}`);
  }
  return v;
}

/** Normalises an `int | [int, int]` option (kernel size, stride, …) to a pair. */
export function pair(name: string, v: number | readonly [number, number], min = 0): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : [v[0], v[1]];
  assertInt(`${name}[0]`, p[0], min);
  assertInt(`${name}[1]`, p[1], min);
  return p;
}

/** A rule of {@link checkOptions}: an integer in a range, a finite number > 0, or a finite number in a range. */
export type OptionRule = { int: [number, number?] } | { positive: true } | { range: [number, number] };

/**
 * Checks every option `rules` names that is given (not `undefined`), so that a run refuses a bad
 * value before it writes anything. Names in messages are the option names (`steps`, `batchSize`).
 * @throws SkySenseError `E_ARG` naming the first bad option, the expected and the actual value.
 */
export function checkOptions(o: object, rules: Record<string, OptionRule>): void {
  for (const [name, rule] of Object.entries(rules)) {
    const v = (o as Record<string, unknown>)[name];
    if (v === undefined) continue;
    if ('int' in rule) assertInt(name, v, rule.int[0], rule.int[1]);
    else if ('positive' in rule) assertPositive(name, v);
    else assertInRange(name, v, rule.range[0], rule.range[1]);
  }
}
