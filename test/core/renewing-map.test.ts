import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RenewingMap } from '../../src/core/renewing-map.js';
import { ResourceLedger } from '../../src/core/ledger.js';
import { numRuns } from '../helpers/num-runs.js';

type Op = { kind: 'set'; key: number; value: number } | { kind: 'delete'; key: number } | { kind: 'clear' };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 40,
    arbitrary: fc.record({ kind: fc.constant('set' as const), key: fc.nat(11), value: fc.integer() }),
  },
  { weight: 40, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: fc.nat(11) }) },
  // Rare: a clear starts the deletion count over, and the property is about renewals.
  { weight: 1, arbitrary: fc.constant({ kind: 'clear' as const }) },
);

/** Everything a reader can see of a map: its size, its three iterators in order, every read. */
function view(map: Pick<Map<number, number>, 'size' | 'entries' | 'keys' | 'values' | 'has' | 'get'>) {
  const reads: unknown[] = [];
  for (let k = 0; k <= 11; k++) reads.push(map.has(k), map.get(k));
  return {
    size: map.size,
    entries: [...map.entries()],
    keys: [...map.keys()],
    values: [...map.values()],
    reads,
  };
}

describe('renewing map', () => {
  it('iterates as itself like a Map does', () => {
    const m = new RenewingMap<string, number>();
    m.set('b', 1).set('a', 2);
    expect([...m]).toEqual([
      ['b', 1],
      ['a', 2],
    ]);
  });

  it('reads like a Map after every step, order included, however often it starts over', () => {
    let renewals = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(op, { minLength: 60, maxLength: 200 }),
        (every, ops) => {
          const real = new RenewingMap<number, number>(every);
          const model = new Map<number, number>();
          for (const o of ops) {
            if (o.kind === 'set') {
              expect(real.set(o.key, o.value)).toBe(real);
              model.set(o.key, o.value);
            } else if (o.kind === 'delete') {
              expect(real.delete(o.key)).toBe(model.delete(o.key));
            } else {
              real.clear();
              model.clear();
            }
            // One comparison per step (expect per read is slow): size, order of all three iterators, reads.
            expect(view(real)).toEqual(view(model));
          }
          renewals += real.renewals;
        },
      ),
      { numRuns: numRuns(100) },
    );
    // The runs did start over, many times.
    expect(renewals).toBeGreaterThan(100);
  });

  it('starts over after as many deletions as it holds, and at least `every`', () => {
    const small = new RenewingMap<number, number>(4);
    for (let i = 0; i < 4; i++) small.set(i, i);
    for (let i = 0; i < 4; i++) small.delete(i);
    expect(small.renewals).toBe(1);
    // A miss is no deletion.
    for (let i = 0; i < 10; i++) small.delete(99);
    expect(small.renewals).toBe(1);

    // Holding 1,000, it waits for 1,000 deletions: the copy stays O(1) per deletion.
    const big = new RenewingMap<number, number>(4);
    for (let i = 0; i < 2_000; i++) big.set(i, i);
    for (let i = 0; i < 999; i++) big.delete(i);
    expect(big.renewals).toBe(0);
    big.delete(999);
    expect(big.renewals).toBe(1);
    expect([...big.keys()].slice(0, 3)).toEqual([1_000, 1_001, 1_002]);
  });

  it('refuses an `every` that is not a positive integer, naming it', () => {
    expect(() => new RenewingMap(0)).toThrow(/every must be an integer ≥ 1, got 0/);
    expect(() => new RenewingMap(1.5)).toThrow(RangeError);
  });

  it('lets a ledger grant and release far past a renewal with grant order and idempotent release kept', () => {
    const ledger = new ResourceLedger({ cpu: 8, memoryMb: 8_000 });
    const live: string[] = [];
    const released: string[] = [];
    for (let i = 0; i < 3_000; i++) {
      const r = ledger.allocate(ledger.validate({ cpu: 1 }));
      if (!r.ok) throw new Error('denied');
      live.push(r.allocation.id);
      if (live.length === 8) {
        // Release the 2nd and 5th oldest: the rest keep their grant order.
        for (const at of [4, 1]) {
          const [id] = live.splice(at, 1);
          expect(ledger.release(id as string).released).toBe(true);
          released.push(id as string);
        }
      }
      expect(ledger.allocations().map((a) => a.id)).toEqual(live);
      expect(ledger.active).toBe(live.length);
      expect(ledger.totals().allocated.cpu).toBe(live.length);
    }
    expect(released.length).toBeGreaterThan(1_000);
    for (const id of released.slice(0, 50)) {
      expect(ledger.holds(id)).toBe(false);
      expect(ledger.release(id)).toEqual({ released: false, reason: 'already-released' });
    }
  });
});
