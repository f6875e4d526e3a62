/**
 * Scenario tests of the scheduler runtime, items 1–3 of issue 4: the concurrency limit, the
 * order of starts (priorities, FIFO, aging, strict/backfill, the head reservation), real-time
 * boosts and starvation. Everything runs in virtual time.
 */
import { describe, expect, it } from 'vitest';
import { Subject } from 'rxjs';
import {
  InvalidJobError,
  createScheduler,
  createVirtualClock,
  delay,
  type BoostSignal,
  type HandlerContext,
  type PriorityName,
  type SchedulerEvent,
  type SchedulerOptions,
  type VirtualClock,
} from '../../src/index.js';

/** Waits `ms` of virtual time, rejecting when the signal aborts. */
function wait(clock: VirtualClock, signal: AbortSignal, ms: number): Promise<void> {
  return delay(clock, ms, signal);
}

type Payload = { ms?: number } | undefined;

/** A scheduler on a virtual clock whose `work` handler records starts and waits `payload.ms`. */
function make(options: Omit<SchedulerOptions, 'handlers' | 'clock'> = {}, startAt = 0) {
  const clock = createVirtualClock({ startAt });
  const started: string[] = [];
  let running = 0;
  let maxRunning = 0;
  const handlers = {
    work: async ({ id, payload, signal }: HandlerContext<Payload>) => {
      started.push(id);
      running++;
      maxRunning = Math.max(maxRunning, running);
      try {
        await wait(clock, signal, payload?.ms ?? 1_000);
        return id;
      } finally {
        running--;
      }
    },
  };
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: { id: 'n', cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }] },
    aging: { intervalMs: 1_000_000, maxLevels: 0 },
    handlers,
    ...options,
  });
  const events: SchedulerEvent[] = [];
  scheduler.events$.subscribe((e) => events.push(e));
  return { clock, scheduler, started, events, maxRunning: () => maxRunning };
}

describe('concurrency', () => {
  it('never runs more than maxConcurrentJobs at once, and uses every slot', async () => {
    const { clock, scheduler, events, maxRunning } = make({ maxConcurrentJobs: 3 });
    let maxHolding = 0;
    scheduler.events$.subscribe(() => {
      const { jobs } = scheduler.stats();
      maxHolding = Math.max(maxHolding, jobs.running + jobs.scheduled);
    });
    for (let i = 0; i < 10; i++)
      scheduler.submit({ type: 'work', id: `j${i}`, payload: { ms: 100 + 37 * i } });
    expect(scheduler.stats().jobs.running).toBe(3);
    expect(scheduler.stats().jobs.queued).toBe(7);
    await clock.advanceBy(5_000);
    expect(scheduler.stats().jobs.completed).toBe(10);
    expect(maxRunning()).toBe(3);
    expect(maxHolding).toBe(3);
    expect(events.filter((e) => e.type === 'job.started')).toHaveLength(10);
  });

  it('a job waiting only for a concurrency slot says concurrency, not resources', () => {
    const { scheduler } = make({ maxConcurrentJobs: 1 });
    for (const id of ['a', 'b', 'c']) scheduler.submit({ type: 'work', id });
    expect(scheduler.list({ state: 'queued' }).map((j) => [j.id, j.waitReason])).toEqual([
      ['b', 'concurrency'],
      ['c', 'concurrency'],
    ]);
  });
});

