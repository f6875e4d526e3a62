/**
 * Scenario tests of the scheduler runtime, items 4–6 of issue 4: running a job (handler context,
 * progress, timeouts, release exactly once on every way out), retries with backoff on the
 * virtual clock, and dependencies. Everything runs in virtual time.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ResourceLedger } from '../../src/core/ledger.js';
import {
  DependencyCycleError,
  JobFailedError,
  UnknownDependencyError,
  UnrecoverableError,
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type SchedulerEvent,
  type SchedulerOptions,
  type ShutdownReport,
  type VirtualClock,
} from '../../src/index.js';

/** Waits `ms` of virtual time, rejecting when the signal aborts. */
function wait(clock: VirtualClock, signal: AbortSignal, ms: number): Promise<void> {
  return delay(clock, ms, signal);
}

/** mulberry32: a seeded source of [0, 1) for the `random` option. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const { tryAllocate, release } = ResourceLedger.prototype;
afterEach(() => {
  vi.restoreAllMocks();
});

const POOL = { id: 'n1', cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_000 }] };

/** Every behaviour a handler may have; `calls` records (id, attempt, time) of each call. */
function make(options: Omit<SchedulerOptions, 'handlers' | 'clock'> = {}) {
  const clock = createVirtualClock();
  const calls: Array<{ id: string; attempt: number; at: number }> = [];
  const signals = new Map<string, AbortSignal>();
  const settlers = new Map<string, () => void>();
  const log = ({ id, attempt, signal }: HandlerContext<unknown>) => {
    calls.push({ id, attempt, at: clock.now() });
    signals.set(id, signal);
  };
  const run =
    <T>(fn: (ctx: HandlerContext<unknown>) => T) =>
    (ctx: HandlerContext<unknown>) => (log(ctx), fn(ctx));
  const boom = (message: string): never => {
    throw new Error(message);
  };
  const handlers = {
    succeed: run(({ signal }) => wait(clock, signal, 100).then(() => 'ok')),
    long: run(({ signal }) => wait(clock, signal, 10_000).then(() => 'ok')),
    fail: run(({ signal }) => wait(clock, signal, 100).then(() => boom('boom'))),
    failNow: run(async () => boom('boom')),
    unrecoverable: run(() => Promise.reject(new UnrecoverableError('bad input'))),
    throwSync: run(() => boom('sync')),
    rejectNonError: run(() => Promise.reject({ code: 42 })),
    hang: run(() => new Promise<never>(() => undefined)),
    // Ignores its signal; settles when the test says (`settlers.get(id)()`).
    settleLater: run(({ id }) => new Promise<string>((resolve) => settlers.set(id, () => resolve('late')))),
    lateResolve: run(() => new Promise<string>((resolve) => clock.setTimeout(() => resolve('late'), 500))),
  };
  // Every grant and every release request, counted on the ledger itself (restored after each test).
  const granted: string[] = [];
  const released: string[] = [];
  vi.spyOn(ResourceLedger.prototype, 'tryAllocate').mockImplementation(function (
    this: ResourceLedger,
    ...args
  ) {
    const allocation = tryAllocate.apply(this, args);
    if (allocation) granted.push(allocation.id);
    return allocation;
  });
  vi.spyOn(ResourceLedger.prototype, 'release').mockImplementation(function (this: ResourceLedger, id) {
    released.push(id);
    return release.call(this, id);
  });
  const base = { clock, monitor: false, resources: POOL, retry: { attempts: 1 } };
  const scheduler = createScheduler({ ...base, handlers, ...options });
  const events: SchedulerEvent[] = [];
  scheduler.events$.subscribe((e) => events.push(e));
  return { clock, scheduler, calls, signals, settlers, events, granted, released };
}

