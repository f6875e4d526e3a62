import { and, assign, emit, fromPromise, setup } from 'xstate';
import type { SnapshotFrom, StateValue } from 'xstate';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from '../core/backoff.js';
import { describeError, isUnrecoverable } from '../core/errors.js';
import { DONE_PROGRESS, NO_PROGRESS, nextProgress, type Progress } from '../core/progress.js';
import { nextRandom, seedFromString } from '../core/random.js';
import { Attempt } from './attempt.js';
import type {
  Allocation,
  JobError,
  JobState,
  NowSource,
  QueuedWaitReason,
  WaitReason,
} from '../core/types.js';

/**
 * The longest delay a timer may have: Node clamps anything longer to 1 ms. A job without a
 * timeout still arms its named `jobTimeout` delay with this value, and the `hasTimeout` guard
 * makes that timer a no-op; it is cleared when the job leaves `running`.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** What the `runHandler` actor receives for one attempt. */
export type JobHandlerInput = {
  jobId: string;
  type: string;
  payload: unknown;
  /** 1-based number of this attempt. */
  attempt: number;
  allocation: Allocation;
  /** Reports progress of this attempt; reports after the attempt ended are ignored. */
  progress: (fraction: number, note?: string) => void;
  /** This attempt's stop signal: aborted when it is told to stop (its handler may run on). */
  control: Attempt;
};

/** Why a running attempt was told to stop. */
export type StopReason = 'cancel' | 'timeout' | 'shutdown';

/**
 * An attempt told to stop whose handler has not settled yet: the job stays `running`, holding
 * its resources, until the handler settles; then it goes to `outcome` (decided when it was told).
 */
export type JobStopping = {
  reason: StopReason;
  /** Where the job goes once the handler settled (or its resources were force-released). */
  outcome: 'cancelled' | 'retrying' | 'failed';
  /** Clock time when the attempt was told to stop. */
  since: number;
};

/** What a job actor is created with. */
export type JobMachineInput = {
  id: string;
  type: string;
  group?: string;
  payload?: unknown;
  /** The one injected clock; the machine never reads `Date.now()`. */
  clock: NowSource;
  /** Total tries, the first included. @default 1 */
  maxAttempts?: number;
  /** Per-attempt timeout in ms; none when absent. */
  timeoutMs?: number;
  /**
   * How long an attempt told to stop may hold its resources before they are force-released (its
   * handler still running, abandoned). @default none: held until the handler settles
   */
  stopTimeoutMs?: number;
  /** @default DEFAULT_BACKOFF */
  backoff?: BackoffPolicy;
  /** Seed for backoff jitter. @default derived from the id */
  seed?: number;
  /** When it was submitted, where the actor is made later than that. @default now */
  submittedAt?: number;
  /** Attempts it has had already (a job recovered from a store). @default 0 */
  attempt?: number;
  /** Its last error so far (a job recovered from a store). */
  error?: JobError;
};

/** The job actor's context: plain data plus the clock it reads. */
export type JobContext = {
  id: string;
  type: string;
  group: string | undefined;
  payload: unknown;
  clock: NowSource;
  attempt: number;
  maxAttempts: number;
  timeoutMs: number | undefined;
  stopTimeoutMs: number | undefined;
  backoff: BackoffPolicy;
  rngState: number;
  /** Present exactly in `scheduled` and `running`. */
  allocation: Allocation | undefined;
  progress: Progress;
  error: JobError | undefined;
  /** What the handler threw or rejected with, as it was (a failed attempt's; `JobFailedError.cause`). */
  cause: unknown;
  /**
   * Present while the attempt in `running` was told to stop and its handler has not settled; kept
   * after a forced release (`abandoned`), cleared by the next attempt.
   */
  stopping: JobStopping | undefined;
  /** The last attempt's resources were force-released while its handler still ran. */
  abandoned: boolean;
  /** Present exactly in `pending`, `queued` and `retrying`. */
  waitReason: WaitReason | undefined;
  /** The delay of the current (or last) backoff, in ms. */
  retryDelayMs: number;
  output: unknown;
  submittedAt: number;
  /** When the job last entered `queued` (aging counts from here). */
  queuedAt: number | undefined;
  /** When the first attempt started. */
  startedAt: number | undefined;
  endedAt: number | undefined;
};

