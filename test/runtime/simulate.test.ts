import { describe, expect, it } from 'vitest';
import {
  DependencyCycleError,
  InvalidJobError,
  InvalidOptionError,
  InvalidPoolError,
} from '../../src/core/errors.js';
import { simulate } from '../../src/runtime/simulate.js';
import type { SimulationJob, SimulationReport } from '../../src/runtime/simulation-types.js';
import { watchAllocations } from '../helpers/allocation-watch.js';

const byId = (report: SimulationReport) => new Map(report.jobs.map((j) => [j.id, j]));
const noRetry = { attempts: 1 };
const fixed = (attempts: number) => ({
  attempts,
  backoff: { type: 'fixed' as const, delayMs: 1_000, jitter: false },
});

describe('simulate(): hand-computed runs on the real engine', () => {
  it('reports times, waits, JCTs, makespan and utilisation exactly', async () => {
    const report = await simulate({
      resources: { cpu: 4, memoryMb: 8_192, gpus: 2 },
      jobs: [
        { id: 'a', submitAtMs: 0, durationMs: 10_000, resources: { gpu: 2, cpu: 2, memoryMb: 4_096 } },
        { id: 'b', submitAtMs: 1_000, durationMs: 5_000, resources: { gpu: 1, cpu: 1 } },
        { id: 'c', submitAtMs: 2_000, durationMs: 5_000, resources: { gpu: 1, cpu: 1 }, priority: 'high' },
      ],
    });
    const jobs = byId(report);
    expect(jobs.get('a')).toMatchObject({
      state: 'completed',
      startedAt: 0,
      endedAt: 10_000,
      waitMs: 0,
      jctMs: 10_000,
    });
    expect(jobs.get('b')).toMatchObject({
      submittedAt: 1_000,
      startedAt: 10_000,
      waitMs: 9_000,
      jctMs: 14_000,
    });
    expect(jobs.get('c')).toMatchObject({
      priority: 'high',
      startedAt: 10_000,
      waitMs: 8_000,
      jctMs: 13_000,
    });
    expect(report).toMatchObject({ startMs: 0, endMs: 15_000, makespanMs: 15_000 });
    // GPU: (2×10 + 1×5 + 1×5) / (2×15); CPU: (2×10 + 5 + 5) / (4×15); memory: 4096×10 / (8192×15).
    expect(report.utilisation).toEqual({ gpu: 1, cpu: 0.5, memoryMb: 1 / 3, vramMb: 0 });
    expect(report.wait.overall).toEqual({ count: 3, mean: 17_000 / 3, p50: 8_000, p99: 9_000, max: 9_000 });
    expect(report.wait.byPriority).toEqual({
      high: { count: 1, mean: 8_000, p50: 8_000, p99: 8_000, max: 8_000 },
      normal: { count: 2, mean: 4_500, p50: 0, p99: 9_000, max: 9_000 },
    });
    expect(report.jct.overall).toMatchObject({ count: 3, mean: 37_000 / 3, p50: 13_000, p99: 14_000 });
    expect(report.counts.completed).toBe(3);
    expect(report.resources.capacity).toMatchObject({ cpu: 4, memoryMb: 8_192, gpu: 2 });
    expect(report.resources.allocatedAtEnd).toMatchObject({ cpu: 0, memoryMb: 0, gpu: 0 });
  });

  it('runs a trace stamped with epoch times as one stamped from 0: the same schedule, shifted', async () => {
    // Times far from 0 (a queued job's enqueue time is kept as an offset from the first).
    const at = 1_796_000_000_000;
    const jobs = (t0: number): SimulationJob[] => [
      { id: 'a', submitAtMs: t0, durationMs: 10_000, resources: { gpu: 2 } },
      { id: 'b', submitAtMs: t0 + 1_000, durationMs: 5_000, resources: { gpu: 1 }, priority: 'low' },
      { id: 'c', submitAtMs: t0 + 2_000, durationMs: 5_000, resources: { gpu: 1 }, priority: 'high' },
    ];
    const pool = { cpu: 4, memoryMb: 8_192, gpus: 2 };
    let startedAt: number | undefined;
    const [fromZero, fromEpoch] = await Promise.all([
      simulate({ resources: pool, jobs: jobs(0) }),
      // Virtual time starts at the first arrival: stepping the engine's tick from 0 to there
      // would take 3e7 ticks (over a minute).
      simulate({ resources: pool, jobs: jobs(at), observe: (_, clock) => (startedAt = clock.now()) }),
    ]);
    expect(startedAt).toBe(at);
    expect(byId(fromEpoch).get('c')).toMatchObject({
      startedAt: at + 10_000,
      waitMs: 8_000,
      endedAt: at + 15_000,
    });
    expect(fromEpoch).toMatchObject({ startMs: at, endMs: at + 15_000, makespanMs: 15_000 });
    expect(fromEpoch.wait).toEqual(fromZero.wait);
    expect(fromEpoch.utilisation).toEqual(fromZero.utilisation);
  });

  it('backfills a small job past a blocked head; strict makes it wait', async () => {
    const jobs: SimulationJob[] = [
      { id: 'long', submitAtMs: 0, durationMs: 100_000, resources: { gpu: 1 } },
      { id: 'wide', submitAtMs: 1_000, durationMs: 10_000, resources: { gpu: 2 } },
      { id: 'small', submitAtMs: 2_000, durationMs: 10_000, resources: { gpu: 1 } },
    ];
    const pool = { cpu: 1, memoryMb: 1_024, gpus: 2 };
    const backfill = byId(await simulate({ resources: pool, jobs, options: { queuePolicy: 'backfill' } }));
    expect(backfill.get('small')).toMatchObject({ startedAt: 2_000, endedAt: 12_000 });
    expect(backfill.get('wide')).toMatchObject({ startedAt: 100_000, endedAt: 110_000 });
    const strict = byId(await simulate({ resources: pool, jobs, options: { queuePolicy: 'strict' } }));
    expect(strict.get('wide')).toMatchObject({ startedAt: 100_000, endedAt: 110_000 });
    expect(strict.get('small')).toMatchObject({ startedAt: 110_000, endedAt: 120_000 });
  });

  it('starts by priority, and aging lets a long-waiting job overtake', async () => {
    const jobs: SimulationJob[] = [
      { id: 'a', submitAtMs: 0, durationMs: 10_000, resources: { gpu: 1 } },
      { id: 'bg', submitAtMs: 1_000, durationMs: 1_000, resources: { gpu: 1 }, priority: 'background' },
      { id: 'low', submitAtMs: 9_500, durationMs: 1_000, resources: { gpu: 1 }, priority: 'low' },
    ];
    const pool = { cpu: 1, memoryMb: 1_024, gpus: 1 };
    const plain = byId(await simulate({ resources: pool, jobs, options: { aging: { maxLevels: 0 } } }));
    expect([plain.get('low')?.startedAt, plain.get('bg')?.startedAt]).toEqual([10_000, 11_000]);
    // bg has waited 9 s at 10 s: two levels (one per second) lift it from background above low.
    const aged = byId(
      await simulate({ resources: pool, jobs, options: { aging: { intervalMs: 1_000, maxLevels: 2 } } }),
    );
    expect([aged.get('bg')?.startedAt, aged.get('low')?.startedAt]).toEqual([10_000, 11_000]);
  });

  it('honours maxConcurrentJobs', async () => {
    const report = await simulate({
      resources: { cpu: 8, memoryMb: 8_192 },
      jobs: ['a', 'b', 'c'].map((id) => ({ id, submitAtMs: 0, durationMs: 1_000, resources: { cpu: 1 } })),
      options: { maxConcurrentJobs: 2 },
    });
    expect(report.jobs.map((j) => j.startedAt)).toEqual([0, 0, 1_000]);
    expect(report.makespanMs).toBe(2_000);
  });

  it('runs dependencies and failures: retries, afterok cancels, afterany runs', async () => {
    const report = await simulate({
      resources: { cpu: 4, memoryMb: 4_096 },
      jobs: [
        { id: 'flaky', submitAtMs: 0, durationMs: 1_000, fails: 1 },
        { id: 'broken', submitAtMs: 0, durationMs: 1_000, fails: true },
        { id: 'needs-ok', submitAtMs: 0, durationMs: 500, dependsOn: ['broken'] },
        {
          id: 'needs-any',
          submitAtMs: 0,
          durationMs: 500,
          dependsOn: ['broken'],
          dependencyPolicy: 'afterany',
        },
        { id: 'after-flaky', submitAtMs: 500, durationMs: 500, dependsOn: ['flaky'] },
      ],
      options: { retry: fixed(2) },
    });
    const jobs = byId(report);
    // Attempt 1: 0–1000 fails; backoff 1000; attempt 2: 2000–3000.
    expect(jobs.get('flaky')).toMatchObject({
      state: 'completed',
      attempts: 2,
      startedAt: 0,
      endedAt: 3_000,
    });
    expect(jobs.get('broken')).toMatchObject({ state: 'failed', attempts: 2, endedAt: 3_000, jctMs: 3_000 });
    expect(jobs.get('broken')?.error).toContain('simulated failure of attempt 2');
    expect(jobs.get('needs-ok')).toMatchObject({ state: 'cancelled', endedAt: 3_000, attempts: 0 });
    expect(jobs.get('needs-ok')?.jctMs).toBeUndefined();
    expect(jobs.get('needs-any')).toMatchObject({ state: 'completed', startedAt: 3_000, endedAt: 3_500 });
    expect(jobs.get('after-flaky')).toMatchObject({ state: 'completed', startedAt: 3_000, waitMs: 2_500 });
    expect(report.counts).toMatchObject({ completed: 3, failed: 1, cancelled: 1 });
    expect(report.jct.overall.count).toBe(4);
  });

  it('orders same-instant dependencies itself, whatever the input order', async () => {
    const report = await simulate({
      resources: { cpu: 1, memoryMb: 1_024 },
      jobs: [
        { id: 'second', submitAtMs: 0, durationMs: 10, dependsOn: ['first'], resources: { cpu: 1 } },
        { id: 'first', submitAtMs: 0, durationMs: 10, resources: { cpu: 1 } },
      ],
    });
    expect(report.jobs.map((j) => [j.id, j.startedAt])).toEqual([
      ['second', 10],
      ['first', 0],
    ]);
  });

  it('stops at untilMs: never-ending jobs stay running, later arrivals are unsubmitted', async () => {
    const report = await simulate({
      resources: {
        nodes: [
          { id: 'big', cpu: 1, memoryMb: 1_024, gpus: 4 },
          { id: 'small', cpu: 1, memoryMb: 1_024, gpus: 2 },
        ],
      },
      jobs: [
        { id: 'x', submitAtMs: 0, durationMs: Infinity, resources: { gpu: 2 } },
        { id: 'y', submitAtMs: 10, durationMs: Infinity, resources: { gpu: 4 } },
        { id: 'z', submitAtMs: 20, durationMs: 1_000, resources: { gpu: 1 } },
        { id: 'late', submitAtMs: 5_000, durationMs: 1_000 },
      ],
      options: { untilMs: 1_000, placement: 'best-fit' },
    });
    const jobs = byId(report);
    // Best fit puts x on the 2-GPU node, which leaves the 4-GPU node whole for y.
    expect(jobs.get('x')).toMatchObject({ state: 'running', startedAt: 0, allocation: { nodeId: 'small' } });
    expect(jobs.get('y')).toMatchObject({ state: 'running', startedAt: 10, allocation: { nodeId: 'big' } });
    expect(jobs.get('x')?.endedAt).toBeUndefined();
    expect(jobs.get('z')).toMatchObject({ state: 'queued', submittedAt: 20 });
    expect(jobs.get('late')).toEqual({ id: 'late', priority: 'normal', state: 'unsubmitted', attempts: 0 });
    expect(report).toMatchObject({ startMs: 0, endMs: 1_000, makespanMs: 1_000 });
    // (2 × 1000 + 4 × 990) / (6 × 1000)
    expect(report.utilisation.gpu).toBeCloseTo(5_960 / 6_000, 12);
    expect(report.resources.allocatedAtEnd.gpu).toBe(6);
    expect(report.jct.overall.count).toBe(0);

    const firstFit = await simulate({
      resources: {
        nodes: [
          { id: 'big', cpu: 1, memoryMb: 1_024, gpus: 4 },
          { id: 'small', cpu: 1, memoryMb: 1_024, gpus: 2 },
        ],
      },
      jobs: [{ id: 'x', submitAtMs: 0, durationMs: Infinity, resources: { gpu: 2 } }],
      options: { untilMs: 10, placement: 'first-fit' },
    });
    expect(firstFit.jobs[0]).toMatchObject({ state: 'running', allocation: { nodeId: 'big' } });
  });

  it('ends without untilMs once nothing more can happen', async () => {
    const report = await simulate({
      resources: { cpu: 1, memoryMb: 1_024, gpus: 1 },
      jobs: [
        { id: 'forever', submitAtMs: 0, durationMs: Infinity, resources: { gpu: 1 } },
        { id: 'stuck', submitAtMs: 5, durationMs: 1, resources: { gpu: 1 } },
      ],
      // A running job without a timeout keeps a no-op ~24.8-day timer on the clock (see
      // docs/simulation.md): an event-driven run steps over it at once.
      options: { schedulingIntervalMs: 2 ** 31 - 1 },
    });
    expect(report.jobs.map((j) => j.state)).toEqual(['running', 'queued']);
    expect(report.endMs).toBe(5);
  });

  it('reports what the engine refuses at arrival as rejected', async () => {
    const report = await simulate({
      resources: { cpu: 1, memoryMb: 1_024, gpus: 1 },
      jobs: [
        { id: 'runs', submitAtMs: 0, durationMs: 1_000, resources: { gpu: 1 } },
        { id: 'waits', submitAtMs: 1, durationMs: 1_000, resources: { gpu: 1 } },
        { id: 'full', submitAtMs: 2, durationMs: 1_000 },
        { id: 'huge', submitAtMs: 3, durationMs: 1_000, resources: { gpu: 2 } },
      ],
      options: { maxQueueSize: 1, retry: noRetry },
    });
    const jobs = byId(report);
    expect(jobs.get('full')).toMatchObject({ state: 'rejected', submittedAt: 2 });
    expect(jobs.get('full')?.error).toMatch(/^QueueFullError/);
    expect(jobs.get('huge')?.error).toMatch(/^UnschedulableError/);
    expect(report.counts).toMatchObject({ completed: 2, rejected: 2 });
  });

  it('is deterministic: same input and seed, same report; jitter follows the seed', async () => {
    const jobs: SimulationJob[] = Array.from({ length: 40 }, (_, i) => ({
      id: `j${i}`,
      submitAtMs: (i * 7_919) % 5_000,
      durationMs: 500 + ((i * 104_729) % 3_000),
      resources: { gpu: i % 5 === 0 ? 0.5 : 1, cpu: 1 + (i % 3) },
      priority: i % 4 === 0 ? 'high' : 'normal',
      fails: i % 6 === 0 ? 1 : false,
    }));
    const run = (seed: number) =>
      simulate({
        resources: { nodes: [{ cpu: 8, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }, { vramMb: 16_000 }] }] },
        jobs,
        options: {
          seed,
          retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 1_000, jitter: true } },
        },
      });
    const [a, b] = await Promise.all([run(7), run(7)]);
    expect(a).toEqual(b);
    expect(a.jobs.some((j) => j.attempts > 1)).toBe(true);
    // Alone in the pool, a retried job's end depends only on its jittered backoff.
    const alone = (seed: number) =>
      simulate({
        resources: { cpu: 1, memoryMb: 1_024 },
        jobs: [{ id: 'flaky', submitAtMs: 0, durationMs: 100, fails: 2 }],
        options: { seed, retry: { attempts: 3, backoff: { delayMs: 10_000, jitter: true } } },
      });
    const ends = await Promise.all([1, 2, 3, 1].map(async (seed) => (await alone(seed)).jobs[0]?.endedAt));
    expect(ends[0]).toBe(ends[3]);
    expect(new Set(ends).size).toBe(3);
  });

  it('hands the scheduler to observe(), and never over-allocates', async () => {
    const pool = { nodes: [{ cpu: 4, memoryMb: 4_096, gpus: [{ vramMb: 8_000 }, { vramMb: 8_000 }] }] };
    const watch = watchAllocations(pool);
    const report = await simulate({
      resources: pool,
      jobs: Array.from({ length: 30 }, (_, i) => ({
        id: `j${i}`,
        submitAtMs: i * 100,
        durationMs: 1_000 + i * 37,
        resources: { gpu: i % 3 === 0 ? 0.25 : 1, cpu: 1, memoryMb: 512 },
      })),
      observe: (scheduler) => watch.observe(scheduler),
    });
    expect(watch.violations).toEqual([]);
    expect(watch.checks).toBeGreaterThanOrEqual(60);
    expect(report.counts.completed).toBe(30);
  });
});

