/**
 * `describeError` gives a readable message for anything a handler may reject with, and never
 * throws (issue 15 §3): a Symbol made "handler failed with undefined" (JSON.stringify gives
 * undefined for it), NaN made "null", and a value whose traps throw escaped as an exception.
 */
import { describe, expect, it } from 'vitest';
import { describeError } from '../../src/core/errors.js';

const throwing = (what: string) => () => {
  throw new Error(what);
};

describe('describeError', () => {
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  const cases: Array<[string, unknown, string]> = [
    ['a symbol', Symbol('foo'), 'handler failed with Symbol(foo)'],
    ['a symbol without a description', Symbol(), 'handler failed with Symbol()'],
    ['null', null, 'handler failed with null'],
    ['undefined', undefined, 'handler failed with undefined'],
    ['a number', 42, 'handler failed with 42'],
    ['NaN', Number.NaN, 'handler failed with NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'handler failed with Infinity'],
    ['a bigint', 10n, 'handler failed with 10n'],
    ['false', false, 'handler failed with false'],
    ['an empty string', '', 'handler failed with an empty string'],
    ['a function', function load() {}, 'handler failed with function load'],
    ['an object without message', { code: 7 }, 'handler failed with {"code":7}'],
    ['an object with a message', { message: 'quota exceeded' }, 'quota exceeded'],
    ['an Error', new Error('disk full'), 'disk full'],
    ['an Error with an empty message', new Error(''), 'Error'],
    ['a TypeError with an empty message', new TypeError(), 'TypeError'],
    ['an Error with neither message nor name', Object.assign(new Error(''), { name: '' }), 'Error'],
    ['an object with no prototype', Object.create(null) as object, 'handler failed with {}'],
    [
      'an object whose toJSON and toString throw',
      { toJSON: throwing('json'), toString: throwing('string') },
      'handler failed with an object that cannot be printed',
    ],
    [
      'an Error whose message getter throws',
      Object.defineProperty(new RangeError('x'), 'message', { get: throwing('message') }),
      'RangeError',
    ],
    [
      'a Proxy whose every trap throws',
      new Proxy(
        {},
        {
          get: throwing('get'),
          ownKeys: throwing('ownKeys'),
          getPrototypeOf: throwing('getPrototypeOf'),
          getOwnPropertyDescriptor: throwing('gopd'),
        },
      ),
      'handler failed with a value that cannot be described',
    ],
    ['a revoked Proxy', revocable.proxy, 'handler failed with a value that cannot be described'],
  ];

  it.each(cases)('%s', (_, value, message) => {
    expect(describeError(value)).toBe(message);
  });

  it('a cyclic object is printed as its string', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(describeError(cyclic)).toBe('handler failed with [object Object]');
  });
});
