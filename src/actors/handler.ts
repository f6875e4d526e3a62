/**
 * The handler runner: the promise actor that a job invokes as `runHandler` for each attempt.
 * It looks up the handler registered for the job's type and hands it the attempt's context.
 * Whatever the handler does — throw synchronously, reject with a non-Error, never settle — the
 * job machine decides what it means; a handler that settles after its attempt ended is ignored.
 */
import { fromPromise } from 'xstate';
import { UnrecoverableError } from '../core/errors.js';
import type { Allocation } from '../core/types.js';
import type { JobHandlerInput } from '../machines/job.machine.js';
import type { AttemptSignal, RunHandler } from '../machines/job.logic.js';

/** What a handler receives for one attempt. */
export type HandlerContext<TPayload = unknown> = {
  id: string;
  payload: TPayload;
  /** 1-based. */
  attempt: number;
  allocation: Allocation;
  /** Aborted when the attempt times out, is cancelled or the scheduler shuts down. */
  signal: AbortSignal;
  /** Reports progress in [0, 1] with an optional note. */
  progress: (fraction: number, note?: string) => void;
};

/** A job handler: an async function of its context. */
export type JobHandler<TPayload = never, TResult = unknown> = (
  context: HandlerContext<TPayload>,
) => Promise<TResult> | TResult;

/** Handlers by job type. */
export type Handlers = Record<string, JobHandler<never, unknown>>;

/** The payload type a handler expects. */
export type PayloadOf<H> = H extends JobHandler<infer P, unknown> ? P : never;

/**
 * Where the engine's own handlers (simulate's) find the attempt, to hear of its abort without
 * an AbortController. Not part of the public handler context.
 */
export const ATTEMPT: unique symbol = Symbol('ai-batch-scheduler.attempt');

/**
 * One attempt's handler context. A class, not an object literal with a getter: a literal with an
 * accessor costs ~1 µs to make, this ~0.04 µs. `signal` is made when first read (most handlers
 * never read it); it is a getter on the prototype, so `{ ...context }` would not copy it — read it
 * from the context itself.
 */
class AttemptContext implements HandlerContext<unknown> {
  readonly id: string;
  readonly payload: unknown;
  readonly attempt: number;
  readonly allocation: Allocation;
  readonly progress: (fraction: number, note?: string) => void;
  readonly [ATTEMPT]: AttemptSignal;

  constructor(input: JobHandlerInput, attempt: AttemptSignal) {
    this.id = input.jobId;
    this.payload = input.payload;
    this.attempt = input.attempt;
    this.allocation = input.allocation;
    this.progress = input.progress;
    this[ATTEMPT] = attempt;
  }

  get signal(): AbortSignal {
    return this[ATTEMPT].signal;
  }
}

/**
 * Runs one attempt with the handler registered for the job's type: what the compiled job logic
 * (`createJobLogic`) invokes. A missing handler is an `UnrecoverableError` (no retry).
 */
export function runHandler(handlers: Handlers): RunHandler {
  // Not async: the job logic turns a synchronous throw or a plain value into a settled promise
  // itself, and an extra async layer costs a promise and two microtask turns per attempt.
  return (input, attempt) => {
    const handler = Object.hasOwn(handlers, input.type) ? handlers[input.type] : undefined;
    if (typeof handler !== 'function')
      throw new UnrecoverableError(`no handler is registered for type ${input.type}`);
    return (handler as JobHandler<unknown>)(new AttemptContext(input, attempt));
  };
}

/** The same, as the `runHandler` promise actor that `jobMachine` invokes. */
export function handlerRunner(handlers: Handlers) {
  const run = runHandler(handlers);
  // async: a handler's synchronous throw becomes a rejection, as with the compiled logic.
  return fromPromise<unknown, JobHandlerInput>(async ({ input, signal }) => run(input, { signal }));
}