describe('running a job', () => {
  it('gives the handler its id, payload, attempt, allocation, signal and progress', async () => {
    const clock = createVirtualClock({ startAt: 1_000 });
    let seen: HandlerContext<{ image: string }> | undefined;
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      handlers: {
        upscale: async (ctx: HandlerContext<{ image: string }>) => {
          seen = ctx;
          return ctx.payload.image.toUpperCase();
        },
      },
    });
    const job = scheduler.submit({
      type: 'upscale',
      id: 'a',
      payload: { image: 'a.png' },
      resources: { gpu: 1, vramMb: 8_000, cpu: 2, memoryMb: 1_024 },
    });
    await clock.advanceBy(0);
    expect(seen?.id).toBe('a');
    expect(seen?.payload).toEqual({ image: 'a.png' });
    expect(seen?.attempt).toBe(1);
    expect(seen?.allocation).toMatchObject({
      nodeId: 'n1',
      cpu: 2,
      memoryMb: 1_024,
      gpus: [{ index: 0, share: 1 }],
    });
    expect(seen?.allocation.gpus[0]?.vramMb).toBeGreaterThanOrEqual(8_000);
    expect(seen?.signal).toBeInstanceOf(AbortSignal);
    expect(seen?.signal.aborted).toBe(false);
    expect(typeof seen?.progress).toBe('function');
    await expect(job.result).resolves.toBe('A.PNG');
    expect(scheduler.get('a')).toMatchObject({ state: 'completed', startedAt: 1_000, endedAt: 1_000 });
  });

  it('relays progress as job.progress events and snapshots, clamped, and ignores it after the end', async () => {
    const clock = createVirtualClock();
    let report: ((fraction: number, note?: string) => void) | undefined;
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      handlers: {
        work: async ({ progress, signal }: HandlerContext<unknown>) => {
          report = progress;
          progress(0.25, 'loading');
          await wait(clock, signal, 100);
          progress(0.75);
          progress(Number.NaN);
          await wait(clock, signal, 100);
          progress(2, 'over');
          await wait(clock, signal, 100);
        },
      },
    });
    const events: SchedulerEvent[] = [];
    scheduler.events$.subscribe((e) => events.push(e));
    scheduler.submit({ type: 'work', id: 'p' });
    await clock.advanceBy(50);
    expect(scheduler.get('p')?.progress).toEqual({ fraction: 0.25, note: 'loading' });
    await clock.advanceBy(500);
    const progress = events.flatMap((e) => (e.type === 'job.progress' ? [e.job.progress] : []));
    expect(progress).toEqual([
      { fraction: 0.25, note: 'loading' },
      { fraction: 0.75 },
      { fraction: 1, note: 'over' },
    ]);
    expect(scheduler.get('p')?.state).toBe('completed');
    const before = events.length;
    report?.(0.1, 'too late');
    await clock.advanceBy(0);
    expect(events.length).toBe(before);
    expect(scheduler.get('p')?.progress.fraction).toBe(1);
  });

  it('a timeout aborts the signal and fails the attempt with kind timeout', async () => {
    const { clock, scheduler, signals } = make({ defaultTimeoutMs: 300 });
    const job = scheduler.submit({ type: 'long', id: 't', timeoutMs: 500 });
    const byDefault = scheduler.submit({ type: 'long', id: 'd' });
    await clock.advanceBy(499);
    expect(scheduler.get('t')?.state).toBe('running');
    expect(scheduler.get('d')).toMatchObject({ state: 'failed', endedAt: 300, error: { kind: 'timeout' } });
    await clock.advanceBy(1);
    expect(signals.get('t')?.aborted).toBe(true);
    expect(scheduler.get('t')).toMatchObject({ state: 'failed', endedAt: 500, error: { kind: 'timeout' } });
    expect(scheduler.get('t')?.error?.message).toMatch(/500/);
    await expect(job.result).rejects.toMatchObject({ name: JobFailedError.name, kind: 'timeout' });
    await expect(byDefault.result).rejects.toBeInstanceOf(JobFailedError);
    expect(scheduler.stats().resources.allocated).toMatchObject({ cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 });
  });

  it('a timed-out attempt is retried with a fresh signal', async () => {
    const { clock, scheduler, calls, events, signals } = make({
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 100, jitter: false } },
    });
    scheduler.submit({ type: 'long', id: 't', timeoutMs: 500 });
    await clock.advanceBy(500);
    const retrying = events.find((e) => e.type === 'job.retrying');
    expect(retrying?.type === 'job.retrying' && retrying.job.error?.kind).toBe('timeout');
    await clock.advanceBy(100);
    expect(scheduler.get('t')).toMatchObject({ state: 'running', attempt: 2 });
    expect(signals.get('t')?.aborted).toBe(false);
    await clock.advanceBy(500);
    expect(calls.map((c) => [c.attempt, c.at])).toEqual([
      [1, 0],
      [2, 600],
    ]);
    expect(scheduler.get('t')).toMatchObject({ state: 'failed', attempt: 2, error: { kind: 'timeout' } });
  });

  it('a timed-out attempt that ignores the abort cannot report progress or a result into the next one', async () => {
    const clock = createVirtualClock();
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 100, jitter: false } },
      handlers: {
        work: ({ attempt, progress }: HandlerContext<unknown>) =>
          new Promise<string>((resolve) => {
            if (attempt === 2) clock.setTimeout(() => resolve('fresh'), 300);
            else
              clock.setTimeout(() => {
                progress(0.9, 'stale');
                resolve('stale');
              }, 800);
          }),
      },
    });
    const job = scheduler.submit({ type: 'work', id: 'j', timeoutMs: 500 });
    await clock.advanceBy(750);
    // Timed out at 500, but attempt 1 runs on until it settles (at 800): no retry overlaps it.
    expect(scheduler.get('j')).toMatchObject({
      state: 'running',
      attempt: 1,
      stopping: { reason: 'timeout', outcome: 'retrying', since: 500 },
    });
    await clock.advanceBy(200); // attempt 2 runs from 900 (800 + the 100 ms backoff) to 1200
    expect(scheduler.get('j')).toMatchObject({ state: 'running', attempt: 2, progress: { fraction: 0 } });
    expect(scheduler.get('j')?.stopping).toBeUndefined();
    await clock.advanceBy(300);
    await expect(job.result).resolves.toBe('fresh');
  });

  type Case = {
    name: string;
    type: 'succeed' | 'fail' | 'long' | 'hang' | 'throwSync' | 'rejectNonError' | 'lateResolve';
    timeoutMs?: number;
    act?: 'cancel' | 'shutdown';
    state: 'completed' | 'failed' | 'cancelled';
    kind?: string;
    message?: RegExp;
  };
  const cases: Case[] = [
    { name: 'success', type: 'succeed', state: 'completed' },
    { name: 'failure', type: 'fail', state: 'failed', kind: 'error', message: /boom/ },
    { name: 'timeout', type: 'long', timeoutMs: 200, state: 'failed', kind: 'timeout' },
    { name: 'cancel', type: 'long', act: 'cancel', state: 'cancelled', kind: 'cancelled' },
    { name: 'shutdown', type: 'long', act: 'shutdown', state: 'cancelled', kind: 'shutdown' },
    { name: 'a synchronous throw', type: 'throwSync', state: 'failed', kind: 'error', message: /sync/ },
    { name: 'a non-Error rejection', type: 'rejectNonError', state: 'failed', kind: 'error', message: /42/ },
    {
      name: 'a resolve after cancel',
      type: 'lateResolve',
      act: 'cancel',
      state: 'cancelled',
      kind: 'cancelled',
    },
  ];
  it.each(cases)('releases resources exactly once on $name', async (c) => {
    const { clock, scheduler, granted, released, events, signals } = make();
    const spec = { type: c.type, id: 'j', resources: { gpu: 1, cpu: 2, memoryMb: 2_048 } } as const;
    scheduler.submit(c.timeoutMs === undefined ? spec : { ...spec, timeoutMs: c.timeoutMs });
    scheduler.submit({ type: 'succeed', id: 'next', resources: { gpu: 1 } });
    await clock.advanceBy(50);
    // The GPU is held by `j` if it still runs, else by `next`.
    expect(scheduler.stats().resources.allocated.gpu).toBe(1);
    if (c.act === 'cancel') expect(scheduler.cancel('j')).toBe(true);
    if (c.act === 'shutdown') void scheduler.shutdown({ mode: 'cancel' });
    await clock.advanceBy(1_000);
    const job = scheduler.get('j');
    expect(job?.state).toBe(c.state);
    if (c.kind) expect(job?.error?.kind).toBe(c.kind);
    if (c.message) expect(job?.error?.message).toMatch(c.message);
    expect(job?.allocation).toBeUndefined();
    if (c.act !== undefined || c.kind === 'timeout') expect(signals.get('j')?.aborted).toBe(true);
    expect(new Set(released).size).toBe(released.length);
    expect([...released].sort()).toEqual([...granted].sort());
    expect(granted.length).toBe(c.act === 'shutdown' ? 1 : 2);
    if (c.act !== 'shutdown') expect(scheduler.get('next')?.state).toBe('completed');
    expect(scheduler.stats().resources.allocated).toMatchObject({ cpu: 0, memoryMb: 0, gpu: 0 });
    expect(events.filter((e) => e.type === 'job.completed' && e.job.id === 'j')).toHaveLength(
      c.state === 'completed' ? 1 : 0,
    );
  });
});