/** Events the runtime sends to a job. Handler results, the timeout and the backoff are internal. */
export type JobEvent =
  /** `at`: when it became ready, where it is told later than that. */
  | { type: 'job.ready'; at?: number }
  | { type: 'job.wait'; reason: QueuedWaitReason }
  | { type: 'job.allocated'; allocation: Allocation }
  | { type: 'job.start' }
  | {
      type: 'job.progress';
      fraction: number;
      note?: string;
      /** The reporting attempt; a stale one is ignored. */ attempt?: number;
    }
  | { type: 'job.cancel'; reason?: 'user' | 'shutdown'; message?: string }
  /** A stopping attempt's resources are released now, its handler abandoned (shutdown's last resort). */
  | { type: 'job.abandon' }
  | { type: 'job.dependencyFailed'; dependencyId: string; message?: string }
  /**
   * A job recovered from a store while it waited out a backoff: it waits the rest of it
   * (`delayMs`), then queues, as a retry does.
   */
  | { type: 'job.retry'; delayMs: number };

/** Emitted (observe with `actor.on('job.released', ...)`) exactly once per grant, on every way out. */
export type JobEmitted = { type: 'job.released'; jobId: string; allocation: Allocation };

/** Any event a job handles: those sent to it, and the internal ones (handler done/error, delays). */
type AnyJobEvent = JobEvent | { type: string };

/**
 * The job's guards as plain functions of its context and event: the XState machine and the
 * compiled runtime logic (`job.logic.ts`) both call these, so they cannot disagree.
 */
export const jobGuards = {
  hasTimeout: (context: JobContext) => context.timeoutMs !== undefined,
  hasAttemptsLeft: (context: JobContext) => context.attempt < context.maxAttempts,
  /** Progress from an attempt that already ended (a handler that ignored its abort) is dropped. */
  isCurrentAttempt: (context: JobContext, event: AnyJobEvent) => {
    const e = event as JobEvent;
    return e.type !== 'job.progress' || e.attempt === undefined || e.attempt === context.attempt;
  },
  canRetry: (context: JobContext, _event: AnyJobEvent, params: { error: unknown }) =>
    context.attempt < context.maxAttempts && !isUnrecoverable(params.error),
  hasStopTimeout: (context: JobContext) => context.stopTimeoutMs !== undefined,
  /** The stopping attempt goes to `params.outcome` once it has stopped. */
  stoppingTo: (context: JobContext, _event: AnyJobEvent, params: { outcome: JobStopping['outcome'] }) =>
    context.stopping?.outcome === params.outcome,
};

