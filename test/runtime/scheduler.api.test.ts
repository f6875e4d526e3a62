/** Scenario tests of the scheduler runtime, issue 4 items 7–8 and 10–11, in virtual time. */
import { describe, expect, it } from 'vitest';
import { Subject } from 'rxjs';
import type { InspectionEvent } from 'xstate';
import {
  DependencyCycleError,
  DuplicateJobError,
  InvalidJobError,
  InvalidOptionError,
  InvalidPoolError,
  JobFailedError,
  QueueFullError,
  SchedulerClosedError,
  UnknownDependencyError,
  UnschedulableError,
  createScheduler,
  createVirtualClock,
  delay,
  type BoostSignal,
  type HandlerContext,
  type JobState,
  type SchedulerEvent,
  type SchedulerOptions,
  type SystemInformationLike,
  type VirtualClock,
} from '../../src/index.js';

/** Waits `ms` of virtual time, rejecting when the signal aborts. */
function wait(clock: VirtualClock, signal: AbortSignal, ms: number): Promise<void> {
  return delay(clock, ms, signal);
}

const POOL = { id: 'n1', cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_000 }], custom: { licence: 2 } };
const CAPACITY = { cpu: 8, memoryMb: 16_384, gpu: 1, vramMb: 24_000, custom: { licence: 2 } };
const NONE = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 };

function make(options: Omit<SchedulerOptions, 'handlers' | 'clock'> = {}) {
  const clock = createVirtualClock();
  const started: string[] = [];
  const signals = new Map<string, AbortSignal>();
  const handlers = {
    work: async ({ id, payload, signal }: HandlerContext<{ ms?: number } | undefined>) => {
      started.push(id);
      signals.set(id, signal);
      await wait(clock, signal, payload?.ms ?? 1_000);
      return 'done';
    },
    failNow: async () => {
      throw new Error('boom');
    },
    hang: () => new Promise<never>(() => undefined),
  };
  const scheduler = createScheduler({ clock, monitor: false, resources: POOL, handlers, ...options });
  const events: SchedulerEvent[] = [];
  scheduler.events$.subscribe((e) => events.push(e));
  return { clock, scheduler, events, started, signals };
}

/** A job spec of type `work` with these fields. */
const work = (fields: Record<string, unknown> = {}) => ({ type: 'work', ...fields }) as const;

/** A scheduler on a detected pool (mocked: 4 cores, 8 GiB, no GPU) with one handler, `work`. */
function detectedBox(work: (ctx: HandlerContext<unknown>) => Promise<unknown>) {
  const si: SystemInformationLike = {
    cpu: async () => ({ cores: 4 }),
    mem: async () => ({ total: 8 * 1024 ** 3, available: 8 * 1024 ** 3 }),
    graphics: async () => ({ controllers: [] }),
  };
  const clock = createVirtualClock();
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: 'detect',
    detect: { si, id: 'box', runNvidiaSmi: async () => '' },
    handlers: { work },
  });
  return { clock, scheduler };
}

