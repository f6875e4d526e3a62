import { describe, expect, it } from 'vitest';
import { nextRandom, seedFromString } from '../../src/core/random.js';

describe('seeded random', () => {
  it('gives the same sequence for the same seed and a different one for another seed', () => {
    const run = (seed: number) => {
      const out: number[] = [];
      let state = seed;
      for (let i = 0; i < 5; i++) {
        const [value, next] = nextRandom(state);
        out.push(value);
        state = next;
      }
      return out;
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  it('stays in [0, 1) and spreads over the interval', () => {
    let state = 7;
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const [value, next] = nextRandom(state);
      state = next;
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
      const bucket = Math.floor(value * 10);
      buckets[bucket] = (buckets[bucket] ?? 0) + 1;
    }
    for (const count of buckets) expect(count).toBeGreaterThan(800);
  });

  it('derives distinct seeds from distinct strings', () => {
    expect(seedFromString('job-1')).toBe(seedFromString('job-1'));
    expect(seedFromString('job-1')).not.toBe(seedFromString('job-2'));
    expect(seedFromString('job-1', 1)).not.toBe(seedFromString('job-1', 2));
  });
});
