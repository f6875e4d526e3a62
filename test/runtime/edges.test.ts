/**
 * Engine edges (issue 15 §3–§4): a batch as deep as it is long, generated ids against ids a
 * batch declares later, boost streams that end, `scheduler.idle` said once, handlers that reject
 * with odd values, and job actors an inspector names by the job's id. In virtual time.
 */
import { describe, expect, it } from 'vitest';
import { EMPTY, Subject, of, throwError } from 'rxjs';
import type { InspectionEvent } from 'xstate';
import {
  DependencyCycleError,
  DuplicateJobError,
  createScheduler,
  createVirtualClock,
  delay,
  type BoostSignal,
  type HandlerContext,
  type SchedulerEvent,
  type SchedulerOptions,
} from '../../src/index.js';

const POOL = { cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_000 }] };

function make(options: Partial<SchedulerOptions> = {}) {
  const clock = createVirtualClock();
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: POOL,
    handlers: {
      work: async ({ signal }: HandlerContext<unknown>) => (await delay(clock, 10, signal), 'ok'),
      fail: async () => {
        throw new Error('boom');
      },
      reject: async ({ payload }: HandlerContext<unknown>) => {
        throw (payload as { value: unknown }).value;
      },
    },
    ...options,
  });
  const events: SchedulerEvent[] = [];
  scheduler.events$.subscribe((e) => events.push(e));
  return { clock, scheduler, events };
}

describe('a batch as deep as it is long', () => {
  const N = 100_000;
  /** A chain of N jobs, each depending on the next one listed (dependents first). */
  const chain = (cycle: boolean): Array<{ type: 'work'; id: string; dependsOn: string[] }> =>
    Array.from({ length: N }, (_, i) => ({
      type: 'work',
      id: `c${i}`,
      dependsOn: i < N - 1 ? [`c${i + 1}`] : cycle ? ['c0'] : [],
    }));

  it('submitAll takes a 100,000-job chain listed dependents-first, each job after its dependency', () => {
    // Paused, so nothing runs: only the intake and the ordering are measured.
    const clock = createVirtualClock();
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      maxQueueSize: Infinity,
      handlers: { work: async () => 'ok' },
    });
    scheduler.pause();
    const handles = scheduler.submitAll(chain(false));
    // Handles in the order given; the jobs went in dependencies first (the last listed is first).
    expect(handles).toHaveLength(N);
    expect(handles[0]?.id).toBe('c0');
    expect(handles[N - 1]?.id).toBe(`c${N - 1}`);
    expect(scheduler.stats().jobs).toMatchObject({ pending: N - 1, queued: 1 });
    expect(scheduler.get(`c${N - 1}`)?.state).toBe('queued');
    expect(scheduler.get('c0')).toMatchObject({ state: 'pending', waitReason: 'dependencies' });
    const ids = scheduler.list().map((j) => j.id);
    expect(ids[0]).toBe(`c${N - 1}`);
    expect(ids[N - 1]).toBe('c0');
  });

  it('a cycle through a 100,000-job chain is a DependencyCycleError naming the cycle, and nothing is accepted', () => {
    const { scheduler } = make({ maxQueueSize: Infinity });
    let thrown: unknown;
    try {
      scheduler.submitAll(chain(true));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DependencyCycleError);
    const cycle = (thrown as DependencyCycleError).cycle;
    expect(cycle).toHaveLength(N + 1);
    expect(cycle[0]).toBe(cycle[N]);
    expect(new Set(cycle).size).toBe(N);
    // Each names the next as its dependency.
    const at = cycle.indexOf('c0');
    expect(cycle[at + 1]).toBe('c1');
    expect(scheduler.list()).toEqual([]);
    expect(scheduler.stats().queue.size).toBe(0);
  });
});

describe('the order a batch goes in', () => {
  it('each job after the jobs of the batch it depends on, depth-first in the order listed', () => {
    const { scheduler } = make();
    scheduler.pause();
    scheduler.submitAll([
      { type: 'work', id: 'a', dependsOn: ['b', 'c'] },
      { type: 'work', id: 'e', dependsOn: ['c'] },
      { type: 'work', id: 'b', dependsOn: ['d'] },
      { type: 'work', id: 'c', dependsOn: ['d', 'b'] },
      { type: 'work', id: 'd' },
    ]);
    expect(scheduler.list().map((j) => j.id)).toEqual(['d', 'b', 'c', 'a', 'e']);
  });
});

