import { SimulatedClock, createActor, fromPromise, type StateValue } from 'xstate';
import { abortWith } from '../../src/machines/attempt.js';
import { expect } from 'vitest';
import { createJobLogic, type JobLogic } from '../../src/machines/job.logic.js';
import { LeanActor } from '../../src/runtime/lean-actor.js';
import {
  isStoppingValue,
  jobMachine,
  jobStateOf,
  type JobEmitted,
  type JobEvent,
  type JobHandlerInput,
  type JobContext,
  type JobMachineInput,
} from '../../src/machines/job.machine.js';
import type { Allocation, JobState } from '../../src/core/types.js';

/** One attempt of the handler, held open until the test settles it. */
export type HeldAttempt = {
  input: JobHandlerInput;
  signal: AbortSignal;
  resolve: (output: unknown) => void;
  reject: (error: unknown) => void;
  /** Set when the test settled it (as opposed to the job aborting it). */
  settled: boolean;
};

/** A concrete thing a test does to a job: send an event, settle the handler, or let time pass. */
export type JobStep =
  | { kind: 'send'; event: JobEvent }
  | { kind: 'resolve'; output: unknown }
  | { kind: 'reject'; error: unknown }
  | { kind: 'advance'; ms: number };

let allocationSeq = 0;

/** A fresh allocation with a unique id. */
export function makeAllocation(): Allocation {
  allocationSeq += 1;
  return { id: `alloc-${allocationSeq}`, nodeId: 'node-0', cpu: 1, memoryMb: 512, gpus: [], custom: {} };
}

/**
 * Which executor runs the job: XState's interpreter of `jobMachine`, the compiled logic in
 * XState's `createActor`, or the compiled logic on the runtime's lean host.
 */
export type JobEngine = 'machine' | 'compiled' | 'lean';

/** What the tests use of a job actor, whichever engine runs it. */
export type HarnessActor = {
  send: (event: JobEvent) => void;
  getSnapshot: () => { status: string; value: StateValue; context: JobContext };
  on: (type: 'job.released', listener: (event: JobEmitted) => void) => unknown;
  start: () => unknown;
  stop: () => unknown;
};

/** The lean host as the harness drives it: created at once, so `start` does nothing; it stops by ending. */
function leanHarnessActor(logic: JobLogic, clock: SimulatedClock, input: object): HarnessActor {
  const actor = new LeanActor(
    {
      logic,
      clock,
      onError: (error) => {
        throw error;
      },
    },
    input,
  );
  return Object.assign(actor, { start: () => actor, stop: () => actor }) as unknown as HarnessActor;
}

/** The leaf state of a job's state value: a job state, `running` as `working` or `stopping`. */
export function leafStateOf(value: StateValue): string {
  const state = jobStateOf(value);
  if (state !== 'running') return state;
  return isStoppingValue(value) ? 'stopping' : 'working';
}

/**
 * A job actor on a simulated clock whose handler attempts stay open until the test resolves or
 * rejects them, with grants and releases counted from the outside.
 */
export function createJobHarness(
  overrides: Partial<Omit<JobMachineInput, 'clock'>> = {},
  engine: JobEngine = 'machine',
) {
  const clock = new SimulatedClock();
  const attempts: HeldAttempt[] = [];
  const hold = (input: JobHandlerInput, signal: AbortSignal) =>
    new Promise((resolve, reject) => attempts.push({ input, signal, resolve, reject, settled: false }));
  const input = { id: 'job-1', type: 'test', clock, ...overrides };
  const compiledLogic = (inPlace = false) =>
    createJobLogic((i, attempt) => hold(i, attempt.signal), undefined, { inPlace });
  const actor: HarnessActor =
    engine === 'lean'
      ? leanHarnessActor(compiledLogic(true), clock, input)
      : engine === 'compiled'
        ? createActor(
            createJobLogic((i, attempt) => hold(i, attempt.signal)),
            { clock, input },
          )
        : createActor(
            jobMachine.provide({
              actors: {
                runHandler: fromPromise<unknown, JobHandlerInput>(({ input: i, signal }) => {
                  abortWith(signal, i.control);
                  return hold(i, i.control.signal);
                }),
              },
            }),
            { clock, input },
          );
  const releases: JobEmitted[] = [];
  const grants: Allocation[] = [];
  actor.on('job.released', (event) => releases.push(event));
  actor.start();

  const state = (): JobState => jobStateOf(actor.getSnapshot().value);
  /** The leaf state: a job state, `running` told apart as `working` or `stopping`. */
  const leaf = (): string => leafStateOf(actor.getSnapshot().value);

  /** Lets promise callbacks (handler settlement → done/error events) run. */
  const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

  /**
   * A finished actor accepts nothing; XState says so with a warning, which is checked here
   * rather than printed thousands of times by the property test.
   */
  function sendToFinishedActor(event: JobEvent): void {
    const warnings: unknown[] = [];
    const original = console.warn;
    console.warn = (...args: unknown[]) => warnings.push(args.join(' '));
    try {
      actor.send(event);
    } finally {
      console.warn = original;
    }
    if (warnings.some((w) => !String(w).includes('stopped actor'))) {
      throw new Error(`unexpected warning from a finished job: ${warnings.join('; ')}`);
    }
  }

  async function apply(step: JobStep): Promise<void> {
    switch (step.kind) {
      case 'send': {
        const before = state();
        if (actor.getSnapshot().status === 'done') {
          sendToFinishedActor(step.event);
          break;
        }
        actor.send(step.event);
        if (step.event.type === 'job.allocated' && before === 'queued' && state() === 'scheduled') {
          grants.push(step.event.allocation);
        }
        break;
      }
      case 'resolve':
      case 'reject': {
        const attempt = attempts.at(-1);
        if (attempt && !attempt.settled) {
          attempt.settled = true;
          if (step.kind === 'resolve') attempt.resolve(step.output);
          else attempt.reject(step.error);
        }
        break;
      }
      case 'advance':
        clock.increment(step.ms);
        break;
    }
    await flush();
  }

  return { clock, actor, attempts, releases, grants, state, leaf, apply, flush };
}