describe('a handler that ignores its abort (resources are held until the work has stopped)', () => {
  for (const how of ['cancel', 'timeout'] as const) {
    it(`keeps its GPU after a ${how} until it settles: the next job waits, then starts`, async () => {
      const { clock, scheduler, granted, released, events, settlers } = make();
      const spec = { type: 'settleLater', id: 'j', resources: { gpu: 1 } } as const;
      scheduler.submit(how === 'timeout' ? { ...spec, timeoutMs: 200 } : spec);
      scheduler.submit({ type: 'succeed', id: 'next', resources: { gpu: 1 } });
      await clock.advanceBy(50);
      const finish = settlers.get('j');
      if (how === 'cancel') expect(scheduler.cancel('j')).toBe(true);
      await clock.advanceBy(60_000);
      expect(scheduler.get('j')).toMatchObject({
        state: 'running',
        stopping: { reason: how, outcome: how === 'cancel' ? 'cancelled' : 'failed' },
      });
      expect(scheduler.stats().stopping).toBe(1);
      expect(scheduler.get('next')).toMatchObject({ state: 'queued', waitReason: 'resources' });
      expect(granted).toHaveLength(1);
      expect(events.filter((e) => e.type === 'job.stopping').map((e) => e.job.id)).toEqual(['j']);
      // The handler gives up at last: now, and only now, the GPU goes to the next job.
      finish?.();
      await clock.advanceBy(0);
      expect(scheduler.get('j')?.state).toBe(how === 'cancel' ? 'cancelled' : 'failed');
      expect(scheduler.get('j')?.error?.kind).toBe(how === 'cancel' ? 'cancelled' : 'timeout');
      expect(scheduler.stats().stopping).toBe(0);
      expect(scheduler.get('next')?.state).not.toBe('queued');
      await clock.advanceBy(1_000);
      expect(scheduler.get('next')?.state).toBe('completed');
      expect([...released].sort()).toEqual([...granted].sort());
      expect(events.some((e) => e.type === 'job.forceReleased')).toBe(false);
    });

    it(`with stopTimeoutMs, force-releases it after a ${how} and says so (job.forceReleased)`, async () => {
      const { clock, scheduler, events } = make({ stopTimeoutMs: 5_000 });
      const spec = { type: 'hang', id: 'j', resources: { gpu: 1 } } as const;
      scheduler.submit(how === 'timeout' ? { ...spec, timeoutMs: 200, retry: { attempts: 3 } } : spec);
      scheduler.submit({ type: 'succeed', id: 'next', resources: { gpu: 1 } });
      await clock.advanceBy(50);
      if (how === 'cancel') expect(scheduler.cancel('j')).toBe(true);
      const told = how === 'cancel' ? 50 : 200;
      await clock.advanceBy(told + 5_000 - 50 - 1);
      expect(scheduler.get('j')?.state).toBe('running');
      expect(scheduler.get('next')?.state).toBe('queued');
      await clock.advanceBy(1);
      // Never retried: a retry could overlap the attempt that may still run.
      expect(scheduler.get('j')).toMatchObject({
        state: how === 'cancel' ? 'cancelled' : 'failed',
        attempt: 1,
        error: { kind: how === 'cancel' ? 'cancelled' : 'timeout' },
      });
      expect(scheduler.get('j')?.error?.message).toMatch(
        /did not stop within 5000 ms: resources force-released/,
      );
      const forced = events.filter((e) => e.type === 'job.forceReleased');
      expect(forced).toMatchObject([{ job: { id: 'j' }, attempt: 1, reason: how, stoppingMs: 5_000 }]);
      // The warning comes before the job's end.
      const order = events.filter((e) => 'job' in e && e.job.id === 'j').map((e) => e.type);
      expect(order.slice(-2)).toEqual([
        'job.forceReleased',
        how === 'cancel' ? 'job.cancelled' : 'job.failed',
      ]);
      expect(scheduler.get('next')?.state).not.toBe('queued');
    });
  }

  it('a per-job stopTimeoutMs overrides the scheduler default; Infinity holds', async () => {
    const { clock, scheduler } = make({ stopTimeoutMs: 1_000 });
    scheduler.submit({ type: 'hang', id: 'held', resources: { gpu: 1 }, stopTimeoutMs: Infinity });
    scheduler.submit({ type: 'hang', id: 'quick', resources: { cpu: 1 }, stopTimeoutMs: 0 });
    await clock.advanceBy(10);
    scheduler.cancel('held');
    scheduler.cancel('quick');
    await clock.advanceBy(0);
    expect(scheduler.get('quick')?.state).toBe('cancelled');
    await clock.advanceBy(3_600_000);
    expect(scheduler.get('held')).toMatchObject({ state: 'running', stopping: { reason: 'cancel' } });
    expect(() => scheduler.submit({ type: 'hang', stopTimeoutMs: -1 })).toThrow(
      expect.objectContaining({ field: 'stopTimeoutMs' }),
    );
  });

  it('a retry never overlaps its own earlier attempt (1-CPU pool, handler ignores the abort)', async () => {
    const clock = createVirtualClock();
    let live = 0;
    let most = 0;
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { cpu: 1, memoryMb: 1_024 },
      retry: { attempts: 4, backoff: { type: 'fixed', delayMs: 10 } },
      handlers: {
        // Ignores its signal: each attempt computes for 700 ms, well past the 100 ms timeout.
        slow: () =>
          new Promise<void>((resolve) => {
            live++;
            most = Math.max(most, live);
            clock.setTimeout(() => {
              live--;
              resolve();
            }, 700);
          }),
      },
    });
    const job = scheduler.submit({ type: 'slow', id: 's', timeoutMs: 100, resources: { cpu: 1 } });
    await clock.advanceBy(10_000);
    await expect(job.result).rejects.toMatchObject({ kind: 'timeout' });
    expect(scheduler.get('s')).toMatchObject({ state: 'failed', attempt: 4 });
    expect(most).toBe(1);
    expect(live).toBe(0);
  });
});