describe('bad input and back-pressure', () => {
  const [IJ, US] = [InvalidJobError.name, UnschedulableError.name];
  const bad: Array<[string, unknown, string, string]> = [
    ['unknown type', { type: 'nope' }, IJ, 'type'],
    ['not an object', 'work', IJ, 'job'],
    ['bad priority', work({ priority: 'urgent' }), IJ, 'priority'],
    ['negative timeout', work({ timeoutMs: -1 }), IJ, 'timeoutMs'],
    ['NaN timeout', work({ timeoutMs: Number.NaN }), IJ, 'timeoutMs'],
    ['empty id', work({ id: '' }), IJ, 'id'],
    ['duplicate id', work({ id: 'running' }), DuplicateJobError.name, 'id'],
    ['negative cpu', work({ resources: { cpu: -1 } }), IJ, 'resources.cpu'],
    ['too many GPUs', work({ resources: { gpu: 2 } }), US, 'resources.gpu'],
    ['too much VRAM', work({ resources: { gpu: 1, vramMb: 48_000 } }), US, 'resources.vramMb'],
    ['too much memory', work({ resources: { memoryMb: 1e6 } }), US, 'resources.memoryMb'],
    ['unknown custom', work({ resources: { custom: { tpu: 1 } } }), US, 'resources.custom.tpu'],
    ['bad attempts', work({ retry: { attempts: 0 } }), IJ, 'retry.attempts'],
    ['empty group', work({ group: '' }), IJ, 'group'],
    ['unknown dependency', work({ dependsOn: ['ghost'] }), UnknownDependencyError.name, 'dependsOn'],
    ['a cycle', work({ id: 'c', dependsOn: ['c'] }), DependencyCycleError.name, 'dependsOn'],
    ['bad policy', work({ dependsOn: ['running'], dependencyPolicy: 'x' }), IJ, 'dependencyPolicy'],
  ];
  it.each(bad)(
    '%s throws a typed error naming the field and changes nothing',
    async (_, spec, name, field) => {
      const { clock, scheduler, events } = make({ maxConcurrentJobs: 1 });
      scheduler.submit({ type: 'work', id: 'running', resources: { gpu: 1 } });
      scheduler.submit({ type: 'work', id: 'queued' });
      const stats = scheduler.stats();
      const list = scheduler.list();
      const seen = events.length;
      expect(() => scheduler.submit(spec as never)).toThrow(expect.objectContaining({ name, field }));
      expect(scheduler.stats()).toEqual(stats);
      expect(scheduler.list()).toEqual(list);
      expect(events.length).toBe(seen);
      // The scheduler goes on as before.
      await clock.advanceBy(2_000);
      expect(scheduler.list().map((j) => j.state)).toEqual(['completed', 'completed']);
    },
  );

  it('throws QueueFullError at maxQueueSize (running jobs do not count), and nothing changes', async () => {
    const { clock, scheduler, events } = make({
      maxConcurrentJobs: 1,
      maxQueueSize: 2,
      retry: { attempts: 1 },
    });
    for (const id of ['a', 'b', 'c']) scheduler.submit({ type: 'work', id });
    expect(scheduler.stats().queue).toEqual({ size: 2, max: 2 });
    const seen = events.length;
    expect(() => scheduler.submit({ type: 'work', id: 'd' })).toThrow(QueueFullError);
    expect(() => scheduler.submit({ type: 'work', id: 'd' })).toThrow(expect.objectContaining({ max: 2 }));
    expect(scheduler.get('d')).toBeUndefined();
    expect(scheduler.stats().queue.size).toBe(2);
    expect(events.length).toBe(seen);
    await clock.advanceBy(1_000); // a ends, b starts: one place frees up
    expect(() =>
      scheduler.submitAll([
        { type: 'work', id: 'd' },
        { type: 'work', id: 'e' },
      ]),
    ).toThrow(QueueFullError);
    expect(scheduler.get('d')).toBeUndefined();
    expect(scheduler.submit({ type: 'work', id: 'd' }).id).toBe('d');
  });

  it('submit never fills the queue past maxQueueSize; only running jobs that fail and retry go past it, and nothing is lost', async () => {
    const { clock, scheduler } = make({
      maxQueueSize: 2,
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1_000, jitter: false } },
    });
    let max = 0;
    const check = () => (max = Math.max(max, scheduler.stats().queue.size));
    scheduler.events$.subscribe(check);
    const specs = [
      work({ id: 'gpu', resources: { gpu: 1 } }),
      { type: 'failNow', id: 'f1' },
      { type: 'failNow', id: 'f2' },
      work({ id: 'w1', resources: { gpu: 1 } }),
      work({ id: 'w2', resources: { gpu: 1 } }),
    ] as const;
    // gpu, f1 and f2 run at once (they take no place); w1 and w2 wait for the GPU.
    for (const spec of specs) {
      scheduler.submit(spec);
      check();
    }
    expect(max).toBe(2);
    expect(() => scheduler.submit(work())).toThrow(QueueFullError);
    for (let t = 0; t < 5; t++) {
      await clock.advanceBy(1_000);
      check();
    }
    // f1 and f2 failed while the queue was full and came back to retry: 2 over, never more.
    expect(max).toBe(4);
    expect(scheduler.list().map((j) => [j.id, j.state, j.attempt])).toEqual([
      ['gpu', 'completed', 1],
      ['f1', 'failed', 2],
      ['f2', 'failed', 2],
      ['w1', 'completed', 1],
      ['w2', 'completed', 1],
    ]);
  });
});

