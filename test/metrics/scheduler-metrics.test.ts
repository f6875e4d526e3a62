/**
 * The scheduler's Prometheus metrics (issue 17, "Operations"), in virtual time: a scheduler on a
 * declared pool of two nodes runs a mix — completions, a failure that retries, a cancel, a job
 * queued for resources — and after each step the scraped text (`registry.metrics()`, parsed) has
 * the right numbers: jobs by state, waiting jobs by priority and reason, capacity and allocation
 * per node, the counters, and histograms that count each attempt once with its virtual duration.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import {
  createScheduler,
  createVirtualClock,
  delay,
  InvalidOptionError,
  type HandlerContext,
  type SchedulerOptions,
} from '../../src/index.js';
import { schedulerMetrics, type SchedulerMetricsSource } from '../../src/metrics/scheduler-metrics.js';
import { parseExposition, type Exposition } from './exposition.js';

const MB = 1_048_576;

const POOL = {
  nodes: [
    { id: 'a', cpu: 4, memoryMb: 4_096, gpus: [{ vramMb: 8_192 }] },
    { id: 'b', cpu: 2, memoryMb: 2_048, gpus: [{ vramMb: 16_384 }], custom: { licence: 2 } },
  ],
} satisfies SchedulerOptions['resources'];

type Work = { ms: number; failFirst?: number };

function make(options: Partial<SchedulerOptions> = {}) {
  const clock = createVirtualClock();
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: POOL,
    ...options,
    handlers: {
      work: async ({ payload, attempt, signal }: HandlerContext<Work>) => {
        await delay(clock, payload.ms, signal);
        if (attempt <= (payload.failFirst ?? 0)) throw new Error(`attempt ${attempt} failed`);
        return 'done';
      },
    },
  });
  const metrics = schedulerMetrics(scheduler);
  const scrape = async (): Promise<Exposition> => parseExposition(await metrics.registry.metrics());
  return { clock, scheduler, metrics, scrape };
}

/** Jobs by state, the states not named at zero. */
function expectJobs(m: Exposition, counts: Record<string, number>): void {
  for (const state of [
    'pending',
    'queued',
    'scheduled',
    'running',
    'retrying',
    'completed',
    'failed',
    'cancelled',
  ])
    expect(m.value('ai_batch_jobs', { state }), state).toBe(counts[state] ?? 0);
}

/** The non-zero waiting counts, as `priority/reason` → count. */
function waitingOf(m: Exposition): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of m.all('ai_batch_jobs_waiting'))
    if (s.value !== 0) out[`${s.labels.priority}/${s.labels.reason}`] = s.value;
  return out;
}

/** A histogram's count and sum (with `labels`). */
function histogram(m: Exposition, name: string, labels: Record<string, string> = {}) {
  return { count: m.value(`${name}_count`, labels), sum: m.value(`${name}_sum`, labels) };
}