describe('order', () => {
  it('starts by priority, critical first, FIFO within a priority', async () => {
    const { clock, scheduler, started } = make({ maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'blocker', payload: { ms: 10 } });
    const order: Array<[string, PriorityName]> = [
      ['low-1', 'low'],
      ['critical-1', 'critical'],
      ['background-1', 'background'],
      ['normal-1', 'normal'],
      ['high-1', 'high'],
      ['low-2', 'low'],
      ['critical-2', 'critical'],
      ['normal-2', 'normal'],
      ['background-2', 'background'],
      ['high-2', 'high'],
    ];
    for (const [id, priority] of order) scheduler.submit({ type: 'work', id, priority, payload: { ms: 10 } });
    await clock.advanceBy(1_000);
    expect(started).toEqual([
      'blocker',
      'critical-1',
      'critical-2',
      'high-1',
      'high-2',
      'normal-1',
      'normal-2',
      'low-1',
      'low-2',
      'background-1',
      'background-2',
    ]);
  });

  it('ages a queued job one level per interval, up to maxLevels, and lets it pass younger peers', async () => {
    const { clock, scheduler, started } = make({
      maxConcurrentJobs: 1,
      aging: { intervalMs: 1_000, maxLevels: 2 },
    });
    scheduler.submit({ type: 'work', id: 'blocker', payload: { ms: 4_500 } });
    scheduler.submit({ type: 'work', id: 'bg', priority: 'background', payload: { ms: 10 } });
    const seen: PriorityName[] = [];
    for (let t = 0; t < 4; t++) {
      seen.push(scheduler.get('bg')?.effectivePriority as PriorityName);
      await clock.advanceBy(1_000);
    }
    expect(seen).toEqual(['background', 'low', 'normal', 'normal']);
    expect(scheduler.get('bg')?.priority).toBe('background');
    scheduler.submit({ type: 'work', id: 'normal', priority: 'normal', payload: { ms: 10 } });
    scheduler.submit({ type: 'work', id: 'high', priority: 'high', payload: { ms: 10 } });
    // At 4.5 s `high` starts; at 4.51 s `bg` (normal by aging, queued first) goes before `normal`.
    await clock.advanceBy(2_000);
    expect(started).toEqual(['blocker', 'high', 'bg', 'normal']);
  });

  // The queue keeps when a job entered it as an offset from its first enqueue (a small integer,
  // not a boxed Date.now()): aging and the head reservation must count the same on a clock that
  // reads like the wall clock, fractional milliseconds included.
  it.each([1_796_000_000_123, 1_796_000_000_123.75])(
    'aging and the head reservation count from the enqueue time on a clock at %d ms',
    async (startAt) => {
      const { clock, scheduler, started } = make(
        {
          maxConcurrentJobs: 2,
          queuePolicy: 'backfill',
          reserveAfterMs: 3_000,
          aging: { intervalMs: 1_000, maxLevels: 2 },
        },
        startAt,
      );
      scheduler.submit({ type: 'work', id: 'big', resources: { cpu: 3 }, payload: { ms: 8_000 } });
      await clock.advanceBy(500);
      scheduler.submit({
        type: 'work',
        id: 'head',
        priority: 'low',
        resources: { cpu: 2 },
        payload: { ms: 10 },
      });
      const seen: PriorityName[] = [];
      for (let t = 0; t < 4; t++) {
        seen.push(scheduler.get('head')?.effectivePriority as PriorityName);
        if (t === 1) {
          // The head has waited 1 s: a job that fits is backfilled past it.
          scheduler.submit({
            type: 'work',
            id: 'early',
            priority: 'background',
            resources: { cpu: 1 },
            payload: { ms: 10 },
          });
        }
        await clock.advanceBy(999);
        await clock.advanceBy(1);
      }
      expect(seen).toEqual(['low', 'normal', 'high', 'high']);
      expect(scheduler.get('early')?.startedAt).toBe(startAt + 1_500);
      // 4 s waited, past reserveAfterMs: nothing passes the head now.
      scheduler.submit({
        type: 'work',
        id: 'late',
        priority: 'background',
        resources: { cpu: 1 },
        payload: { ms: 10 },
      });
      await clock.advanceBy(1_000);
      expect(scheduler.get('late')?.state).toBe('queued');
      await clock.advanceBy(3_000); // big ends 8 s after the start
      expect(scheduler.get('head')).toMatchObject({ submittedAt: startAt + 500, startedAt: startAt + 8_000 });
      expect(scheduler.get('late')?.submittedAt).toBe(startAt + 4_500);
      expect(started).toEqual(['big', 'early', 'head', 'late']);
    },
  );

  it('a job that waited without an actor (nobody listening) keeps its submit time on such a clock', async () => {
    const startAt = 1_796_000_000_123.75;
    const clock = createVirtualClock({ startAt });
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { id: 'n', cpu: 1, memoryMb: 1_024 },
      handlers: { work: ({ signal }: HandlerContext<unknown>) => delay(clock, 1_000, signal) },
    });
    scheduler.submit({ type: 'work', id: 'first', resources: { cpu: 1 } });
    await clock.advanceBy(250);
    scheduler.submit({ type: 'work', id: 'waits', resources: { cpu: 1 } });
    await clock.advanceBy(2_000);
    expect(scheduler.get('waits')).toMatchObject({
      state: 'completed',
      submittedAt: startAt + 250,
      startedAt: startAt + 1_000,
    });
  });

  /** 4 CPUs: `big` holds 3; `head` (high) needs 2 and waits; `small` (low) needs 1 and fits. */
  async function headBlocked(queuePolicy: 'strict' | 'backfill', reserveAfterMs?: number) {
    const h = make({ queuePolicy, ...(reserveAfterMs === undefined ? {} : { reserveAfterMs }) });
    h.scheduler.submit({ type: 'work', id: 'big', resources: { cpu: 3 }, payload: { ms: 20_000 } });
    h.scheduler.submit({
      type: 'work',
      id: 'head',
      priority: 'high',
      resources: { cpu: 2 },
      payload: { ms: 10 },
    });
    return h;
  }

  it('strict: the head that does not fit blocks a lower job that would', async () => {
    const { clock, scheduler } = await headBlocked('strict');
    scheduler.submit({
      type: 'work',
      id: 'small',
      priority: 'low',
      resources: { cpu: 1 },
      payload: { ms: 10 },
    });
    await clock.advanceBy(10_000);
    expect(scheduler.get('head')?.state).toBe('queued');
    expect(scheduler.get('small')?.state).toBe('queued');
    expect(scheduler.get('head')?.waitReason).toBe('resources');
    await clock.advanceBy(10_000);
    expect(scheduler.get('head')?.startedAt).toBe(20_000);
    expect(scheduler.get('small')?.startedAt).toBe(20_000);
  });

  it('backfill: a lower job that fits starts while the head waits for resources', async () => {
    const { clock, scheduler, started } = await headBlocked('backfill');
    scheduler.submit({
      type: 'work',
      id: 'small',
      priority: 'low',
      resources: { cpu: 1 },
      payload: { ms: 10 },
    });
    expect(scheduler.get('small')?.state).toBe('running');
    expect(scheduler.get('head')?.state).toBe('queued');
    await clock.advanceBy(20_100);
    expect(started).toEqual(['big', 'small', 'head']);
    expect(scheduler.stats().resources.allocated.cpu).toBe(0);
  });

  it('backfill: once the head has waited reserveAfterMs, nothing is backfilled past it', async () => {
    const { clock, scheduler, started } = await headBlocked('backfill', 5_000);
    await clock.advanceBy(1_000);
    scheduler.submit({
      type: 'work',
      id: 'early',
      priority: 'low',
      resources: { cpu: 1 },
      payload: { ms: 10 },
    });
    expect(scheduler.get('early')?.startedAt).toBe(1_000);
    await clock.advanceBy(5_000); // the head has now waited 6 s
    scheduler.submit({
      type: 'work',
      id: 'late',
      priority: 'low',
      resources: { cpu: 1 },
      payload: { ms: 10 },
    });
    await clock.advanceBy(10_000);
    expect(scheduler.get('late')?.state).toBe('queued');
    expect(scheduler.stats().resources.allocated.cpu).toBe(3);
    await clock.advanceBy(4_000); // big ends at 20 s
    expect(started).toEqual(['big', 'early', 'head', 'late']);
    expect(scheduler.get('head')?.startedAt).toBe(20_000);
  });
});

