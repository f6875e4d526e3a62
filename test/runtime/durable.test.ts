/**
 * A durable scheduler (`store`), in virtual time, on a store that keeps its journal in memory
 * (test/helpers/memory-store.ts): what it journals, and what a scheduler opened on the journal of
 * one that died — at any point of it — makes of it. The SQLite adapter has its own tests.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  createScheduler,
  createVirtualClock,
  type HandlerContext,
  type JobSnapshot,
  type Scheduler,
} from '../../src/index.js';
import { JobFailedError } from '../../src/core/errors.js';
import { MemoryStore } from '../helpers/memory-store.js';
import { numRuns } from '../helpers/num-runs.js';

const POOL = { cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }] };
type Payload = { ms: number; failUntil?: number };

/** A scheduler on `store`; `startAt`: its clock's time when it opens (after a crash, the time then). */
function durable(store: MemoryStore, calls: Array<{ id: string; attempt: number }> = [], startAt = 0) {
  const clock = createVirtualClock({ startAt });
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: POOL,
    store,
    retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } },
    handlers: {
      work: async ({ id, payload, attempt }: HandlerContext<Payload>) => {
        calls.push({ id, attempt });
        await new Promise<void>((resolve) => clock.setTimeout(resolve, payload.ms));
        if (attempt <= (payload.failUntil ?? 0)) throw new Error(`attempt ${attempt} failed`);
        return { id, attempt };
      },
    },
  });
  return { clock, scheduler, calls };
}

const byId = (s: Pick<Scheduler, 'list'>) => new Map(s.list().map((j) => [j.id, j] as const));

