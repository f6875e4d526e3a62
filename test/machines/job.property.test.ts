/**
 * Property test: random event sequences of any length against a real job actor (real invoked
 * handler, timers on a simulated clock). After every step the observed transition must be one
 * the documented table allows, and the lifecycle invariants must hold.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { UnrecoverableError } from '../../src/core/errors.js';
import type { BackoffPolicy } from '../../src/core/backoff.js';
import type { JobState } from '../../src/core/types.js';
import { jobMachine } from '../../src/machines/job.machine.js';
import { transitionTable } from '../../src/machines/diagram.js';
import {
  checkJobInvariants,
  createJobHarness,
  expectSameJob,
  makeAllocation,
  type JobStep,
} from '../helpers/job-harness.js';
import { numRuns } from '../helpers/num-runs.js';

const FINAL: ReadonlySet<string> = new Set<JobState>(['completed', 'failed', 'cancelled']);
const table = transitionTable(jobMachine);

/** The leaf states a state may move to on an event label; `stays` when it may stay put. */
function allowedTargets(state: string, labels: string[]): Set<string> {
  const rows = table.filter((r) => r.state === state && labels.includes(r.label));
  const out = new Set<string>(rows.map((r) => r.target ?? state));
  // Guarded rows may all fail (e.g. no timeout) and an unlisted event is ignored.
  if (rows.length === 0 || rows.every((r) => r.guard !== undefined)) out.add(state);
  return out;
}

/** The table labels a concrete step can stand for. */
function labelsOf(step: JobStep): string[] {
  switch (step.kind) {
    case 'send':
      return [step.event.type];
    case 'resolve':
      return ['done(handler)'];
    case 'reject':
      return ['error(handler)'];
    case 'advance':
      return ['after(jobTimeout)', 'after(retryBackoff)', 'after(stopTimeout)'];
  }
}

const failure = fc.oneof(
  fc.constant<unknown>(new Error('boom')),
  fc.constant<unknown>(new UnrecoverableError('fatal')),
  fc.constant<unknown>('a string'),
  fc.constant<unknown>(undefined),
  fc.constant<unknown>({ code: 42 }),
);

/**
 * A step that pushes the job along its lifecycle (ready, grant, start, fail, wait out the
 * backoff), chosen from the state when it runs. Mixed in with heavy weight so that random
 * sequences reach deep states (the last attempt, a retry after a timeout) often, not by luck.
 */
type Drive = { kind: 'drive'; failWith: unknown };

function concretise(h: ReturnType<typeof createJobHarness>, s: JobStep | Drive): JobStep {
  if (s.kind !== 'drive') return s;
  const c = h.actor.getSnapshot().context;
  switch (h.leaf()) {
    case 'pending':
      return { kind: 'send', event: { type: 'job.ready' } };
    case 'queued':
      return { kind: 'send', event: { type: 'job.allocated', allocation: makeAllocation() } };
    case 'scheduled':
      return { kind: 'send', event: { type: 'job.start' } };
    case 'working':
      return c.timeoutMs !== undefined && c.attempt % 2 === 0
        ? { kind: 'advance', ms: c.timeoutMs }
        : { kind: 'reject', error: s.failWith };
    case 'stopping':
      // Its handler settles at last — or, now and then, its stop timeout runs out first.
      return c.stopTimeoutMs !== undefined && c.attempt % 3 === 0
        ? { kind: 'advance', ms: c.stopTimeoutMs }
        : { kind: 'reject', error: s.failWith };
    case 'retrying':
      return { kind: 'advance', ms: c.retryDelayMs };
    default:
      return { kind: 'send', event: { type: 'job.ready' } };
  }
}

const randomStep: fc.Arbitrary<JobStep> = fc.oneof(
  fc.constant<JobStep>({ kind: 'send', event: { type: 'job.ready' } }),
  fc
    .constantFrom('resources', 'concurrency', 'paused' as const)
    .map((reason): JobStep => ({ kind: 'send', event: { type: 'job.wait', reason } })),
  fc
    .constant(null)
    .map((): JobStep => ({ kind: 'send', event: { type: 'job.allocated', allocation: makeAllocation() } })),
  fc.constant<JobStep>({ kind: 'send', event: { type: 'job.start' } }),
  fc.tuple(fc.double(), fc.option(fc.string(), { nil: undefined })).map(([fraction, note]): JobStep => ({
    kind: 'send',
    event: note === undefined ? { type: 'job.progress', fraction } : { type: 'job.progress', fraction, note },
  })),
  fc
    .constantFrom('user', 'shutdown' as const)
    .map((reason): JobStep => ({ kind: 'send', event: { type: 'job.cancel', reason } })),
  fc.constant<JobStep>({ kind: 'send', event: { type: 'job.dependencyFailed', dependencyId: 'dep' } }),
  fc.constant<JobStep>({ kind: 'send', event: { type: 'job.abandon' } }),
  fc.anything().map((output): JobStep => ({ kind: 'resolve', output })),
  failure.map((error): JobStep => ({ kind: 'reject', error })),
  fc.integer({ min: 0, max: 5_000 }).map((ms): JobStep => ({ kind: 'advance', ms })),
);

