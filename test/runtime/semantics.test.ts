/**
 * Defaults and semantics users expect (issue 15 §4): a backoff does what it says (jitter only
 * when asked), `maxQueueSize` bounds the jobs that wait, a way to wait for room, and unknown
 * fields that suggest the field meant. All in virtual time.
 */
import { describe, expect, it } from 'vitest';
import {
  InvalidJobError,
  InvalidOptionError,
  InvalidPoolError,
  QueueFullError,
  SchedulerClosedError,
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type SchedulerEvent,
  type SchedulerOptions,
} from '../../src/index.js';

const POOL = { id: 'n1', cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_000 }] };

function make(options: Omit<SchedulerOptions, 'handlers' | 'clock'> = {}) {
  const clock = createVirtualClock();
  const handlers = {
    work: async ({ payload, signal }: HandlerContext<{ ms?: number } | undefined>) => {
      await delay(clock, payload?.ms ?? 1_000, signal);
      return 'done';
    },
    /** Fails its first `fails` attempts (default: every one) after `ms`. */
    flaky: async ({
      payload,
      attempt,
      signal,
    }: HandlerContext<{ ms?: number; fails?: number } | undefined>) => {
      await delay(clock, payload?.ms ?? 0, signal);
      if (attempt <= (payload?.fails ?? Number.POSITIVE_INFINITY))
        throw new Error(`attempt ${attempt} failed`);
      return 'done';
    },
  };
  const scheduler = createScheduler({ clock, monitor: false, resources: POOL, handlers, ...options });
  const events: SchedulerEvent[] = [];
  scheduler.events$.subscribe((e) => events.push(e));
  return { clock, scheduler, events };
}

/** For each job: when each attempt started, and the delays its retries announced. */
function attemptsOf(events: readonly SchedulerEvent[]) {
  const starts = new Map<string, number[]>();
  const delays = new Map<string, number[]>();
  for (const e of events) {
    if (e.type === 'job.started') starts.set(e.job.id, [...(starts.get(e.job.id) ?? []), e.at]);
    if (e.type === 'job.retrying') delays.set(e.job.id, [...(delays.get(e.job.id) ?? []), e.delayMs]);
  }
  return { starts, delays };
}

describe('a backoff does what it says: jitter only when asked', () => {
  // A random source that would make any jitter visible (the delay would be below 100 ms).
  const random = () => 0;

  it("a job's fixed 100 ms backoff retries at exactly +100 ms", async () => {
    const { clock, scheduler, events } = make({ random });
    const ids = ['a', 'b', 'c', 'd'];
    for (const id of ids)
      scheduler.submit({
        type: 'flaky',
        id,
        payload: { fails: 2 },
        retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 100 } },
      });
    await clock.advanceBy(1_000);
    const { starts, delays } = attemptsOf(events);
    for (const id of ids) {
      expect(delays.get(id)).toEqual([100, 100]);
      expect(starts.get(id)).toEqual([0, 100, 200]);
      expect(scheduler.get(id)?.state).toBe('completed');
    }
  });

  it("a scheduler's fixed backoff (retry option) has no jitter unless it says jitter: true", async () => {
    const plain = make({ random, retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 100 } } });
    plain.scheduler.submit({ type: 'flaky', id: 'a', payload: { fails: 2 } });
    await plain.clock.advanceBy(1_000);
    expect(attemptsOf(plain.events).starts.get('a')).toEqual([0, 100, 200]);

    // Asked for: equal jitter, a delay in [50, 100] (random 0 → the low end of its draw).
    const jittered = make({
      random,
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 100, jitter: true } },
    });
    jittered.scheduler.submit({ type: 'flaky', id: 'a', payload: { fails: 2 } });
    await jittered.clock.advanceBy(1_000);
    const delays = attemptsOf(jittered.events).delays.get('a') ?? [];
    expect(delays).toHaveLength(2);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(50);
      expect(d).toBeLessThanOrEqual(100);
    }
    expect(delays.some((d) => d < 100)).toBe(true);
  });

  it('a job that gives a backoff without jitter has none, even where the scheduler asked for it', async () => {
    const { clock, scheduler, events } = make({
      random,
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 1_000, jitter: true } },
    });
    scheduler.submit({ type: 'flaky', id: 'a', payload: { fails: 1 }, retry: { backoff: { delayMs: 100 } } });
    await clock.advanceBy(1_000);
    expect(attemptsOf(events).starts.get('a')).toEqual([0, 100]);
  });

  it('with no backoff given anywhere, the default (exponential from 1 s) has equal jitter', async () => {
    const { clock, scheduler, events } = make({ random });
    scheduler.submit({ type: 'flaky', id: 'a', payload: { fails: 1 } });
    await clock.advanceBy(2_000);
    const [d] = attemptsOf(events).delays.get('a') ?? [];
    expect(d).toBeGreaterThanOrEqual(500);
    expect(d).toBeLessThan(1_000);
  });
});