/** The job's context updates as plain functions returning the changed fields (see `jobGuards`). */
export const jobUpdates = {
  awaitDependencies: (): Partial<JobContext> => ({ waitReason: 'dependencies' }),
  enterQueue: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    const at = e.type === 'job.ready' ? e.at : undefined;
    return { waitReason: 'resources', queuedAt: at ?? context.clock.now() };
  },
  recordWaitReason: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    return { waitReason: e.type === 'job.wait' ? e.reason : context.waitReason };
  },
  recordAllocation: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    return {
      allocation: e.type === 'job.allocated' ? e.allocation : context.allocation,
      waitReason: undefined,
    };
  },
  clearAllocation: (): Partial<JobContext> => ({ allocation: undefined }),
  beginAttempt: (context: JobContext): Partial<JobContext> => ({
    attempt: context.attempt + 1,
    startedAt: context.startedAt ?? context.clock.now(),
    progress: NO_PROGRESS,
    stopping: undefined,
    abandoned: false,
  }),
  /** The attempt is told to stop; it goes to `params.outcome` once its handler has settled. */
  beginStop: (
    context: JobContext,
    event: AnyJobEvent,
    params: { outcome: JobStopping['outcome'] },
  ): Partial<JobContext> => {
    const e = event as JobEvent;
    const reason: StopReason =
      e.type === 'job.cancel' ? (e.reason === 'shutdown' ? 'shutdown' : 'cancel') : 'timeout';
    return {
      stopping: { reason, outcome: params.outcome, since: context.stopping?.since ?? context.clock.now() },
    };
  },
  /** A cancel while stopping: it will end cancelled (a first cancel is kept as it was). */
  cancelWhileStopping: (context: JobContext, event: AnyJobEvent): Partial<JobContext> =>
    context.stopping?.outcome === 'cancelled'
      ? {}
      : {
          ...jobUpdates.recordCancellation(context, event),
          ...jobUpdates.beginStop(context, event, { outcome: 'cancelled' }),
        },
  /** The stopping attempt's handler settled: it has really stopped. */
  endStop: (): Partial<JobContext> => ({ stopping: undefined }),
  /** The stopping attempt's resources are force-released; its handler runs on, abandoned. */
  abandonAttempt: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    // `job.abandon`: shutdown gave up waiting; else the attempt's own stop timeout ran out.
    const note =
      event.type === 'job.abandon' || context.stopTimeoutMs === undefined
        ? 'its handler had not stopped at shutdown'
        : `its handler did not stop within ${context.stopTimeoutMs} ms`;
    const retryNote = context.stopping?.outcome === 'retrying' ? '; not retried, as it may still run' : '';
    const error = context.error ?? { kind: 'error' as const, message: 'stopped' };
    return {
      abandoned: true,
      error: { ...error, message: `${error.message} (${note}: resources force-released${retryNote})` },
    };
  },
  recordProgress: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    return {
      progress:
        e.type === 'job.progress' ? nextProgress(context.progress, e.fraction, e.note) : context.progress,
    };
  },
  recordOutput: (
    context: JobContext,
    _event: AnyJobEvent,
    params: { output: unknown },
  ): Partial<JobContext> => ({
    output: params.output,
    progress: context.progress.note === undefined ? DONE_PROGRESS : { ...context.progress, fraction: 1 },
    error: undefined,
    cause: undefined,
  }),
  recordFailure: (
    _context: JobContext,
    _event: AnyJobEvent,
    params: { error: unknown },
  ): Partial<JobContext> => ({
    error: { kind: 'error', message: describeError(params.error) },
    cause: params.error,
  }),
  recordTimeout: (context: JobContext): Partial<JobContext> => ({
    error: { kind: 'timeout', message: `attempt timed out after ${context.timeoutMs} ms` },
    cause: undefined,
  }),
  recordCancellation: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    if (e.type !== 'job.cancel') return { error: context.error };
    const kind = e.reason === 'shutdown' ? 'shutdown' : 'cancelled';
    return {
      error: { kind, message: e.message ?? (kind === 'shutdown' ? 'scheduler shut down' : 'cancelled') },
      cause: undefined,
    };
  },
  recordDependencyFailure: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    return {
      error:
        e.type === 'job.dependencyFailed'
          ? {
              kind: 'dependency',
              message: e.message ?? `dependency ${e.dependencyId} did not complete`,
              dependencyId: e.dependencyId,
            }
          : context.error,
      cause: undefined,
    };
  },
  planRetry: (context: JobContext, event: AnyJobEvent): Partial<JobContext> => {
    const e = event as JobEvent;
    if (e.type === 'job.retry') {
      // The rest of a backoff planned before (its jitter drawn then): nothing is drawn now.
      const rest = Number.isFinite(e.delayMs) ? Math.min(Math.max(0, e.delayMs), MAX_TIMER_DELAY_MS) : 0;
      return { retryDelayMs: rest, waitReason: 'backoff' };
    }
    const [random01, rngState] = nextRandom(context.rngState);
    return {
      rngState,
      retryDelayMs: backoffDelay(context.backoff, context.attempt, random01),
      waitReason: 'backoff',
    };
  },
  finish: (context: JobContext): Partial<JobContext> => ({
    waitReason: undefined,
    endedAt: context.clock.now(),
  }),
};

/** What the job emits, as plain functions of its context (see `jobGuards`). */
export const jobEmits = {
  emitRelease: (context: JobContext): JobEmitted => ({
    type: 'job.released',
    jobId: context.id,
    // The allocation is always present here: `allocated` is entered only with one.
    allocation: context.allocation as Allocation,
  }),
};

