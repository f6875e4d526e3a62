/**
 * Group commit (issue 16): a store with `sync` may keep updates until it is called, and the
 * engine must call it before anything can follow from them. In virtual time, on a memory store
 * that groups commits as the SQLite adapter does (`ops` = what survives a crash), checked at every
 * point where something outside the engine learns of a transition: a handler is called (its
 * attempt is durable as running), a job's `result` settles, an event reaches a listener, a public
 * read (`get`) shows it. And that it groups: fewer writes than transitions.
 */
import { describe, expect, it } from 'vitest';
import {
  createScheduler,
  createVirtualClock,
  type HandlerContext,
  type JobState,
  type SchedulerEvent,
} from '../../src/index.js';
import { MemoryStore } from '../helpers/memory-store.js';

type Payload = { ms: number; failUntil?: number };

/** What a scheduler opened after a crash now would find of job `id`. */
function durableState(store: MemoryStore, id: string): { state: JobState; attempt: number } | undefined {
  const found = store.contentsAt().jobs.find((j) => j.job.id === id);
  return found && { state: found.status.state, attempt: found.status.attempt };
}

function grouped(problems: string[]) {
  const store = new MemoryStore([], { grouped: true });
  const clock = createVirtualClock();
  const seenBy = (reader: string): void => {
    for (const job of scheduler.list())
      if (FINAL.has(job.state) && durableState(store, job.id)?.state !== job.state)
        problems.push(
          `${reader} read ${job.id} ${job.state} while the store says ${JSON.stringify(durableState(store, job.id))}`,
        );
  };
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: { cpu: 2, memoryMb: 4_096 },
    maxConcurrentJobs: 2,
    retainFinished: 1_000,
    store,
    retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 5 } },
    handlers: {
      work: async ({ id, payload, attempt }: HandlerContext<Payload>) => {
        // Called: its attempt is on disk as running (a crash now counts it interrupted).
        const seen = durableState(store, id);
        if (seen?.state !== 'running' || seen.attempt !== attempt)
          problems.push(`${id} attempt ${attempt} called while the store says ${JSON.stringify(seen)}`);
        if (payload.ms > 0) await new Promise<void>((resolve) => clock.setTimeout(resolve, payload.ms));
        // Woken with others that ended at this time: what it reads of them is durable.
        seenBy(id);
        if (attempt <= (payload.failUntil ?? 0)) throw new Error(`attempt ${attempt} failed`);
        return { id, attempt };
      },
    },
  });
  return { store, clock, scheduler };
}

const FINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