const step: fc.Arbitrary<JobStep | Drive> = fc.oneof(
  { arbitrary: randomStep, weight: 1 },
  { arbitrary: failure.map((failWith): Drive => ({ kind: 'drive', failWith })), weight: 1 },
);

const backoff: fc.Arbitrary<BackoffPolicy> = fc.record({
  type: fc.constantFrom('fixed', 'exponential' as const),
  delayMs: fc.integer({ min: 0, max: 2_000 }),
  maxDelayMs: fc.integer({ min: 0, max: 10_000 }),
  jitter: fc.boolean(),
});

const config = fc.record({
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  timeoutMs: fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: undefined }),
  stopTimeoutMs: fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: undefined }),
  backoff,
  seed: fc.integer(),
});

/** The config without its undefined options (the input type takes none). */
function definedOnly<T extends object>(cfg: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(cfg).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

describe('job machine — random event sequences', () => {
  it('stays inside the transition relation and keeps every invariant after every step', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(step, { maxLength: 80 }), async (cfg, steps) => {
        const h = createJobHarness(definedOnly(cfg));
        let finalState: string | undefined;
        let lastAttempt = 0;
        let enteredAt = h.clock.now();
        try {
          for (const planned of steps) {
            const s = concretise(h, planned);
            const before = h.leaf();
            await h.apply(s);
            const after = h.leaf();
            const allowed = allowedTargets(before, labelsOf(s));
            if (s.kind === 'advance') allowed.add(before); // the timer may not be due yet
            expect(allowed.has(after), `${before} --${labelsOf(s).join('|')}--> ${after}`).toBe(true);
            // Once the clock moved, every due timer has fired: a job never outstays its timeout
            // or its backoff. (Timers fire as time passes, so only an `advance` can fire them.)
            const c = h.actor.getSnapshot().context;
            const stayed = h.clock.now() - enteredAt;
            if (s.kind === 'advance' && after === before && after === 'retrying') {
              expect(stayed).toBeLessThan(c.retryDelayMs);
            }
            if (
              s.kind === 'advance' &&
              after === before &&
              after === 'working' &&
              c.timeoutMs !== undefined
            ) {
              expect(stayed).toBeLessThan(c.timeoutMs);
            }
            // …nor holds its resources past its stop timeout once told to stop.
            if (
              s.kind === 'advance' &&
              after === before &&
              after === 'stopping' &&
              c.stopTimeoutMs !== undefined
            ) {
              expect(stayed).toBeLessThan(c.stopTimeoutMs);
            }
            if (after !== before) enteredAt = h.clock.now();
            if (finalState !== undefined) expect(after).toBe(finalState);
            if (FINAL.has(after)) finalState = after;
            const attempt = h.actor.getSnapshot().context.attempt;
            expect(attempt).toBeGreaterThanOrEqual(lastAttempt);
            lastAttempt = attempt;
            checkJobInvariants(h);
          }
        } finally {
          h.actor.stop();
        }
      }),
      { numRuns: numRuns(1_000) },
    );
  });
});

describe('compiled job logic — random event sequences beside the machine', () => {
  it('agrees with XState running jobMachine on state, context, handler runs and releases after every step (in createActor and on the lean host)', async () => {
    await fc.assert(
      fc.asyncProperty(config, fc.array(step, { maxLength: 80 }), async (cfg, steps) => {
        const input = definedOnly(cfg);
        const machine = createJobHarness(input);
        const compiled = createJobHarness(input, 'compiled');
        const lean = createJobHarness(input, 'lean');
        try {
          for (const [i, planned] of steps.entries()) {
            const s = concretise(machine, planned);
            await machine.apply(s);
            await compiled.apply(s);
            await lean.apply(s);
            expectSameJob(compiled, machine, `step ${i} (${s.kind})`);
            expectSameJob(lean, machine, `step ${i} (${s.kind}, lean host)`);
            checkJobInvariants(compiled);
            checkJobInvariants(lean);
          }
        } finally {
          machine.actor.stop();
          compiled.actor.stop();
        }
      }),
      { numRuns: numRuns(500) },
    );
  });
});