describe('boosts', () => {
  /** One slot, held by `blocker` for 1 s; queued: x (normal), y1, y2 (low, group g). */
  function queuedBehindBlocker() {
    const h = make({ maxConcurrentJobs: 1 });
    h.scheduler.submit({ type: 'work', id: 'blocker', payload: { ms: 1_000 } });
    h.scheduler.submit({ type: 'work', id: 'x', payload: { ms: 10 } });
    h.scheduler.submit({ type: 'work', id: 'y1', priority: 'low', group: 'g', payload: { ms: 10 } });
    h.scheduler.submit({ type: 'work', id: 'y2', priority: 'low', group: 'g', payload: { ms: 10 } });
    return h;
  }

  it('boosts a group `to` a priority: its queued jobs overtake at once', async () => {
    const { clock, scheduler, started, events } = queuedBehindBlocker();
    const report = scheduler.boost({ group: 'g' }, { to: 'critical', forMs: 30_000 });
    expect(report).toEqual({ boosted: ['y1', 'y2'], ignored: [], until: 30_000 });
    expect(scheduler.get('y1')?.effectivePriority).toBe('critical');
    expect(scheduler.get('y1')?.priority).toBe('low');
    expect(scheduler.get('x')?.effectivePriority).toBe('normal');
    expect(events).toContainEqual({ type: 'job.boosted', at: 0, jobIds: ['y1', 'y2'], until: 30_000 });
    await clock.advanceBy(2_000);
    expect(started).toEqual(['blocker', 'y1', 'y2', 'x']);
  });

  it('boosts ids `by` levels, and the normal order returns when the boost expires', async () => {
    const { clock, scheduler, started, events } = queuedBehindBlocker();
    const report = scheduler.boost({ ids: ['y2'] }, { by: 2, forMs: 500 });
    expect(report.boosted).toEqual(['y2']);
    expect(scheduler.get('y2')?.effectivePriority).toBe('high');
    expect(scheduler.get('y1')?.effectivePriority).toBe('low');
    await clock.advanceBy(500);
    expect(events.filter((e) => e.type === 'boost.expired')).toEqual([
      { type: 'boost.expired', at: 500, jobIds: ['y2'] },
    ]);
    expect(scheduler.get('y2')?.effectivePriority).toBe('low');
    await clock.advanceBy(1_500);
    expect(started).toEqual(['blocker', 'x', 'y1', 'y2']);
  });

  it('a boost lets a queued job start at once when it was only outranked', async () => {
    const h = make({ queuePolicy: 'strict' });
    h.scheduler.submit({ type: 'work', id: 'big', resources: { cpu: 3 }, payload: { ms: 10_000 } });
    h.scheduler.submit({ type: 'work', id: 'head', priority: 'high', resources: { cpu: 2 } });
    h.scheduler.submit({ type: 'work', id: 'small', priority: 'low', resources: { cpu: 1 } });
    await h.clock.advanceBy(100);
    expect(h.scheduler.get('small')?.state).toBe('queued');
    h.scheduler.boost({ ids: ['small'] }, { to: 'critical', forMs: 1_000 });
    expect(h.scheduler.get('small')?.state).toBe('running');
    expect(h.scheduler.get('small')?.startedAt).toBe(100);
  });

  it('ignores boosts on running and finished jobs, and says so in the report and an event', async () => {
    const { clock, scheduler, events } = make({ maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'done', group: 'g', payload: { ms: 10 } });
    await clock.advanceBy(10);
    scheduler.submit({ type: 'work', id: 'run', group: 'g', priority: 'low', payload: { ms: 1_000 } });
    scheduler.submit({ type: 'work', id: 'wait', group: 'g', priority: 'low', payload: { ms: 10 } });
    events.length = 0;
    const report = scheduler.boost({ group: 'g' }, { to: 'high', forMs: 1_000 });
    expect(report.boosted).toEqual(['wait']);
    expect(report.ignored).toEqual([
      { id: 'done', state: 'completed' },
      { id: 'run', state: 'running' },
    ]);
    expect(events).toContainEqual({
      type: 'boost.ignored',
      at: 10,
      jobs: [
        { id: 'done', state: 'completed' },
        { id: 'run', state: 'running' },
      ],
    });
    expect(scheduler.get('run')?.effectivePriority).toBe('low');
    const onlyIgnored = scheduler.boost({ ids: ['done'] }, { by: 1, forMs: 1_000 });
    expect(onlyIgnored.boosted).toEqual([]);
    expect(events.filter((e) => e.type === 'job.boosted')).toHaveLength(1);
  });

  it('a boost on a pending job takes effect when it queues', async () => {
    const { clock, scheduler, started } = make();
    scheduler.submit({ type: 'work', id: 'blocker', resources: { cpu: 4 }, payload: { ms: 1_000 } });
    scheduler.submit({ type: 'work', id: 'dep', payload: { ms: 100 } });
    scheduler.submit({ type: 'work', id: 'x', resources: { cpu: 1 }, payload: { ms: 10 } });
    const late = {
      type: 'work',
      id: 'late',
      priority: 'low',
      resources: { cpu: 1 },
      dependsOn: ['dep'],
    } as const;
    scheduler.submit({ ...late, payload: { ms: 10 } });
    expect(scheduler.get('late')?.state).toBe('pending');
    expect(scheduler.boost({ ids: ['late'] }, { to: 'critical', forMs: 10_000 }).boosted).toEqual(['late']);
    await clock.advanceBy(100);
    expect(scheduler.get('late')?.state).toBe('queued');
    expect(scheduler.get('late')?.effectivePriority).toBe('critical');
    await clock.advanceBy(2_000);
    expect(started).toEqual(['blocker', 'dep', 'late', 'x']);
  });

  it('rejects a bad boost spec naming the field, and changes nothing', () => {
    const { scheduler, events } = queuedBehindBlocker();
    const bad: Array<[unknown, string]> = [
      [{ to: 'urgent', forMs: 1 }, 'boost.to'],
      [{ by: 1.5, forMs: 1 }, 'boost.by'],
      [{ to: 'high', forMs: 0 }, 'boost.forMs'],
      [{ to: 'high', forMs: Number.NaN }, 'boost.forMs'],
      [{ to: 'high', by: 1, forMs: 1 }, 'boost'],
    ];
    events.length = 0;
    for (const [spec, field] of bad) {
      expect(() => scheduler.boost({ group: 'g' }, spec as never)).toThrow(
        expect.objectContaining({ name: InvalidJobError.name, field }),
      );
    }
    expect(scheduler.get('y1')?.effectivePriority).toBe('low');
    expect(events).toEqual([]);
  });

  it('connectBoosts applies each signal of an RxJS stream, reports bad ones, and stops on unsubscribe', async () => {
    const { clock, scheduler, started, events } = queuedBehindBlocker();
    const boost$ = new Subject<BoostSignal>();
    const subscription = scheduler.connectBoosts(boost$);
    boost$.next({ target: { group: 'g' }, to: 'high', forMs: 5_000 });
    expect(scheduler.get('y2')?.effectivePriority).toBe('high');
    boost$.next({ target: { ids: ['x'] }, to: 'urgent' as PriorityName, forMs: 5_000 });
    expect(events.filter((e) => e.type === 'boost.invalid')).toHaveLength(1);
    expect(scheduler.get('x')?.effectivePriority).toBe('normal');
    subscription.unsubscribe();
    boost$.next({ target: { ids: ['x'] }, to: 'critical', forMs: 5_000 });
    expect(scheduler.get('x')?.effectivePriority).toBe('normal');
    await clock.advanceBy(2_000);
    expect(started).toEqual(['blocker', 'y1', 'y2', 'x']);
  });
});

