import { describe, expect, it } from 'vitest';
import { UnrecoverableError } from '../../src/core/errors.js';
import { checkJobInvariants, createJobHarness, makeAllocation } from '../helpers/job-harness.js';
import { SimulatedClock, createActor } from 'xstate';
import { handlerRunner } from '../../src/actors/handler.js';
import { jobMachine } from '../../src/machines/job.machine.js';

const fixedBackoff = { type: 'fixed', delayMs: 100, maxDelayMs: 100, jitter: false } as const;

async function startAttempt(h: ReturnType<typeof createJobHarness>) {
  if (h.state() === 'pending') await h.apply({ kind: 'send', event: { type: 'job.ready' } });
  await h.apply({ kind: 'send', event: { type: 'job.allocated', allocation: makeAllocation() } });
  await h.apply({ kind: 'send', event: { type: 'job.start' } });
}

describe('job machine scenarios', () => {
  it('runs a job to completion, handing the handler its attempt, allocation and payload', async () => {
    const h = createJobHarness({ payload: { image: 'a.png' } });
    expect(h.state()).toBe('pending');
    expect(h.actor.getSnapshot().context.waitReason).toBe('dependencies');
    await h.apply({ kind: 'send', event: { type: 'job.ready' } });
    await h.apply({ kind: 'send', event: { type: 'job.wait', reason: 'concurrency' } });
    expect(h.actor.getSnapshot().context.waitReason).toBe('concurrency');
    h.clock.increment(40);
    await startAttempt(h);
    expect(h.state()).toBe('running');
    const [attempt] = h.attempts;
    expect(attempt?.input).toMatchObject({ jobId: 'job-1', attempt: 1, payload: { image: 'a.png' } });
    expect(attempt?.input.allocation).toBe(h.grants[0]);
    attempt?.input.progress(0.4, 'resizing');
    expect(h.actor.getSnapshot().context.progress).toEqual({ fraction: 0.4, note: 'resizing' });
    h.clock.increment(60);
    await h.apply({ kind: 'resolve', output: 'done.png' });
    const c = h.actor.getSnapshot().context;
    expect(h.state()).toBe('completed');
    expect(c.output).toBe('done.png');
    expect(c.progress.fraction).toBe(1);
    expect([c.submittedAt, c.startedAt, c.endedAt]).toEqual([0, 40, 100]);
    expect(h.releases.map((r) => r.allocation)).toEqual(h.grants);
    checkJobInvariants(h);
  });

  it('retries a failed attempt after the backoff without holding resources, then succeeds', async () => {
    const h = createJobHarness({ maxAttempts: 3, backoff: fixedBackoff });
    await startAttempt(h);
    await h.apply({ kind: 'reject', error: new Error('CUDA out of memory') });
    expect(h.state()).toBe('retrying');
    expect(h.actor.getSnapshot().context).toMatchObject({
      allocation: undefined,
      waitReason: 'backoff',
      retryDelayMs: 100,
      error: { kind: 'error', message: 'CUDA out of memory' },
    });
    expect(h.releases).toHaveLength(1);
    await h.apply({ kind: 'advance', ms: 99 });
    expect(h.state()).toBe('retrying');
    await h.apply({ kind: 'advance', ms: 1 });
    expect(h.state()).toBe('queued');
    await startAttempt(h);
    expect(h.attempts[1]?.input.attempt).toBe(2);
    await h.apply({ kind: 'resolve', output: 1 });
    expect(h.state()).toBe('completed');
    expect(h.releases).toHaveLength(2);
  });

  it('fails once attempts are exhausted, and at once on an UnrecoverableError', async () => {
    const exhausted = createJobHarness({ maxAttempts: 1 });
    await startAttempt(exhausted);
    await exhausted.apply({ kind: 'reject', error: 'not an Error' });
    expect(exhausted.state()).toBe('failed');
    expect(exhausted.actor.getSnapshot().context.error).toEqual({ kind: 'error', message: 'not an Error' });

    const fatal = createJobHarness({ maxAttempts: 5 });
    await startAttempt(fatal);
    await fatal.apply({ kind: 'reject', error: new UnrecoverableError('bad input') });
    expect(fatal.state()).toBe('failed');
    expect(fatal.actor.getSnapshot().context.attempt).toBe(1);
  });

  it('times out an attempt: the signal is aborted, it holds its resources until the handler settles, then retries', async () => {
    const h = createJobHarness({ maxAttempts: 2, timeoutMs: 500, backoff: fixedBackoff });
    await startAttempt(h);
    await h.apply({ kind: 'advance', ms: 499 });
    expect(h.leaf()).toBe('working');
    await h.apply({ kind: 'advance', ms: 1 });
    // Told to stop: still running (stopping), still holding what it was granted.
    expect(h.leaf()).toBe('stopping');
    expect(h.attempts[0]?.signal.aborted).toBe(true);
    expect(h.releases).toHaveLength(0);
    const c = h.actor.getSnapshot().context;
    expect(c.error).toEqual({ kind: 'timeout', message: 'attempt timed out after 500 ms' });
    expect(c.stopping).toEqual({ reason: 'timeout', outcome: 'retrying', since: 500 });
    // However long the handler takes to stop.
    await h.apply({ kind: 'advance', ms: 60_000 });
    expect(h.leaf()).toBe('stopping');
    checkJobInvariants(h);
    // A result after the timeout does not complete the job: the attempt timed out.
    await h.apply({ kind: 'resolve', output: 'too late' });
    expect(h.state()).toBe('retrying');
    expect(h.releases).toHaveLength(1);
    expect(h.actor.getSnapshot().context.stopping).toBeUndefined();
    await h.apply({ kind: 'advance', ms: 100 });
    await startAttempt(h);
    await h.apply({ kind: 'advance', ms: 500 });
    expect(h.leaf()).toBe('stopping');
    await h.apply({ kind: 'reject', error: new Error('aborted') });
    expect(h.state()).toBe('failed');
    expect(h.actor.getSnapshot().context.error?.kind).toBe('timeout');
    expect(h.releases).toHaveLength(2);
  });

  it('a stop timeout force-releases an attempt whose handler never settles: failed, not retried', async () => {
    const h = createJobHarness({
      maxAttempts: 3,
      timeoutMs: 500,
      stopTimeoutMs: 2_000,
      backoff: fixedBackoff,
    });
    await startAttempt(h);
    await h.apply({ kind: 'advance', ms: 500 });
    expect(h.leaf()).toBe('stopping');
    await h.apply({ kind: 'advance', ms: 1_999 });
    expect(h.leaf()).toBe('stopping');
    expect(h.releases).toHaveLength(0);
    await h.apply({ kind: 'advance', ms: 1 });
    // Attempts were left, but a retry could overlap the abandoned one: it fails instead.
    expect(h.state()).toBe('failed');
    expect(h.releases).toHaveLength(1);
    const c = h.actor.getSnapshot().context;
    expect(c.abandoned).toBe(true);
    expect(c.error?.kind).toBe('timeout');
    expect(c.error?.message).toMatch(/did not stop within 2000 ms: resources force-released; not retried/);
    expect(h.attempts).toHaveLength(1);
    expect(h.attempts[0]?.settled).toBe(false);
    checkJobInvariants(h);
  });

  it('job.abandon releases a stopping attempt at once (shutdown), and a cancel while stopping ends cancelled', async () => {
    const h = createJobHarness({ maxAttempts: 3, timeoutMs: 500, backoff: fixedBackoff });
    await startAttempt(h);
    await h.apply({ kind: 'send', event: { type: 'job.abandon' } });
    expect(h.leaf()).toBe('working'); // only a stopping attempt can be abandoned
    await h.apply({ kind: 'advance', ms: 500 });
    expect(h.actor.getSnapshot().context.stopping?.outcome).toBe('retrying');
    await h.apply({ kind: 'send', event: { type: 'job.cancel', reason: 'user' } });
    expect(h.leaf()).toBe('stopping');
    expect(h.actor.getSnapshot().context.stopping).toEqual({
      reason: 'cancel',
      outcome: 'cancelled',
      since: 500,
    });
    // A second cancel (shutdown) changes nothing: the first one stands.
    await h.apply({ kind: 'send', event: { type: 'job.cancel', reason: 'shutdown' } });
    expect(h.actor.getSnapshot().context.error?.kind).toBe('cancelled');
    await h.apply({ kind: 'send', event: { type: 'job.abandon' } });
    expect(h.state()).toBe('cancelled');
    expect(h.releases).toHaveLength(1);
    expect(h.actor.getSnapshot().context.error?.message).toMatch(/had not stopped at shutdown/);
    checkJobInvariants(h);
  });

  it('keeps the original error as the cause of a failed attempt', async () => {
    const h = createJobHarness({ maxAttempts: 1 });
    const error = new TypeError('bad tensor');
    await startAttempt(h);
    await h.apply({ kind: 'reject', error });
    expect(h.state()).toBe('failed');
    expect(h.actor.getSnapshot().context.cause).toBe(error);
  });

  it('accepts cancel in every non-final state and releases a held allocation exactly once', async () => {
    const reach = {
      pending: async () => undefined,
      queued: async (h: ReturnType<typeof createJobHarness>) =>
        h.apply({ kind: 'send', event: { type: 'job.ready' } }),
      scheduled: async (h: ReturnType<typeof createJobHarness>) => {
        await h.apply({ kind: 'send', event: { type: 'job.ready' } });
        await h.apply({ kind: 'send', event: { type: 'job.allocated', allocation: makeAllocation() } });
      },
      running: startAttempt,
      retrying: async (h: ReturnType<typeof createJobHarness>) => {
        await startAttempt(h);
        await h.apply({ kind: 'reject', error: new Error('x') });
      },
    };
    for (const [state, go] of Object.entries(reach)) {
      const h = createJobHarness({ maxAttempts: 2 });
      await go(h);
      expect(h.state()).toBe(state);
      await h.apply({ kind: 'send', event: { type: 'job.cancel', reason: 'shutdown' } });
      if (state === 'running') {
        // Its handler is told to stop; the job holds on until the handler has settled.
        expect(h.leaf()).toBe('stopping');
        expect(h.releases).toHaveLength(0);
        await h.apply({ kind: 'reject', error: new Error('AbortError') });
      }
      expect(h.state()).toBe('cancelled');
      expect(h.actor.getSnapshot().context.error).toEqual({
        kind: 'shutdown',
        message: 'scheduler shut down',
      });
      expect(h.releases).toHaveLength(h.grants.length);
      checkJobInvariants(h);
      if (state === 'running') expect(h.attempts[0]?.signal.aborted).toBe(true);
    }
  });

  it('is cancelled with kind dependency, naming the cause, when a dependency fails', async () => {
    const h = createJobHarness();
    await h.apply({ kind: 'send', event: { type: 'job.dependencyFailed', dependencyId: 'prep' } });
    expect(h.state()).toBe('cancelled');
    expect(h.actor.getSnapshot().context.error).toEqual({
      kind: 'dependency',
      message: 'dependency prep did not complete',
      dependencyId: 'prep',
    });
  });

  it('draws the same jitter for the same seed', async () => {
    const delays = async (seed: number) => {
      const h = createJobHarness({
        maxAttempts: 2,
        seed,
        backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 60_000, jitter: true },
      });
      await startAttempt(h);
      await h.apply({ kind: 'reject', error: new Error('x') });
      return h.actor.getSnapshot().context.retryDelayMs;
    };
    expect(await delays(1)).toBe(await delays(1));
    const spread = new Set(await Promise.all([1, 2, 3, 4, 5, 6].map(delays)));
    expect(spread.size).toBeGreaterThan(1);
  });
});

describe('the exported jobMachine with handlerRunner', () => {
  it('aborts the handler of a running job told to stop, and ends cancelled once it settles', async () => {
    const clock = new SimulatedClock();
    let aborted = false;
    const machine = jobMachine.provide({
      actors: {
        runHandler: handlerRunner({
          work: ({ signal }) =>
            new Promise((_, reject) =>
              signal.addEventListener('abort', () => {
                aborted = true;
                reject(new Error('stopped'));
              }),
            ),
        }),
      },
    });
    const actor = createActor(machine, { clock, input: { id: 'j', type: 'work', clock } }).start();
    actor.send({ type: 'job.ready' });
    actor.send({ type: 'job.allocated', allocation: makeAllocation() });
    actor.send({ type: 'job.start' });
    actor.send({ type: 'job.cancel', reason: 'user' });
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    await Promise.resolve();
    await Promise.resolve();
    expect(aborted).toBe(true);
    expect(actor.getSnapshot().value).toBe('cancelled');
  });
});