describe('generated ids and ids a batch declares', () => {
  it('a generated id skips an id declared later in the same batch', () => {
    const { scheduler } = make();
    const [a, b] = scheduler.submitAll([{ type: 'work' }, { type: 'work', id: 'job-1' }]);
    expect(a?.id).toBe('job-2');
    expect(b?.id).toBe('job-1');
    // The sequence goes on from there, past the chosen id.
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-3');
  });

  it('declared first, then generated: the same ids', () => {
    const { scheduler } = make();
    const [a, b] = scheduler.submitAll([{ type: 'work', id: 'job-1' }, { type: 'work' }]);
    expect(a?.id).toBe('job-1');
    expect(b?.id).toBe('job-2');
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-3');
  });

  it('several declared ids among generated ones: every job accepted, ids unique and in order', () => {
    const { scheduler } = make();
    const handles = scheduler.submitAll([
      { type: 'work' },
      { type: 'work' },
      { type: 'work', id: 'job-2' },
      { type: 'work', id: 'job-3' },
      { type: 'work' },
    ]);
    expect(handles.map((h) => h.id)).toEqual(['job-1', 'job-4', 'job-2', 'job-3', 'job-5']);
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-6');
  });

  it('a declared id already taken is still a duplicate, and the ids are not used up', () => {
    const { scheduler } = make();
    scheduler.submit({ type: 'work', id: 'job-1' });
    expect(() => scheduler.submitAll([{ type: 'work' }, { type: 'work', id: 'job-1' }])).toThrow(
      DuplicateJobError,
    );
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-2');
  });
});

/** The live boost subscriptions the scheduler keeps (internal). */
const connected = (scheduler: object): number =>
  (scheduler as unknown as { boosts: { connected: number } }).boosts.connected;

describe('connected boost streams', () => {
  it('forgets a stream that completed, failed or was unsubscribed; shutdown ends the live ones', async () => {
    const { clock, scheduler, events } = make();
    for (let i = 0; i < 1_000; i++) {
      const stream = new Subject<BoostSignal>();
      scheduler.connectBoosts(stream);
      stream.complete();
    }
    expect(connected(scheduler)).toBe(0);
    // Ended as they were subscribed to: never kept.
    scheduler.connectBoosts(EMPTY);
    scheduler.connectBoosts(of({ target: { ids: [] }, to: 'high', forMs: 1 } as BoostSignal));
    scheduler.connectBoosts(throwError(() => new Error('gone')));
    expect(connected(scheduler)).toBe(0);
    expect(events.filter((e) => e.type === 'boost.invalid')).toHaveLength(1);
    const failing = new Subject<BoostSignal>();
    scheduler.connectBoosts(failing);
    expect(connected(scheduler)).toBe(1);
    failing.error(new Error('lost'));
    expect(connected(scheduler)).toBe(0);
    const dropped = scheduler.connectBoosts(new Subject<BoostSignal>());
    expect(connected(scheduler)).toBe(1);
    dropped.unsubscribe();
    expect(connected(scheduler)).toBe(0);

    const live = new Subject<BoostSignal>();
    const subscription = scheduler.connectBoosts(live);
    expect(connected(scheduler)).toBe(1);
    expect(live.observed).toBe(true);
    const done = scheduler.shutdown();
    await clock.advanceBy(0);
    await done;
    expect(subscription.closed).toBe(true);
    expect(live.observed).toBe(false);
    expect(connected(scheduler)).toBe(0);
  });
});