describe('lifecycle controls', () => {
  /** A GPU job runs 5 s; `target` is brought to `state`. */
  async function inState(state: 'pending' | 'queued' | 'running' | 'retrying') {
    const h = make({ retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 1_000, jitter: false } } });
    h.scheduler.submit({ type: 'work', id: 'gpu', resources: { gpu: 1 }, payload: { ms: 5_000 } });
    const specs = {
      pending: { type: 'work', id: 'target', dependsOn: ['gpu'] },
      queued: { type: 'work', id: 'target', resources: { gpu: 1 } },
      running: { type: 'work', id: 'target', resources: { cpu: 2 } },
      retrying: { type: 'failNow', id: 'target' },
    } as const;
    const handle = h.scheduler.submit(specs[state]);
    await h.clock.advanceBy(0);
    return { ...h, handle };
  }

  it.each(['pending', 'queued', 'running', 'retrying'] as const)(
    'cancel works in state %s: cancelled, result rejects, nothing held',
    async (state) => {
      const { clock, scheduler, events, handle } = await inState(state);
      expect(scheduler.get('target')?.state).toBe(state);
      expect(scheduler.cancel('target')).toBe(true);
      if (state === 'running') {
        // Told to stop, it holds its GPU until its handler has settled (here: at once, on abort).
        expect(scheduler.get('target')).toMatchObject({
          state: 'running',
          stopping: { reason: 'cancel', outcome: 'cancelled' },
        });
        expect(scheduler.stats().stopping).toBe(1);
        expect(scheduler.stats().resources.allocated.gpu).toBe(1);
        await clock.advanceBy(0);
        expect(scheduler.stats().stopping).toBe(0);
        expect(events.filter((e) => e.type === 'job.stopping')).toMatchObject([{ reason: 'cancel' }]);
      }
      expect(scheduler.get('target')).toMatchObject({ state: 'cancelled', error: { kind: 'cancelled' } });
      await expect(handle.result).rejects.toMatchObject({ name: JobFailedError.name, state: 'cancelled' });
      const cancelled = events.flatMap((e) => (e.type === 'job.cancelled' ? [e.job.id] : []));
      expect(cancelled).toEqual(['target']);
      expect(scheduler.cancel('target')).toBe(false);
      expect(handle.cancel()).toBe(false);
      expect(scheduler.cancel('ghost')).toBe(false);
      await clock.advanceBy(10_000);
      expect(scheduler.get('target')?.state).toBe('cancelled');
      expect(scheduler.get('gpu')?.state).toBe('completed');
      expect(scheduler.stats().resources.allocated).toMatchObject(NONE);
    },
  );

  it('cancel works in state scheduled, before the handler starts', async () => {
    const { clock, scheduler, started } = make();
    scheduler.submit(work({ id: 'blocker', resources: { gpu: 1 }, payload: { ms: 100 } }));
    const target = scheduler.submit(work({ id: 'target', resources: { gpu: 1 } }));
    const states: JobState[] = [];
    let completed = false;
    target.state$.subscribe({
      next: (snap) => {
        states.push(snap.state);
        if (snap.state === 'scheduled') expect(target.cancel()).toBe(true);
      },
      complete: () => (completed = true),
    });
    await clock.advanceBy(1_000);
    expect(states).toEqual(['queued', 'scheduled', 'cancelled']);
    expect(completed).toBe(true);
    expect(started).toEqual(['blocker']);
    expect(scheduler.get('target')?.error?.kind).toBe('cancelled');
    expect(scheduler.stats().resources.allocated).toMatchObject(NONE);
  });

  it('pause stops new starts (waitReason paused), running jobs go on; resume starts them again', async () => {
    const { clock, scheduler, events } = make();
    scheduler.submit({ type: 'work', id: 'running' });
    scheduler.pause();
    scheduler.submit({ type: 'work', id: 'p1' });
    scheduler.submit({ type: 'work', id: 'p2' });
    expect(scheduler.get('p1')).toMatchObject({ state: 'queued', waitReason: 'paused' });
    await clock.advanceBy(5_000);
    expect(scheduler.get('running')?.state).toBe('completed');
    expect(scheduler.get('p2')).toMatchObject({ state: 'queued', waitReason: 'paused' });
    scheduler.resume();
    expect(scheduler.list({ state: 'running' }).map((j) => j.id)).toEqual(['p1', 'p2']);
    expect(events.filter((e) => e.type.startsWith('scheduler.') && e.type !== 'scheduler.idle')).toEqual([
      { type: 'scheduler.paused', at: 0 },
      { type: 'scheduler.resumed', at: 5_000 },
    ]);
  });

  it('after resume, jobs that still wait say why (not paused)', () => {
    const { scheduler } = make({ maxConcurrentJobs: 1 });
    scheduler.pause();
    for (const id of ['a', 'b', 'c']) scheduler.submit({ type: 'work', id });
    scheduler.resume();
    expect(scheduler.get('a')?.state).toBe('running');
    expect(scheduler.list({ state: 'queued' }).map((j) => j.waitReason)).toEqual([
      'concurrency',
      'concurrency',
    ]);
  });

  it('onIdle resolves at once when idle, and otherwise when the last job ends', async () => {
    const { clock, scheduler } = make();
    let idle = false;
    void scheduler.onIdle().then(() => (idle = true));
    await clock.flush();
    expect(idle).toBe(true);
    scheduler.submit({ type: 'work', id: 'a', payload: { ms: 100 } });
    scheduler.submit({ type: 'work', id: 'b', dependsOn: ['a'], payload: { ms: 100 } });
    let at = -1;
    void scheduler.onIdle().then(() => (at = clock.now()));
    await clock.advanceBy(150);
    expect(at).toBe(-1);
    await clock.advanceBy(100);
    expect(at).toBe(200);
  });
});

