import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { editDistance, nearestName } from '../../src/core/suggest.js';
import { numRuns } from '../helpers/num-runs.js';

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['gpu', '', 3],
    ['gpus', 'gpu', 1],
    ['prority', 'priority', 1],
    ['dealyMs', 'delayMs', 1], // one swap of neighbours
    ['timeout', 'timeoutMs', 2],
    ['retries', 'retry', 3],
    ['kitten', 'sitting', 3],
  ])('%s → %s is %i', (a, b, d) => {
    expect(editDistance(a, b)).toBe(d);
    expect(editDistance(b, a)).toBe(d);
  });

  it('is 0 only for equal strings, symmetric, and never more than the longer length', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
        const d = editDistance(a, b);
        expect(d).toBe(editDistance(b, a));
        expect(d === 0).toBe(a === b);
        expect(d).toBeLessThanOrEqual(Math.max(a.length, b.length));
        expect(d).toBeGreaterThanOrEqual(Math.abs(a.length - b.length));
      }),
      { numRuns: numRuns(300) },
    );
  });
});

describe('nearestName', () => {
  const request = ['cpu', 'memoryMb', 'gpu', 'vramMb', 'custom'];
  const node = ['id', 'cpu', 'memoryMb', 'gpus', 'custom'];

  it.each<[string, readonly string[], string | undefined]>([
    ['gpus', request, 'gpu'],
    ['gpu', node, 'gpus'], // as near as cpu, but it begins the same
    ['GPU', request, 'gpu'],
    ['memory', request, 'memoryMb'],
    ['vram', request, 'vramMb'],
    ['maxQueue', ['maxConcurrentJobs', 'maxQueueSize'], 'maxQueueSize'],
    ['x', request, undefined],
    ['banana', request, undefined],
    ['disk', request, undefined],
  ])('%s among %j → %s', (name, known, expected) => {
    expect(nearestName(name, known)).toBe(expected);
  });
});