describe('an unknown field names the nearest known one', () => {
  const { scheduler } = make();
  const cases: Array<[string, () => unknown, string, string]> = [
    [
      'gpus → gpu',
      () => scheduler.submit({ type: 'work', resources: { gpus: 1 } } as never),
      'resources.gpus',
      'resources.gpus is not a known field; did you mean gpu? (known: cpu, memoryMb, gpu, vramMb, custom)',
    ],
    [
      'timeout → timeoutMs',
      () => scheduler.submit({ type: 'work', timeout: 5 } as never),
      'timeout',
      'timeout is not a known field; did you mean timeoutMs?',
    ],
    [
      'retries → retry',
      () => scheduler.submit({ type: 'work', retries: 2 } as never),
      'retries',
      'retries is not a known field; did you mean retry?',
    ],
    [
      'prority → priority',
      () => scheduler.submit({ type: 'work', prority: 'high' } as never),
      'prority',
      'prority is not a known field; did you mean priority?',
    ],
    [
      'a swapped pair (dealyMs → delayMs)',
      () => scheduler.submit({ type: 'work', retry: { backoff: { dealyMs: 5 } } } as never),
      'retry.backoff.dealyMs',
      'retry.backoff.dealyMs is not a known field; did you mean delayMs?',
    ],
  ];

  it.each(cases)('%s', (_, bad, field, message) => {
    let thrown: unknown;
    try {
      bad();
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidJobError);
    expect((thrown as InvalidJobError).field).toBe(field);
    expect((thrown as Error).message.startsWith(message)).toBe(true);
    expect(scheduler.list()).toEqual([]);
  });

  it('suggests nothing when no field is close', () => {
    expect(() => scheduler.submit({ type: 'work', banana: 1 } as never)).toThrow(
      /^banana is not a known field \(known: type, payload, id, priority, resources, timeoutMs, /,
    );
    expect(() => scheduler.submit({ type: 'work', resources: { x: 1 } } as never)).toThrow(
      /^resources\.x is not a known field \(known: /,
    );
  });

  it('a batch names the job and keeps the suggestion', () => {
    let thrown: unknown;
    try {
      scheduler.submitAll([{ type: 'work' }, { type: 'work', resources: { gpus: 1 } } as never]);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidJobError);
    expect(thrown).toMatchObject({
      field: 'jobs[1].resources.gpus',
      unknownField: { suggestion: 'gpu', known: ['cpu', 'memoryMb', 'gpu', 'vramMb', 'custom'] },
    });
    expect((thrown as Error).message).toMatch(
      /^jobs\[1\]\.resources\.gpus is not a known field; did you mean gpu\?/,
    );
    expect(scheduler.list()).toEqual([]);
  });

  it('options and pools say it the same way', () => {
    expect(() => make({ maxQueue: 5 } as never)).toThrow(InvalidOptionError);
    expect(() => make({ maxQueue: 5 } as never)).toThrow(
      /^option maxQueue is not a known field; did you mean maxQueueSize\? \(known: handlers, /,
    );
    expect(() => make({ resources: { ...POOL, gpu: 1 } } as never)).toThrow(InvalidPoolError);
    expect(() => make({ resources: { ...POOL, gpu: 1 } } as never)).toThrow(
      /^pool nodes\[0\]\.gpu is not a known field; did you mean gpus\? \(known: /,
    );
    expect(() => make().scheduler.shutdown({ mdoe: 'cancel' } as never)).toThrow(
      /^option mdoe is not a known field; did you mean mode\? \(known: /,
    );
  });
});

describe('maxQueueSize bounds the jobs that wait (pending + queued + retrying), not those running', () => {
  it('with maxQueueSize 2 and 2 jobs running that may retry, 2 more can be submitted', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 2, maxConcurrentJobs: 2, retry: { attempts: 3 } });
    scheduler.submit({ type: 'work', id: 'r1' });
    scheduler.submit({ type: 'work', id: 'r2' });
    await clock.advanceBy(0);
    expect(scheduler.list({ state: 'running' }).map((j) => [j.id, j.attempt < j.maxAttempts])).toEqual([
      ['r1', true],
      ['r2', true],
    ]);
    scheduler.submit({ type: 'work', id: 'w1' });
    scheduler.submit({ type: 'work', id: 'w2' });
    expect(scheduler.stats().queue).toEqual({ size: 2, max: 2 });
    expect(() => scheduler.submit({ type: 'work', id: 'w3' })).toThrow(QueueFullError);
    await clock.advanceBy(2_000);
    expect(scheduler.list().map((j) => [j.id, j.state])).toEqual([
      ['r1', 'completed'],
      ['r2', 'completed'],
      ['w1', 'completed'],
      ['w2', 'completed'],
    ]);
  });

  it('a running job that fails while the queue is full still retries (one over the limit for a while), and nothing is lost', async () => {
    const { clock, scheduler, events } = make({ maxQueueSize: 2, maxConcurrentJobs: 2 });
    let most = 0;
    scheduler.events$.subscribe(() => (most = Math.max(most, scheduler.stats().queue.size)));
    // g holds the only GPU for 1 s; f fails once at 100 ms; w1 and w2 wait for the GPU.
    scheduler.submit({ type: 'work', id: 'g', resources: { gpu: 1 } });
    scheduler.submit({
      type: 'flaky',
      id: 'f',
      payload: { ms: 100, fails: 1 },
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 100 } },
    });
    scheduler.submit({ type: 'work', id: 'w1', resources: { gpu: 1 } });
    scheduler.submit({ type: 'work', id: 'w2', resources: { gpu: 1 } });
    expect(scheduler.stats().queue.size).toBe(2);
    await clock.advanceBy(100);
    expect(scheduler.get('f')?.state).toBe('retrying');
    expect(scheduler.stats().queue).toEqual({ size: 3, max: 2 });
    expect(() => scheduler.submit({ type: 'work', id: 'x' })).toThrow(QueueFullError);
    await clock.advanceBy(100);
    expect(scheduler.get('f')).toMatchObject({ state: 'running', attempt: 2 });
    expect(scheduler.stats().queue.size).toBe(2);
    await clock.advanceBy(5_000);
    expect(scheduler.list().map((j) => [j.id, j.state])).toEqual([
      ['g', 'completed'],
      ['f', 'completed'],
      ['w1', 'completed'],
      ['w2', 'completed'],
    ]);
    expect(scheduler.get('x')).toBeUndefined();
    expect(most).toBe(3);
    expect(events.filter((e) => e.type === 'job.retrying').map((e) => 'job' in e && e.job.id)).toEqual(['f']);
  });
});