/** The job's named delays, in ms. */
export const jobDelays = {
  jobTimeout: (context: JobContext) => context.timeoutMs ?? MAX_TIMER_DELAY_MS,
  retryBackoff: (context: JobContext) => context.retryDelayMs,
  stopTimeout: (context: JobContext) => context.stopTimeoutMs ?? MAX_TIMER_DELAY_MS,
};

/** The action that tells the attempt's handler to stop without leaving `running`. */
export const ABORT_HANDLER = 'abortHandler';

/** A stopping attempt's handler settled (done or error): on to where it was told to go. */
const SETTLED_WHILE_STOPPING = [
  {
    guard: { type: 'stoppingTo', params: { outcome: 'cancelled' } },
    target: '#job.cancelled',
    actions: 'endStop',
  },
  {
    guard: { type: 'stoppingTo', params: { outcome: 'retrying' } },
    target: '#job.retrying',
    actions: 'endStop',
  },
  // Timed out with no attempts left.
  { target: '#job.failed', actions: 'endStop' },
] as const;

/**
 * A stopping attempt's resources are released without waiting for its handler (which runs on,
 * abandoned): a cancel ends cancelled; anything else fails — never a retry, which could overlap it.
 */
const FORCE_RELEASE = [
  {
    guard: { type: 'stoppingTo', params: { outcome: 'cancelled' } },
    target: '#job.cancelled',
    actions: 'abandonAttempt',
  },
  { target: '#job.failed', actions: 'abandonAttempt' },
] as const;

/**
 * The lifecycle of one job, as an executable spec. Resources are held exactly in the compound
 * state `allocated` (`scheduled`, `running`); its exit action is the one place a release is
 * emitted, so every way out — success, failure, timeout, retry, cancel — releases exactly once.
 */