describe('shutdown with attempts that do not stop', () => {
  it('a second shutdown({ mode: cancel }) cuts a drain short: aborted once, not timed out, its stopTimeoutMs taken', async () => {
    const { clock, scheduler } = make();
    scheduler.submit({ type: 'hang', id: 'a', resources: { gpu: 1 } });
    await clock.advanceBy(10);
    let report: ShutdownReport | undefined;
    void scheduler
      .shutdown({ mode: 'drain', timeoutMs: 60_000, stopTimeoutMs: 5_000 })
      .then((r) => (report = r));
    await clock.advanceBy(10);
    void scheduler.shutdown({ mode: 'cancel', stopTimeoutMs: 1_000 });
    await clock.advanceBy(999);
    expect(report).toBeUndefined();
    await clock.advanceBy(1);
    expect(report).toMatchObject({
      aborted: ['a'],
      timedOut: false,
      stillRunning: [{ id: 'a', attempt: 1 }],
    });
    expect(scheduler.get('a')?.error?.message).toMatch(/had not stopped at shutdown/);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('names in stillRunning an attempt its own stop timeout gave up on earlier, while it still runs', async () => {
    const { clock, scheduler } = make({ stopTimeoutMs: 100 });
    scheduler.submit({ type: 'hang', id: 'a', resources: { gpu: 1 } });
    scheduler.submit({ type: 'succeed', id: 'b' });
    await clock.advanceBy(10);
    scheduler.cancel('a');
    await clock.advanceBy(200);
    expect(scheduler.get('a')?.state).toBe('cancelled');
    const report = await scheduler.shutdown({ mode: 'cancel' });
    expect(report.stillRunning).toEqual([{ id: 'a', attempt: 1 }]);
  });

  it("says 'at shutdown' when shutdown gives up on an attempt that has a longer stop timeout of its own", async () => {
    const { clock, scheduler } = make({ stopTimeoutMs: 60_000 });
    scheduler.submit({ type: 'hang', id: 'a' });
    await clock.advanceBy(10);
    scheduler.cancel('a');
    await clock.advanceBy(10);
    void scheduler.shutdown({ mode: 'cancel', stopTimeoutMs: 1_000 });
    await clock.advanceBy(1_000);
    expect(scheduler.get('a')?.error?.message).toMatch(/had not stopped at shutdown/);
    expect(scheduler.get('a')?.error?.message).not.toMatch(/60000/);
  });

  it('a job that fails while the scheduler drains is named in report.failed', async () => {
    const { clock, scheduler } = make();
    scheduler.submit({ type: 'fail', id: 'a' });
    scheduler.submit({ type: 'succeed', id: 'b' });
    await clock.advanceBy(10);
    let report: ShutdownReport | undefined;
    void scheduler.shutdown({ mode: 'drain', timeoutMs: 1_000 }).then((r) => (report = r));
    await clock.advanceBy(200);
    expect(report).toMatchObject({ completed: ['b'], failed: ['a'] });
  });
});

describe("a job's result", () => {
  it('rejects with a JobFailedError whose cause is what the handler threw, with a message that says it once', async () => {
    const clock = createVirtualClock();
    const thrown = new RangeError('CUDA out of memory');
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      retry: { attempts: 1 },
      handlers: {
        oom: () => Promise.reject(thrown),
        long: ({ signal }: HandlerContext<unknown>) => wait(clock, signal, 10_000),
      },
    });
    const failed = scheduler.submit({ type: 'oom', id: 'a' });
    const cancelled = scheduler.submit({ type: 'long', id: 'b' });
    await clock.advanceBy(1);
    cancelled.cancel();
    await clock.advanceBy(1);
    const error = (await failed.result.catch((e: unknown) => e)) as JobFailedError;
    expect(error).toBeInstanceOf(JobFailedError);
    expect(error.cause).toBe(thrown);
    expect(error).toMatchObject({ jobId: 'a', state: 'failed', kind: 'error' });
    expect(error.message).toBe('job a failed: CUDA out of memory');
    const stopped = (await cancelled.result.catch((e: unknown) => e)) as JobFailedError;
    expect(stopped.message).toBe('job b cancelled');
    expect(stopped.cause).toBeUndefined();
    expect(stopped.kind).toBe('cancelled');
  });
});

