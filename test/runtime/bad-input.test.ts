/**
 * Bad input from plain-JS callers (or a misspelt field) gets a typed error naming the field and
 * what is allowed, and changes nothing: the scheduler keeps its jobs and resources, and serves.
 * Each case here was a silent acceptance, an untyped TypeError or a wrong behaviour once (a
 * misspelt `gpus` ran a GPU job with no GPU; `monitor: 'no'` switched monitoring on).
 */
import { describe, expect, it } from 'vitest';
import { Subject } from 'rxjs';
import {
  createScheduler,
  createVirtualClock,
  delay,
  simulate,
  type BoostSignal,
  type HandlerContext,
  type SchedulerOptions,
} from '../../src/index.js';

/** `[first, <hole>, last]`: what a plain-JS caller's sparse array looks like. */
function withHole<T>(first: T, last: T): T[] {
  const out: T[] = [first];
  out[2] = last;
  return out;
}

const POOL = { cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_000 }] };
type Work = { work: (ctx: HandlerContext<unknown>) => Promise<string> };

function make() {
  const clock = createVirtualClock();
  const scheduler = createScheduler<Work>({
    clock,
    monitor: false,
    resources: POOL,
    maxConcurrentJobs: 1,
    handlers: { work: async ({ signal }) => (await delay(clock, 100, signal), 'ok') },
  });
  // One running, one queued: what a refused call must leave as it was.
  scheduler.submit({ type: 'work', id: 'running', resources: { gpu: 1 } });
  scheduler.submit({ type: 'work', id: 'queued', resources: { gpu: 1 } });
  const state = () => JSON.stringify([scheduler.stats(), scheduler.list()]);
  return { clock, scheduler, state };
}

/** Runs `bad`, which must throw `name` naming `field`, and checks that nothing changed. */
function refuses(bad: (s: ReturnType<typeof make>['scheduler']) => unknown, name: string, field: string) {
  const { scheduler, clock, state } = make();
  const before = state();
  let thrown: unknown;
  try {
    bad(scheduler);
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toMatchObject({ name, ...(field ? { field } : {}) });
  if (field) expect((thrown as Error).message).toContain(field);
  expect(state()).toBe(before);
  return { scheduler, clock };
}

describe('createScheduler refuses bad options with a typed error naming the field', () => {
  const handlers = { work: async () => 'ok' };
  const base = { clock: createVirtualClock(), monitor: false, resources: POOL, handlers };
  it.each<[string, Record<string, unknown>, string, string]>([
    ['a misspelt option', { maxConcurrent: 2 }, 'InvalidOptionError', 'maxConcurrent'],
    ['a misspelt retry field', { retry: { attempt: 5 } }, 'InvalidOptionError', 'retry.attempt'],
    [
      'a misspelt backoff field',
      { retry: { backoff: { delay: 5 } } },
      'InvalidOptionError',
      'retry.backoff.delay',
    ],
    ['a misspelt aging field', { aging: { interval: 5 } }, 'InvalidOptionError', 'aging.interval'],
    ['aging not an object', { aging: 5 }, 'InvalidOptionError', 'aging'],
    ['headroom not an object', { headroom: [] }, 'InvalidOptionError', 'headroom'],
    ['a misspelt headroom field', { headroom: { memory: 1 } }, 'InvalidOptionError', 'headroom.memory'],
    ['a clock that is not one', { clock: {} }, 'InvalidOptionError', 'clock'],
    ['inspect not a function or observer', { inspect: 5 }, 'InvalidOptionError', 'inspect'],
    ['monitor not a boolean', { monitor: 'no' }, 'InvalidOptionError', 'monitor'],
    ['measure not a function', { measure: 5 }, 'InvalidOptionError', 'measure'],
    ['handlers as an array', { handlers: [] }, 'InvalidOptionError', 'handlers'],
    ['detect not an object', { detect: 'x' }, 'InvalidOptionError', 'detect'],
    ['detect.si not a module', { detect: { si: 5 } }, 'InvalidOptionError', 'detect.si'],
    ['detect.timeoutMs negative', { detect: { timeoutMs: -1 } }, 'InvalidOptionError', 'detect.timeoutMs'],
    [
      'detect: false beside a pool',
      { resources: { detect: false, ...POOL } },
      'InvalidOptionError',
      'resources.detect',
    ],
    [
      'a detected pool with a bad override',
      { resources: { detect: true, override: { cpu: -5 } } },
      'InvalidOptionError',
      'resources.override.cpu',
    ],
    [
      'a pool whose gpus is a string',
      { resources: { ...POOL, gpus: 'abc' } },
      'InvalidPoolError',
      'nodes[0].gpus',
    ],
    [
      'a pool with a null GPU',
      { resources: { ...POOL, gpus: [null] } },
      'InvalidPoolError',
      'nodes[0].gpus[0]',
    ],
    ['a pool with a null node', { resources: { nodes: [null] } }, 'InvalidPoolError', 'nodes[0]'],
    [
      'a misspelt pool field (gpu)',
      { resources: { cpu: 8, memoryMb: 1, gpu: 2 } },
      'InvalidPoolError',
      'nodes[0].gpu',
    ],
    ['custom not an object', { resources: { ...POOL, custom: 5 } }, 'InvalidPoolError', 'nodes[0].custom'],
  ])('%s', (_, options, name, field) => {
    let thrown: unknown;
    try {
      createScheduler({ ...base, ...options } as SchedulerOptions);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ name, field });
    expect((thrown as Error).message).toContain(field);
  });
});