describe('a durable scheduler', () => {
  it('journals every accepted job before submit returns, and each transition', async () => {
    const store = new MemoryStore();
    const { clock, scheduler } = durable(store);
    scheduler.submit({ type: 'work', id: 'a', payload: { ms: 100 } });
    // Accepted (queued), then started at once (a free slot): both on disk before submit returned.
    expect(store.ops.map((o) => (o.op === 'accept' ? `accept ${o.entries[0]?.status.state}` : o.op))).toEqual(
      ['accept queued', 'update'],
    );
    expect(store.contentsAt().jobs[0]?.status).toMatchObject({ state: 'running', attempt: 1 });
    await clock.advanceBy(100);
    expect(store.contentsAt().jobs[0]?.status).toMatchObject({
      state: 'completed',
      attempt: 1,
      output: { id: 'a', attempt: 1 },
    });
    await scheduler.shutdown();
    expect(store.closed).toBe(true);
  });

  it('recovers after a crash: finished jobs stay finished, waiting ones run, a running attempt is interrupted and retried', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.submitAll([
      { type: 'work', id: 'done', payload: { ms: 10 } },
      { type: 'work', id: 'busy', payload: { ms: 1_000 }, resources: { gpu: 1 } },
      { type: 'work', id: 'waits', payload: { ms: 10 }, resources: { gpu: 1 } },
      { type: 'work', id: 'after', payload: { ms: 10 }, dependsOn: ['done', 'busy'] },
    ]);
    await first.clock.advanceBy(50);
    expect(first.scheduler.get('done')?.state).toBe('completed');
    expect(first.scheduler.get('busy')?.state).toBe('running');
    // The process dies here: nothing more reaches the store. A new one opens it.
    const calls: Array<{ id: string; attempt: number }> = [];
    const second = durable(store.reopenedAt(), calls);
    const jobs = byId(second.scheduler);
    expect(jobs.get('done')).toMatchObject({ state: 'completed' });
    // Its attempt 1 was interrupted; attempt 2 started at once on the free GPU.
    expect(jobs.get('busy')).toMatchObject({ state: 'running', attempt: 2, error: { kind: 'interrupted' } });
    expect(jobs.get('waits')?.state).not.toBe('completed');
    expect(jobs.get('after')?.state).toBe('pending');
    await second.clock.advanceBy(5_000);
    // Never rerun: `done` completed before the crash.
    expect(calls.map((c) => c.id).sort()).toEqual(['after', 'busy', 'waits']);
    expect(calls.find((c) => c.id === 'busy')?.attempt).toBe(2);
    for (const id of ['done', 'busy', 'waits', 'after'])
      expect(second.scheduler.get(id)?.state, id).toBe('completed');
    await second.scheduler.shutdown();
  });

  it('an interrupted last attempt fails with kind interrupted; a job whose handler is gone fails saying so', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.submit({ type: 'work', id: 'last', payload: { ms: 1_000 }, retry: { attempts: 1 } });
    await first.clock.advanceBy(10);
    const clock = createVirtualClock();
    const second = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      store: store.reopenedAt(),
      handlers: {},
    });
    expect(second.get('last')).toMatchObject({ state: 'failed', error: { kind: 'error' } });
    expect(second.get('last')?.error?.message).toMatch(/cannot run: .*handler/);
    const third = durable(store.reopenedAt());
    expect(third.scheduler.get('last')).toMatchObject({ state: 'failed', error: { kind: 'interrupted' } });
    const next = third.scheduler.submit({ type: 'work', payload: { ms: 1 } });
    await third.clock.advanceBy(100);
    await expect(next.result).resolves.toBeDefined();
  });

  it('refuses a payload that is not JSON, naming it, and journals nothing', () => {
    const store = new MemoryStore();
    const { scheduler } = durable(store);
    for (const payload of [
      new Map(),
      { when: new Date(0) },
      { n: 1n },
      { f: () => 1 },
      Number.NaN,
      { s: Symbol('x') },
    ])
      expect(() => scheduler.submit({ type: 'work', payload: payload as never })).toThrow(
        expect.objectContaining({ name: 'InvalidJobError', field: 'payload' }),
      );
    expect(store.ops).toEqual([]);
    expect(scheduler.stats().jobs.queued).toBe(0);
  });

  it('a store that cannot write refuses the submit: nothing accepted, the next id unchanged', async () => {
    const store = new MemoryStore();
    const { clock, scheduler } = durable(store);
    store.fail = new Error('SQLITE_FULL: database or disk is full');
    expect(() => scheduler.submit({ type: 'work', payload: { ms: 1 } })).toThrow(/disk is full/);
    expect(() => scheduler.submitAll([{ type: 'work', payload: { ms: 1 } }])).not.toThrow();
    expect(scheduler.list().map((j) => j.id)).toEqual(['job-1']);
    await clock.advanceBy(10);
    expect(scheduler.get('job-1')?.state).toBe('completed');
  });

  it('an attempt is on disk as running before its handler is called (a crash as it starts interrupts it)', async () => {
    const store = new MemoryStore();
    const clock = createVirtualClock();
    const seen: unknown[] = [];
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      store,
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 0 } },
      handlers: {
        work: ({ id, attempt }: HandlerContext<unknown>) => {
          // What a crash right now would leave on disk.
          seen.push(store.contentsAt().jobs.find((j) => j.job.id === id)?.status);
          if (attempt === 1) throw new Error('first try fails');
          return 'ok';
        },
      },
    });
    scheduler.submit({ type: 'work', id: 'a' });
    await clock.advanceBy(10);
    expect(seen).toMatchObject([
      { state: 'running', attempt: 1 },
      { state: 'running', attempt: 2 },
    ]);
  });

  it('a transition that cannot be journaled is told (store.writeFailed); the job goes on', async () => {
    const store = new MemoryStore();
    const { clock, scheduler } = durable(store);
    const failures: unknown[] = [];
    scheduler.events$.subscribe((e) => e.type === 'store.writeFailed' && failures.push(e));
    scheduler.submit({ type: 'work', id: 'a', payload: { ms: 10 }, dependsOn: [] });
    await clock.advanceBy(0);
    store.fail = new Error('SQLITE_FULL: database or disk is full');
    await clock.advanceBy(10);
    expect(scheduler.get('a')?.state).toBe('completed');
    expect(failures).toMatchObject([{ jobId: 'a', message: 'SQLITE_FULL: database or disk is full' }]);
    // On disk it is still running: a crash now would interrupt it and run it again.
    expect(store.contentsAt().jobs[0]?.status.state).toBe('running');
  });

  it('keeps generated ids going after recovery, and a paused scheduler stays paused', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.submit({ type: 'work', payload: { ms: 5 } });
    first.scheduler.submit({ type: 'work', payload: { ms: 5 } });
    first.scheduler.pause();
    const second = durable(store.reopenedAt());
    expect(second.scheduler.submit({ type: 'work', payload: { ms: 5 } }).id).toBe('job-3');
    await second.clock.advanceBy(100);
    expect(second.scheduler.stats().jobs.completed).toBe(0);
    second.scheduler.resume();
    await second.clock.advanceBy(100);
    expect(second.scheduler.stats().jobs.completed).toBe(3);
  });
});