describe('found in review of the hot path', () => {
  it('pause() from a job.started listener during a resume round stops the rest of that round', async () => {
    const { clock, scheduler, started } = make();
    scheduler.pause();
    for (const id of ['a', 'b', 'c'])
      scheduler.submit(work({ id, resources: { cpu: 1 }, payload: { ms: 10 } }));
    let paused = false;
    scheduler.events$.subscribe((e) => {
      if (e.type === 'job.started' && !paused) {
        paused = true;
        scheduler.pause();
      }
    });
    scheduler.resume();
    await clock.advanceBy(100);
    expect(started).toEqual(['a']);
    expect(scheduler.list({ state: 'queued' }).map((j) => j.id)).toEqual(['b', 'c']);
    scheduler.resume();
    await clock.advanceBy(100);
    expect(started).toEqual(['a', 'b', 'c']);
  });

  it('a job denied under a lowered limit starts at the next tick once the limit is raised by message', async () => {
    const { clock, scheduler } = make({ schedulingIntervalMs: 1_000 });
    const rm = scheduler['actor'].system.get('resourceManager') as {
      send: (e: {
        type: 'resources.setLimit';
        nodeId: string;
        limit: { memoryMb: number } | undefined;
      }) => void;
    };
    rm.send({ type: 'resources.setLimit', nodeId: 'n1', limit: { memoryMb: 0 } });
    scheduler.submit(work({ id: 'm', resources: { memoryMb: 1_024 }, payload: { ms: 10 } }));
    await clock.advanceBy(1_500);
    expect(scheduler.get('m')?.state).toBe('queued');
    rm.send({ type: 'resources.setLimit', nodeId: 'n1', limit: undefined });
    await clock.advanceBy(1_500);
    expect(scheduler.get('m')?.state).toBe('completed');
  });

  it("a handle's id and cancel work detached from it", async () => {
    const { clock, scheduler } = make();
    scheduler.submit(work({ id: 'busy', resources: { gpu: 1 }, payload: { ms: 1_000 } }));
    const { id, cancel } = scheduler.submit(work({ id: 'later', resources: { gpu: 1 } }));
    expect(id).toBe('later');
    expect(cancel()).toBe(true);
    await clock.advanceBy(0);
    expect(scheduler.get('later')?.state).toBe('cancelled');
  });

  it('looking up an id that is not a string finds nothing and changes nothing (plain-JS callers)', () => {
    const { scheduler } = make();
    scheduler.submit(work({ id: 'a' }));
    const anyId = (v: unknown) => v as string;
    expect(scheduler.get(anyId(undefined))).toBeUndefined();
    expect(scheduler.get(anyId(1))).toBeUndefined();
    expect(scheduler.cancel(anyId(5))).toBe(false);
    expect(scheduler.cancel(anyId(null))).toBe(false);
    expect(scheduler.boost({ ids: [anyId(5)] }, { to: 'high', forMs: 10 }).boosted).toEqual([]);
    expect(scheduler.list().map((j) => j.id)).toEqual(['a']);
  });

  it('chosen job-N ids far apart, beside generated ones: each found, listed in order, and kept apart', async () => {
    const { clock, scheduler } = make();
    const chosen = [5_000_000, 1, 70_000_000].map(
      (n) => scheduler.submit(work({ id: `job-${n}`, payload: { ms: 1 } })).id,
    );
    const generated = [
      scheduler.submit(work({ payload: { ms: 1 } })).id,
      scheduler.submit(work({ payload: { ms: 1 } })).id,
    ];
    // job-1 was chosen, so the first generated id skips it.
    expect(generated).toEqual(['job-2', 'job-3']);
    for (const id of [...chosen, ...generated]) expect(scheduler.get(id)?.id).toBe(id);
    expect(scheduler.list().map((j) => j.id)).toEqual([...chosen, ...generated]);
    await clock.advanceBy(100);
    expect(scheduler.stats().jobs.completed).toBe(5);
  });

  it('a handler output whose prototype cannot be read still completes the job (result and dependents)', async () => {
    const clock = createVirtualClock();
    const weird = new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('no prototype here');
        },
      },
    );
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      handlers: { odd: async () => weird, after: async () => 1 },
    });
    const odd = scheduler.submit({ type: 'odd' });
    const asked = odd.result;
    const after = scheduler.submit({ type: 'after', dependsOn: [odd.id] });
    await clock.advanceBy(10);
    await expect(asked).resolves.toBe(weird);
    await expect(after.result).resolves.toBe(1);
    expect(scheduler.stats().jobs).toMatchObject({ completed: 2, pending: 0 });
  });

  it('generated ids skip a job-N id a job chose, alone or in a batch', () => {
    const { scheduler } = make();
    expect(scheduler.submit(work()).id).toBe('job-1');
    // Chosen after generated ids were made: the generator must now look before it gives one.
    expect(scheduler.submit(work({ id: 'job-3' })).id).toBe('job-3');
    expect(scheduler.submit(work()).id).toBe('job-2');
    expect(scheduler.submit(work()).id).toBe('job-4');
    const batch = scheduler.submitAll([work({ id: 'job-6' }), work(), work()]);
    expect(batch.map((h) => h.id)).toEqual(['job-6', 'job-5', 'job-7']);
    expect(new Set(scheduler.list().map((j) => j.id)).size).toBe(7);
  });

  it('the handler context gives every field, also to a wrapper that spreads it (signal included)', async () => {
    const clock = createVirtualClock();
    const seen: Array<{ aborted: boolean; attempt: number; id: string; note?: string }> = [];
    const inner = ({ id, attempt, payload, allocation, signal, progress }: HandlerContext<{ n: number }>) => {
      seen.push({ aborted: signal.aborted, attempt, id });
      expect(payload.n).toBe(7);
      expect(allocation.nodeId).toBe('n1');
      progress(0.5);
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    };
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      handlers: {
        // A wrapper that passes the context on as a copy: its signal must still be the attempt's.
        look: (ctx: HandlerContext<{ n: number }>) => inner({ ...ctx, payload: { n: ctx.payload.n + 1 } }),
      },
    });
    const handle = scheduler.submit({ type: 'look', id: 'p', payload: { n: 6 } });
    await clock.advanceBy(0);
    expect(scheduler.get('p')?.progress.fraction).toBe(0.5);
    expect(scheduler.cancel('p')).toBe(true);
    await expect(handle.result).rejects.toMatchObject({ state: 'cancelled' });
    expect(seen).toEqual([{ aborted: false, attempt: 1, id: 'p' }]);
    await scheduler.shutdown({ mode: 'cancel' });
  });

  it.each([
    ['lean host', false],
    ['inspected', true],
  ])(
    'a submit from a listener while a batch goes in cannot take its ids or places (%s)',
    async (_, inspected) => {
      const clock = createVirtualClock();
      const scheduler = createScheduler({
        clock,
        monitor: false,
        resources: POOL,
        maxConcurrentJobs: 1,
        // x runs (and takes no place); the batch takes three places: one is left free.
        maxQueueSize: 4,
        ...(inspected ? { inspect: () => undefined } : {}),
        handlers: { work: ({ signal }: HandlerContext) => wait(clock, signal, 10) },
      });
      const refused: string[] = [];
      const attempt = (spec: { type: 'work'; id?: string; priority?: 'low'; dependsOn?: string[] }) => {
        try {
          return scheduler.submit(spec).id;
        } catch (error) {
          refused.push((error as Error).name);
          return undefined;
        }
      };
      let extra: string | undefined;
      scheduler.events$.subscribe((e) => {
        if (e.type !== 'job.submitted' || e.job.id !== 'a') return;
        attempt({ type: 'work', id: 'b', priority: 'low' }); // declared later in the batch
        attempt({ type: 'work', dependsOn: ['b'] }); // not accepted yet
        extra = attempt({ type: 'work' }); // the one place the batch leaves free
        attempt({ type: 'work' }); // the batch's places are taken
      });
      scheduler.submit({ type: 'work', id: 'x' });
      scheduler.submitAll([
        { type: 'work', id: 'a' },
        { type: 'work', id: 'b', priority: 'high' },
        { type: 'work' },
      ]);
      expect(refused).toEqual([DuplicateJobError.name, UnknownDependencyError.name, QueueFullError.name]);
      const ids = scheduler.list().map((j) => j.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toHaveLength(5);
      expect(extra).toBeDefined();
      await clock.advanceBy(1_000);
      expect(scheduler.list().map((j) => j.state)).toEqual(Array(5).fill('completed'));
      expect(scheduler.stats().resources.allocated.cpu).toBe(0);
      await scheduler.shutdown();
    },
  );

  it('an ended job reads the same from its event, get, list and state$, watched or not, and a copy changed by its reader changes nothing', async () => {
    // One at a time: the third job is cancelled while it waits.
    const { clock, scheduler, events } = make({
      maxConcurrentJobs: 1,
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } },
    });
    const unwatched = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      maxConcurrentJobs: 1,
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } },
      handlers: {
        work: async ({ signal }: HandlerContext) => {
          await wait(clock, signal, 1_000);
          return 'done';
        },
        failNow: async () => {
          throw new Error('boom');
        },
      },
    });
    const specs = [work({ group: 'g' }), { type: 'failNow' } as const, work({ payload: { ms: 50 } })];
    const handles = specs.map((spec) => scheduler.submit(spec));
    const quiet = specs.slice(0, 2).map((spec) => unwatched.submit(spec));
    scheduler.cancel(handles[2]?.id ?? '');
    await clock.advanceBy(5_000);
    const ended = events.filter(
      (e): e is Extract<SchedulerEvent, { job: unknown }> =>
        e.type === 'job.completed' || e.type === 'job.failed' || e.type === 'job.cancelled',
    );
    expect(ended.map((e) => e.job.state).sort()).toEqual(['cancelled', 'completed', 'failed']);
    for (const e of ended) {
      const got = scheduler.get(e.job.id);
      expect(got).toStrictEqual(e.job);
      expect(scheduler.list({ state: e.job.state }).find((j) => j.id === e.job.id)).toStrictEqual(e.job);
      const seen: unknown[] = [];
      handles.find((h) => h.id === e.job.id)?.state$.subscribe((s) => seen.push(s));
      expect(seen).toStrictEqual([e.job]);
      (got as { attempt: number }).attempt = 99;
      expect(scheduler.get(e.job.id)?.attempt).toBe(e.job.attempt);
    }
    expect(scheduler.get(handles[0]?.id ?? '')).toMatchObject({
      group: 'g',
      attempt: 1,
      progress: { fraction: 1 },
      startedAt: 0,
      endedAt: 1_000,
      submittedAt: 0,
    });
    expect(scheduler.get(handles[1]?.id ?? '')).toMatchObject({
      state: 'failed',
      attempt: 3, // every attempt it had
      error: { kind: 'error', message: 'boom' },
    });
    const cancelled = scheduler.get(handles[2]?.id ?? '');
    expect(cancelled).toMatchObject({ state: 'cancelled', attempt: 0, progress: { fraction: 0 } });
    expect(cancelled && 'startedAt' in cancelled).toBe(false);
    // The same jobs where nobody listens end the same.
    // (Same fields and values; the retries' jittered times differ between the two schedulers.)
    const strip = (j: unknown) => ({ ...(j as object), id: 0, startedAt: 0, endedAt: 0 });
    expect(quiet.map((h) => strip(unwatched.get(h.id)))).toStrictEqual(
      handles.slice(0, 2).map((h) => strip(scheduler.get(h.id))),
    );
    await Promise.all([scheduler.shutdown(), unwatched.shutdown()]);
  });

  it("a handle's cancel is one function, however often it is read", () => {
    const { scheduler } = make();
    const handle = scheduler.submit(work({ id: 'h' }));
    expect(handle.cancel).toBe(handle.cancel);
  });
});