describe('back-pressure: submitWhenRoom and onRoom wait for a place', () => {
  it('1,000 submits through submitWhenRoom with maxQueueSize 10 all complete, in order, never more than 10 waiting', async () => {
    const { clock, scheduler, events } = make({ maxQueueSize: 10, maxConcurrentJobs: 4 });
    let most = 0;
    scheduler.events$.subscribe(() => (most = Math.max(most, scheduler.stats().queue.size)));
    const ids = Array.from({ length: 1_000 }, (_, i) => `j${i}`);
    // A producer loop that awaits each submit: no QueueFullError to catch.
    const producer = (async () => {
      for (const id of ids) {
        await scheduler.submitWhenRoom({ type: 'work', id, payload: { ms: 10 } });
        most = Math.max(most, scheduler.stats().queue.size);
      }
    })();
    for (let t = 0; t < 100 && scheduler.list().length < ids.length; t++) await clock.advanceBy(100);
    await producer;
    await clock.advanceBy(1_000);
    expect(most).toBe(10);
    const submitted = events.filter((e) => e.type === 'job.submitted').map((e) => 'job' in e && e.job.id);
    expect(submitted).toEqual(ids);
    const started = events.filter((e) => e.type === 'job.started').map((e) => 'job' in e && e.job.id);
    expect(started).toEqual(ids);
    expect(scheduler.stats().jobs.completed).toBe(1_000);
  });

  it('callers that do not await are served first come, first served, each as soon as a place frees', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 2, maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'run' });
    scheduler.submit({ type: 'work', id: 'q1' });
    scheduler.submit({ type: 'work', id: 'q2' });
    expect(scheduler.stats().queue.size).toBe(2);
    const order: string[] = [];
    const waits = ['a', 'b', 'c', 'd'].map((id) =>
      scheduler.submitWhenRoom({ type: 'work', id }).then((h) => order.push(h.id)),
    );
    await clock.advanceBy(0);
    expect(order).toEqual([]);
    // The first place that comes free (q1 starts at 1 s) goes to a, at once.
    await clock.advanceBy(1_000);
    expect(order).toEqual(['a']);
    expect(() => scheduler.submit({ type: 'work', id: 'jumper' })).toThrow(QueueFullError);
    await clock.advanceBy(3_000);
    await Promise.all(waits);
    expect(order).toEqual(['a', 'b', 'c', 'd']);
    await clock.advanceBy(10_000);
    expect(scheduler.list().map((j) => j.id)).toEqual(['run', 'q1', 'q2', 'a', 'b', 'c', 'd']);
    expect(scheduler.list().every((j) => j.state === 'completed')).toBe(true);
  });

  it('a bad spec is refused at once, without waiting, with the typed error of submit', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 1, maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'run' });
    scheduler.submit({ type: 'work', id: 'q' });
    const bad = [
      scheduler.submitWhenRoom({ type: 'work', resources: { gpus: 1 } } as never),
      scheduler.submitWhenRoom({ type: 'nope' } as never),
      scheduler.submitWhenRoom({ type: 'work', id: 'q' }),
      scheduler.submitWhenRoom({ type: 'work', dependsOn: ['ghost'] }),
      scheduler.submitWhenRoom({ type: 'work', resources: { gpu: 2 } }),
      scheduler.submitWhenRoom({ type: 'work' }, { signal: 'no' } as never),
    ];
    const settled = await Promise.allSettled(bad);
    expect(settled.map((s) => s.status === 'rejected' && (s.reason as Error).name)).toEqual([
      'InvalidJobError',
      'InvalidJobError',
      'DuplicateJobError',
      'UnknownDependencyError',
      'UnschedulableError',
      'InvalidJobError',
    ]);
    // Refused without waiting: no time passed, nothing changed, and no generated id was used.
    expect(clock.now()).toBe(0);
    expect(scheduler.list().map((j) => j.id)).toEqual(['run', 'q']);
    await clock.advanceBy(5_000);
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-1');
  });

  it('shutdown rejects every waiter with SchedulerClosedError, and none of their jobs is submitted', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 1, maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'run' });
    scheduler.submit({ type: 'work', id: 'q' });
    const waits = [
      scheduler.submitWhenRoom({ type: 'work', id: 'a' }),
      scheduler.onRoom(),
      scheduler.submitWhenRoom({ type: 'work', id: 'b' }),
    ];
    const settled = Promise.allSettled(waits);
    const done = scheduler.shutdown({ mode: 'cancel' });
    await clock.advanceBy(1_000);
    expect((await settled).map((s) => s.status === 'rejected' && (s.reason as Error).name)).toEqual([
      'SchedulerClosedError',
      'SchedulerClosedError',
      'SchedulerClosedError',
    ]);
    await done;
    expect(scheduler.list().map((j) => j.id)).toEqual(['run', 'q']);
    await expect(scheduler.submitWhenRoom({ type: 'work' })).rejects.toThrow(SchedulerClosedError);
    await expect(scheduler.onRoom()).rejects.toThrow(SchedulerClosedError);
  });

  it('a signal stops a wait: it rejects with the reason and lets those behind it go first', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 1, maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'run' });
    scheduler.submit({ type: 'work', id: 'q' });
    const stop = new AbortController();
    const a = scheduler.submitWhenRoom({ type: 'work', id: 'a' }, { signal: stop.signal });
    const b = scheduler.submitWhenRoom({ type: 'work', id: 'b' });
    stop.abort(new Error('no longer needed'));
    await expect(a).rejects.toThrow('no longer needed');
    await clock.advanceBy(1_000);
    expect((await b).id).toBe('b');
    await clock.advanceBy(5_000);
    expect(scheduler.list().map((j) => j.id)).toEqual(['run', 'q', 'b']);
    await expect(
      scheduler.submitWhenRoom({ type: 'work' }, { signal: AbortSignal.abort(new Error('already')) }),
    ).rejects.toThrow('already');
  });

  it('onRoom(n) resolves once n places are free; a bad n is refused naming it', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 3, maxConcurrentJobs: 1 });
    await expect(scheduler.onRoom(3)).resolves.toBeUndefined();
    for (const id of ['run', 'q1', 'q2', 'q3']) scheduler.submit({ type: 'work', id });
    let freed = -1;
    const two = scheduler.onRoom(2).then(() => (freed = 3 - scheduler.stats().queue.size));
    await clock.advanceBy(1_000); // q1 starts: one place
    expect(freed).toBe(-1);
    await clock.advanceBy(1_000); // q2 starts: two
    await two;
    expect(freed).toBe(2);
    expect(clock.now()).toBe(2_000);
    for (const bad of [0, 4, 1.5, Number.NaN, '1']) {
      await expect(scheduler.onRoom(bad as number)).rejects.toMatchObject({
        name: 'InvalidJobError',
        field: 'places',
      });
    }
  });
});