describe('simulate(): input checks', () => {
  const pool = { cpu: 1, memoryMb: 1_024 };
  const job = (over: Partial<SimulationJob>): SimulationJob => ({
    id: 'a',
    submitAtMs: 0,
    durationMs: 1,
    ...over,
  });

  it.each([
    [{ submitAtMs: -1 }, 'jobs[1].submitAtMs'],
    [{ submitAtMs: Number.NaN }, 'jobs[1].submitAtMs'],
    [{ submitAtMs: Infinity }, 'jobs[1].submitAtMs'],
    [{ durationMs: -5 }, 'jobs[1].durationMs'],
    [{ durationMs: Number.NaN }, 'jobs[1].durationMs'],
    [{ fails: 1.5 }, 'jobs[1].fails'],
    [{ priority: 'urgent' as never }, 'jobs[1].priority'],
    [{ resources: { gpu: 1.5 } }, 'jobs[1].resources.gpu'],
    [{ id: 'a' }, 'jobs[1].id'],
    [{ dependsOn: ['nobody'] }, 'jobs[1].dependsOn'],
  ])('rejects %j with InvalidJobError naming %s', async (over, field) => {
    const jobs = [job({}), job({ id: 'b', ...over })];
    await expect(simulate({ resources: pool, jobs })).rejects.toThrow(InvalidJobError);
    await expect(simulate({ resources: pool, jobs })).rejects.toMatchObject({ field });
  });

  it('rejects a dependency that arrives later, and a cycle', async () => {
    const later = [job({ dependsOn: ['b'] }), job({ id: 'b', submitAtMs: 5 })];
    await expect(simulate({ resources: pool, jobs: later })).rejects.toMatchObject({
      field: 'jobs[0].dependsOn',
    });
    const cycle = [job({ dependsOn: ['b'] }), job({ id: 'b', dependsOn: ['a'] })];
    await expect(simulate({ resources: pool, jobs: cycle })).rejects.toThrow(DependencyCycleError);
  });

  it('rejects bad options and pools before anything runs', async () => {
    await expect(simulate({ resources: pool, jobs: [], options: { untilMs: -1 } })).rejects.toThrow(
      InvalidOptionError,
    );
    await expect(simulate({ resources: pool, jobs: [], options: { maxQueueSize: 0 } })).rejects.toThrow(
      InvalidOptionError,
    );
    await expect(simulate({ resources: { cpu: -1, memoryMb: 1 }, jobs: [] })).rejects.toThrow(
      InvalidPoolError,
    );
  });

  it('reports an empty input as an empty run', async () => {
    const report = await simulate({ resources: pool, jobs: [] });
    expect(report).toMatchObject({ jobs: [], startMs: 0, endMs: 0, makespanMs: 0 });
    expect(report.utilisation).toEqual({ cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 });
  });
});