describe('the scheduler refuses bad calls and changes nothing', () => {
  it.each<[string, (s: ReturnType<typeof make>['scheduler']) => unknown, string, string]>([
    [
      'a misspelt resource (gpus)',
      (s) => s.submit({ type: 'work', resources: { gpus: 1 } as never }),
      'InvalidJobError',
      'resources.gpus',
    ],
    [
      'a misspelt resource (vram)',
      (s) => s.submit({ type: 'work', resources: { gpu: 1, vram: 8 } as never }),
      'InvalidJobError',
      'resources.vram',
    ],
    [
      'a misspelt job field (timeout)',
      (s) => s.submit({ type: 'work', timeout: 5 } as never),
      'InvalidJobError',
      'timeout',
    ],
    [
      'a misspelt retry field',
      (s) => s.submit({ type: 'work', retry: { attempt: 2 } } as never),
      'InvalidJobError',
      'retry.attempt',
    ],
    [
      'a hole in a batch',
      (s) => s.submitAll(withHole({ type: 'work' as const }, { type: 'work' as const })),
      'InvalidJobError',
      'jobs[1].job',
    ],
    [
      'a bad job of a batch, by index',
      (s) => s.submitAll([{ type: 'work' }, { type: 'work', resources: { gpu: -1 } }]),
      'InvalidJobError',
      'jobs[1].resources.gpu',
    ],
    ['list(null)', (s) => s.list(null as never), 'InvalidJobError', 'filter'],
    [
      'list of an unknown state',
      (s) => s.list({ state: 'bogus' as never }),
      'InvalidJobError',
      'filter.state',
    ],
    [
      'list by a misspelt field',
      (s) => s.list({ status: 'queued' } as never),
      'InvalidJobError',
      'filter.status',
    ],
    ['shutdown(null)', (s) => s.shutdown(null as never), 'InvalidOptionError', 'options'],
    ["shutdown('cancel')", (s) => s.shutdown('cancel' as never), 'InvalidOptionError', 'options'],
    [
      'shutdown with a misspelt field',
      (s) => s.shutdown({ timeout: 5 } as never),
      'InvalidOptionError',
      'timeout',
    ],
    ['connectBoosts(null)', (s) => s.connectBoosts(null as never), 'InvalidJobError', 'boost$'],
  ])('%s', async (_, bad, name, field) => {
    const { scheduler, clock } = refuses(bad, name, field);
    // And it goes on serving: both jobs, and a new one.
    const more = scheduler.submit({ type: 'work' });
    await clock.advanceBy(1_000);
    expect(scheduler.stats().jobs.completed).toBe(3);
    await expect(more.result).resolves.toBe('ok');
  });

  it('a refused submit does not use up a generated id', () => {
    const { scheduler } = make();
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-1');
    expect(() => scheduler.submit({ type: 'work', priority: 'urgent' as never })).toThrow();
    expect(() => scheduler.submit({ type: 'work', dependsOn: ['ghost'] })).toThrow();
    expect(() => scheduler.submitAll([{ type: 'work' }, { type: 'work', resources: { gpu: 5 } }])).toThrow();
    expect(scheduler.submit({ type: 'work' }).id).toBe('job-2');
    expect(scheduler.submitAll([{ type: 'work' }, { type: 'work' }]).map((h) => h.id)).toEqual([
      'job-3',
      'job-4',
    ]);
  });

  it('a null boost signal is reported by name, and the stream goes on', () => {
    const { scheduler, state } = make();
    const events: string[] = [];
    scheduler.events$.subscribe((e) => {
      if (e.type === 'boost.invalid') events.push(e.message);
    });
    const boosts = new Subject<BoostSignal>();
    scheduler.connectBoosts(boosts);
    const before = state();
    boosts.next(null as never);
    expect(events).toEqual([
      expect.stringContaining('signal must be a boost signal { target, to | by, forMs }'),
    ]);
    expect(state()).toBe(before);
    boosts.next({ target: { ids: ['queued'] }, to: 'critical', forMs: 1_000 });
    expect(scheduler.get('queued')?.effectivePriority).toBe('critical');
  });

  it('a closed scheduler takes no boost stream: none is left subscribed', async () => {
    const { clock, scheduler } = make();
    const done = scheduler.shutdown({ mode: 'cancel' });
    await clock.advanceBy(0);
    await done;
    const boosts = new Subject<BoostSignal>();
    expect(() => scheduler.connectBoosts(boosts)).toThrow(
      expect.objectContaining({ name: 'SchedulerClosedError' }),
    );
    expect(boosts.observed).toBe(false);
  });

  it('a bad second shutdown call is refused and the first goes on', async () => {
    const { clock, scheduler } = make();
    const first = scheduler.shutdown({ mode: 'drain', timeoutMs: 1_000 });
    expect(() => scheduler.shutdown(null as never)).toThrow(expect.objectContaining({ field: 'options' }));
    await clock.advanceBy(1_000);
    await expect(first).resolves.toMatchObject({
      mode: 'drain',
      completed: ['running'],
      cancelled: ['queued'],
    });
  });
});

