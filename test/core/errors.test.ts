import { describe, expect, it } from 'vitest';
import { describeError, isUnrecoverable, UnrecoverableError } from '../../src/core/errors.js';
import { nextProgress } from '../../src/core/progress.js';

describe('errors', () => {
  it('recognises UnrecoverableError by class and by name', () => {
    expect(isUnrecoverable(new UnrecoverableError('x'))).toBe(true);
    const foreign = Object.assign(new Error('x'), { name: 'UnrecoverableError' });
    expect(isUnrecoverable(foreign)).toBe(true);
    expect(isUnrecoverable(new Error('x'))).toBe(false);
    expect(isUnrecoverable('UnrecoverableError')).toBe(false);
    expect(isUnrecoverable(null)).toBe(false);
    expect(new UnrecoverableError('x').name).toBe('UnrecoverableError');
  });

  it('describes anything a handler can throw', () => {
    expect(describeError(new Error('disk full'))).toBe('disk full');
    expect(describeError('plain')).toBe('plain');
    expect(describeError(undefined)).toBe('handler failed with undefined');
    expect(describeError({ code: 7 })).toBe('handler failed with {"code":7}');
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(describeError(cyclic)).toBe('handler failed with [object Object]');
  });
});

describe('progress', () => {
  it('clamps to [0, 1] and ignores values that are not finite', () => {
    expect(nextProgress({ fraction: 0.2 }, 0.5, 'half')).toEqual({ fraction: 0.5, note: 'half' });
    expect(nextProgress({ fraction: 0.2 }, 7, undefined)).toEqual({ fraction: 1 });
    expect(nextProgress({ fraction: 0.2 }, -1, undefined)).toEqual({ fraction: 0 });
    expect(nextProgress({ fraction: 0.2 }, Number.NaN, 'x')).toEqual({ fraction: 0.2, note: 'x' });
    expect(nextProgress({ fraction: 0.2 }, Number.POSITIVE_INFINITY, undefined)).toEqual({ fraction: 0.2 });
  });
});
