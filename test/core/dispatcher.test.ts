/**
 * The dispatcher: scenario tests of each rule (attach/open, effective-priority order, slots,
 * strict and backfill rounds, denials, dequeue, boosts, rejected requests, releases), and a
 * property test that drives random operations on a real ledger and, after every step, checks the
 * invariants (slots, capacity, holders = ledger, queued xor holding) and that every `next`
 * decided exactly what the policy says, judged against a brute-force "does it fit now?" oracle.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  Dispatcher,
  type Decision,
  type DispatchPolicy,
  type Placer,
  type Waiting,
} from '../../src/core/dispatcher.js';
import type { Boost, QueueEntry } from '../../src/core/queue.js';
import { ResourceLedger } from '../../src/core/ledger.js';
import { toUnits, type UnitRequest } from '../../src/core/pool.js';
import type { ResourcePool, ResourceRequest, ResourceTotals } from '../../src/core/resources.js';
import type { Allocation } from '../../src/core/types.js';
import { checkLedgerInvariants, someNodeFits } from '../helpers/ledger-invariants.js';
import { numRuns } from '../helpers/num-runs.js';

type Job = { readonly units: UnitRequest; readonly name: string };

const POOL: ResourcePool = { cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_000 }, { vramMb: 24_000 }] };

const job = (name: string, request: ResourceRequest): Job => ({ name, units: toUnits(request) });

function policy(over: Partial<DispatchPolicy> = {}): DispatchPolicy {
  return {
    maxConcurrentJobs: 10,
    queuePolicy: 'strict',
    reserveAfterMs: 1_000,
    backfillDepth: 5,
    aging: { intervalMs: 0, maxLevels: 0 },
    ...over,
  };
}

/** An open dispatcher attached to a fresh ledger of POOL. */
function setup(over: Partial<DispatchPolicy> = {}) {
  const ledger = new ResourceLedger(POOL);
  const d = new Dispatcher<Job>(policy(over));
  d.attach(ledger);
  d.open = true;
  return { d, ledger };
}

/** Calls `next` until it says nothing (more) can start. */
function drain(d: Dispatcher<Job>, now: number): Array<Decision<Job>> {
  const out: Array<Decision<Job>> = [];
  for (let decision = d.next(now); decision; decision = d.next(now)) {
    out.push(decision);
    if (out.length > 1_000) throw new Error('next never said undefined');
  }
  return out;
}