describe('scheduler.idle', () => {
  it('is said once when a failure cancels a dependent', async () => {
    const { clock, scheduler, events } = make({ retry: { attempts: 1 } });
    scheduler.submit({ type: 'fail', id: 'a' });
    scheduler.submit({ type: 'work', id: 'b', dependsOn: ['a'] });
    await clock.advanceBy(100);
    expect(scheduler.get('b')?.state).toBe('cancelled');
    const idle = events.filter((e) => e.type === 'scheduler.idle');
    expect(idle).toHaveLength(1);
    // After the last job's events.
    expect(events.at(-1)?.type).toBe('scheduler.idle');
    // Idle again after more work: once more, once.
    scheduler.submit({ type: 'fail', id: 'c' });
    scheduler.submit({ type: 'work', id: 'd', dependsOn: ['c'] });
    scheduler.submit({ type: 'work', id: 'e', dependsOn: ['d'] });
    await clock.advanceBy(100);
    expect(events.filter((e) => e.type === 'scheduler.idle')).toHaveLength(2);
  });

  it('is said again for a job submitted from the idle listener that ends at once', async () => {
    const { clock, scheduler, events } = make({ retry: { attempts: 1 } });
    let resubmitted = false;
    scheduler.events$.subscribe((e) => {
      if (e.type !== 'scheduler.idle' || resubmitted) return;
      resubmitted = true;
      // Cancelled at once: its dependency failed (afterok).
      scheduler.submit({ type: 'work', id: 'late', dependsOn: ['a'] });
    });
    scheduler.submit({ type: 'fail', id: 'a' });
    scheduler.submit({ type: 'work', id: 'b', dependsOn: ['a'] });
    await clock.advanceBy(100);
    expect(scheduler.get('late')?.state).toBe('cancelled');
    expect(events.filter((e) => e.type === 'scheduler.idle')).toHaveLength(2);
  });
});

describe('handlers that reject with odd values', () => {
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const cases: Array<[string, unknown, string | RegExp]> = [
    ['a symbol', Symbol('foo'), 'handler failed with Symbol(foo)'],
    ['null', null, 'handler failed with null'],
    ['undefined', undefined, 'handler failed with undefined'],
    ['a number', 42, 'handler failed with 42'],
    ['an object without message', { code: 7 }, 'handler failed with {"code":7}'],
    ['an Error with an empty message', new Error(''), 'Error'],
    [
      'an object whose toString throws',
      Object.assign(Object.create(null) as object, {
        toJSON() {
          throw new Error('no JSON');
        },
        toString() {
          throw new Error('no string');
        },
      }),
      /^handler failed with .+/,
    ],
    ['a revoked Proxy', revoked.proxy, /^handler failed with .+/],
  ];

  it.each(cases)('%s: the job fails with a readable message', async (_, value, message) => {
    const { clock, scheduler } = make({ retry: { attempts: 1 } });
    const job = scheduler.submit({ type: 'reject', payload: { value } });
    const settled = job.result.then(
      () => 'completed',
      (error: unknown) => error,
    );
    await clock.advanceBy(10);
    const snap = scheduler.get(job.id);
    expect(snap?.state).toBe('failed');
    expect(snap?.error?.message).toMatch(message);
    if (value !== undefined) expect(snap?.error?.message).not.toBe('handler failed with undefined');
    expect(await settled).toMatchObject({ name: 'JobFailedError' });
  });
});

describe('inspection names job actors by the job id', () => {
  it('with inspect, the inspection events of a job carry its id', async () => {
    const named = new Map<string, Set<string>>();
    const jobActors = new Set<string>();
    const inspect = (e: InspectionEvent) => {
      // What Stately's inspector reads: `actorRef.id` names the actor, its logic says what it is.
      const { id, logic } = e.actorRef as unknown as { id: string; logic?: { id?: string } };
      if (e.type === '@xstate.actor' && logic?.id === 'job') jobActors.add(id);
      const set = named.get(id) ?? new Set<string>();
      set.add(e.type === '@xstate.event' ? e.event.type : e.type);
      named.set(id, set);
    };
    const { clock, scheduler } = make({ inspect });
    scheduler.submit({ type: 'work', id: 'render-7' });
    const generated = scheduler.submit({ type: 'work' });
    await clock.advanceBy(100);
    expect(scheduler.get('render-7')?.state).toBe('completed');
    for (const id of ['render-7', generated.id]) {
      const seen = named.get(id);
      expect(seen, id).toBeDefined();
      expect([...(seen ?? [])]).toEqual(
        expect.arrayContaining(['@xstate.actor', '@xstate.snapshot', 'job.ready', 'job.start']),
      );
    }
    // Every job actor is named by its job (none by a session id, `x:N`).
    expect([...jobActors].sort()).toEqual([generated.id, 'render-7'].sort());
  });
});
