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
import { abortWith } from '../machines/attempt.js';

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

/**
 * A handler of any payload, as `Handlers` holds it. Declared as a method so that its parameter is
 * compared both ways: a handler written for one payload type (`(ctx: HandlerContext<Image>) => …`)
 * is accepted, and a handler written inline without a type gets `HandlerContext<unknown>` — a
 * payload it must check — rather than `never`, which would refuse every payload at `submit`.
 */
type AnyPayloadHandler = {
  handle(context: HandlerContext<unknown>): unknown;
}['handle'];

/** Handlers by job type. */
export type Handlers = Record<string, AnyPayloadHandler>;

/** The payload type a handler expects. */
export type PayloadOf<H> = H extends (context: HandlerContext<infer P>) => unknown ? P : never;

/**
 * Where the engine's own handlers (simulate's) find the attempt, to hear of its abort without
 * an AbortController. Not part of the public handler context.
 */
export const ATTEMPT: unique symbol = Symbol('ai-batch-scheduler.attempt');

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
    const context = {
      id: input.jobId,
      payload: input.payload,
      attempt: input.attempt,
      allocation: input.allocation,
      progress: input.progress,
      [ATTEMPT]: attempt,
    };
    Object.defineProperty(context, 'signal', SIGNAL);
    return (handler as JobHandler<unknown>)(context as unknown as HandlerContext<unknown>);
  };
}

/**
 * The handler context's own `signal`: a getter that makes the AbortSignal on first read (most
 * handlers never read it). One descriptor for every context, so contexts share one shape: an
 * object literal with a getter of its own fell into dictionary mode (~1.2 µs and ~850 bytes per
 * attempt here; this ~0.4 µs). Own and enumerable, so `{ ...ctx }` keeps the signal — a class
 * with a prototype getter would be cheaper still, but a spread copy would silently lose it.
 */
const SIGNAL: PropertyDescriptor & ThisType<{ [ATTEMPT]: AttemptSignal }> = {
  get() {
    return this[ATTEMPT].signal;
  },
  enumerable: true,
  configurable: true,
};

/** The same, as the `runHandler` promise actor that `jobMachine` invokes. */
export function handlerRunner(handlers: Handlers) {
  const run = runHandler(handlers);
  // async: a handler's synchronous throw becomes a rejection, as with the compiled logic.
  // The attempt's own stop signal (aborted when it is told to stop), also aborted if XState stops
  // the invoked actor (the job left `running`).
  return fromPromise<unknown, JobHandlerInput>(async ({ input, signal }) => {
    abortWith(signal, input.control);
    return run(input, input.control);
  });
}
