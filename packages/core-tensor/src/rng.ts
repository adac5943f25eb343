import { assertInt } from './validate';
import { SkySenseError } from './errors';

/** A {@link Generator}'s state, JSON-serialisable. */
export interface GeneratorState {
  s: number[];
  spareNormal: number | null;
}

/**
 * A seeded pseudo-random generator (xoshiro128**, seeded through splitmix32). Values are produced
 * in JavaScript, so the same seed gives bit-identical weights, dropout masks and augmentations on
 * every backend.
 * @example
 * ```ts
 * import { Generator, initBackend } from '@skysense/core-tensor';
 * await initBackend();
 * const rng = new Generator(42); // seeded, state can be saved with a run and restored on resume
 * console.log(rng.uniform(), rng.normal(), rng.randint(10));
 * const saved = rng.getState();
 * const again = new Generator().setState(saved); // continues the same sequence
 * ```
 */
export class Generator {
  private s = new Uint32Array(4);
  private spareNormal: number | null = null;

  /** @param seed any 32-bit integer; default 0. */
  constructor(seed = 0) {
    this.manualSeed(seed);
  }

  /** Re-seeds the generator (like `torch.Generator.manual_seed`). */
  manualSeed(seed: number): this {
    assertInt('seed', seed, -(2 ** 53), 2 ** 53);
    let x = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    this.spareNormal = null;
    return this;
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  random(): number {
    const hi = this.nextUint32() >>> 5;
    const lo = this.nextUint32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform double in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.random();
  }

  /** Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  randint(n: number): number {
    assertInt('n', n, 1);
    return Math.floor(this.random() * n);
  }

  /** The full internal state (for checkpoints): restore it with {@link Generator.setState}. */
  getState(): GeneratorState {
    return { s: Array.from(this.s), spareNormal: this.spareNormal };
  }

  /** Restores a state from {@link Generator.getState}; the sequence then continues exactly. */
  setState(state: GeneratorState): this {
    if (!Array.isArray(state?.s) || state.s.length !== 4 || !state.s.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)) {
      throw new SkySenseError('E_ARG', `generator state: expected { s: four uint32 values, spareNormal }, got ${JSON.stringify(state)}`);
    }
    this.s.set(state.s);
    this.spareNormal = state.spareNormal ?? null;
    return this;
  }

  /** A seed for a derived generator or a tfjs op that takes one. */
  fork(): Generator {
    return new Generator(this.nextUint32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

let defaultGenerator = new Generator(0);

/** The process-wide generator used when no generator is passed (like torch's default generator). */
export function defaultRng(): Generator {
  return defaultGenerator;
}

/** Seeds the process-wide generator (like `torch.manual_seed`). */
export function manualSeed(seed: number): Generator {
  defaultGenerator = new Generator(seed);
  return defaultGenerator;
}