describe('starvation', () => {
  /**
   * One slot; a high job of 500 ms arrives every 250 ms (twice what the slot can serve), and a
   * background job is submitted at 0. Aging of one level per second, up to 4 levels.
   */
  async function stream(maxLevels: number) {
    const h = make({
      maxConcurrentJobs: 1,
      maxQueueSize: 1_000,
      aging: { intervalMs: 1_000, maxLevels },
    });
    h.scheduler.submit({ type: 'work', id: 'h-0', priority: 'high', payload: { ms: 500 } });
    h.scheduler.submit({ type: 'work', id: 'bg', priority: 'background', payload: { ms: 10 } });
    let queuedHighAtBgStart = -1;
    h.scheduler.events$.subscribe((e) => {
      if (e.type === 'job.started' && e.job.id === 'bg')
        queuedHighAtBgStart = h.scheduler.stats().jobs.queued;
    });
    for (let i = 1; i <= 40; i++) {
      await h.clock.advanceBy(250);
      h.scheduler.submit({ type: 'work', id: `h-${i}`, priority: 'high', payload: { ms: 500 } });
    }
    return { ...h, queuedHighAtBgStart: () => queuedHighAtBgStart };
  }

  it('a background job starts within its aging bound under a steady stream of high work', async () => {
    const { scheduler, queuedHighAtBgStart } = await stream(4);
    const bg = scheduler.get('bg');
    expect(bg?.startedAt).toBeDefined();
    // Critical after 4 intervals, then at most one running job (500 ms) to wait out.
    expect(bg?.startedAt).toBeLessThanOrEqual(4 * 1_000 + 500);
    expect(queuedHighAtBgStart()).toBeGreaterThan(0);
  });

  it('without aging the same stream starves it (the scenario is a real one)', async () => {
    const { scheduler } = await stream(0);
    expect(scheduler.get('bg')?.state).toBe('queued');
    expect(scheduler.stats().jobs.queued).toBeGreaterThan(10);
  });
});