describe('cancel while a start is on its way', () => {
  // A subscriber that cancels a job the moment it queues does so inside the job's own step,
  // before the scheduler has started it: the grant chosen in that step must go back, and the
  // scheduler must go on starting others (no leaked resources, no stuck start).
  it.each([
    { name: 'on its first queueing', retry: { attempts: 1 }, type: 'work', queuedTimes: 1 },
    {
      name: 'when it queues again after a failed attempt',
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 10, maxDelayMs: 10, jitter: false } },
      type: 'failNow',
      queuedTimes: 2,
    },
  ] as const)('$name', async ({ retry, type, queuedTimes }) => {
    const { clock, scheduler, events, started } = make({ retry });
    let seen = 0;
    scheduler.events$.subscribe((e) => {
      if (e.type === 'job.queued' && e.job.id === 'x' && ++seen === queuedTimes) scheduler.cancel('x');
    });
    scheduler.submit({ type, id: 'x', resources: { cpu: 2, gpu: 1 } });
    await clock.advanceBy(100);
    expect(scheduler.get('x')?.state).toBe('cancelled');
    expect(scheduler.stats().resources.allocated).toMatchObject({ cpu: 0, gpu: 0, memoryMb: 0 });
    scheduler.submit(work({ id: 'y', payload: { ms: 10 }, resources: { cpu: 8, gpu: 1 } }));
    await clock.advanceBy(100);
    expect(scheduler.get('y')?.state).toBe('completed');
    expect(started).toContain('y');
    expect(events.filter((e) => e.type === 'job.started' && e.job.id === 'x')).toHaveLength(queuedTimes - 1);
  });
});

