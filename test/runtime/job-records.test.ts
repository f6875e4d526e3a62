/**
 * The scheduler's book of jobs keeps records without a table of every id: ids of the form `job-N`
 * go into an index table by N, other ids into a map, and the submission order into an index
 * table by sequence number. These tests hold the tables to a plain `Map` model.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Failure,
  IndexTable,
  JobRecords,
  endedSnapshot,
  numberOf,
  resultOf,
  settle,
} from '../../src/runtime/job-records.js';
import type { NormalisedJob } from '../../src/core/job-spec.js';
import { toUnits } from '../../src/core/pool.js';
import { DONE_PROGRESS, NO_PROGRESS } from '../../src/core/progress.js';
import type { JobContext } from '../../src/machines/job.machine.js';
import { toJobSnapshot } from '../../src/runtime/snapshot.js';
import { numRuns } from '../helpers/num-runs.js';

describe('numberOf', () => {
  it('reads N from job-N written the one way newId writes it, and nothing else', () => {
    expect(numberOf('job-1')).toBe(1);
    expect(numberOf('job-1024')).toBe(1024);
    expect(numberOf('job-2147483647')).toBe(2_147_483_647);
    for (const other of [
      'job-0',
      'job-01',
      'job-',
      'job-x',
      'job-1x',
      'Job-1',
      'jobs-1',
      'job--1',
      'job-2147483648',
      'job-1.5',
      'a',
      '',
      'job-99999999999',
    ]) {
      expect(numberOf(other), other).toBe(-1);
    }
  });

  it('gives back N for every N it may hold', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), (n) => numberOf(`job-${n}`) === n),
      { numRuns: numRuns(200) },
    );
  });
});

type Op = { kind: 'set'; at: number } | { kind: 'delete'; pick: number } | { kind: 'far'; at: number };

describe('IndexTable', () => {
  it('holds what a Map holds, in rising order, through growth and deletion', () => {
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.integer({ min: 1, max: 700 }) }),
      },
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('far' as const),
          at: fc.integer({ min: 0, max: 0x7fffffff }),
        }),
      },
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
        const table = new IndexTable<string>();
        const model = new Map<number, string>();
        let next = 0;
        for (const op of ops) {
          if (op.kind === 'set') {
            // Mostly rising indices (ids and order are made that way), in jumps across chunks.
            next += op.at;
            model.set(next, `v${next}`);
            table.set(next, `v${next}`);
          } else if (op.kind === 'far') {
            if (!model.has(op.at)) {
              model.set(op.at, `v${op.at}`);
              table.set(op.at, `v${op.at}`);
            }
          } else if (model.size > 0) {
            const keys = [...model.keys()];
            const key = keys[op.pick % keys.length] as number;
            model.delete(key);
            table.delete(key);
          }
          for (const [key, value] of model) if (table.get(key) !== value) expect(table.get(key)).toBe(value);
          if (!model.has(next + 1)) expect(table.get(next + 1)).toBeUndefined();
        }
        const sorted = [...model.keys()].sort((a, b) => a - b).map((k) => `v${k}`);
        expect([...table.values()]).toEqual(sorted);
      }),
      { numRuns: numRuns(150) },
    );
  });

  it('iterates like a Map: it sees values set after it began and skips those deleted before it reaches them', () => {
    const table = new IndexTable<number>();
    for (let i = 0; i < 3_000; i++) table.set(i, i);
    const seen: number[] = [];
    for (const value of table.values()) {
      seen.push(value);
      if (value === 10) table.delete(2_000);
      if (value === 2_999) table.set(5_000, 5_000);
    }
    expect(seen.length).toBe(3_000);
    expect(seen.includes(2_000)).toBe(false);
    expect(seen.at(-1)).toBe(5_000);
  });

  it('keeps a bounded number of chunks when values come and go one by one (nothing retained)', () => {
    const table = new IndexTable<number>();
    for (let i = 0; i < 50_000; i++) {
      table.set(i, i);
      table.delete(i);
    }
    expect(table.chunkCount).toBeLessThanOrEqual(1);
    expect([...table.values()]).toEqual([]);
    table.set(50_000, 1);
    expect([...table.values()]).toEqual([1]);
  });

  it('lets an emptied chunk go, unless it is the newest, and still finds values set into it later', () => {
    const table = new IndexTable<number>();
    for (let i = 0; i < 2_048; i++) table.set(i, i);
    for (let i = 0; i < 2_048; i++) table.delete(i);
    expect([...table.values()]).toEqual([]);
    table.set(5, 5);
    table.set(3_000, 3_000);
    expect(table.get(5)).toBe(5);
    expect([...table.values()]).toEqual([5, 3_000]);
  });
});

describe('JobRecords', () => {
  const job = (id: string): NormalisedJob =>
    ({
      id,
      type: 't',
      payload: undefined,
      priority: 'normal',
      level: 2,
      resources: {},
      dependsOn: [],
    }) as unknown as NormalisedJob;

  it('finds every record by id, keeps submission order and groups across both kinds of id, and forgets dropped ones', () => {
    const pickArb = fc.record({
      id: fc.oneof(
        fc.constant('new'),
        fc.constantFrom('a', 'job-0', 'job-07', 'x-1'),
        fc.integer({ min: 1, max: 40 }),
      ),
      grouped: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(pickArb, { maxLength: 60 }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(fc.nat(), { maxLength: 60 }),
        (picks, retain, finishPicks) => {
          const records = new JobRecords(retain);
          const order: string[] = [];
          const grouped = new Set<string>();
          for (const pick of picks) {
            const id =
              pick.id === 'new'
                ? records.newId(new Set())
                : typeof pick.id === 'number'
                  ? `job-${pick.id}`
                  : pick.id;
            if (records.has(id)) continue;
            const spec = pick.grouped ? { ...job(id), group: 'g' } : job(id);
            const record = records.add(spec, toUnits({ cpu: 1 }), pick.id === 'new');
            expect(records.get(id)).toBe(record);
            order.push(id);
            if (pick.grouped) grouped.add(id);
          }
          expect([...records.ids()]).toEqual(order);
          expect([...records.entries()].map(([id, r]) => (r.id === id ? id : '?'))).toEqual(order);
          expect([...records.ids('g')]).toEqual(order.filter((id) => grouped.has(id)));
          // Finish them all in some order: only the last `retain` to finish stay.
          const left = [...order];
          const finishedOrder: string[] = [];
          for (let i = 0; left.length > 0; i++) {
            const [id] = left.splice((finishPicks[i] ?? 0) % left.length, 1) as [string];
            const record = records.get(id);
            if (!record) throw new Error(`lost ${id}`);
            records.moved(record, 'cancelled');
            records.ended(record, {
              attempt: 0,
              progress: NO_PROGRESS,
              submittedAt: 0,
              endedAt: 0,
            } as unknown as JobContext);
            records.finished(record);
            finishedOrder.push(id);
          }
          const kept = new Set(finishedOrder.slice(Math.max(0, finishedOrder.length - retain)));
          expect([...records.ids()]).toEqual(order.filter((id) => kept.has(id)));
          expect([...records.ids('g')]).toEqual(order.filter((id) => kept.has(id) && grouped.has(id)));
          for (const id of order) expect(records.has(id)).toBe(kept.has(id));
          expect(records.counts.cancelled).toBe(order.length);
        },
      ),
      { numRuns: numRuns(150) },
    );
  });
});

describe('an ended job', () => {
  const finalState = fc.constantFrom('completed', 'failed', 'cancelled');
  const time = fc.double({ min: 0, max: 1e13, noNaN: true });
  const ending = fc.record({
    state: finalState,
    group: fc.option(fc.constantFrom('g', 'h'), { nil: undefined }),
    attempt: fc.integer({ min: 0, max: 5 }),
    progress: fc.oneof(
      fc.constant(NO_PROGRESS),
      fc.constant(DONE_PROGRESS),
      fc.record({ fraction: fc.double({ min: 0, max: 1, noNaN: true }), note: fc.string() }),
    ),
    error: fc.option(
      fc.record({ kind: fc.constantFrom('error', 'timeout', 'cancelled'), message: fc.string() }),
      { nil: undefined },
    ),
    submittedAt: time,
    startedAt: fc.option(time, { nil: undefined }),
    endedAt: time,
  });

  it('has the snapshot its last context gave, times and all, across many chunks of times', () => {
    fc.assert(
      fc.property(fc.array(ending, { minLength: 1, maxLength: 2_500 }), (endings) => {
        const records = new JobRecords(10_000);
        const units = toUnits({ cpu: 1 });
        const made = endings.map((end, i) => {
          const job = {
            id: `job-${i + 1}`,
            type: 't',
            payload: undefined,
            priority: 'high',
            level: 3,
            timeoutMs: undefined,
            maxAttempts: 4,
            backoff: { kind: 'fixed', delayMs: 1 },
            group: end.group,
            dependsOn: [],
            dependencyPolicy: 'afterok',
          } as unknown as NormalisedJob;
          const record = records.add(job, units, true);
          const context = {
            id: job.id,
            attempt: end.attempt,
            maxAttempts: 4,
            progress: end.progress,
            error: end.error,
            waitReason: undefined,
            allocation: undefined,
            submittedAt: end.submittedAt,
            startedAt: end.startedAt,
            endedAt: end.endedAt,
          } as unknown as JobContext;
          records.moved(record, end.state);
          records.ended(record, context);
          // What the scheduler made of the last context when it kept a snapshot per ended job.
          const expected = toJobSnapshot(job.id, record.kind, { value: end.state, context } as never, 3);
          return { record, expected };
        });
        // Read after all ended: a later chunk of times must not have overwritten an earlier one.
        for (const { record, expected } of made) {
          const got = endedSnapshot(record);
          expect(got).toStrictEqual(expected);
          // The very progress object it ended with (a shared one, or its own).
          expect(got.progress).toBe(expected.progress);
        }
      }),
      { numRuns: numRuns(20) },
    );
  });
});

describe("a job record's outcome", () => {
  const job = { id: 'j', type: 't', payload: undefined, priority: 'normal', level: 2, dependsOn: [] };
  const record = () => new JobRecords(10).add(job as unknown as NormalisedJob, toUnits({ cpu: 1 }));

  it('resolves `result` with the output as it is — undefined, or any object, even one shaped like a failure', async () => {
    const a = record();
    const early = resultOf(a);
    settle(a, undefined);
    await expect(early).resolves.toBeUndefined();
    await expect(resultOf(a)).resolves.toBeUndefined();
    const b = record();
    const lookalike = { ok: false, error: () => new Error('not a failure') };
    settle(b, lookalike);
    await expect(resultOf(b)).resolves.toBe(lookalike);
  });

  it('rejects `result` with the error a Failure makes, before or after it is asked for', async () => {
    const a = record();
    const early = resultOf(a);
    settle(a, new Failure(() => new Error('boom')));
    await expect(early).rejects.toThrow('boom');
    await expect(resultOf(a)).rejects.toThrow('boom');
  });
});

describe('job kinds', () => {
  const base = {
    type: 't',
    payload: undefined,
    priority: 'normal',
    level: 2,
    timeoutMs: undefined,
    maxAttempts: 3,
    backoff: { kind: 'fixed', delayMs: 1 },
    group: undefined,
    dependsOn: Object.freeze([]) as readonly string[],
    dependencyPolicy: 'afterok',
  };
  const spec = (id: string, over: Record<string, unknown> = {}) =>
    ({ ...base, id, ...over }) as unknown as NormalisedJob;

  it('shares one frozen kind among jobs of one shape, and gives each other shape its own', () => {
    const records = new JobRecords(10);
    const units = toUnits({ cpu: 1 });
    const a = records.add(spec('a'), units);
    const b = records.add(spec('b', { payload: { n: 1 } }), units);
    expect(b.kind).toBe(a.kind);
    expect(Object.isFrozen(a.kind)).toBe(true);
    expect(a.kind).toMatchObject({ type: 't', priority: 'normal', level: 2, maxAttempts: 3, units });
    const others = [
      records.add(spec('c', { type: 'u' }), units),
      records.add(spec('d', { priority: 'high', level: 3 }), units),
      records.add(spec('e', { timeoutMs: 5 }), units),
      records.add(spec('f', { maxAttempts: 1 }), units),
      records.add(spec('g', { backoff: { kind: 'fixed', delayMs: 1 } }), units),
      records.add(spec('h', { group: 'x' }), units),
      records.add(spec('i', { dependencyPolicy: 'afterany' }), units),
      records.add(spec('j'), toUnits({ cpu: 2 })),
      records.add(spec('k', { dependsOn: ['a'] }), units),
    ];
    expect(new Set([a.kind, ...others.map((r) => r.kind)]).size).toBe(others.length + 1);
    // A job that names dependencies never shares its kind, even with an equal one.
    expect(records.add(spec('l', { dependsOn: ['a'] }), units).kind).not.toBe(others.at(-1)?.kind);
  });
});