function granted<T extends Waiting>(decision: Decision<T> | undefined): Allocation {
  if (decision?.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(decision)}`);
  return decision.allocation;
}

const queuedIds = <T extends Waiting>(d: Dispatcher<T>, now: number) =>
  [...d.queue.inOrder(now)].map((e) => e.id);

/** A placer that counts the requests it is asked to place, by job name. */
function countingPlacer(ledger: ResourceLedger, byUnits: Map<UnitRequest, string>) {
  const asked: string[] = [];
  const placer: Placer = {
    tryAllocate: (units, placement) => {
      asked.push(byUnits.get(units) ?? '?');
      return ledger.tryAllocate(units, placement);
    },
    release: (id) => ledger.release(id),
  };
  return { placer, asked };
}

describe('Dispatcher', () => {
  it('starts nothing before attach() or while closed', () => {
    const ledger = new ResourceLedger(POOL);
    const d = new Dispatcher<Job>(policy());
    const a = job('a', { cpu: 1 });
    d.enqueue('a', 2, 0, a);
    d.open = true;
    expect(d.attached).toBe(false);
    expect(d.next(0)).toBeUndefined();
    expect(d.queue.has('a')).toBe(true);

    d.attach(ledger);
    d.open = false;
    expect(d.attached).toBe(true);
    expect(d.next(0)).toBeUndefined();
    expect(d.queue.has('a')).toBe(true);
    expect(ledger.active).toBe(0);
    expect(d.holders.size).toBe(0);

    d.open = true;
    const decision = d.next(0);
    expect(decision).toMatchObject({ kind: 'granted', id: 'a', value: a });
    expect(d.holders.get('a')).toBe(granted(decision).id);
    expect(ledger.holds(granted(decision).id)).toBe(true);
    expect(d.queue.has('a')).toBe(false);
    expect(d.next(0)).toBeUndefined();
  });

  it('grants in effective-priority order: critical before background, FIFO within a level', () => {
    const { d, ledger } = setup();
    const values = new Map<string, Job>();
    for (const [id, level] of [
      ['bg1', 0],
      ['n1', 2],
      ['c1', 4],
      ['bg2', 0],
      ['n2', 2],
      ['c2', 4],
      ['l1', 1],
    ] as const) {
      const value = job(id, { cpu: 0.5, memoryMb: 256 });
      values.set(id, value);
      d.enqueue(id, level, 0, value);
    }
    const decisions = drain(d, 0);
    expect(decisions.map((x) => x.id)).toEqual(['c1', 'c2', 'n1', 'n2', 'l1', 'bg1', 'bg2']);
    for (const x of decisions) {
      expect(x.kind).toBe('granted');
      expect(x.value).toBe(values.get(x.id));
      expect(d.holders.get(x.id)).toBe(granted(x).id);
      expect(ledger.holds(granted(x).id)).toBe(true);
    }
    expect(d.queue.size).toBe(0);
    expect(ledger.active).toBe(7);
    expect(ledger.totals().allocated.cpu).toBeCloseTo(3.5);
    expect(ledger.totals().allocated.memoryMb).toBe(7 * 256);
  });

  it('aging lets a long-waiting job overtake a newer one of a higher base level', () => {
    const { d } = setup({ aging: { intervalMs: 100, maxLevels: 2 } });
    d.enqueue('old-low', 1, 0, job('old-low', { cpu: 1 }));
    d.enqueue('new-normal', 2, 50, job('new-normal', { cpu: 1 }));
    // At 100 the old job has aged one level: level 2, and it entered first.
    expect(drain(d, 100).map((x) => x.id)).toEqual(['old-low', 'new-normal']);
  });

  it('stops when every slot is held; release frees the slot and the ledger', () => {
    const { d, ledger } = setup({ maxConcurrentJobs: 2 });
    for (const id of ['a', 'b', 'c']) d.enqueue(id, 2, 0, job(id, { cpu: 1, memoryMb: 1_000 }));
    const decisions = drain(d, 0);
    expect(decisions.map((x) => x.id)).toEqual(['a', 'b']);
    expect(d.full).toBe(true);
    expect(d.holders.size).toBe(2);
    expect(d.next(0)).toBeUndefined();
    expect(queuedIds(d, 0)).toEqual(['c']);
    expect(ledger.totals().allocated).toMatchObject({ cpu: 2, memoryMb: 2_000 });

    const allocA = granted(decisions[0]);
    expect(d.release('a', allocA.id)).toBe(true);
    expect(d.full).toBe(false);
    expect(d.holders.has('a')).toBe(false);
    expect(ledger.holds(allocA.id)).toBe(false);
    expect(ledger.totals().allocated).toMatchObject({ cpu: 1, memoryMb: 1_000 });

    const c = d.next(0);
    expect(c).toMatchObject({ kind: 'granted', id: 'c' });
    expect(d.full).toBe(true);
    expect(ledger.totals().allocated).toMatchObject({ cpu: 2, memoryMb: 2_000 });
    // A second release of the same allocation frees nothing.
    expect(d.release('a', allocA.id)).toBe(false);
    expect(ledger.totals().allocated).toMatchObject({ cpu: 2, memoryMb: 2_000 });
    expect(d.holders.size).toBe(2);
  });

  it('strict: a head that does not fit blocks everyone behind it', () => {
    const { d, ledger } = setup({ queuePolicy: 'strict' });
    d.enqueue('running', 4, 0, job('running', { cpu: 4 }));
    const running = granted(d.next(0));
    d.enqueue('big', 3, 0, job('big', { cpu: 6 }));
    d.enqueue('small', 2, 0, job('small', { cpu: 1 }));
    d.enqueue('gpu', 1, 0, job('gpu', { gpu: 1 }));
    for (const now of [0, 10_000, 1e9]) {
      expect(d.next(now)).toBeUndefined();
      d.forgetDenials();
      expect(d.next(now)).toBeUndefined();
    }
    expect(queuedIds(d, 0)).toEqual(['big', 'small', 'gpu']);
    expect(ledger.active).toBe(1);
    expect(ledger.totals().allocated.cpu).toBe(4);

    expect(d.release('running', running.id)).toBe(true);
    expect(drain(d, 0).map((x) => x.id)).toEqual(['big', 'small', 'gpu']);
    expect(ledger.totals().allocated).toMatchObject({ cpu: 7, gpu: 1 });
  });

  it('backfill: a smaller job starts behind a blocked head until the head has waited reserveAfterMs', () => {
    const { d, ledger } = setup({ queuePolicy: 'backfill', reserveAfterMs: 1_000, backfillDepth: 5 });
    d.enqueue('running', 4, 0, job('running', { cpu: 4 }));
    granted(d.next(0));
    d.enqueue('big', 3, 0, job('big', { cpu: 6 }));
    d.enqueue('small', 2, 0, job('small', { cpu: 1 }));
    expect(d.next(500)).toMatchObject({ kind: 'granted', id: 'small' });
    expect(queuedIds(d, 500)).toEqual(['big']);

    d.enqueue('small2', 2, 600, job('small2', { cpu: 1 }));
    d.enqueue('small3', 2, 600, job('small3', { cpu: 1 }));
    // 999 ms after the head entered the queue it still lets one past ...
    expect(d.next(999)).toMatchObject({ kind: 'granted', id: 'small2' });
    // ... from 1 000 ms on, nothing starts past it, though small3 fits.
    expect(d.next(1_000)).toBeUndefined();
    d.forgetDenials();
    expect(d.next(5_000)).toBeUndefined();
    expect(queuedIds(d, 1_000)).toEqual(['big', 'small3']);
    expect(ledger.totals().allocated.cpu).toBe(6);
  });

  it('backfill passes over at most backfillDepth waiting jobs', () => {
    const attempt = (depth: number) => {
      const { d, ledger } = setup({ queuePolicy: 'backfill', reserveAfterMs: 1e9, backfillDepth: depth });
      d.enqueue('running', 4, 0, job('running', { cpu: 4 }));
      granted(d.next(0));
      d.enqueue('big1', 4, 0, job('big1', { cpu: 6 }));
      d.enqueue('big2', 3, 0, job('big2', { cpu: 5 }));
      d.enqueue('big3', 3, 0, job('big3', { cpu: 5 }));
      d.enqueue('small', 2, 0, job('small', { cpu: 1 }));
      const started = drain(d, 10).map((x) => x.id);
      return { started, queued: queuedIds(d, 10), cpu: ledger.totals().allocated.cpu };
    };
    expect(attempt(0)).toEqual({ started: [], queued: ['big1', 'big2', 'big3', 'small'], cpu: 4 });
    expect(attempt(1)).toEqual({ started: [], queued: ['big1', 'big2', 'big3', 'small'], cpu: 4 });
    expect(attempt(2)).toEqual({ started: [], queued: ['big1', 'big2', 'big3', 'small'], cpu: 4 });
    expect(attempt(3)).toEqual({ started: ['small'], queued: ['big1', 'big2', 'big3'], cpu: 5 });
    expect(attempt(9)).toEqual({ started: ['small'], queued: ['big1', 'big2', 'big3'], cpu: 5 });
  });

  it('does not ask the ledger again about a denied job until a release frees something or forgetDenials()', () => {
    const ledger = new ResourceLedger(POOL);
    const names = new Map<UnitRequest, string>();
    const { placer, asked } = countingPlacer(ledger, names);
    const d = new Dispatcher<Job>(policy({ queuePolicy: 'backfill', reserveAfterMs: 1e9 }));
    d.attach(placer);
    d.open = true;
    const add = (id: string, level: number, request: ResourceRequest) => {
      const value = job(id, request);
      names.set(value.units, id);
      d.enqueue(id, level, 0, value);
    };
    add('running', 4, { cpu: 6 });
    const running = granted(d.next(0));
    add('big', 3, { cpu: 4 });
    asked.length = 0;

    expect(d.next(0)).toBeUndefined();
    expect(asked).toEqual(['big']);
    expect(d.next(0)).toBeUndefined();
    expect(d.next(50)).toBeUndefined();
    expect(asked).toEqual(['big']);

    // A job that fits is still asked about, behind the denied head; the head is not.
    add('small', 2, { cpu: 1 });
    expect(d.next(0)).toMatchObject({ kind: 'granted', id: 'small' });
    expect(asked).toEqual(['big', 'small']);
    const small = d.holders.get('small') as string;

    // A release that frees nothing does not reset the denials.
    expect(d.release('ghost', 'alloc-999')).toBe(false);
    expect(d.next(0)).toBeUndefined();
    expect(asked).toEqual(['big', 'small']);

    // forgetDenials: asked once more (still too big), then denied again.
    d.forgetDenials();
    expect(d.next(0)).toBeUndefined();
    expect(d.next(0)).toBeUndefined();
    expect(asked).toEqual(['big', 'small', 'big']);

    // Dequeued and queued again: a new job, asked again.
    expect(d.dequeue('big')).toBe(true);
    add('big', 3, { cpu: 4 });
    expect(d.next(0)).toBeUndefined();
    expect(asked).toEqual(['big', 'small', 'big', 'big']);

    // A release that frees something: asked again, and now it fits.
    expect(d.release('small', small)).toBe(true);
    expect(d.next(0)).toBeUndefined(); // 6 + 4 > 8 still
    expect(asked).toEqual(['big', 'small', 'big', 'big', 'big']);
    expect(d.release('running', running.id)).toBe(true);
    expect(d.next(0)).toMatchObject({ kind: 'granted', id: 'big' });
    expect(asked).toEqual(['big', 'small', 'big', 'big', 'big', 'big']);
    expect(ledger.totals().allocated.cpu).toBe(4);
  });

  it('dequeue takes a queued job out', () => {
    const { d } = setup();
    for (const id of ['a', 'b', 'c']) d.enqueue(id, 2, 0, job(id, { cpu: 1 }));
    expect(d.dequeue('b')).toBe(true);
    expect(d.dequeue('b')).toBe(false);
    expect(d.dequeue('nope')).toBe(false);
    expect(d.queue.has('b')).toBe(false);
    expect(drain(d, 0).map((x) => x.id)).toEqual(['a', 'c']);
    expect(d.holders.has('b')).toBe(false);
    // A job that holds a slot is not queued: dequeue says so and keeps its slot.
    expect(d.dequeue('a')).toBe(false);
    expect(d.holders.has('a')).toBe(true);
  });

  it('enqueue of a job already queued changes nothing', () => {
    const { d } = setup();
    const first = job('a', { cpu: 1 });
    d.enqueue('a', 0, 0, first);
    d.enqueue('b', 1, 0, job('b', { cpu: 1 }));
    d.enqueue('a', 4, 5, job('a', { cpu: 2 }), { toLevel: 4, until: 1e9 });
    expect(d.queue.size).toBe(2);
    expect(d.queue.get('a')).toMatchObject({ base: 0, boost: undefined });
    const entry = d.queue.get('a');
    expect(entry && d.queue.enqueuedAt(entry)).toBe(0);
    const decisions = drain(d, 10);
    expect(decisions.map((x) => x.id)).toEqual(['b', 'a']);
    expect(decisions[1]?.value).toBe(first);
    expect(granted(decisions[1]).cpu).toBe(1);
  });

  it('a boost passed to enqueue raises the job while it lasts', () => {
    const run = (boostUntil: number, now: number) => {
      const { d } = setup();
      d.enqueue('normal', 2, 0, job('normal', { cpu: 1 }));
      d.enqueue('low', 1, 0, job('low', { cpu: 1 }), { toLevel: 4, until: boostUntil });
      d.enqueue('bg', 0, 0, job('bg', { cpu: 1 }), { byLevels: 2, until: boostUntil });
      return drain(d, now).map((x) => x.id);
    };
    // low → critical; bg + 2 = normal, but normal entered first.
    expect(run(100, 50)).toEqual(['low', 'normal', 'bg']);
    // Expired: base levels.
    expect(run(100, 100)).toEqual(['normal', 'low', 'bg']);
  });

  it('rejects a job whose request the ledger throws on, and takes it out of the queue', () => {
    const ledger = new ResourceLedger(POOL);
    // Its own units object (toUnits shares one among equal requests), to be told apart.
    const bad: Job = { name: 'bad', units: { ...toUnits({ cpu: 1 }) } };
    const failure = new Error('pool changed');
    const placer: Placer = {
      tryAllocate: (units, placement) => {
        if (units === bad.units) throw failure;
        return ledger.tryAllocate(units, placement);
      },
      release: (id) => ledger.release(id),
    };
    const d = new Dispatcher<Job>(policy({ queuePolicy: 'strict' }));
    d.attach(placer);
    d.open = true;
    d.enqueue('bad', 4, 0, bad);
    const good = job('good', { cpu: 1 });
    d.enqueue('good', 2, 0, good);

    const first = d.next(0);
    expect(first).toEqual({ kind: 'rejected', id: 'bad', value: bad, error: failure });
    expect(d.queue.has('bad')).toBe(false);
    expect(d.holders.has('bad')).toBe(false);
    expect(ledger.active).toBe(0);
    expect(d.next(0)).toMatchObject({ kind: 'granted', id: 'good', value: good });
    expect(d.next(0)).toBeUndefined();
    expect([...d.holders.keys()]).toEqual(['good']);
  });

  it('release of an unknown allocation returns false and changes nothing', () => {
    const { d, ledger } = setup({ maxConcurrentJobs: 1 });
    d.enqueue('a', 2, 0, job('a', { cpu: 2, memoryMb: 512, gpu: 1 }));
    d.enqueue('b', 2, 0, job('b', { cpu: 1 }));
    const alloc = granted(d.next(0));
    const totals = JSON.stringify(ledger.totals());
    expect(d.release('zzz', 'alloc-999')).toBe(false);
    expect(d.release('a', 'alloc-999')).toBe(false);
    expect(d.release('a', 'nope')).toBe(false);
    expect(JSON.stringify(ledger.totals())).toBe(totals);
    expect([...d.holders]).toEqual([['a', alloc.id]]);
    expect(ledger.active).toBe(1);
    expect(ledger.holds(alloc.id)).toBe(true);
    expect(d.full).toBe(true);
    expect(d.next(0)).toBeUndefined();
    expect(d.queue.has('b')).toBe(true);
  });

  it("release naming another job's allocation frees nothing: slot and resources stay together", () => {
    const { d, ledger } = setup();
    d.enqueue('a', 2, 0, job('a', { cpu: 2 }));
    const alloc = granted(d.next(0));
    expect(d.release('b', alloc.id)).toBe(false);
    expect(ledger.holds(alloc.id)).toBe(true);
    expect([...d.holders]).toEqual([['a', alloc.id]]);
    expect(d.release('a', alloc.id)).toBe(true);
    expect(ledger.active).toBe(0);
    expect(d.holders.size).toBe(0);
  });

  it('forgets denials when the ledger says resources grew by a path it did not see (ledger.grown)', () => {
    const { d, ledger } = setup();
    ledger.setAdmissionLimit(ledger.nodes[0]?.id as string, { memoryMb: 0 });
    d.enqueue('m', 2, 0, job('m', { memoryMb: 1_024 }));
    expect(d.next(0)).toBeUndefined();
    expect(d.next(0)).toBeUndefined(); // denied: not asked again
    ledger.setAdmissionLimit(ledger.nodes[0]?.id as string, undefined);
    expect(granted(d.next(0)).memoryMb).toBe(1_024);
  });

  it('enqueue of a job that holds a slot changes nothing: it is never granted twice', () => {
    const { d, ledger } = setup();
    d.enqueue('x', 2, 0, job('x', { cpu: 2 }));
    const alloc = granted(d.next(0));
    d.enqueue('x', 2, 0, job('x', { cpu: 2 }));
    expect(d.queue.has('x')).toBe(false);
    expect(d.next(0)).toBeUndefined();
    expect(ledger.active).toBe(1);
    expect([...d.holders]).toEqual([['x', alloc.id]]);
  });
});

// ---------------------------------------------------------------------------------------------
// Property test
// ---------------------------------------------------------------------------------------------

/** A cheap assertion for the hot loop (vitest's expect costs microseconds per call). */
function ensure(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

/** A queued job of the property test; `poison`: the placer throws on its request. */
type PJob = { readonly units: UnitRequest; readonly poison: boolean };

type Op =
  | {
      kind: 'enqueue';
      level: number;
      request: ResourceRequest;
      poison: boolean;
      boost: { toLevel?: number; byLevels?: number; for: number } | null;
    }
  | { kind: 'requeue'; pick: number; level: number }
  | { kind: 'enqueueAgain'; pick: number; level: number }
  | { kind: 'dequeue'; pick: number; again: boolean }
  | { kind: 'dequeueUnknown' }
  | { kind: 'drain' }
  | { kind: 'release'; pick: number; twice: boolean }
  | { kind: 'releaseUnknown' }
  | { kind: 'forget' }
  | { kind: 'setOpen'; open: boolean }
  | { kind: 'advance'; ms: number }
  | { kind: 'limit'; memoryFraction: number | null };

const requestArb: fc.Arbitrary<ResourceRequest> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc
      .record({
        cpu: fc.constantFrom(0, 0.5, 1, 2, 3, 4, 6),
        memoryMb: fc.constantFrom(0, 512, 2_048, 4_096, 8_192, 12_288),
        gpu: fc.constantFrom(0, 0, 0.25, 0.5, 1, 2),
        vramMb: fc.constantFrom(0, 8_000, 20_000),
      })
      .map(({ cpu, memoryMb, gpu, vramMb }): ResourceRequest =>
        gpu === 0 ? { cpu, memoryMb } : { cpu, memoryMb, gpu, vramMb },
      ),
  },
  // More than the pool will ever have: denied every time, a permanent blocker at the head.
  { weight: 1, arbitrary: fc.constant<ResourceRequest>({ cpu: 12 }) },
);

const levelArb = fc.integer({ min: 0, max: 4 });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant('enqueue' as const),
      level: levelArb,
      request: requestArb,
      poison: fc.oneof(
        { weight: 20, arbitrary: fc.constant(false) },
        { weight: 1, arbitrary: fc.constant(true) },
      ),
      boost: fc.option(
        fc.record(
          {
            toLevel: levelArb,
            byLevels: fc.integer({ min: -2, max: 3 }),
            for: fc.integer({ min: 0, max: 300 }),
          },
          { requiredKeys: ['for'] },
        ),
        { freq: 4 },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('requeue' as const), pick: fc.nat(), level: levelArb }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('enqueueAgain' as const), pick: fc.nat(), level: levelArb }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('dequeue' as const), pick: fc.nat(), again: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'dequeueUnknown' as const }) },
  { weight: 6, arbitrary: fc.constant({ kind: 'drain' as const }) },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat(), twice: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'releaseUnknown' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'forget' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('setOpen' as const),
      open: fc.oneof({ weight: 2, arbitrary: fc.constant(true) }, fc.constant(false)),
    }),
  },
  {
    weight: 3,
    // Coarse steps, so that a head's wait often equals reserveAfterMs exactly.
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(0, 1, 50, 100, 250) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('limit' as const),
      memoryFraction: fc.option(fc.constantFrom(0, 0.25, 0.5, 0.75), { freq: 3 }),
    }),
  },
);

const policyArb: fc.Arbitrary<DispatchPolicy> = fc.record({
  maxConcurrentJobs: fc.constantFrom(1, 2, 3, 8, 8),
  queuePolicy: fc.constantFrom('strict' as const, 'backfill' as const),
  reserveAfterMs: fc.constantFrom(0, 50, 100, 400, 100_000),
  backfillDepth: fc.integer({ min: 0, max: 4 }),
  aging: fc.record({ intervalMs: fc.constantFrom(0, 50, 200), maxLevels: fc.integer({ min: 0, max: 2 }) }),
});

/**
 * What one `next` must decide, from the queue's order and what fits before the call: the first
 * job of the window that fits (or whose request the placer throws on), where the window is the
 * head alone in strict mode or once the head has waited reserveAfterMs, and otherwise the head
 * and the backfillDepth jobs behind it. -1: nothing starts.
 *
 * No denial memo here: a job denied earlier must still be denied now, because resources only
 * grow through a release or a raised admission limit, and both reset the memo (the latter by
 * forgetDenials, as the scheduler does on a capacity change) — so the memo never changes a decision.
 */
function expectedPick(
  p: DispatchPolicy,
  open: boolean,
  holding: number,
  now: number,
  order: ReadonlyArray<QueueEntry<PJob>>,
  fits: readonly boolean[],
  enqueuedAt: (entry: QueueEntry<PJob>) => number,
): number {
  const head = order[0];
  if (!open || holding >= p.maxConcurrentJobs || !head) return -1;
  const window =
    p.queuePolicy === 'strict' || now - enqueuedAt(head) >= p.reserveAfterMs ? 1 : p.backfillDepth + 1;
  for (let i = 0; i < Math.min(window, order.length); i++) {
    if (fits[i] || order[i]?.value.poison) return i;
  }
  return -1;
}

const sameTotals = (a: ResourceTotals, b: ResourceTotals) => JSON.stringify(a) === JSON.stringify(b);

function runScenario(p: DispatchPolicy, ops: readonly Op[]): void {
  const ledger = new ResourceLedger(POOL);
  const poisoned = new Set<UnitRequest>();
  // Whose request each units object is, and who was denied since resources last grew: such a job
  // must not be asked about again (the placer records a violation; an error thrown here would
  // only come back as a 'rejected' decision).
  const owner = new Map<UnitRequest, string>();
  const denied = new Set<string>();
  let violation: string | undefined;
  const placer: Placer = {
    tryAllocate: (units, placement) => {
      const id = owner.get(units) ?? '?';
      if (denied.has(id)) violation ??= `${id} asked about again, denied since resources last grew`;
      if (poisoned.has(units)) throw new Error('pool changed under a checked job');
      const allocation = ledger.tryAllocate(units, placement);
      if (!allocation) denied.add(id);
      return allocation;
    },
    release: (id) => ledger.release(id),
  };
  const d = new Dispatcher<PJob>(p);
  d.attach(placer);
  d.open = true;
  let now = 0;
  let n = 0;
  // The model: who holds which allocation, who is queued, and ids that may queue again.
  const holding = new Map<string, Allocation>();
  const queued = new Set<string>();
  const idle: string[] = [];
  const capacity = ledger.totals().capacity;

  const check = (at: string) => {
    ensure(d.holders.size <= p.maxConcurrentJobs, `${at}: ${d.holders.size} slots held`);
    ensure(d.full === d.holders.size >= p.maxConcurrentJobs, `${at}: full`);
    const { allocated } = ledger.totals();
    for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const) {
      ensure(
        allocated[k] >= -1e-9 && allocated[k] <= capacity[k] + 1e-9,
        `${at}: allocated ${k} ${allocated[k]} within capacity ${capacity[k]}`,
      );
    }
    ensure(
      ledger.active === d.holders.size,
      `${at}: ledger holds ${ledger.active}, ${d.holders.size} holders`,
    );
    ensure(d.holders.size === holding.size, `${at}: holders = model`);
    for (const [id, allocationId] of d.holders) {
      ensure(ledger.holds(allocationId), `${at}: ${id}'s allocation ${allocationId} is held`);
      ensure(!d.queue.has(id), `${at}: ${id} both queued and holding`);
      ensure(holding.get(id)?.id === allocationId, `${at}: ${id} holds what it was granted`);
    }
    ensure(d.queue.size === queued.size, `${at}: queue size ${d.queue.size}, model ${queued.size}`);
    for (const id of queued) ensure(d.queue.has(id), `${at}: ${id} queued`);
    checkLedgerInvariants(ledger, [...holding.values()]);
  };

  /** One `next`, judged against expectedPick. */
  const step = (label: string): Decision<PJob> | undefined => {
    const claimsNothing = !d.mayStart(now);
    const order = [...d.queue.inOrder(now)];
    const fits = order.map((e) => someNodeFits(ledger, e.value.units));
    const want = expectedPick(p, d.open, d.holders.size, now, order, fits, (e) => d.queue.enqueuedAt(e));
    // The tick skips a round when mayStart says no: the policy must agree that nothing starts.
    if (claimsNothing)
      ensure(want < 0, `${label}: mayStart(${now}) said no, but ${order[want]?.id} should start`);
    const before = ledger.totals();
    const decision = d.next(now);
    ensure(violation === undefined, `${label}: ${violation}`);
    const what = () =>
      `${label}: next(${now}), ${p.queuePolicy}, open ${d.open}, ${d.holders.size} held, order ` +
      order.map((e, i) => `${e.id}@${d.queue.enqueuedAt(e)}${fits[i] ? '+' : '-'}`).join(' ') +
      ` → ${decision?.kind} ${decision?.id}, expected ${order[want]?.id}`;
    if (want < 0) {
      ensure(decision === undefined, what());
      const after = [...d.queue.inOrder(now)];
      ensure(
        after.length === order.length && after.every((e, i) => e === order[i]),
        `${what()}: queue moved`,
      );
      ensure(sameTotals(ledger.totals().allocated, before.allocated), `${what()}: ledger moved`);
      return undefined;
    }
    const chosen = order[want] as QueueEntry<PJob>;
    ensure(decision?.id === chosen.id && decision.value === chosen.value, what());
    ensure(!d.queue.has(chosen.id) && d.queue.size === order.length - 1, `${what()}: still queued`);
    queued.delete(chosen.id);
    if (chosen.value.poison) {
      ensure(decision.kind === 'rejected', what());
      ensure(!d.holders.has(chosen.id), `${what()}: a rejected job holds a slot`);
      ensure(sameTotals(ledger.totals().allocated, before.allocated), `${what()}: ledger moved`);
      idle.push(chosen.id);
    } else {
      ensure(decision.kind === 'granted', what());
      ensure(d.holders.get(chosen.id) === decision.allocation.id, `${what()}: slot`);
      ensure(ledger.holds(decision.allocation.id), `${what()}: not on the ledger`);
      holding.set(chosen.id, decision.allocation);
    }
    return decision;
  };

  const enqueue = (id: string, level: number, request: ResourceRequest, poison: boolean, boost?: Boost) => {
    // toUnits shares one object among equal requests: each job gets its own, to be told apart.
    const value: PJob = { units: { ...toUnits(request) }, poison };
    if (poison) poisoned.add(value.units);
    owner.set(value.units, id);
    const mayStart = d.enqueue(id, level, now, value, boost);
    queued.add(id);
    const entry = d.queue.get(id);
    ensure(
      entry?.value === value && entry.base === level && d.queue.enqueuedAt(entry) === now,
      `enqueue ${id}`,
    );
    ensure(entry.boost === boost, `enqueue ${id}: its boost`);
    if (!mayStart) {
      // The dispatcher said no round could start it: a round now (judged by the oracle) must not.
      const decision = step(`round after enqueue ${id} said it cannot start`);
      ensure(decision?.id !== id, `enqueue ${id} said it could not start, but a round started it`);
    }
  };

  check('start');
  ops.forEach((op, i) => {
    const label = `#${i} ${JSON.stringify(op)}`;
    switch (op.kind) {
      case 'enqueue': {
        const b = op.boost;
        const boost: Boost | undefined = b
          ? {
              ...(b.toLevel === undefined ? {} : { toLevel: b.toLevel }),
              ...(b.byLevels === undefined ? {} : { byLevels: b.byLevels }),
              until: now + b.for,
            }
          : undefined;
        enqueue(`j${n++}`, op.level, op.request, op.poison, boost);
        break;
      }
      case 'requeue': {
        // A job that left (released, rejected, dequeued) queues again: a retry.
        if (idle.length === 0) break;
        const [id] = idle.splice(op.pick % idle.length, 1) as [string];
        enqueue(id, op.level, { cpu: 1, memoryMb: 1_024 }, false);
        break;
      }
      case 'enqueueAgain': {
        // A job already queued: a no-op.
        const entries = [...d.queue.inOrder(now)];
        const entry = entries[op.pick % Math.max(1, entries.length)];
        if (!entry) break;
        d.enqueue(entry.id, op.level, now, { units: toUnits({ cpu: 0.5 }), poison: false });
        const after = [...d.queue.inOrder(now)];
        ensure(after.length === entries.length && after.every((e, k) => e === entries[k]), label);
        ensure(d.queue.get(entry.id)?.base === entry.base, label);
        break;
      }
      case 'dequeue': {
        const ids = [...queued];
        const id = ids[op.pick % Math.max(1, ids.length)];
        if (id === undefined) break;
        ensure(d.dequeue(id), `${label}: dequeue ${id}`);
        ensure(!d.dequeue(id), `${label}: dequeue ${id} twice`);
        queued.delete(id);
        denied.delete(id);
        // Cancelled and submitted again at once, now asking for little: a new job.
        if (op.again) enqueue(id, 0, { cpu: 0.5 }, false);
        else idle.push(id);
        break;
      }
      case 'dequeueUnknown':
        ensure(!d.dequeue('ghost'), label);
        break;
      case 'drain': {
        const limit = d.queue.size;
        for (let calls = 1; step(`${label} call ${calls}`) !== undefined; calls++) {
          ensure(calls <= limit, `${label}: next keeps deciding`);
          check(`${label} call ${calls}`);
        }
        break;
      }
      case 'release': {
        const ids = [...holding.keys()];
        const id = ids[op.pick % Math.max(1, ids.length)];
        if (id === undefined) break;
        const allocation = holding.get(id) as Allocation;
        const before = ledger.totals().allocated;
        ensure(d.release(id, allocation.id), `${label}: release ${id}`);
        holding.delete(id);
        idle.push(id);
        denied.clear();
        ensure(!d.holders.has(id) && !ledger.holds(allocation.id), `${label}: ${id} still holds`);
        const after = ledger.totals().allocated;
        ensure(after.memoryMb === before.memoryMb - allocation.memoryMb, `${label}: memory back`);
        ensure(Math.abs(after.cpu - (before.cpu - allocation.cpu)) < 1e-9, `${label}: cpu back`);
        if (op.twice) {
          ensure(!d.release(id, allocation.id), `${label}: released twice`);
          ensure(sameTotals(ledger.totals().allocated, after), `${label}: second release moved the ledger`);
        }
        break;
      }
      case 'releaseUnknown': {
        const before = ledger.totals().allocated;
        ensure(!d.release('ghost', 'alloc-999999'), label);
        ensure(sameTotals(ledger.totals().allocated, before), label);
        break;
      }
      case 'forget':
        d.forgetDenials();
        denied.clear();
        break;
      case 'limit': {
        // Memory used outside the scheduler: lowering shrinks what fits (denials stay true);
        // raising grows it, and the scheduler then calls forgetDenials.
        const before = ledger.node(0).memoryLimitMb;
        const f = op.memoryFraction;
        ledger.setAdmissionLimit('node-0', f === null ? undefined : { memoryMb: Math.floor(16_384 * f) });
        if (ledger.node(0).memoryLimitMb > before) {
          d.forgetDenials();
          denied.clear();
        }
        break;
      }
      case 'setOpen':
        d.open = op.open;
        break;
      case 'advance':
        now += op.ms;
        break;
    }
    check(label);
  });
  // Open and drain once more at the end: the same rules hold.
  d.open = true;
  while (step('final drain') !== undefined) check('final drain');
  check('final drain');
}

describe('Dispatcher — property', () => {
  it('keeps slots, ledger and queue consistent, and each next() decides exactly what the policy says', () => {
    fc.assert(
      fc.property(policyArb, fc.array(opArb, { minLength: 10, maxLength: 150, size: 'max' }), (p, ops) =>
        runScenario(p, ops),
      ),
      { numRuns: numRuns(200) },
    );
  });
});