describe('shutdown', () => {
  it('drain: cancels what has not started (kind shutdown), lets running jobs finish, then frees everything', async () => {
    const { clock, scheduler, events } = make({ maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'run', resources: { gpu: 1 }, payload: { ms: 1_000 } });
    scheduler.submit({ type: 'work', id: 'queued' });
    scheduler.submit({ type: 'work', id: 'pending', dependsOn: ['run'] });
    let report: unknown;
    void scheduler.shutdown({ mode: 'drain', timeoutMs: 5_000 }).then((r) => (report = r));
    expect(scheduler.get('queued')).toMatchObject({ state: 'cancelled', error: { kind: 'shutdown' } });
    expect(scheduler.get('pending')).toMatchObject({ state: 'cancelled', error: { kind: 'shutdown' } });
    expect(() => scheduler.submit({ type: 'work' })).toThrow(SchedulerClosedError);
    await clock.advanceBy(999);
    expect(report).toBeUndefined();
    expect(scheduler.get('run')?.state).toBe('running');
    await clock.advanceBy(1);
    expect(report).toMatchObject({ mode: 'drain', completed: ['run'], aborted: [], timedOut: false });
    expect([...(report as { cancelled: string[] }).cancelled].sort()).toEqual(['pending', 'queued']);
    expect(scheduler.get('run')?.state).toBe('completed');
    expect(clock.pendingTimers()).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'scheduler.shutdown', report });
    expect(() => scheduler.submit({ type: 'work' })).toThrow(SchedulerClosedError);
    expect(() => scheduler.submitAll([{ type: 'work' }])).toThrow(SchedulerClosedError);
  });

  it('afterwards every resource is free, with the capacity still reported', async () => {
    const { clock, scheduler } = make();
    scheduler.submit({ type: 'work', id: 'run', resources: { gpu: 1, cpu: 2 } });
    const done = scheduler.shutdown({ mode: 'cancel' });
    await clock.advanceBy(0);
    await done;
    const { resources } = scheduler.stats();
    expect(resources.allocated).toMatchObject(NONE);
    expect(resources.capacity).toEqual(CAPACITY);
    expect(resources.free).toEqual(CAPACITY);
  });

  it('drain that runs out of time aborts running jobs, within timeoutMs plus one tick', async () => {
    const { clock, scheduler } = make({ schedulingIntervalMs: 1_000, retry: { attempts: 3 } });
    scheduler.submit({ type: 'hang', id: 'stuck', resources: { gpu: 1 } });
    scheduler.submit({ type: 'failNow', id: 'flaky' });
    await clock.advanceBy(0);
    expect(scheduler.get('flaky')?.state).toBe('retrying');
    let report: unknown;
    const forced: unknown[] = [];
    scheduler.events$.subscribe((e) => e.type === 'job.forceReleased' && forced.push(e));
    void scheduler.shutdown({ mode: 'drain', timeoutMs: 2_000 }).then((r) => (report = r));
    await clock.advanceBy(2_000 + 1_000);
    // Aborted at 2 s, but its handler ignores the abort: it still runs, and still holds its GPU.
    expect(report).toBeUndefined();
    expect(scheduler.get('stuck')).toMatchObject({
      state: 'running',
      stopping: { reason: 'shutdown', since: 2_000 },
    });
    expect(scheduler.stats().resources.allocated.gpu).toBe(1);
    // Shutdown waits for it up to stopTimeoutMs (10 s by default), then gives up and says so.
    await clock.advanceBy(9_000);
    expect(report).toEqual({
      mode: 'drain',
      completed: [],
      failed: [],
      cancelled: ['flaky'],
      aborted: ['stuck'],
      timedOut: true,
      stillRunning: [{ id: 'stuck', attempt: 1 }],
    });
    expect(scheduler.get('stuck')).toMatchObject({ state: 'cancelled', error: { kind: 'shutdown' } });
    expect(scheduler.get('stuck')?.error?.message).toMatch(/had not stopped at shutdown/);
    expect(scheduler.get('stuck')?.endedAt).toBe(12_000);
    expect(forced).toMatchObject([
      { job: { id: 'stuck' }, attempt: 1, reason: 'shutdown', stoppingMs: 10_000 },
    ]);
    expect(scheduler.stats().resources.allocated.gpu).toBe(0);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('cancel: aborts running jobs at once and resolves without time passing', async () => {
    const { clock, scheduler, signals } = make();
    scheduler.submit(work({ id: 'a', resources: { gpu: 1 } }));
    scheduler.submit(work({ id: 'b', resources: { gpu: 1 } }));
    await clock.advanceBy(10);
    const report = await scheduler.shutdown({ mode: 'cancel', timeoutMs: 60_000 });
    expect(report).toEqual({
      mode: 'cancel',
      completed: [],
      failed: [],
      cancelled: ['b'],
      aborted: ['a'],
      timedOut: false,
      stillRunning: [],
    });
    expect(clock.now()).toBe(10);
    expect(signals.get('a')?.aborted).toBe(true);
    expect(scheduler.get('a')).toMatchObject({ state: 'cancelled', error: { kind: 'shutdown' } });
    expect(clock.pendingTimers()).toBe(0);
    expect(await scheduler.shutdown()).toBe(report);
  });

  it('leaves no boost timer or subscription behind, completes events$, and rejects bad options first', async () => {
    const { clock, scheduler } = make({ maxConcurrentJobs: 1 });
    scheduler.submit(work({ id: 'a', payload: { ms: 100 } }));
    scheduler.submit(work({ id: 'b' }));
    const boost$ = new Subject<BoostSignal>();
    scheduler.connectBoosts(boost$);
    boost$.next({ target: { ids: ['b'] }, to: 'critical', forMs: 60_000 });
    expect(() => scheduler.shutdown({ mode: 'later' as never })).toThrow(
      expect.objectContaining({ field: 'mode' }),
    );
    expect(() => scheduler.shutdown({ timeoutMs: -1 })).toThrow(
      expect.objectContaining({ field: 'timeoutMs' }),
    );
    expect(scheduler.get('b')?.state).toBe('queued');
    let complete = false;
    scheduler.events$.subscribe({ complete: () => (complete = true) });
    const done = scheduler.shutdown({ mode: 'drain' });
    await clock.advanceBy(100);
    await done;
    expect(boost$.observed).toBe(false);
    expect(complete).toBe(true);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('observation', () => {
  it('events$ tells the story of a simple job, in order, as a typed union', async () => {
    const { clock, scheduler, events } = make();
    scheduler.submit({ type: 'work', id: 'a', resources: { gpu: 1 }, payload: { ms: 100 } });
    await clock.advanceBy(1_000);
    // The release is counted before "completed" is said, so stats() agree with every event.
    const story = 'job.submitted job.queued resources.changed job.started resources.changed job.completed';
    expect(events.map((e) => e.type)).toEqual([...story.split(' '), 'scheduler.idle']);
    const [submitted, queued, , started, , completed, idle] = events;
    expect(submitted).toMatchObject({ at: 0, job: { id: 'a', state: 'pending' } });
    expect(queued).toMatchObject({ at: 0, job: { id: 'a', state: 'queued' } });
    expect(started).toMatchObject({ at: 0, job: { id: 'a', state: 'running', attempt: 1 } });
    expect(completed).toMatchObject({ at: 100, output: 'done', job: { state: 'completed' } });
    expect(idle).toEqual({ type: 'scheduler.idle', at: 100 });
    const gpus = events.flatMap((e) => (e.type === 'resources.changed' ? [e.resources.allocated.gpu] : []));
    expect(gpus).toEqual([1, 0]);
  });

  it('stats() counts jobs by state, the queue, and capacity/allocated/free', async () => {
    const { clock, scheduler } = make({ maxConcurrentJobs: 2, maxQueueSize: 10 });
    scheduler.submit(
      work({ id: 'a', resources: { gpu: 1, cpu: 2, memoryMb: 1_024, custom: { licence: 1 } } }),
    );
    scheduler.submit({ type: 'work', id: 'b', resources: { cpu: 1 }, payload: { ms: 10 } });
    scheduler.submit({ type: 'work', id: 'c' });
    scheduler.submit({ type: 'work', id: 'd', dependsOn: ['a'] });
    const stats = scheduler.stats();
    const jobs = { pending: 1, queued: 1, scheduled: 0, running: 2, retrying: 0, completed: 0, failed: 0 };
    expect(stats.jobs).toEqual({ ...jobs, cancelled: 0 });
    expect(stats.queue).toEqual({ size: 2, max: 10 });
    expect(stats.resources.capacity).toEqual(CAPACITY);
    const allocated = { cpu: 3, memoryMb: 1_024, gpu: 1, vramMb: 24_000, custom: { licence: 1 } };
    expect(stats.resources.allocated).toEqual(allocated);
    expect(stats.resources.free).toEqual({
      cpu: 5,
      memoryMb: 15_360,
      gpu: 0,
      vramMb: 0,
      custom: { licence: 1 },
    });
    await clock.advanceBy(10_000);
    expect(scheduler.stats().jobs.completed).toBe(4);
    expect(scheduler.stats().resources.free).toEqual(CAPACITY);
  });

  it('get/list include finished jobs as records, filter by state and group, and keep retainFinished', async () => {
    const { clock, scheduler } = make({ retainFinished: 2 });
    for (const id of ['a', 'b', 'c']) scheduler.submit({ type: 'work', id, group: 'g', payload: { ms: 10 } });
    scheduler.submit({ type: 'work', id: 'd', payload: { ms: 1_000 } });
    expect(scheduler.get('nope')).toBeUndefined();
    expect(scheduler.list({ group: 'g' }).map((j) => j.id)).toEqual(['a', 'b', 'c']);
    await clock.advanceBy(100);
    expect(scheduler.list({ state: 'completed' }).map((j) => j.id)).toEqual(['b', 'c']);
    expect(scheduler.get('a')).toBeUndefined();
    expect(scheduler.get('c')).toMatchObject({ state: 'completed', endedAt: 10 });
    expect(scheduler.list({ state: 'running' }).map((j) => j.id)).toEqual(['d']);
    expect(scheduler.list({ group: 'g', state: 'completed' }).map((j) => j.id)).toEqual(['b', 'c']);
    expect(scheduler.list().map((j) => j.id)).toEqual(['b', 'c', 'd']);
    await clock.advanceBy(1_000);
    expect(scheduler.list().map((j) => j.id)).toEqual(['c', 'd']);
  });

  it('options.inspect sees the scheduler, the resource manager and every job actor', async () => {
    const actors = new Set<string>();
    const events = new Set<string>();
    const inspect = (e: InspectionEvent) => {
      const logic = (e.actorRef as { logic?: { id?: string } }).logic;
      if (e.type === '@xstate.actor' && logic?.id) actors.add(logic.id);
      if (e.type === '@xstate.event') events.add(e.event.type);
    };
    const { clock, scheduler } = make({ inspect });
    scheduler.submit({ type: 'work', payload: { ms: 10 } });
    await clock.advanceBy(100);
    expect([...actors]).toEqual(expect.arrayContaining(['scheduler', 'resourceManager', 'job']));
    expect([...events]).toEqual(
      expect.arrayContaining(['job.ready', 'job.allocated', 'job.start', 'xstate.done.actor.handler']),
    );
  });

  it('the monitor reports measured resources; pressure holds jobs back and its end starts them', async () => {
    const readings = [2_000, 2_000, 16_384];
    const measure = async () => ({ freeMemoryMb: readings.shift() ?? 16_000, warnings: [] });
    const { clock, scheduler, events } = make({
      monitor: true,
      monitorIntervalMs: 1_000,
      measure,
      headroom: { memoryMb: 0 },
    });
    await clock.advanceBy(0);
    expect(scheduler.stats().resources.measured).toEqual({ memoryMb: 2_000 });
    scheduler.submit(work({ id: 'big', resources: { memoryMb: 4_000 } }));
    expect(scheduler.get('big')).toMatchObject({ state: 'queued', waitReason: 'resources' });
    expect(events.some((e) => e.type === 'resources.pressure')).toBe(true);
    await clock.advanceBy(2_000);
    expect(scheduler.get('big')?.startedAt).toBe(2_000);
    expect(events.some((e) => e.type === 'resources.pressureEnded')).toBe(true);
    const done = scheduler.shutdown({ mode: 'cancel' });
    await clock.advanceBy(0);
    await done;
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('options', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['handlers', { handlers: null }],
    ['handlers.work', { handlers: { work: 42 } }],
    ['maxConcurrentJobs', { maxConcurrentJobs: 0 }],
    ['maxConcurrentJobs', { maxConcurrentJobs: 1.5 }],
    ['maxQueueSize', { maxQueueSize: -1 }],
    ['schedulingIntervalMs', { schedulingIntervalMs: 0 }],
    ['monitorIntervalMs', { monitorIntervalMs: Number.NaN }],
    ['defaultTimeoutMs', { defaultTimeoutMs: -5 }],
    ['retry.attempts', { retry: { attempts: 0 } }],
    ['retry.backoff.type', { retry: { backoff: { type: 'linear' } } }],
    ['retry.backoff.delayMs', { retry: { backoff: { delayMs: -1 } } }],
    ['aging.intervalMs', { aging: { intervalMs: 0 } }],
    ['aging.maxLevels', { aging: { maxLevels: -1 } }],
    ['queuePolicy', { queuePolicy: 'lifo' }],
    ['placement', { placement: 'worst-fit' }],
    ['reserveAfterMs', { reserveAfterMs: -1 }],
    ['backfillDepth', { backfillDepth: 1.5 }],
    ['retainFinished', { retainFinished: -1 }],
    ['random', { random: 0.5 }],
    ['headroom.memoryMb', { headroom: { memoryMb: -1 } }],
    ['resources', { resources: 'gpus' }],
  ];
  it.each(bad)('rejects a bad %s with InvalidOptionError naming it', (field, options) => {
    const clock = createVirtualClock();
    const base = { clock, monitor: false, resources: POOL, handlers: { work: async () => 1 } };
    const create = () => createScheduler({ ...base, ...options } as never);
    expect(create).toThrow(expect.objectContaining({ name: InvalidOptionError.name, field }));
    expect(clock.pendingTimers()).toBe(0);
  });

  it('rejects a pool that describes no real machine with InvalidPoolError naming the field', () => {
    const pool = { cpu: -1, memoryMb: 1 };
    const create = () => createScheduler({ clock: createVirtualClock(), resources: pool, handlers: {} });
    expect(create).toThrow(expect.objectContaining({ name: InvalidPoolError.name }));
    expect(create).toThrow(/cpu/);
  });

  it("detects the pool with a mocked 'detect' option, and runs a job submitted before it is known", async () => {
    const si: SystemInformationLike = {
      cpu: async () => ({ cores: 16 }),
      mem: async () => ({ total: 64 * 1024 ** 3, available: 60 * 1024 ** 3 }),
      graphics: async () => ({
        controllers: [{ vendor: 'NVIDIA', model: 'RTX 4090', vram: 24_564, memoryTotal: 24_564 }],
      }),
    };
    const clock = createVirtualClock();
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: 'detect',
      detect: { si, id: 'ws', runNvidiaSmi: async () => '' },
      handlers: { work: async ({ allocation }: HandlerContext<unknown>) => allocation.nodeId },
    });
    const events: SchedulerEvent[] = [];
    scheduler.events$.subscribe((e) => events.push(e));
    const job = scheduler.submit({ type: 'work', resources: { gpu: 1 } });
    await scheduler.ready;
    await clock.advanceBy(0);
    expect(events).toContainEqual({ type: 'scheduler.ready', at: 0, warnings: [] });
    const capacity = { cpu: 16, memoryMb: 65_536, gpu: 1, vramMb: 24_564 };
    expect(scheduler.stats().resources.capacity).toMatchObject(capacity);
    await expect(job.result).resolves.toBe('ws');
  });

  it("takes a job's request as it was at submit: changing the object afterwards changes nothing", async () => {
    const { clock, scheduler } = detectedBox(async ({ allocation }) => allocation.cpu);
    const request: { cpu: number; gpu?: number } = { cpu: 2 };
    const job = scheduler.submit({ type: 'work', resources: request });
    // Reused for something else before the pool is known: no GPU there, 64 cores asked.
    request.cpu = 64;
    request.gpu = 1;
    await scheduler.ready;
    await clock.advanceBy(0);
    await expect(job.result).resolves.toBe(2);
    expect(scheduler.get(job.id)?.state).toBe('completed');
  });

  it('cancels, once the pool is known, a job submitted before that can never fit it (no one watching)', async () => {
    const { clock, scheduler } = detectedBox(async () => 'ran');
    const big = scheduler.submit({ type: 'work', resources: { gpu: 1 } });
    const small = scheduler.submit({ type: 'work', resources: { cpu: 1 } });
    await scheduler.ready;
    await clock.advanceBy(0);
    await expect(big.result).rejects.toThrow(/gpu/);
    expect(scheduler.get(big.id)?.state).toBe('cancelled');
    await expect(small.result).resolves.toBe('ran');
    expect(scheduler.stats().jobs).toMatchObject({ cancelled: 1, completed: 1, queued: 0 });
  });
});