describe('a recovered finished job (issue 16)', () => {
  it('reads as it did before the crash: its snapshot, and its output or error through handle(id)', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    const handles = first.scheduler.submitAll([
      { type: 'work', id: 'ok', payload: { ms: 10 } },
      { type: 'work', id: 'bad', payload: { ms: 10, failUntil: 9 }, retry: { attempts: 1 } },
      { type: 'work', id: 'after-bad', payload: { ms: 10 }, dependsOn: ['bad'] },
      { type: 'work', id: 'slow', payload: { ms: 1_000 } },
    ]);
    await first.clock.advanceBy(100);
    const ids = ['ok', 'bad', 'after-bad'];
    const before = ids.map((id) => first.scheduler.get(id));
    expect(before.map((s) => s?.state)).toEqual(['completed', 'failed', 'cancelled']);
    await expect(handles[0]?.result).resolves.toEqual({ id: 'ok', attempt: 1 });
    // The process dies (with `slow` running); a new one opens the store 100 ms later.
    const second = durable(store.reopenedAt(), [], first.clock.now() + 100);
    // The same snapshots as in the process they finished in: state, attempts, times, error.
    expect(ids.map((id) => second.scheduler.get(id))).toEqual(before);
    expect(second.scheduler.list({ state: 'completed' }).map((s) => s.id)).toEqual(['ok']);
    // The output and the error, through the handle of a job this process did not submit.
    await expect(second.scheduler.handle('ok')?.result).resolves.toEqual({ id: 'ok', attempt: 1 });
    const bad = await second.scheduler.handle('bad')?.result.catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(JobFailedError);
    expect(bad).toMatchObject({
      jobId: 'bad',
      state: 'failed',
      kind: 'error',
      message: 'job bad failed: attempt 1 failed',
    });
    await expect(second.scheduler.handle('after-bad')?.result).rejects.toMatchObject({
      state: 'cancelled',
      kind: 'dependency',
    });
    const states: string[] = [];
    second.scheduler.handle('ok')?.state$.subscribe((s) => states.push(s.state));
    expect(states).toEqual(['completed']);
    // A recovered job that had not finished: its handle resolves once it has.
    const slow = second.scheduler.handle<{ attempt: number }>('slow');
    expect(slow?.id).toBe('slow');
    await second.clock.advanceBy(1_000);
    await expect(slow?.result).resolves.toEqual({ id: 'slow', attempt: 2 });
    expect(second.scheduler.handle('nobody')).toBeUndefined();
    await second.scheduler.shutdown();
  });
});