describe('what is valid stays accepted', () => {
  it('a spec whose prototype has keys (even Object.prototype) is judged by its own keys', async () => {
    const { clock, scheduler } = make();
    const spec = Object.assign(Object.create({ note: 'inherited' }) as object, { type: 'work' as const });
    const inherited = scheduler.submit(spec);
    const proto = Object.prototype as Record<string, unknown>;
    proto['polluted'] = 1;
    let plain;
    try {
      plain = scheduler.submit({ type: 'work', resources: { cpu: 1 }, retry: { attempts: 1 } });
    } finally {
      delete proto['polluted'];
    }
    await clock.advanceBy(1_000);
    await expect(inherited.result).resolves.toBe('ok');
    await expect(plain.result).resolves.toBe('ok');
  });

  it('a detected pool with an override whose fields are undefined keeps the detected figures', async () => {
    const scheduler = createScheduler({
      clock: createVirtualClock(),
      handlers: { work: async () => 'ok' },
      // As a plain-JS caller (or a spread of optional fields) writes it.
      resources: { detect: true, override: { cpu: undefined, memoryMb: 4_096 } as { memoryMb: number } },
      detect: {
        si: {
          cpu: async () => ({ cores: 6 }),
          mem: async () => ({ total: 8 * 1024 ** 3, available: 8 * 1024 ** 3 }),
          graphics: async () => ({ controllers: [] }),
        },
        id: 'box',
        runNvidiaSmi: async () => '',
      },
      monitor: false,
    });
    await scheduler.ready;
    expect(scheduler.stats().resources.capacity).toMatchObject({ cpu: 6, memoryMb: 4_096 });
    await scheduler.shutdown();
  });
});

describe('simulate refuses bad input with a typed error naming the field', () => {
  const job = { id: 'a', submitAtMs: 0, durationMs: 10 };
  it.each<[string, Record<string, unknown>, string]>([
    ['no resources (it never reads the host)', { jobs: [job] }, 'resources'],
    ["resources 'detect'", { resources: 'detect', jobs: [job] }, 'resources'],
    ['a hole in the jobs', { resources: POOL, jobs: withHole(undefined, job).slice(1) }, 'jobs[0]'],
    ['a misspelt job field', { resources: POOL, jobs: [{ ...job, timeoutMs: 5 }] }, 'jobs[0].timeoutMs'],
    [
      'a time where a ms no longer adds up',
      { resources: POOL, jobs: [{ ...job, submitAtMs: 1e300 }] },
      'jobs[0].submitAtMs',
    ],
    [
      'a duration that large',
      { resources: POOL, jobs: [{ ...job, durationMs: 1e300 }] },
      'jobs[0].durationMs',
    ],
    ['untilMs that large', { resources: POOL, jobs: [job], options: { untilMs: 1e300 } }, 'untilMs'],
    [
      'a misspelt engine option',
      { resources: POOL, jobs: [job], options: { maxConcurrent: 1 } },
      'maxConcurrent',
    ],
  ])('%s', async (_, input, field) => {
    await expect(simulate(input as never)).rejects.toMatchObject({ field });
  });
});
