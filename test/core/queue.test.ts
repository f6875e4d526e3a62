import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JobQueue, type QueueEntry } from '../../src/core/queue.js';

/** A queued value that is its own entry (the queue's `find` mode). */
type V = {
  queueEntry: QueueEntry<V> | undefined;
  id: string;
  base: number;
  queuedAt: number;
  order: number;
  boost: QueueEntry<V>['boost'];
  value: V;
  prev: QueueEntry<V> | undefined;
  next: QueueEntry<V> | undefined;
};
import { levelOf, nameOf, Priority } from '../../src/core/priority.js';
import { numRuns } from '../helpers/num-runs.js';

describe('priorities', () => {
  it('maps names to levels and back', () => {
    expect(
      [Priority.BACKGROUND, Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL].map(levelOf),
    ).toEqual([0, 1, 2, 3, 4]);
    expect(levelOf('urgent')).toBe(-1);
    expect(nameOf(9)).toBe('critical');
    expect(nameOf(-3)).toBe('background');
  });
});

describe('job queue', () => {
  it('a queue that never held a job settles its aging at -Infinity (nothing to age)', () => {
    const q = new JobQueue<V>({ intervalMs: 30, maxLevels: 2 });
    expect(q.agingSettlesAt()).toBe(Number.NEGATIVE_INFINITY);
  });

  it('is FIFO within a priority and higher priorities first', () => {
    const q = new JobQueue<null>({ intervalMs: 0, maxLevels: 0 });
    q.add('n1', 2, 0, null);
    q.add('l1', 1, 0, null);
    q.add('n2', 2, 0, null);
    q.add('c1', 4, 0, null);
    expect([...q.inOrder(0)].map((e) => e.id)).toEqual(['c1', 'n1', 'n2', 'l1']);
    q.remove('n1');
    expect(q.head(0)?.id).toBe('c1');
    expect([...q.inOrder(0)].map((e) => e.id)).toEqual(['c1', 'n2', 'l1']);
  });

  it('ages waiting jobs one level per interval up to the maximum', () => {
    const q = new JobQueue<null>({ intervalMs: 1_000, maxLevels: 2 });
    q.add('old-background', 0, 0, null);
    q.add('new-normal', 2, 2_500, null);
    // At 2.5 s the background job has aged 2 levels: equal to normal, and it entered first.
    expect([...q.inOrder(2_500)].map((e) => e.id)).toEqual(['old-background', 'new-normal']);
    const old = q.get('old-background');
    expect(old && q.level(old, 1e9)).toBe(2);
  });

  it('a boost overtakes at once and ends when it expires', () => {
    const q = new JobQueue<null>({ intervalMs: 0, maxLevels: 0 });
    q.add('a', 2, 0, null);
    q.add('b', 1, 0, null);
    q.setBoost('b', { toLevel: 4, until: 100 });
    expect([...q.inOrder(50)].map((e) => e.id)).toEqual(['b', 'a']);
    expect([...q.inOrder(100)].map((e) => e.id)).toEqual(['a', 'b']);
    expect(q.setBoost('zzz', { byLevels: 1, until: 1 })).toBe(false);
  });

  it.each([
    ['its own index by id', false],
    ['entries carried by the values (find)', true],
  ])('walks every queued job exactly once, in (effective level, FIFO) order — %s', (_, carried) => {
    type Op =
      | { kind: 'add'; base: number; at: number }
      | { kind: 'remove'; pick: number }
      | { kind: 'boost'; pick: number; to?: number; by?: number; until: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        base: fc.integer({ min: 0, max: 4 }),
        at: fc.integer({ min: 0, max: 100 }),
      }),
      fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
      fc.record(
        {
          kind: fc.constant('boost' as const),
          pick: fc.nat(),
          to: fc.integer({ min: 0, max: 4 }),
          by: fc.integer({ min: -2, max: 3 }),
          until: fc.integer({ min: 0, max: 400 }),
        },
        { requiredKeys: ['kind', 'pick', 'until'] },
      ),
    );
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 60 }),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 0, max: 3 }),
        (ops, now, maxLevels) => {
          const values = new Map<string, V>();
          const q = new JobQueue<V>(
            { intervalMs: 30, maxLevels },
            carried ? (id) => values.get(id) : undefined,
          );
          let n = 0;
          let clock = 0;
          for (const o of ops) {
            const ids = [...q.inOrder(clock)].map((e) => e.id);
            if (o.kind === 'add') {
              clock = Math.max(clock, o.at);
              const id = `j${n++}`;
              const value: V = {
                queueEntry: undefined,
                id,
                base: 0,
                queuedAt: 0,
                order: 0,
                boost: undefined,
                value: undefined as unknown as V,
                prev: undefined,
                next: undefined,
              };
              value.value = value;
              values.set(id, value);
              q.add(id, o.base, clock, value);
              expect(q.holdsValue(id, value)).toBe(true);
            } else if (ids.length > 0) {
              const id = ids[o.pick % ids.length] as string;
              if (o.kind === 'remove') {
                const entry = q.get(id);
                expect(q.remove(id)).toBe(true);
                expect(q.remove(id)).toBe(false);
                expect(entry && q.removeEntry(entry)).toBe(false);
                expect(q.holdsValue(id, values.get(id) as V)).toBe(false);
              } else {
                q.setBoost(id, {
                  ...(o.to === undefined ? {} : { toLevel: o.to }),
                  ...(o.by === undefined ? {} : { byLevels: o.by }),
                  until: o.until,
                });
              }
            }
          }
          const at = Math.max(clock, now);
          const walked = [...q.inOrder(at)];
          expect(walked).toHaveLength(q.size);
          expect(new Set(walked.map((e) => e.id)).size).toBe(q.size);
          const expected = [...walked].sort((a, b) => q.level(b, at) - q.level(a, at) || a.order - b.order);
          expect(walked.map((e) => e.id)).toEqual(expected.map((e) => e.id));
          // The reused walker gives the same order, also after a walk left half-way.
          const half = q.walk(at);
          for (let k = 0; k < walked.length / 2; k++) half.next();
          const again = q.walk(at);
          const reused = [];
          for (let e = again.next(); e; e = again.next()) reused.push(e);
          expect(reused).toEqual(walked);
        },
      ),
      { numRuns: numRuns(1_000) },
    );
  });
});