describe('a boost survives a crash (issue 16)', () => {
  it('a boosted queued job keeps its boost after recovery until the same time, then it expires', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.pause();
    first.scheduler.submitAll([
      { type: 'work', id: 'x', payload: { ms: 10 }, priority: 'low', resources: { gpu: 1 } },
      { type: 'work', id: 'y', payload: { ms: 10 }, priority: 'low', resources: { gpu: 1 } },
    ]);
    expect(first.scheduler.boost({ ids: ['y'] }, { to: 'high', forMs: 1_000 }).until).toBe(1_000);
    expect(store.contentsAt().jobs.find((j) => j.job.id === 'y')?.status).toMatchObject({
      state: 'queued',
      boost: { to: 'high', until: 1_000 },
    });
    await first.clock.advanceBy(300);
    // The process dies at 300 ms; the next one opens the store then.
    const calls: Array<{ id: string; attempt: number }> = [];
    const second = durable(store.reopenedAt(), calls, 300);
    const expired: unknown[] = [];
    second.scheduler.events$.subscribe((e) => e.type === 'boost.expired' && expired.push(e));
    expect(second.scheduler.get('y')?.effectivePriority).toBe('high');
    expect(second.scheduler.get('x')?.effectivePriority).toBe('low');
    await second.clock.advanceBy(699);
    expect(second.scheduler.get('y')?.effectivePriority).toBe('high');
    expect(expired).toEqual([]);
    await second.clock.advanceBy(1);
    expect(second.scheduler.get('y')?.effectivePriority).toBe('low');
    expect(expired).toEqual([{ type: 'boost.expired', at: 1_000, jobIds: ['y'] }]);
    await second.scheduler.shutdown();
  });

  it('a boosted job goes first after recovery, before jobs queued ahead of it', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.pause();
    first.scheduler.submitAll([
      { type: 'work', id: 'x', payload: { ms: 10 }, resources: { gpu: 1 } },
      { type: 'work', id: 'y', payload: { ms: 10 }, resources: { gpu: 1 } },
    ]);
    first.scheduler.boost({ ids: ['y'] }, { by: 1, forMs: 1_000 });
    await first.clock.advanceBy(300);
    const calls: Array<{ id: string; attempt: number }> = [];
    const second = durable(store.reopenedAt(), calls, 300);
    second.scheduler.resume();
    await second.clock.advanceBy(100);
    expect(calls.map((c) => c.id)).toEqual(['y', 'x']);
    await second.scheduler.shutdown();
  });

  it('a boost given to a pending job applies when it queues after recovery, until the same time', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.submitAll([
      { type: 'work', id: 'w', payload: { ms: 5_000 }, resources: { gpu: 1 } },
      { type: 'work', id: 'x', payload: { ms: 1_000 } },
      { type: 'work', id: 'z', payload: { ms: 10 }, resources: { gpu: 1 }, dependsOn: ['x'] },
    ]);
    first.scheduler.boost({ ids: ['z'] }, { by: 2, forMs: 2_000 });
    expect(store.contentsAt().jobs.find((j) => j.job.id === 'z')?.status).toMatchObject({
      state: 'pending',
      boost: { by: 2, until: 2_000 },
    });
    await first.clock.advanceBy(300);
    const second = durable(store.reopenedAt(), [], 300);
    // w and x were interrupted and run again from 300 ms: x ends at 1,300, w holds the GPU.
    await second.clock.advanceBy(1_000);
    expect(second.scheduler.get('z')).toMatchObject({ state: 'queued', effectivePriority: 'critical' });
    await second.clock.advanceBy(699);
    expect(second.scheduler.get('z')?.effectivePriority).toBe('critical');
    await second.clock.advanceBy(1);
    expect(second.scheduler.get('z')).toMatchObject({ state: 'queued', effectivePriority: 'normal' });
    await second.clock.advanceBy(5_000);
    expect(second.scheduler.get('z')?.state).toBe('completed');
    await second.scheduler.shutdown();
  });
});