describe('group commit', () => {
  it('no handler runs, no result settles and no read shows a state before it is durable; writes are grouped', async () => {
    const problems: string[] = [];
    const { store, clock, scheduler } = grouped(problems);
    const settled: string[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = `j${i}`;
      ids.push(id);
      const handle = scheduler.submit({
        id,
        type: 'work',
        payload: { ms: i % 3 === 0 ? 0 : i % 7, ...(i % 5 === 0 ? { failUntil: i % 10 === 0 ? 5 : 1 } : {}) },
        resources: { cpu: 1 },
        ...(i % 4 === 1 && i > 1 ? { dependsOn: [`j${i - 2}`] } : {}),
      });
      // A reaction to `result` runs after the job's end is durable.
      handle.result.then(
        () => {
          settled.push(id);
          if (durableState(store, id)?.state !== 'completed')
            problems.push(
              `${id}'s result resolved while the store says ${JSON.stringify(durableState(store, id))}`,
            );
        },
        () => {
          settled.push(id);
          const state = durableState(store, id)?.state;
          if (state !== 'failed' && state !== 'cancelled')
            problems.push(
              `${id}'s result rejected while the store says ${JSON.stringify(durableState(store, id))}`,
            );
        },
      );
      if (i === 30) scheduler.cancel('j29');
    }
    // A public read shows only what is durable.
    const reads = (): void => {
      for (const id of ids) {
        const state = scheduler.get(id)?.state;
        if (state !== undefined && FINAL.has(state) && durableState(store, id)?.state !== state)
          problems.push(
            `get(${id}) said ${state} while the store says ${JSON.stringify(durableState(store, id))}`,
          );
      }
    };
    for (
      let t = 0;
      t < 200 &&
      scheduler.stats().jobs.completed + scheduler.stats().jobs.failed + scheduler.stats().jobs.cancelled <
        40;
      t++
    ) {
      await clock.advanceBy(1);
      reads();
    }
    await scheduler.onIdle();
    reads();
    expect(problems).toEqual([]);
    expect(settled.length).toBe(40);
    // Grouped: the ends of attempts that settle in one turn and the start that follows share a write.
    const updates = store.ops.filter((o) => o.op === 'update').length;
    const accepts = store.ops.filter((o) => o.op === 'accept').length;
    expect(accepts).toBe(40);
    expect(store.syncs - accepts).toBeLessThan(updates * 0.75);
    await scheduler.shutdown();
    expect(store.unsynced).toEqual([]);
  });

  it('with a listener, each event comes after what it tells of is durable', async () => {
    const problems: string[] = [];
    const { store, clock, scheduler } = grouped(problems);
    const told: string[] = [];
    scheduler.events$.subscribe((event: SchedulerEvent) => {
      if (!('job' in event) || !event.type.startsWith('job.')) return;
      const state = event.job.state;
      if (state === 'scheduled' || state === 'running') return;
      told.push(event.type);
      const seen = durableState(store, event.job.id);
      if (seen?.state !== state)
        problems.push(`${event.type} for ${event.job.id} while the store says ${JSON.stringify(seen)}`);
    });
    for (let i = 0; i < 12; i++)
      scheduler.submit({
        id: `e${i}`,
        type: 'work',
        payload: { ms: i % 4, ...(i % 3 === 0 ? { failUntil: 1 } : {}) },
      });
    scheduler.cancel('e11');
    await clock.advanceBy(100);
    await scheduler.onIdle();
    expect(problems).toEqual([]);
    expect(told).toContain('job.completed');
    expect(told).toContain('job.retrying');
    expect(told).toContain('job.cancelled');
    await scheduler.shutdown();
  });

  it('a read in the same turn as an end (before its group commit would run) shows it durable', async () => {
    const store = new MemoryStore([], { grouped: true });
    const clock = createVirtualClock();
    const problems: string[] = [];
    let sawEnd = false;
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { cpu: 2, memoryMb: 1_024 },
      store,
      handlers: {
        quick: async () => 'done',
        // Steps through microtasks while "quick" ends beside it, reading at every step.
        reader: async () => {
          for (let hop = 0; hop < 30; hop++) {
            await null;
            const state = scheduler.get('quick')?.state;
            if (state === 'completed') {
              sawEnd = true;
              const stored = store.contentsAt().jobs.find((j) => j.job.id === 'quick')?.status.state;
              if (stored !== 'completed')
                problems.push(`hop ${hop}: get said completed, the store ${stored}`);
            }
          }
        },
      },
    });
    scheduler.submitAll([
      { id: 'reader', type: 'reader' },
      { id: 'quick', type: 'quick' },
    ]);
    await clock.advanceBy(1);
    await scheduler.onIdle();
    expect(sawEnd).toBe(true);
    expect(problems).toEqual([]);
    await scheduler.shutdown();
  });

  it('a boost and a cancel are durable when they return, and a boost before job.boosted is told', async () => {
    const store = new MemoryStore([], { grouped: true });
    const clock = createVirtualClock();
    const problems: string[] = [];
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { cpu: 1, memoryMb: 1_024 },
      store,
      handlers: {
        work: async ({ signal }: HandlerContext) =>
          new Promise<void>((resolve) => {
            clock.setTimeout(resolve, 100);
            signal.addEventListener('abort', () => resolve());
          }),
      },
    });
    const stored = (id: string) => store.contentsAt().jobs.find((j) => j.job.id === id)?.status;
    scheduler.submitAll([
      { id: 'busy', type: 'work', resources: { cpu: 1 } },
      { id: 'b', type: 'work', resources: { cpu: 1 } },
      { id: 'c', type: 'work', resources: { cpu: 1 } },
      { id: 'd', type: 'work', resources: { cpu: 1 } },
    ]);
    // No listener: nothing else syncs before these return.
    scheduler.boost({ ids: ['b'] }, { to: 'critical', forMs: 60_000 });
    expect(stored('b')?.boost).toMatchObject({ to: 'critical', until: 60_000 });
    expect(scheduler.cancel('c')).toBe(true);
    expect(stored('c')?.state).toBe('cancelled');
    // A listener hears of a boost only once it is durable.
    scheduler.events$.subscribe((event: SchedulerEvent) => {
      if (event.type === 'job.boosted')
        for (const id of event.jobIds)
          if (stored(id)?.boost === undefined)
            problems.push(`job.boosted for ${id} before its boost was durable`);
    });
    scheduler.boost({ ids: ['d'] }, { to: 'high', forMs: 1_000 });
    expect(stored('d')?.boost).toMatchObject({ to: 'high', until: 1_000 });
    expect(problems).toEqual([]);
    await scheduler.shutdown({ mode: 'cancel' });
  });
});
