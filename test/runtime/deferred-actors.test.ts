/**
 * A job that nobody watches and that waits for nothing goes straight into the queue, and its actor
 * starts only when first needed (its start, a cancel, a snapshot). That must change nothing a
 * user can see: the same random workloads run on a scheduler that someone listens to (every
 * actor starts at submit) and on one nobody listens to (actors start late, some woken early by a
 * snapshot read) must end with the same jobs — states, attempts, errors, allocations and every
 * timestamp — the same results and the same counts.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  PRIORITY_NAMES,
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type PriorityName,
} from '../../src/index.js';
import { numRuns } from '../helpers/num-runs.js';
import type { JobRecords } from '../../src/runtime/job-records.js';

type Payload = { ms: number; failUntil: number; hang: boolean };
type Step =
  | {
      kind: 'submit';
      priority: PriorityName;
      gpu: boolean;
      payload: Payload;
      timeoutMs?: number;
      dependOn?: number;
    }
  | { kind: 'advance'; ms: number }
  | { kind: 'cancel'; pick: number }
  | { kind: 'boost'; pick: number }
  | { kind: 'peek'; pick: number }
  | { kind: 'pause' }
  | { kind: 'resume' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      {
        kind: fc.constant('submit' as const),
        priority: fc.constantFrom(...PRIORITY_NAMES),
        gpu: fc.boolean(),
        payload: fc.record({
          ms: fc.integer({ min: 0, max: 300 }),
          failUntil: fc.integer({ min: 0, max: 2 }),
          hang: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
        }),
        timeoutMs: fc.integer({ min: 50, max: 400 }),
        dependOn: fc.nat(),
      },
      { requiredKeys: ['kind', 'priority', 'gpu', 'payload'] },
    ),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 200 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('boost' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('peek' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pause' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('resume' as const) }) },
);

async function run(steps: readonly Step[], watched: boolean) {
  const clock = createVirtualClock();
  let x = 11;
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: { cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }] },
    maxConcurrentJobs: 2,
    retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 40, maxDelayMs: 300, jitter: true } },
    random: () => (x = (x * 48_271) % 2_147_483_647) / 2_147_483_647,
    handlers: {
      work: async ({ payload, attempt, signal }: HandlerContext<Payload>) => {
        if (payload.hang)
          return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
        await delay(clock, payload.ms, signal);
        if (attempt <= payload.failUntil) throw new Error(`attempt ${attempt} failed`);
        return `done ${attempt}`;
      },
    },
  });
  if (watched) scheduler.events$.subscribe(() => undefined);
  const ids: string[] = [];
  const results: Array<Promise<string>> = [];
  for (const step of steps) {
    const pick = 'pick' in step ? ids[step.pick % Math.max(1, ids.length)] : undefined;
    switch (step.kind) {
      case 'submit': {
        const dep =
          step.dependOn !== undefined && ids.length > 0 ? ids[step.dependOn % ids.length] : undefined;
        const handle = scheduler.submit({
          type: 'work',
          priority: step.priority,
          payload: step.payload,
          resources: step.gpu ? { gpu: 1, cpu: 1 } : { cpu: 1 },
          ...(step.timeoutMs === undefined ? {} : { timeoutMs: step.timeoutMs }),
          ...(dep === undefined ? {} : { dependsOn: [dep], dependencyPolicy: 'afterany' as const }),
        });
        ids.push(handle.id);
        results.push(
          handle.result.then(String, (e: { kind?: string; state?: string }) => `${e.state}:${e.kind}`),
        );
        break;
      }
      case 'advance':
        await clock.advanceBy(step.ms);
        break;
      case 'cancel':
        if (pick) scheduler.cancel(pick);
        break;
      case 'boost':
        if (pick) scheduler.boost({ ids: [pick] }, { to: 'critical', forMs: 100 });
        break;
      case 'peek':
        // A snapshot read wakes a waiting actor early on the unwatched scheduler.
        if (pick && !watched) scheduler.get(pick);
        break;
      case 'pause':
        scheduler.pause();
        break;
      case 'resume':
        scheduler.resume();
        break;
    }
  }
  scheduler.resume();
  await clock.advanceBy(20_000);
  const report = await scheduler.shutdown({ mode: 'cancel' });
  return {
    jobs: scheduler.list(),
    stats: scheduler.stats(),
    results: await Promise.all(results),
    report,
  };
}

/** An unwatched scheduler with one slot whose `work` jobs take 100 ms. */
function oneSlot() {
  const clock = createVirtualClock();
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: { cpu: 1, memoryMb: 1_024 },
    maxConcurrentJobs: 1,
    handlers: { work: ({ signal }: HandlerContext) => delay(clock, 100, signal) },
  });
  return { clock, scheduler };
}

describe('actors started when first needed', () => {
  it('change nothing a user sees: the same workload, watched and unwatched, ends the same', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 40 }), async (steps) => {
        const watched = await run(steps, true);
        const unwatched = await run(steps, false);
        expect(unwatched).toEqual(watched);
      }),
      { numRuns: numRuns(150) },
    );
  });

  it('a job that waited unwatched says when it was submitted and queued, not when its actor started', async () => {
    const { clock, scheduler } = oneSlot();
    scheduler.submit({ type: 'work', id: 'first' });
    await clock.advanceBy(30);
    scheduler.submit({ type: 'work', id: 'second' });
    await clock.advanceBy(500);
    expect(scheduler.get('second')).toMatchObject({
      state: 'completed',
      submittedAt: 30,
      startedAt: 100,
      endedAt: 200,
    });
    await scheduler.shutdown();
  });

  it('reading waiting jobs (list, get, a handle) leaves them without actors, and they still run as read', async () => {
    const { clock, scheduler } = oneSlot();
    const handles = Array.from({ length: 5 }, () => scheduler.submit({ type: 'work', priority: 'low' }));
    await clock.advanceBy(10);
    const late = scheduler.submit({ type: 'work', priority: 'high' });
    const listed = scheduler.list({ state: 'queued' });
    expect(listed.map((j) => j.id)).toEqual([...handles.slice(1).map((h) => h.id), late.id]);
    expect(scheduler.get(late.id)).toMatchObject({ state: 'queued', submittedAt: 10, priority: 'high' });
    const seen: string[] = [];
    late.state$.subscribe((j) => seen.push(j.state));
    // White-box: the book of jobs says which waiting jobs have no actor yet.
    const records = (scheduler as unknown as { records: JobRecords }).records;
    for (const id of [late.id, ...handles.slice(1).map((h) => h.id)]) {
      const record = records.get(id);
      expect(record && records.waitsWithoutActor(record)).toBe(true);
    }
    await clock.advanceBy(1_000);
    expect(seen).toEqual(['queued', 'scheduled', 'running', 'completed']);
    expect(scheduler.get(late.id)).toMatchObject({ state: 'completed', submittedAt: 10, startedAt: 100 });
    expect(scheduler.stats().jobs.completed).toBe(6);
    await scheduler.shutdown();
  });
});