describe('a recovered retrying job resumes its backoff (issue 16)', () => {
  it('a crash in the middle of a 10 s backoff: it starts again only at the original retryAt', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    const tenSeconds = { attempts: 3, backoff: { type: 'fixed' as const, delayMs: 10_000 } };
    first.scheduler.submitAll([
      { type: 'work', id: 'r', payload: { ms: 100, failUntil: 1 }, retry: tenSeconds },
      { type: 'work', id: 'c', payload: { ms: 100, failUntil: 1 }, retry: tenSeconds },
      // Its backoff (6 s) ends while no scheduler runs.
      {
        type: 'work',
        id: 'p',
        payload: { ms: 100, failUntil: 1 },
        retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 6_000 } },
      },
    ]);
    await first.clock.advanceBy(100);
    expect(first.scheduler.get('r')).toMatchObject({ state: 'retrying', attempt: 1 });
    // On disk: when its backoff ends.
    expect(store.contentsAt().jobs.find((j) => j.job.id === 'r')?.status).toMatchObject({
      state: 'retrying',
      attempt: 1,
      retryAt: 10_100,
    });
    await first.clock.advanceBy(4_900);
    // The process dies at 5 s; the next one opens the store at 8 s.
    const calls: Array<{ id: string; attempt: number }> = [];
    const second = durable(store.reopenedAt(), calls, 8_000);
    expect(second.scheduler.get('r')).toMatchObject({
      state: 'retrying',
      attempt: 1,
      waitReason: 'backoff',
      error: { kind: 'error', message: 'attempt 1 failed' },
    });
    expect(second.scheduler.stats().queue.size).toBe(2);
    // `p`'s backoff ended at 6,100 ms: queued at once, and started.
    expect(second.scheduler.get('p')).toMatchObject({ state: 'running', attempt: 2 });
    expect(second.scheduler.cancel('c')).toBe(true);
    expect(second.scheduler.get('c')).toMatchObject({ state: 'cancelled', attempt: 1 });
    await second.clock.advanceBy(2_099);
    expect(calls).toEqual([{ id: 'p', attempt: 2 }]);
    expect(second.scheduler.get('r')?.state).toBe('retrying');
    expect(
      store
        .reopenedAt()
        .contentsAt()
        .jobs.find((j) => j.job.id === 'r'),
    ).toBeDefined();
    await second.clock.advanceBy(1);
    // 10,100 ms: its second attempt, as it would have been had nothing crashed.
    expect(calls).toEqual([
      { id: 'p', attempt: 2 },
      { id: 'r', attempt: 2 },
    ]);
    expect(second.scheduler.get('r')).toMatchObject({ state: 'running', attempt: 2 });
    await second.clock.advanceBy(100);
    await expect(second.scheduler.handle('r')?.result).resolves.toEqual({ id: 'r', attempt: 2 });
    expect(second.scheduler.get('c')?.state).toBe('cancelled');
    await second.scheduler.shutdown();
  });

  it('a boosted retrying job keeps both: it queues at its retryAt, boosted until its until', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    const gpu = { gpu: 1 };
    first.scheduler.submitAll([
      {
        type: 'work',
        id: 'r',
        payload: { ms: 100, failUntil: 1 },
        resources: gpu,
        priority: 'low',
        retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1_000 } },
      },
      // Takes the GPU when r's first attempt fails, and holds it.
      { type: 'work', id: 'hog', payload: { ms: 20_000 }, resources: gpu },
    ]);
    await first.clock.advanceBy(100);
    first.scheduler.boost({ ids: ['r'] }, { to: 'critical', forMs: 5_000 });
    expect(store.contentsAt().jobs.find((j) => j.job.id === 'r')?.status).toMatchObject({
      state: 'retrying',
      retryAt: 1_100,
      boost: { to: 'critical', until: 5_100 },
    });
    const second = durable(store.reopenedAt(), [], 500);
    expect(second.scheduler.get('r')).toMatchObject({ state: 'retrying', waitReason: 'backoff' });
    await second.clock.advanceBy(599);
    expect(second.scheduler.get('r')?.state).toBe('retrying');
    await second.clock.advanceBy(1);
    // 1,100 ms: queued (the hog, interrupted and run again, holds the GPU), boosted.
    expect(second.scheduler.get('r')).toMatchObject({ state: 'queued', effectivePriority: 'critical' });
    await second.clock.advanceBy(4_000);
    expect(second.scheduler.get('r')).toMatchObject({ state: 'queued', effectivePriority: 'low' });
  });

  it('a crash again during the resumed backoff keeps the same retryAt', async () => {
    const store = new MemoryStore();
    const first = durable(store);
    first.scheduler.submit({
      type: 'work',
      id: 'r',
      payload: { ms: 100, failUntil: 1 },
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 10_000 } },
    });
    await first.clock.advanceBy(3_000);
    const secondStore = store.reopenedAt();
    const second = durable(secondStore, [], 3_000);
    expect(secondStore.contentsAt().jobs[0]?.status).toMatchObject({ state: 'retrying', retryAt: 10_100 });
    await second.clock.advanceBy(3_000);
    const calls: Array<{ id: string; attempt: number }> = [];
    const third = durable(secondStore.reopenedAt(), calls, 6_000);
    await third.clock.advanceBy(4_099);
    expect(calls).toEqual([]);
    await third.clock.advanceBy(1);
    expect(calls).toEqual([{ id: 'r', attempt: 2 }]);
    await third.clock.advanceBy(100);
    expect(third.scheduler.get('r')?.state).toBe('completed');
  });
});