export const jobMachine = setup({
  types: {
    context: {} as JobContext,
    events: {} as JobEvent,
    input: {} as JobMachineInput,
    emitted: {} as JobEmitted,
  },
  actors: {
    /**
     * Provide the real one with `jobMachine.provide({ actors: { runHandler } })`. It must stop on
     * `input.control.signal`: a job told to stop stays in `running.stopping` with the handler still
     * invoked (XState's own `signal` of the promise actor is aborted only when `running` is left,
     * which is after the handler has settled). `handlerRunner(handlers)` does this.
     */
    runHandler: fromPromise<unknown, JobHandlerInput>(async () => {
      throw new Error('no runHandler was provided to the job machine');
    }),
  },
  delays: {
    jobTimeout: ({ context }) => jobDelays.jobTimeout(context),
    retryBackoff: ({ context }) => jobDelays.retryBackoff(context),
    stopTimeout: ({ context }) => jobDelays.stopTimeout(context),
  },
  guards: {
    hasTimeout: ({ context }) => jobGuards.hasTimeout(context),
    hasAttemptsLeft: ({ context }) => jobGuards.hasAttemptsLeft(context),
    isCurrentAttempt: ({ context, event }) => jobGuards.isCurrentAttempt(context, event),
    canRetry: ({ context, event }, params: { error: unknown }) => jobGuards.canRetry(context, event, params),
    hasStopTimeout: ({ context }) => jobGuards.hasStopTimeout(context),
    stoppingTo: ({ context, event }, params: { outcome: JobStopping['outcome'] }) =>
      jobGuards.stoppingTo(context, event, params),
  },
  actions: {
    awaitDependencies: assign(() => jobUpdates.awaitDependencies()),
    enterQueue: assign(({ context, event }) => jobUpdates.enterQueue(context, event)),
    recordWaitReason: assign(({ context, event }) => jobUpdates.recordWaitReason(context, event)),
    recordAllocation: assign(({ context, event }) => jobUpdates.recordAllocation(context, event)),
    emitRelease: emit(({ context }) => jobEmits.emitRelease(context)),
    clearAllocation: assign(() => jobUpdates.clearAllocation()),
    beginAttempt: assign(({ context }) => jobUpdates.beginAttempt(context)),
    beginStop: assign(({ context, event }, params: { outcome: JobStopping['outcome'] }) =>
      jobUpdates.beginStop(context, event, params),
    ),
    endStop: assign(() => jobUpdates.endStop()),
    cancelWhileStopping: assign(({ context, event }) => jobUpdates.cancelWhileStopping(context, event)),
    abandonAttempt: assign(({ context, event }) => jobUpdates.abandonAttempt(context, event)),
    /** Tells the attempt's handler to stop, leaving it running (see `Attempt`). */
    [ABORT_HANDLER]: ({ self }) => {
      const input = self.getSnapshot().children.handler?.getSnapshot().input as JobHandlerInput | undefined;
      input?.control.abort();
    },
    recordProgress: assign(({ context, event }) => jobUpdates.recordProgress(context, event)),
    recordOutput: assign(({ context, event }, params: { output: unknown }) =>
      jobUpdates.recordOutput(context, event, params),
    ),
    recordFailure: assign(({ context, event }, params: { error: unknown }) =>
      jobUpdates.recordFailure(context, event, params),
    ),
    recordTimeout: assign(({ context }) => jobUpdates.recordTimeout(context)),
    recordCancellation: assign(({ context, event }) => jobUpdates.recordCancellation(context, event)),
    recordDependencyFailure: assign(({ context, event }) =>
      jobUpdates.recordDependencyFailure(context, event),
    ),
    planRetry: assign(({ context, event }) => jobUpdates.planRetry(context, event)),
    finish: assign(({ context }) => jobUpdates.finish(context)),
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    id: input.id,
    type: input.type,
    group: input.group,
    payload: input.payload,
    clock: input.clock,
    attempt: input.attempt ?? 0,
    maxAttempts: input.maxAttempts ?? 1,
    timeoutMs: input.timeoutMs,
    stopTimeoutMs: input.stopTimeoutMs,
    backoff: input.backoff ?? DEFAULT_BACKOFF,
    rngState: input.seed ?? seedFromString(input.id),
    allocation: undefined,
    progress: NO_PROGRESS,
    error: input.error,
    cause: undefined,
    stopping: undefined,
    abandoned: false,
    waitReason: 'dependencies',
    retryDelayMs: 0,
    output: undefined,
    submittedAt: input.submittedAt ?? input.clock.now(),
    queuedAt: undefined,
    startedAt: undefined,
    endedAt: undefined,
  }),
  initial: 'pending',
  states: {
    pending: {
      description: 'Accepted; waiting for its dependencies.',
      entry: 'awaitDependencies',
      on: {
        'job.ready': { target: 'queued' },
        'job.dependencyFailed': { target: 'cancelled', actions: 'recordDependencyFailure' },
        'job.cancel': { target: 'cancelled', actions: 'recordCancellation' },
        // Recovered from a store in the middle of a backoff: it waits the rest of it.
        'job.retry': { target: 'retrying' },
      },
    },
    queued: {
      description: 'Eligible; waiting for resources or a concurrency slot, with a reason.',
      entry: 'enterQueue',
      on: {
        'job.wait': { actions: 'recordWaitReason' },
        'job.allocated': { target: 'allocated', actions: 'recordAllocation' },
        'job.cancel': { target: 'cancelled', actions: 'recordCancellation' },
      },
    },
    allocated: {
      description: 'Holds its allocation; leaving releases it exactly once.',
      initial: 'scheduled',
      exit: ['emitRelease', 'clearAllocation'],
      on: {
        'job.cancel': { target: 'cancelled', actions: 'recordCancellation' },
      },
      states: {
        scheduled: {
          description: 'Resources granted; the run is being started.',
          on: { 'job.start': { target: 'running' } },
        },
        running: {
          description:
            'The handler is executing. Told to stop, it stays here until the handler has settled: its resources are never handed on while it may still run.',
          entry: 'beginAttempt',
          invoke: {
            id: 'handler',
            src: 'runHandler',
            input: ({ context, self }) => {
              // Read now: the reports of this attempt must carry this attempt's number.
              const attempt = context.attempt;
              return {
                jobId: context.id,
                type: context.type,
                payload: context.payload,
                attempt,
                // Always present in `running`; see JobContext.allocation.
                allocation: context.allocation as Allocation,
                progress: (fraction: number, note?: string) =>
                  self.send(
                    note === undefined
                      ? { type: 'job.progress', fraction, attempt }
                      : { type: 'job.progress', fraction, note, attempt },
                  ),
                control: new Attempt(),
              };
            },
            onDone: {
              target: '#job.completed',
              actions: { type: 'recordOutput', params: ({ event }) => ({ output: event.output }) },
            },
            onError: [
              {
                guard: { type: 'canRetry', params: ({ event }) => ({ error: event.error }) },
                target: '#job.retrying',
                actions: { type: 'recordFailure', params: ({ event }) => ({ error: event.error }) },
              },
              {
                target: '#job.failed',
                actions: { type: 'recordFailure', params: ({ event }) => ({ error: event.error }) },
              },
            ],
          },
          initial: 'working',
          states: {
            working: {
              description: 'The attempt runs; progress flows.',
              on: {
                'job.progress': { guard: 'isCurrentAttempt', actions: 'recordProgress' },
                'job.cancel': {
                  target: 'stopping',
                  actions: ['recordCancellation', { type: 'beginStop', params: { outcome: 'cancelled' } }],
                },
              },
              after: {
                jobTimeout: [
                  {
                    guard: and(['hasTimeout', 'hasAttemptsLeft']),
                    target: 'stopping',
                    actions: ['recordTimeout', { type: 'beginStop', params: { outcome: 'retrying' } }],
                  },
                  {
                    guard: 'hasTimeout',
                    target: 'stopping',
                    actions: ['recordTimeout', { type: 'beginStop', params: { outcome: 'failed' } }],
                  },
                ],
              },
            },
            stopping: {
              description:
                'Told to stop (cancel, timeout, shutdown); the handler has not settled, and the resources stay held.',
              entry: ABORT_HANDLER,
              on: {
                // Stays: a timed-out attempt cancelled while it stops ends cancelled, not retried.
                'job.cancel': { actions: 'cancelWhileStopping' },
                'job.abandon': FORCE_RELEASE,
                // The handler settled, whatever its result: the attempt has stopped.
                'xstate.done.actor.handler': SETTLED_WHILE_STOPPING,
                'xstate.error.actor.handler': SETTLED_WHILE_STOPPING,
              },
              after: {
                stopTimeout: [
                  {
                    guard: and([
                      'hasStopTimeout',
                      { type: 'stoppingTo', params: { outcome: 'cancelled' as const } },
                    ]),
                    target: '#job.cancelled',
                    actions: 'abandonAttempt',
                  },
                  { guard: 'hasStopTimeout', target: '#job.failed', actions: 'abandonAttempt' },
                ],
              },
            },
          },
        },
      },
    },
    retrying: {
      description: 'An attempt failed; waiting out the backoff without resources.',
      entry: 'planRetry',
      after: {
        retryBackoff: { target: 'queued' },
      },
      on: {
        'job.cancel': { target: 'cancelled', actions: 'recordCancellation' },
      },
    },
    completed: { type: 'final', description: 'Succeeded.', entry: 'finish' },
    failed: {
      type: 'final',
      description: 'Attempts exhausted or the error was not retryable.',
      entry: 'finish',
    },
    cancelled: {
      type: 'final',
      description: 'Cancelled by the user, by shutdown, or because a dependency failed.',
      entry: 'finish',
    },
  },
});

/** A snapshot of a job actor. */
export type JobMachineSnapshot = SnapshotFrom<typeof jobMachine>;

/** What the runtime reads of any job actor's snapshot (the machine's or the compiled logic's). */
export type JobStateSnapshot = { value: StateValue; context: JobContext };

/** Whether the state value is `running` told to stop (`{ allocated: { running: 'stopping' } }`). */
export function isStoppingValue(value: StateValue): boolean {
  if (typeof value === 'string') return false;
  const inner = (value as { allocated?: StateValue }).allocated;
  return typeof inner === 'object' && (inner as { running?: StateValue }).running === 'stopping';
}

/** Maps the machine's state value (with its `allocated` parent) to one of the eight job states. */
export function jobStateOf(value: StateValue): JobState {
  if (typeof value === 'string') return value as JobState;
  // `{ allocated: 'scheduled' }`, or `{ allocated: { running: 'working' | 'stopping' } }`.
  const inner = (value as { allocated?: StateValue }).allocated;
  return inner === 'scheduled' ? 'scheduled' : 'running';
}