describe('schedulerMetrics', () => {
  it('follows a mix of jobs step by step: states, waiting, resources per node, counters and histograms', async () => {
    const { clock, scheduler, scrape } = make();
    let m = await scrape();
    expectJobs(m, {});
    expect(waitingOf(m)).toEqual({});
    // Capacity per node in base units, nothing allocated.
    expect(m.value('ai_batch_resource_capacity', { node: 'a', resource: 'cpu' })).toBe(4);
    expect(m.value('ai_batch_resource_capacity', { node: 'a', resource: 'memory_bytes' })).toBe(4_096 * MB);
    expect(m.value('ai_batch_resource_capacity', { node: 'a', resource: 'gpu' })).toBe(1);
    expect(m.value('ai_batch_resource_capacity', { node: 'a', resource: 'vram_bytes' })).toBe(8_192 * MB);
    expect(m.value('ai_batch_resource_capacity', { node: 'b', resource: 'vram_bytes' })).toBe(16_384 * MB);
    expect(m.value('ai_batch_resource_capacity', { node: 'b', resource: 'custom:licence' })).toBe(2);
    expect(m.has('ai_batch_resource_capacity', { node: 'a', resource: 'custom:licence' })).toBe(false);
    expect(m.value('ai_batch_resource_allocated', { node: 'b', resource: 'custom:licence' })).toBe(0);
    expect(m.value('ai_batch_resource_allocated', { node: 'a', resource: 'gpu' })).toBe(0);
    expect(m.value('ai_batch_nodes', { state: 'active' })).toBe(2);
    expect(m.value('ai_batch_nodes', { state: 'retired' })).toBe(0);
    expect(m.value('ai_batch_jobs_submitted_total')).toBe(0);
    expect(histogram(m, 'ai_batch_job_queue_wait_seconds')).toEqual({ count: 0, sum: 0 });

    // t=0: a (a GPU, 1 s), b (a GPU, fails its first attempt after 0.5 s, retries after 0.2 s),
    // d (a licence, so node b; cancelled at 0.3 s), c (a GPU, high: waits for one).
    scheduler.submit({ type: 'work', id: 'a', payload: { ms: 1_000 }, resources: { gpu: 1, cpu: 1 } });
    scheduler.submit({
      type: 'work',
      id: 'b',
      payload: { ms: 500, failFirst: 1 },
      resources: { gpu: 1, cpu: 1 },
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 200 } },
    });
    scheduler.submit({
      type: 'work',
      id: 'd',
      payload: { ms: 5_000 },
      resources: { cpu: 0.5, memoryMb: 512, custom: { licence: 1 } },
    });
    scheduler.submit({
      type: 'work',
      id: 'c',
      priority: 'high',
      payload: { ms: 10_000 },
      resources: { gpu: 1, vramMb: 4_096, cpu: 1 },
    });
    await clock.advanceBy(0);
    m = await scrape();
    expectJobs(m, { running: 3, queued: 1 });
    expect(waitingOf(m)).toEqual({ 'high/resources': 1 });
    expect(m.value('ai_batch_jobs_submitted_total')).toBe(4);
    // Three attempts started at once: three waits of 0 s.
    expect(histogram(m, 'ai_batch_job_queue_wait_seconds')).toEqual({ count: 3, sum: 0 });
    // Allocation per node agrees with the jobs' own allocations, and with the pool's totals.
    const onNode = (node: string) =>
      scheduler.list({ state: 'running' }).filter((j) => j.allocation?.nodeId === node);
    expect(onNode('b').map((j) => j.id)).toContain('d');
    expect(m.value('ai_batch_resource_allocated', { node: 'b', resource: 'custom:licence' })).toBe(1);
    expect(m.value('ai_batch_resource_allocated', { node: 'a', resource: 'gpu' })).toBe(1);
    expect(m.value('ai_batch_resource_allocated', { node: 'b', resource: 'gpu' })).toBe(1);
    expect(m.value('ai_batch_resource_allocated', { node: 'b', resource: 'memory_bytes' })).toBe(512 * MB);
    expect(m.value('ai_batch_resource_allocated', { node: 'b', resource: 'cpu' })).toBe(1.5);
    expect(m.value('ai_batch_resource_allocated', { node: 'a', resource: 'cpu' })).toBe(1);
    const { allocated } = scheduler.stats().resources;
    for (const [resource, total] of [
      ['cpu', allocated.cpu],
      ['gpu', allocated.gpu],
      ['memory_bytes', allocated.memoryMb * MB],
    ] as const)
      expect(
        m.value('ai_batch_resource_allocated', { node: 'a', resource }) +
          m.value('ai_batch_resource_allocated', { node: 'b', resource }),
      ).toBe(total);

    // t=0.3: d cancelled while running.
    await clock.advanceBy(300);
    expect(scheduler.cancel('d')).toBe(true);
    await clock.advanceBy(0);
    m = await scrape();
    expectJobs(m, { running: 2, queued: 1, cancelled: 1 });
    expect(m.value('ai_batch_jobs_finished_total', { state: 'cancelled' })).toBe(1);
    expect(m.value('ai_batch_job_attempts_total', { outcome: 'cancelled' })).toBe(1);
    expect(histogram(m, 'ai_batch_job_run_seconds', { outcome: 'cancelled' })).toEqual({
      count: 1,
      sum: 0.3,
    });
    expect(m.value('ai_batch_resource_allocated', { node: 'b', resource: 'custom:licence' })).toBe(0);

    // t=0.5: b's first attempt fails; it waits out its backoff, and c takes its GPU.
    await clock.advanceBy(200);
    m = await scrape();
    expectJobs(m, { running: 2, retrying: 1, cancelled: 1 });
    expect(waitingOf(m)).toEqual({ 'normal/backoff': 1 });
    expect(m.value('ai_batch_job_retries_total')).toBe(1);
    expect(m.value('ai_batch_job_attempts_total', { outcome: 'failed' })).toBe(1);
    expect(histogram(m, 'ai_batch_job_run_seconds', { outcome: 'failed' })).toEqual({ count: 1, sum: 0.5 });
    // c waited 0.5 s.
    expect(histogram(m, 'ai_batch_job_queue_wait_seconds')).toEqual({ count: 4, sum: 0.5 });
    expect(m.value('ai_batch_job_queue_wait_seconds_bucket', { le: '0.1' })).toBe(3);
    expect(m.value('ai_batch_job_queue_wait_seconds_bucket', { le: '0.5' })).toBe(4);
    expect(m.value('ai_batch_jobs_finished_total', { state: 'failed' })).toBe(0);

    // t=0.7: b queued again, waiting for a GPU.
    await clock.advanceBy(200);
    m = await scrape();
    expectJobs(m, { running: 2, queued: 1, cancelled: 1 });
    expect(waitingOf(m)).toEqual({ 'normal/resources': 1 });

    // t=1: a completes; b's second attempt starts after 0.3 s in the queue (not its backoff).
    await clock.advanceBy(300);
    m = await scrape();
    expectJobs(m, { running: 2, completed: 1, cancelled: 1 });
    expect(waitingOf(m)).toEqual({});
    expect(histogram(m, 'ai_batch_job_run_seconds', { outcome: 'completed' })).toEqual({ count: 1, sum: 1 });
    expect(histogram(m, 'ai_batch_job_queue_wait_seconds')).toEqual({ count: 5, sum: 0.8 });

    // t=10.5: everything has ended.
    await clock.advanceBy(9_500);
    await scheduler.onIdle();
    m = await scrape();
    expectJobs(m, { completed: 3, cancelled: 1 });
    expect(m.value('ai_batch_jobs_finished_total', { state: 'completed' })).toBe(3);
    expect(m.value('ai_batch_jobs_finished_total', { state: 'failed' })).toBe(0);
    // Each attempt counted once: a, b (twice), c, d.
    const attempts = Object.fromEntries(
      m.all('ai_batch_job_attempts_total').map((s) => [s.labels.outcome, s.value]),
    );
    expect(attempts).toEqual({ completed: 3, failed: 1, timeout: 0, cancelled: 1, interrupted: 0 });
    // Completed runs: a 1 s, b 0.5 s, c 10 s.
    expect(histogram(m, 'ai_batch_job_run_seconds', { outcome: 'completed' })).toEqual({
      count: 3,
      sum: 11.5,
    });
    expect(m.value('ai_batch_job_run_seconds_bucket', { outcome: 'completed', le: '0.5' })).toBe(1);
    expect(m.value('ai_batch_job_run_seconds_bucket', { outcome: 'completed', le: '1' })).toBe(2);
    expect(m.value('ai_batch_job_run_seconds_bucket', { outcome: 'completed', le: '10' })).toBe(3);
    expect(m.value('ai_batch_job_run_seconds_bucket', { outcome: 'completed', le: '+Inf' })).toBe(3);
    expect(histogram(m, 'ai_batch_job_queue_wait_seconds')).toEqual({ count: 5, sum: 0.8 });
    for (const node of ['a', 'b'])
      for (const resource of ['cpu', 'memory_bytes', 'gpu', 'vram_bytes'])
        expect(m.value('ai_batch_resource_allocated', { node, resource })).toBe(0);
    await scheduler.shutdown();
  });

  it('a pool that changes: a node joins, retires while it runs a job, and leaves with its last allocation', async () => {
    const { clock, scheduler, scrape } = make();
    scheduler.addNode({ id: 'c', cpu: 16, memoryMb: 1_024, gpus: [{ vramMb: 1_024 }, { vramMb: 1_024 }] });
    let m = await scrape();
    expect(m.value('ai_batch_nodes', { state: 'active' })).toBe(3);
    expect(m.value('ai_batch_resource_capacity', { node: 'c', resource: 'gpu' })).toBe(2);
    expect(m.value('ai_batch_resource_capacity', { node: 'c', resource: 'vram_bytes' })).toBe(2_048 * MB);
    // Only node c has 16 cores.
    scheduler.submit({ type: 'work', id: 'big', payload: { ms: 1_000 }, resources: { cpu: 12 } });
    await clock.advanceBy(0);
    scheduler.retireNode('c');
    m = await scrape();
    expect(m.value('ai_batch_nodes', { state: 'active' })).toBe(2);
    expect(m.value('ai_batch_nodes', { state: 'retired' })).toBe(1);
    // Still there, still holding what its job holds.
    expect(m.value('ai_batch_resource_allocated', { node: 'c', resource: 'cpu' })).toBe(12);
    await clock.advanceBy(1_000);
    m = await scrape();
    expect(m.value('ai_batch_nodes', { state: 'retired' })).toBe(0);
    expect(m.has('ai_batch_resource_capacity', { node: 'c', resource: 'cpu' })).toBe(false);
    expect(m.has('ai_batch_resource_allocated', { node: 'c', resource: 'cpu' })).toBe(false);
    expect(m.value('ai_batch_resource_capacity', { node: 'a', resource: 'cpu' })).toBe(4);
    await scheduler.shutdown();
  });

  it('a timed-out attempt is outcome timeout, and its end a failed job', async () => {
    const { clock, scheduler, scrape } = make();
    scheduler.submit({
      type: 'work',
      id: 'slow',
      payload: { ms: 60_000 },
      timeoutMs: 2_000,
      retry: { attempts: 1 },
    });
    await clock.advanceBy(2_000);
    await scheduler.onIdle();
    const m = await scrape();
    expectJobs(m, { failed: 1 });
    expect(m.value('ai_batch_jobs_finished_total', { state: 'failed' })).toBe(1);
    expect(m.value('ai_batch_job_attempts_total', { outcome: 'timeout' })).toBe(1);
    expect(m.value('ai_batch_job_attempts_total', { outcome: 'failed' })).toBe(0);
    expect(histogram(m, 'ai_batch_job_run_seconds', { outcome: 'timeout' })).toEqual({ count: 1, sum: 2 });
    await scheduler.shutdown();
  });

  it('waiting jobs by effective priority and reason: dependencies, paused', async () => {
    const { clock, scheduler, scrape } = make();
    scheduler.pause();
    scheduler.submit({ type: 'work', id: 'first', payload: { ms: 100 }, priority: 'low' });
    scheduler.submit({
      type: 'work',
      id: 'then',
      payload: { ms: 100 },
      dependsOn: ['first'],
      priority: 'critical',
    });
    await clock.advanceBy(0);
    let m = await scrape();
    expect(waitingOf(m)).toEqual({ 'low/paused': 1, 'critical/dependencies': 1 });
    expect(m.all('ai_batch_jobs_waiting')).toHaveLength(5 * 6);
    // A job cancelled before it ran ends, but no attempt of it does.
    scheduler.submit({ type: 'work', id: 'never', payload: { ms: 100 } });
    await clock.advanceBy(50);
    scheduler.cancel('never');
    scheduler.resume();
    await clock.advanceBy(1_000);
    m = await scrape();
    expect(waitingOf(m)).toEqual({});
    expectJobs(m, { completed: 2, cancelled: 1 });
    expect(m.value('ai_batch_jobs_finished_total', { state: 'cancelled' })).toBe(1);
    expect(m.value('ai_batch_job_attempts_total', { outcome: 'cancelled' })).toBe(0);
    expect(histogram(m, 'ai_batch_job_run_seconds', { outcome: 'cancelled' })).toEqual({ count: 0, sum: 0 });
    // Two attempts ran: 'first' after 50 ms paused in the queue, 'then' at once once it was queued.
    expect(histogram(m, 'ai_batch_job_queue_wait_seconds')).toEqual({ count: 2, sum: 0.05 });
    await scheduler.shutdown();
  });

  it('without nodes(): capacity and allocation of the whole pool, as node "all"', async () => {
    const { clock, scheduler } = make();
    // A scheduler seen only through the part of its API every scheduler has.
    const source: SchedulerMetricsSource = {
      events$: scheduler.events$,
      stats: () => scheduler.stats(),
      list: (filter) => scheduler.list(filter),
      get: (id) => scheduler.get(id),
    };
    const metrics = schedulerMetrics(source);
    scheduler.submit({ type: 'work', id: 'x', payload: { ms: 100 }, resources: { gpu: 0.5, cpu: 2 } });
    await clock.advanceBy(0);
    const m = parseExposition(await metrics.registry.metrics());
    expect(m.value('ai_batch_resource_capacity', { node: 'all', resource: 'cpu' })).toBe(6);
    expect(m.value('ai_batch_resource_capacity', { node: 'all', resource: 'gpu' })).toBe(2);
    expect(m.value('ai_batch_resource_capacity', { node: 'all', resource: 'vram_bytes' })).toBe(24_576 * MB);
    expect(m.value('ai_batch_resource_allocated', { node: 'all', resource: 'cpu' })).toBe(2);
    expect(m.value('ai_batch_resource_allocated', { node: 'all', resource: 'gpu' })).toBe(0.5);
    expect(m.has('ai_batch_resource_capacity', { node: 'a', resource: 'cpu' })).toBe(false);
    metrics.close();
    await clock.advanceBy(100);
    await scheduler.shutdown();
  });

  it('names follow Prometheus conventions; counters end in _total; each family has a help', async () => {
    const { metrics } = make();
    const text = await metrics.registry.metrics();
    const m = parseExposition(text);
    expect([...m.types.keys()].sort()).toEqual([
      'ai_batch_job_attempts_total',
      'ai_batch_job_queue_wait_seconds',
      'ai_batch_job_retries_total',
      'ai_batch_job_run_seconds',
      'ai_batch_jobs',
      'ai_batch_jobs_finished_total',
      'ai_batch_jobs_stopping',
      'ai_batch_jobs_submitted_total',
      'ai_batch_jobs_waiting',
      'ai_batch_nodes',
      'ai_batch_resource_allocated',
      'ai_batch_resource_capacity',
    ]);
    for (const [name, type] of m.types) {
      expect(name).toMatch(/^ai_batch_[a-z_]+$/);
      expect(name.endsWith('_total')).toBe(type === 'counter');
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
    }
    metrics.close();
  });

  it('close() stops counting and takes the metrics out of the registry; a shared registry and a prefix', async () => {
    const clock = createVirtualClock();
    const handlers = { work: async () => 'ok' };
    const registry = new Registry();
    const one = createScheduler({ clock, monitor: false, resources: POOL, handlers });
    const two = createScheduler({ clock, monitor: false, resources: POOL, handlers });
    const first = schedulerMetrics(one, { registry });
    expect(first.registry).toBe(registry);
    // The same names in the same registry: refused, naming the registry.
    expect(() => schedulerMetrics(two, { registry })).toThrow(InvalidOptionError);
    expect(() => schedulerMetrics(two, { registry })).toThrow(/registry/);
    const second = schedulerMetrics(two, { registry, prefix: 'two_' });
    one.submit({ type: 'work', id: 'a' });
    two.submit({ type: 'work', id: 'b' });
    two.submit({ type: 'work', id: 'c' });
    await clock.advanceBy(0);
    let m = parseExposition(await registry.metrics());
    expect(m.value('ai_batch_jobs_submitted_total')).toBe(1);
    expect(m.value('two_jobs_submitted_total')).toBe(2);
    first.close();
    first.close();
    m = parseExposition(await registry.metrics());
    expect(m.has('ai_batch_jobs_submitted_total')).toBe(false);
    expect(m.value('two_jobs_submitted_total')).toBe(2);
    // Free again: a new collector counts from zero.
    const again = schedulerMetrics(one, { registry });
    one.submit({ type: 'work', id: 'd' });
    await clock.advanceBy(0);
    m = parseExposition(await registry.metrics());
    expect(m.value('ai_batch_jobs_submitted_total')).toBe(1);
    second.close();
    again.close();
    expect(await registry.metrics()).toBe('\n');
    await one.shutdown();
    await two.shutdown();
  });

  it('bad options: InvalidOptionError naming the field', () => {
    const { scheduler } = make();
    const bad: Array<[unknown, RegExp]> = [
      [{ prefix: '9x' }, /prefix/],
      [{ prefix: 'a-b' }, /prefix/],
      [{ registry: {} }, /registry/],
      [{ buckets: { run: [1, 1] } }, /buckets\.run/],
      [{ buckets: { queueWait: [] } }, /buckets\.queueWait/],
      [{ buckets: { runs: [1] } }, /buckets\.runs/],
      [{ registy: new Registry() }, /registy.*registry/],
      ['x', /options/],
    ];
    for (const [options, field] of bad) {
      expect(() => schedulerMetrics(scheduler, options as never)).toThrow(InvalidOptionError);
      expect(() => schedulerMetrics(scheduler, options as never)).toThrow(field);
    }
    expect(() => schedulerMetrics({} as never)).toThrow(/scheduler/);
  });
});