describe('retries', () => {
  it('retries with fixed backoff, holding nothing while it waits', async () => {
    const { clock, scheduler, calls, events } = make({
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 1_000, jitter: false } },
    });
    scheduler.submit({ type: 'failNow', id: 'r', resources: { gpu: 1 } });
    await clock.advanceBy(0);
    expect(scheduler.get('r')).toMatchObject({ state: 'retrying', waitReason: 'backoff', attempt: 1 });
    expect(scheduler.get('r')?.allocation).toBeUndefined();
    expect(scheduler.stats().resources.allocated.gpu).toBe(0);
    // Another job takes the GPU during the backoff.
    scheduler.submit({ type: 'succeed', id: 'other', resources: { gpu: 1 } });
    expect(scheduler.get('other')?.state).toBe('running');
    await clock.advanceBy(5_000);
    expect(calls.filter((c) => c.id === 'r').map((c) => [c.attempt, c.at])).toEqual([
      [1, 0],
      [2, 1_000],
      [3, 2_000],
    ]);
    expect(events.flatMap((e) => (e.type === 'job.retrying' ? [e.delayMs] : []))).toEqual([1_000, 1_000]);
    expect(scheduler.get('r')).toMatchObject({ state: 'failed', attempt: 3, maxAttempts: 3 });
    expect(scheduler.get('r')?.error?.kind).toBe('error');
  });

  it('retries with exponential backoff up to its cap', async () => {
    const { clock, scheduler, calls } = make();
    scheduler.submit({
      type: 'failNow',
      id: 'r',
      retry: { attempts: 5, backoff: { type: 'exponential', delayMs: 100, maxDelayMs: 300, jitter: false } },
    });
    await clock.advanceBy(5_000);
    expect(calls.map((c) => c.at)).toEqual([0, 100, 300, 600, 900]);
    expect(scheduler.get('r')).toMatchObject({ state: 'failed', attempt: 5 });
  });

  it('draws jitter from the seeded random option: the same seed gives the same delays', async () => {
    async function delays(seed: number): Promise<number[][]> {
      const { clock, scheduler, events } = make({
        random: seeded(seed),
        retry: {
          attempts: 4,
          backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 60_000, jitter: true },
        },
      });
      for (const id of ['a', 'b', 'c']) scheduler.submit({ type: 'failNow', id });
      await clock.advanceBy(60_000);
      return ['a', 'b', 'c'].map((id) =>
        events.flatMap((e) => (e.type === 'job.retrying' && e.job.id === id ? [e.delayMs] : [])),
      );
    }
    const first = await delays(7);
    expect(await delays(7)).toEqual(first);
    expect(await delays(8)).not.toEqual(first);
    for (const perJob of first) {
      expect(perJob).toHaveLength(3);
      perJob.forEach((d, i) => {
        const full = 1_000 * 2 ** i;
        expect(d).toBeGreaterThanOrEqual(full / 2);
        expect(d).toBeLessThanOrEqual(full);
      });
    }
    expect(new Set(first.map((d) => d[0])).size).toBeGreaterThan(1);
  });

  it('fails at once on UnrecoverableError', async () => {
    const { clock, scheduler, calls, events } = make({ retry: { attempts: 5 } });
    const job = scheduler.submit({ type: 'unrecoverable', id: 'u' });
    await clock.advanceBy(60_000);
    expect(calls).toHaveLength(1);
    expect(scheduler.get('u')).toMatchObject({ state: 'failed', attempt: 1, error: { kind: 'error' } });
    expect(events.some((e) => e.type === 'job.retrying')).toBe(false);
    await expect(job.result).rejects.toMatchObject({ state: 'failed', message: /bad input/ });
  });
});