export type JobHarness = ReturnType<typeof createJobHarness>;

/**
 * The invariants of DESIGN.md for one job, checked on a live harness: resources are held exactly
 * in `scheduled` and `running`, released exactly once per grant, attempts stay within the
 * maximum, a wait reason exists exactly while waiting, and an attempt that was not settled by its
 * handler has its signal aborted once the job left `running`.
 */
export function checkJobInvariants(h: JobHarness): void {
  const snapshot = h.actor.getSnapshot();
  const state = h.state();
  const c = snapshot.context;
  const holding = state === 'scheduled' || state === 'running';
  const fail = (what: string): never => {
    throw new Error(`invariant broken in ${state}: ${what}`);
  };
  if (holding !== (c.allocation !== undefined)) fail('allocation present exactly in scheduled and running');
  if (holding && c.allocation !== h.grants.at(-1)) fail('the allocation is the last grant');
  if (h.grants.length - h.releases.length !== (holding ? 1 : 0)) fail('one release per grant');
  h.releases.forEach((r, i) => {
    if (r.allocation !== h.grants[i]) fail(`release ${i} returns grant ${i}`);
  });
  if (c.attempt > c.maxAttempts || c.attempt < 0) fail(`attempt ${c.attempt} within 0..${c.maxAttempts}`);
  if (h.attempts.length !== c.attempt) fail('one handler run per attempt');
  const waiting = state === 'pending' || state === 'queued' || state === 'retrying';
  if (waiting !== (c.waitReason !== undefined)) fail('wait reason exactly while waiting');
  const final = state === 'completed' || state === 'failed' || state === 'cancelled';
  if (final !== (snapshot.status === 'done')) fail('status done exactly in final states');
  if (final !== (c.endedAt !== undefined)) fail('endedAt set exactly in final states');
  if (state === 'completed' && c.error !== undefined) fail('a completed job has no error');
  if (state === 'failed' && c.error?.kind !== 'error' && c.error?.kind !== 'timeout')
    fail('failed by error or timeout');
  if (state === 'cancelled' && !['cancelled', 'shutdown', 'dependency'].includes(c.error?.kind ?? '')) {
    fail('cancelled with a cancellation kind');
  }
  const stopping = isStoppingValue(snapshot.value);
  if (stopping !== (state === 'running' && c.stopping !== undefined))
    fail('context.stopping set exactly in the stopping state');
  h.attempts.forEach((a, i) => {
    const last = i === h.attempts.length - 1;
    const current = state === 'running' && last;
    if (!current && !a.settled && !a.signal.aborted)
      fail(`attempt ${i + 1} was left running without an abort`);
    // Resources truth: a job leaves an attempt behind (to retry, or to end) only once its handler
    // has settled — or, its resources force-released, as an abandoned attempt of a final job.
    if (!a.settled && !current && !(last && c.abandoned && final))
      fail(`attempt ${i + 1} still runs, yet the job moved on`);
    if (current && stopping !== a.signal.aborted)
      fail('the running attempt is aborted exactly when stopping');
  });
}

/**
 * Asserts that two harnesses driven by the same steps hold the same job: state value, status,
 * context (the clock aside), handler runs and releases.
 */
export function expectSameJob(actual: JobHarness, expected: JobHarness, where: string): void {
  const a = actual.actor.getSnapshot();
  const e = expected.actor.getSnapshot();
  expect(a.value, where).toEqual(e.value);
  expect(a.status, where).toBe(e.status);
  expect({ ...a.context, clock: null }, where).toEqual({ ...e.context, clock: null });
  expect(actual.attempts.length, where).toBe(expected.attempts.length);
  expect(
    actual.attempts.map((x) => x.signal.aborted),
    where,
  ).toEqual(expected.attempts.map((x) => x.signal.aborted));
  expect(actual.releases, where).toEqual(expected.releases);
  expect(actual.clock.now(), where).toBe(expected.clock.now());
}