describe('recovery from any point of the journal (property)', () => {
  const job = fc.record({
    ms: fc.integer({ min: 0, max: 200 }),
    failUntil: fc.integer({ min: 0, max: 3 }),
    dep: fc.option(fc.nat(), { nil: undefined }),
    gpu: fc.boolean(),
  });
  it('the recovered scheduler holds every journaled job as the journal describes it, and reruns no completed one', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(job, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 150 }), { minLength: 1, maxLength: 6 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (jobs, pauses, cutAt) => {
          const store = new MemoryStore();
          const first = durable(store);
          const ids: string[] = [];
          for (const [i, j] of jobs.entries()) {
            const dep = j.dep !== undefined && ids.length > 0 ? ids[j.dep % ids.length] : undefined;
            const handle = first.scheduler.submit({
              type: 'work',
              id: `j${i}`,
              payload: { ms: j.ms, failUntil: j.failUntil },
              ...(j.gpu ? { resources: { gpu: 1 } } : {}),
              ...(dep ? { dependsOn: [dep] } : {}),
            });
            ids.push(handle.id);
            await first.clock.advanceBy(pauses[i % pauses.length] as number);
          }
          // Cut the journal anywhere: what the store held had the process died there.
          const k = Math.floor(cutAt * (store.ops.length + 1));
          const journal = store.contentsAt(k);
          const calls: Array<{ id: string; attempt: number }> = [];
          // Opened when the first one stopped (a retry's backoff ends at a clock time).
          const second = durable(store.reopenedAt(k), calls, first.clock.now());
          const recovered = byId(second.scheduler);
          expect(recovered.size).toBe(journal.jobs.length);
          for (const { job: stored, status } of journal.jobs) {
            const now = recovered.get(stored.id) as JobSnapshot;
            expect(now, stored.id).toBeDefined();
            if (['completed', 'failed', 'cancelled'].includes(status.state)) {
              expect(now.state, stored.id).toBe(status.state);
              expect(now.attempt).toBe(status.attempt);
            } else if (status.state === 'running') {
              // Interrupted: failed on its last attempt, else retried (perhaps running again already).
              expect(now.error?.kind, stored.id).toBe('interrupted');
              if (status.attempt >= 3) expect(now.state).toBe('failed');
              else expect([status.attempt, status.attempt + 1]).toContain(now.attempt);
            } else if (status.state === 'retrying' && (status.retryAt ?? 0) > first.clock.now()) {
              // Waits out the rest of its backoff.
              expect(now.state, stored.id).toBe('retrying');
              expect(now.attempt).toBe(status.attempt);
            } else {
              expect(['pending', 'queued', 'running', 'cancelled']).toContain(now.state);
              expect([status.attempt, status.attempt + 1]).toContain(now.attempt);
            }
          }
          await second.clock.advanceBy(20_000);
          const completedBefore = new Set(
            journal.jobs.filter((j) => j.status.state === 'completed').map((j) => j.job.id),
          );
          for (const call of calls) expect(completedBefore.has(call.id), `${call.id} rerun`).toBe(false);
          for (const snap of second.scheduler.list())
            expect(['completed', 'failed', 'cancelled'], snap.id).toContain(snap.state);
          expect(second.scheduler.stats().resources.allocated.gpu).toBe(0);
          await second.scheduler.shutdown();
        },
      ),
      { numRuns: numRuns(150) },
    );
  });
});