describe('dependencies', () => {
  it('keeps a job pending (dependencies) until its dependencies complete; a chain runs in order', async () => {
    const { clock, scheduler, calls } = make();
    scheduler.submit({ type: 'succeed', id: 'a' });
    scheduler.submit({ type: 'succeed', id: 'b', dependsOn: ['a'] });
    scheduler.submit({ type: 'succeed', id: 'c', dependsOn: ['b', 'a'] });
    expect(scheduler.get('b')).toMatchObject({ state: 'pending', waitReason: 'dependencies' });
    expect(scheduler.get('c')).toMatchObject({ state: 'pending', waitReason: 'dependencies' });
    await clock.advanceBy(100);
    expect(scheduler.get('b')?.state).toBe('running');
    expect(scheduler.get('c')?.state).toBe('pending');
    await clock.advanceBy(500);
    expect(calls.map((c) => [c.id, c.at])).toEqual([
      ['a', 0],
      ['b', 100],
      ['c', 200],
    ]);
  });

  it('afterok: a failed dependency cancels its dependents, down the chain, naming the cause', async () => {
    const { clock, scheduler, calls } = make();
    scheduler.submit({ type: 'fail', id: 'a' });
    const b = scheduler.submit({ type: 'succeed', id: 'b', dependsOn: ['a'] });
    scheduler.submit({ type: 'succeed', id: 'c', dependsOn: ['b'] });
    await clock.advanceBy(1_000);
    expect(scheduler.get('b')).toMatchObject({
      state: 'cancelled',
      error: { kind: 'dependency', dependencyId: 'a' },
    });
    expect(scheduler.get('b')?.error?.message).toMatch(/\ba\b/);
    expect(scheduler.get('c')).toMatchObject({
      state: 'cancelled',
      error: { kind: 'dependency', dependencyId: 'b' },
    });
    expect(calls.map((c) => c.id)).toEqual(['a']);
    await expect(b.result).rejects.toMatchObject({ name: JobFailedError.name, kind: 'dependency' });
    // A job submitted after its dependency failed is cancelled at once.
    scheduler.submit({ type: 'succeed', id: 'd', dependsOn: ['a'] });
    expect(scheduler.get('d')).toMatchObject({ state: 'cancelled', error: { kind: 'dependency' } });
  });

  it('a failure at the root of a long chain cancels all of it without growing the stack', async () => {
    const { clock, scheduler } = make({ maxQueueSize: Number.POSITIVE_INFINITY });
    scheduler.submit({ type: 'failNow', id: 'c0' });
    for (let i = 1; i < 1_000; i++)
      scheduler.submit({ type: 'succeed', id: `c${i}`, dependsOn: [`c${i - 1}`] });
    await clock.advanceBy(0);
    expect(scheduler.stats().jobs).toMatchObject({ failed: 1, cancelled: 999, pending: 0 });
    expect(scheduler.get('c999')?.error).toMatchObject({ kind: 'dependency', dependencyId: 'c998' });
  });

  it('afterok: a cancelled dependency cancels its dependents', async () => {
    const { clock, scheduler } = make();
    scheduler.submit({ type: 'long', id: 'a' });
    scheduler.submit({ type: 'succeed', id: 'b', dependsOn: ['a'] });
    scheduler.cancel('a');
    // `a` ends cancelled once its handler has stopped (on its abort, in the same tick).
    await clock.advanceBy(0);
    expect(scheduler.get('b')).toMatchObject({ state: 'cancelled', error: { kind: 'dependency' } });
  });

  it('afterany: runs once its dependencies ended, even if one failed', async () => {
    const { clock, scheduler, calls } = make();
    scheduler.submit({ type: 'fail', id: 'a' });
    scheduler.submit({ type: 'succeed', id: 'ok' });
    scheduler.submit({ type: 'succeed', id: 'b', dependsOn: ['a', 'ok'], dependencyPolicy: 'afterany' });
    await clock.advanceBy(1_000);
    expect(scheduler.get('b')?.state).toBe('completed');
    expect(calls.find((c) => c.id === 'b')?.at).toBe(100);
    scheduler.submit({ type: 'succeed', id: 'c', dependsOn: ['a'], dependencyPolicy: 'afterany' });
    await clock.advanceBy(1_000);
    expect(scheduler.get('c')?.state).toBe('completed');
  });

  it('rejects unknown dependencies and cycles at submit, accepting nothing', () => {
    const { scheduler } = make();
    scheduler.submit({ type: 'long', id: 'a' });
    expect(() => scheduler.submit({ type: 'succeed', id: 'b', dependsOn: ['a', 'ghost'] })).toThrow(
      expect.objectContaining({
        name: UnknownDependencyError.name,
        field: 'dependsOn',
        dependencyId: 'ghost',
      }),
    );
    expect(() => scheduler.submit({ type: 'succeed', id: 'self', dependsOn: ['self'] })).toThrow(
      DependencyCycleError,
    );
    expect(() =>
      scheduler.submitAll([
        { type: 'succeed', id: 'x', dependsOn: ['z'] },
        { type: 'succeed', id: 'y', dependsOn: ['x', 'a'] },
        { type: 'succeed', id: 'z', dependsOn: ['y'] },
      ]),
    ).toThrow(expect.objectContaining({ name: DependencyCycleError.name, field: 'dependsOn' }));
    expect(scheduler.list().map((j) => j.id)).toEqual(['a']);
    expect(scheduler.stats().queue.size).toBe(0);
    // The same batch without the back edge is accepted, dependencies in any order.
    const handles = scheduler.submitAll([
      { type: 'succeed', id: 'x', dependsOn: ['z'] },
      { type: 'succeed', id: 'y', dependsOn: ['a'] },
      { type: 'succeed', id: 'z', dependsOn: ['y'] },
    ]);
    expect(handles.map((h) => h.id)).toEqual(['x', 'y', 'z']);
    expect(
      scheduler
        .list({ state: 'pending' })
        .map((j) => j.id)
        .sort(),
    ).toEqual(['x', 'y', 'z']);
  });

  it('an unknown dependency says it may be a finished job retention let go, once one was', async () => {
    const { clock, scheduler } = make({ retainFinished: 1 });
    const never = () => scheduler.submit({ type: 'succeed', id: 'c', dependsOn: ['ghost'] });
    // Nothing let go yet: an unknown id was never submitted, and the error says no more.
    expect(never).toThrow(
      expect.objectContaining({
        name: UnknownDependencyError.name,
        dependencyId: 'ghost',
        retainFinished: undefined,
        message: 'job "c" depends on unknown job "ghost"',
      }),
    );
    scheduler.submit({ type: 'succeed', id: 'a' });
    scheduler.submit({ type: 'succeed', id: 'b' });
    await clock.advanceBy(1_000);
    expect(scheduler.get('a')).toBeUndefined();
    expect(scheduler.get('b')?.state).toBe('completed');
    const onDropped = () => scheduler.submit({ type: 'succeed', id: 'c', dependsOn: ['b', 'a'] });
    expect(onDropped).toThrow(
      expect.objectContaining({ name: UnknownDependencyError.name, dependencyId: 'a', retainFinished: 1 }),
    );
    expect(onDropped).toThrow(/finished and no longer kept.*newest 1 finished jobs, option retainFinished/);
    // Nothing was accepted, and the scheduler goes on: a job on the retained one runs.
    expect(scheduler.stats().jobs).toMatchObject({ pending: 0, queued: 0, running: 0 });
    const c = scheduler.submit({ type: 'succeed', id: 'c', dependsOn: ['b'] });
    await clock.advanceBy(1_000);
    await expect(c.result).resolves.toBe('ok');
  });

  it('submitAll on a failed dependency that retention drops mid-batch neither crashes nor loses a job', async () => {
    const { clock, scheduler } = make({ retainFinished: 1 });
    scheduler.submit({ type: 'failNow', id: 'a' });
    await clock.advanceBy(0);
    expect(scheduler.get('a')?.state).toBe('failed');
    const batch = [
      { type: 'succeed', id: 'x', dependsOn: ['a'] },
      { type: 'succeed', id: 'y', dependsOn: ['a'] },
    ] as const;
    let handles: unknown[] = [];
    expect(() => (handles = scheduler.submitAll(batch))).not.toThrow();
    expect(handles).toHaveLength(2);
    await clock.advanceBy(1_000);
    expect(scheduler.stats().queue.size).toBe(0);
    expect(scheduler.stats().jobs.pending).toBe(0);
  });
});
