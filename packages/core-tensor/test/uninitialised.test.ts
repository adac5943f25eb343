/** Before `initBackend()` (this file never calls it), tensors and models refuse with a SkySenseError that says what to do. */
import { describe, expect, it } from 'vitest';
import { Linear, SkySenseError, currentBackend, tf } from '../src/index';

describe('before initBackend()', () => {
  it('creating a tensor, running an op or building a model throws E_BACKEND naming initBackend', () => {
    expect(currentBackend()).toBeUndefined();
    for (const attempt of [() => tf.tensor([1, 2]), () => tf.zeros([2, 2]), () => new Linear(4, 2)]) {
      let error: unknown;
      try {
        attempt();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SkySenseError);
      expect((error as SkySenseError).code).toBe('E_BACKEND');
      expect((error as Error).message).toMatch(
        /call `await initBackend\(\)` \(from @skysense\/core-tensor\) once, before creating tensors or models/,
      );
      expect((error as Error).message).not.toMatch(/tf\.ready/);
    }
  });
});
