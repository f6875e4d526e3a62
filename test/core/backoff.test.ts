import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from '../../src/core/backoff.js';
import { numRuns } from '../helpers/num-runs.js';

describe('backoffDelay', () => {
  it('fixed backoff waits the same every time', () => {
    const policy: BackoffPolicy = { type: 'fixed', delayMs: 250, maxDelayMs: 10, jitter: false };
    expect([1, 2, 3, 10].map((a) => backoffDelay(policy, a, 0.5))).toEqual([250, 250, 250, 250]);
  });

  it('exponential backoff doubles from the base up to the cap', () => {
    const policy: BackoffPolicy = { type: 'exponential', delayMs: 1_000, maxDelayMs: 5_000, jitter: false };
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(policy, a, 0))).toEqual([
      1_000, 2_000, 4_000, 5_000, 5_000,
    ]);
  });

  it('jitter draws from [delay/2, delay] using the given random value', () => {
    const policy = { ...DEFAULT_BACKOFF, delayMs: 1_000 };
    expect(backoffDelay(policy, 1, 0)).toBe(500);
    expect(backoffDelay(policy, 1, 0.999999)).toBe(1_000);
    expect(backoffDelay(policy, 2, 0.5)).toBe(1_500);
  });

  it('is never negative, never above the cap (exponential) and an integer', () => {
    fc.assert(
      fc.property(
        fc.record({
          type: fc.constantFrom('fixed', 'exponential' as const),
          delayMs: fc.integer({ min: 0, max: 100_000 }),
          maxDelayMs: fc.integer({ min: 0, max: 1_000_000 }),
          jitter: fc.boolean(),
        }),
        fc.integer({ min: 1, max: 2_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (policy, attempt, r) => {
          const d = backoffDelay(policy, attempt, r);
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          if (policy.type === 'fixed') expect(d).toBeLessThanOrEqual(policy.delayMs);
          else expect(d).toBeLessThanOrEqual(policy.maxDelayMs);
          if (policy.type === 'exponential' && attempt <= 30) {
            expect(d).toBeLessThanOrEqual(policy.delayMs * 2 ** (attempt - 1));
          }
        },
      ),
      { numRuns: numRuns(500) },
    );
  });
});
