import { describe, expect, it } from 'vitest';
import {
  Generator,
  assertShape,
  erf,
  erfinv,
  fans,
  kaimingNormal,
  kaimingUniform,
  normal,
  truncNormal,
  uniform,
  xavierNormal,
  xavierUniform,
} from '../src/index';

const stats = (v: Float32Array) => {
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
  return { mean, std, min: Math.min(...v), max: Math.max(...v) };
};

describe('seeded generator and initialisers', () => {
  it('same seed, same stream; different seed, different stream', () => {
    const a = new Generator(42),
      b = new Generator(42),
      c = new Generator(43);
    const sa = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.nextUint32())).not.toEqual(sa);
    const r = new Generator(1);
    const xs = Array.from({ length: 1000 }, () => r.random());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(new Set(Array.from({ length: 1000 }, () => r.randint(6)))).toEqual(new Set([0, 1, 2, 3, 4, 5]));
  });

  it('uniform and normal have the requested moments', () => {
    const u = stats(uniform(-1, 3)([20000], new Generator(1)));
    expect(u.mean).toBeCloseTo(1, 1);
    expect(u.std).toBeCloseTo(4 / Math.sqrt(12), 1);
    const n = stats(normal(2, 0.5)([20000], new Generator(2)));
    expect(n.mean).toBeCloseTo(2, 1);
    expect(n.std).toBeCloseTo(0.5, 1);
  });

  it('truncNormal stays inside [a, b] with the truncated standard deviation', () => {
    const t = stats(truncNormal(1, 0, -2, 2)([20000], new Generator(3)));
    expect(t.min).toBeGreaterThanOrEqual(-2);
    expect(t.max).toBeLessThanOrEqual(2);
    expect(t.std).toBeCloseTo(0.8796, 1);
    const small = stats(truncNormal(0.02)([5000], new Generator(4)));
    expect(small.std).toBeCloseTo(0.02, 3);
  });

  it('kaiming and xavier use PyTorch fans and gains', () => {
    expect(fans([8, 4, 3, 3])).toEqual({ fanIn: 36, fanOut: 72 });
    const k = stats(kaimingUniform({ a: Math.sqrt(5) })([64, 36], new Generator(5)));
    expect(k.max).toBeLessThanOrEqual(1 / 6);
    expect(k.max).toBeGreaterThan(0.95 / 6);
    const kn = stats(kaimingNormal({ nonlinearity: 'relu', mode: 'fan_out' })([200, 50], new Generator(6)));
    expect(kn.std).toBeCloseTo(Math.sqrt(2 / 200), 2);
    const x = stats(xavierUniform()([30, 20], new Generator(7)));
    expect(x.max).toBeLessThanOrEqual(Math.sqrt(6 / 50));
    expect(stats(xavierNormal()([300, 200], new Generator(8))).std).toBeCloseTo(Math.sqrt(2 / 500), 2);
  });

  it('erf and erfinv are accurate inverses', () => {
    expect(erf(0.5)).toBeCloseTo(0.5204998778130465, 6);
    expect(erf(-1.5)).toBeCloseTo(-0.9661051464753108, 6);
    for (const v of [-2.5, -1, -0.1, 0, 0.3, 1.7, 3]) expect(erfinv(erf(v))).toBeCloseTo(v, 4);
    expect(erfinv(0.5)).toBeCloseTo(0.4769362762044699, 6);
  });
});

describe('validation helpers', () => {
  it('assertShape names the argument, expected and actual shape, and binds symbols', () => {
    expect(assertShape('x', [2, 3, 8, 8], ['N', 3, 'H', 'H'])).toEqual({ N: 2, H: 8 });
    expect(() => assertShape('hr', [2, 4, 8, 8], ['N', 3, 'H', 'W'])).toThrow(
      /hr: expected shape \[N, 3, H, W\], got \[2, 4, 8, 8\] \(dimension 1 is 4, expected 3\)/,
    );
    expect(() => assertShape('x', [2, 3, 8], ['N', 3, 'H', 'W'])).toThrow(/rank 3, expected rank 4/);
    expect(() => assertShape('x', [1, 3, 8, 9], [null, 3, 'S', 'S'])).toThrow(/S is 8 at one place and 9 at dimension 3/);
  });
});