describe('back-pressure: waiters that give up', () => {
  it('are not all kept while the head of the line is blocked (the line stays bounded)', async () => {
    const { clock, scheduler } = make({ maxQueueSize: 1, maxConcurrentJobs: 1 });
    scheduler.submit({ type: 'work', id: 'running', payload: { ms: 60_000 } });
    scheduler.submit({ type: 'work', id: 'waiting', payload: { ms: 1 } });
    // The head waits for a place that will not come soon; 10 rounds of 1,000 callers give up.
    const head = scheduler.submitWhenRoom({ type: 'work', id: 'head', payload: { ms: 1 } });
    for (let round = 0; round < 10; round++) {
      const controller = new AbortController();
      const gave = Array.from({ length: 1_000 }, (_, i) =>
        scheduler
          .submitWhenRoom(
            { type: 'work', id: `r${round}-${i}`, payload: { ms: 1 } },
            { signal: controller.signal },
          )
          .catch((error: unknown) => error),
      );
      controller.abort(new Error('gave up'));
      expect((await Promise.all(gave)).every((e) => e instanceof Error && e.message === 'gave up')).toBe(
        true,
      );
    }
    const room = (scheduler as unknown as { room: { lineLength: number; waiting: number } }).room;
    expect(room.waiting).toBe(1);
    expect(room.lineLength).toBeLessThanOrEqual(1 + 1_025);
    await clock.advanceBy(61_000);
    await expect(head).resolves.toMatchObject({ id: 'head' });
    expect(scheduler.list({ state: 'queued' }).filter((j) => j.id.startsWith('r'))).toEqual([]);
  });
});
