/**
 * The two hosts of job actors — the lean host (default) and XState's `createActor` (used when the
 * scheduler is inspected) — run the same compiled job logic. The same workload on both must give
 * the same events at the same virtual times, with the same outcomes.
 */
import { describe, expect, it } from 'vitest';
import {
  UnrecoverableError,
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type SchedulerEvent,
} from '../../src/index.js';

type Payload = { ms: number; failUntil?: number; fatal?: boolean; steps?: number };

async function workload(inspect: boolean): Promise<{ log: string[]; actors: number }> {
  const clock = createVirtualClock();
  let actors = 0;
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: { cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }] },
    maxConcurrentJobs: 3,
    maxQueueSize: 100,
    retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 50, maxDelayMs: 400, jitter: true } },
    random: (() => {
      let x = 7;
      return () => (x = (x * 48_271) % 2_147_483_647) / 2_147_483_647;
    })(),
    ...(inspect
      ? {
          inspect: (e: { type: string }) => {
            if (e.type === '@xstate.actor') actors++;
          },
        }
      : {}),
    handlers: {
      work: async ({ payload, attempt, signal, progress }: HandlerContext<Payload>) => {
        const steps = payload.steps ?? 1;
        for (let i = 1; i <= steps; i++) {
          await delay(clock, payload.ms / steps, signal);
          progress(i / steps, `step ${i}`);
        }
        if (payload.fatal) throw new UnrecoverableError('fatal');
        if (attempt <= (payload.failUntil ?? 0)) throw new Error(`attempt ${attempt} failed`);
        return attempt;
      },
      hang: ({ signal }: HandlerContext<unknown>) =>
        new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      // Attempt 1 ignores its abort and reports progress into attempt 2's time: dropped.
      stale: ({ attempt, progress }: HandlerContext<unknown>) =>
        new Promise<string>((resolve) => {
          if (attempt > 1) clock.setTimeout(() => resolve('fresh'), 40);
          else
            clock.setTimeout(() => {
              progress(0.5, 'stale');
              resolve('stale');
            }, 70);
        }),
    },
  });
  const log: string[] = [];
  scheduler.events$.subscribe((e: SchedulerEvent) => {
    const job = 'job' in e ? e.job : undefined;
    log.push(
      `${e.at} ${e.type}` +
        (job ? ` ${job.id} ${job.state} a${job.attempt} ${job.progress.fraction}` : '') +
        (job?.error ? ` ${job.error.kind}` : ''),
    );
  });
  const work = (id: string, payload: Payload, extra: object = {}) =>
    scheduler.submit({ type: 'work', id, payload, resources: { cpu: 1 }, ...extra });
  work('a', { ms: 100, steps: 4 });
  work('b', { ms: 80, failUntil: 2 }, { priority: 'high' });
  work('c', { ms: 60, fatal: true });
  work('d', { ms: 50 }, { dependsOn: ['a'], resources: { gpu: 1 } });
  work('e', { ms: 50 }, { dependsOn: ['c'] });
  work('f', { ms: 40 }, { dependsOn: ['c'], dependencyPolicy: 'afterany', priority: 'low' });
  scheduler.submit({ type: 'hang', id: 'g', timeoutMs: 120, retry: { attempts: 2 } });
  work('h', { ms: 500 }, { group: 'slow', priority: 'background' });
  const stale = scheduler.submit({ type: 'stale', id: 's', timeoutMs: 50, retry: { attempts: 2 } });
  stale.state$.subscribe((snap) =>
    log.push(
      `${clock.now()} state$ s ${snap.state}${snap.stopping ? ' stopping' : ''} a${snap.attempt} ${snap.progress.fraction}`,
    ),
  );
  work('i', { ms: 30 }, { group: 'slow', priority: 'background' });
  await clock.advanceBy(70);
  scheduler.boost({ group: 'slow' }, { to: 'critical', forMs: 1_000 });
  scheduler.cancel('h');
  await clock.advanceBy(30);
  work('j', { ms: 20, failUntil: 5 });
  await clock.runUntilIdle();
  await scheduler.shutdown();
  return { log, actors };
}

describe('job actor hosts', () => {
  it('the lean host and XState createActor give the same events, times and outcomes', async () => {
    const lean = await workload(false);
    const xstate = await workload(true);
    expect(xstate.actors).toBeGreaterThanOrEqual(10); // every job was an XState actor there
    expect(lean.log).toEqual(xstate.log);
    // The stale report changed nothing, so state$ said nothing for it: no snapshot twice in a row.
    const states = lean.log.filter((l) => l.includes(' state$ s ')).map((l) => l.replace(/^\d+ /, ''));
    expect(states.length).toBeGreaterThan(4);
    states.forEach((line, i) => expect(line, `state$ #${i}`).not.toBe(states[i - 1]));
    const text = lean.log.join('\n');
    for (const fragment of [
      'job.retrying b',
      'job.completed b completed a3',
      'job.failed c failed a1',
      'job.cancelled e cancelled',
      'job.completed f',
      'job.failed g failed a2 0 timeout',
      'job.cancelled h cancelled',
      'job.failed j failed a3',
      'job.progress a running a1 0.5',
      'job.completed s completed a2',
    ]) {
      expect(text).toContain(fragment);
    }
  });
});
