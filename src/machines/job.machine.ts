import { and, assign, emit, fromPromise, setup } from 'xstate';
import type { SnapshotFrom, StateValue } from 'xstate';
import { DEFAULT_BACKOFF, backoffDelay, type BackoffPolicy } from '../core/backoff.js';
import { describeError, isUnrecoverable } from '../core/errors.js';
import { nextProgress, type Progress } from '../core/progress.js';
import { nextRandom, seedFromString } from '../core/random.js';
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
  /** @default DEFAULT_BACKOFF */
  backoff?: BackoffPolicy;
  /** Seed for backoff jitter. @default derived from the id */
  seed?: number;
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
  backoff: BackoffPolicy;
  rngState: number;
  /** Present exactly in `scheduled` and `running`. */
  allocation: Allocation | undefined;
  progress: Progress;
  error: JobError | undefined;
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
  | { type: 'job.ready' }
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
  | { type: 'job.dependencyFailed'; dependencyId: string; message?: string };

/** Emitted (observe with `actor.on('job.released', ...)`) exactly once per grant, on every way out. */
export type JobEmitted = { type: 'job.released'; jobId: string; allocation: Allocation };

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
    /** The runtime provides the real one with `jobMachine.provide({ actors: { runHandler } })`. */
    runHandler: fromPromise<unknown, JobHandlerInput>(async () => {
      throw new Error('no runHandler was provided to the job machine');
    }),
  },
  delays: {
    jobTimeout: ({ context }) => context.timeoutMs ?? MAX_TIMER_DELAY_MS,
    retryBackoff: ({ context }) => context.retryDelayMs,
  },
  guards: {
    hasTimeout: ({ context }) => context.timeoutMs !== undefined,
    hasAttemptsLeft: ({ context }) => context.attempt < context.maxAttempts,
    /** Progress from an attempt that already ended (a handler that ignored its abort) is dropped. */
    isCurrentAttempt: ({ context, event }) =>
      event.type !== 'job.progress' || event.attempt === undefined || event.attempt === context.attempt,
    canRetry: ({ context }, params: { error: unknown }) =>
      context.attempt < context.maxAttempts && !isUnrecoverable(params.error),
  },
  actions: {
    awaitDependencies: assign({ waitReason: 'dependencies' }),
    enterQueue: assign({
      waitReason: 'resources',
      queuedAt: ({ context }) => context.clock.now(),
    }),
    recordWaitReason: assign({
      waitReason: ({ context, event }) => (event.type === 'job.wait' ? event.reason : context.waitReason),
    }),
    recordAllocation: assign({
      allocation: ({ context, event }) =>
        event.type === 'job.allocated' ? event.allocation : context.allocation,
      waitReason: undefined,
    }),
    emitRelease: emit(({ context }) => ({
      type: 'job.released' as const,
      jobId: context.id,
      // The allocation is always present here: `allocated` is entered only with one.
      allocation: context.allocation as Allocation,
    })),
    clearAllocation: assign({ allocation: undefined }),
    beginAttempt: assign({
      attempt: ({ context }) => context.attempt + 1,
      startedAt: ({ context }) => context.startedAt ?? context.clock.now(),
      progress: { fraction: 0 },
    }),
    recordProgress: assign({
      progress: ({ context, event }) =>
        event.type === 'job.progress'
          ? nextProgress(context.progress, event.fraction, event.note)
          : context.progress,
    }),
    recordOutput: assign(({ context }, params: { output: unknown }) => ({
      output: params.output,
      progress: { ...context.progress, fraction: 1 },
      error: undefined,
    })),
    recordFailure: assign((_, params: { error: unknown }) => ({
      error: { kind: 'error' as const, message: describeError(params.error) },
    })),
    recordTimeout: assign({
      error: ({ context }) => ({
        kind: 'timeout' as const,
        message: `attempt timed out after ${context.timeoutMs} ms`,
      }),
    }),
    recordCancellation: assign({
      error: ({ context, event }) => {
        if (event.type !== 'job.cancel') return context.error;
        const kind = event.reason === 'shutdown' ? 'shutdown' : 'cancelled';
        return {
          kind,
          message: event.message ?? (kind === 'shutdown' ? 'scheduler shut down' : 'cancelled'),
        };
      },
    }),
    recordDependencyFailure: assign({
      error: ({ context, event }) =>
        event.type === 'job.dependencyFailed'
          ? {
              kind: 'dependency' as const,
              message: event.message ?? `dependency ${event.dependencyId} did not complete`,
              dependencyId: event.dependencyId,
            }
          : context.error,
    }),
    planRetry: assign(({ context }) => {
      const [random01, rngState] = nextRandom(context.rngState);
      return {
        rngState,
        retryDelayMs: backoffDelay(context.backoff, context.attempt, random01),
        waitReason: 'backoff' as const,
      };
    }),
    finish: assign({
      waitReason: undefined,
      endedAt: ({ context }) => context.clock.now(),
    }),
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    id: input.id,
    type: input.type,
    group: input.group,
    payload: input.payload,
    clock: input.clock,
    attempt: 0,
    maxAttempts: input.maxAttempts ?? 1,
    timeoutMs: input.timeoutMs,
    backoff: input.backoff ?? DEFAULT_BACKOFF,
    rngState: input.seed ?? seedFromString(input.id),
    allocation: undefined,
    progress: { fraction: 0 },
    error: undefined,
    waitReason: 'dependencies',
    retryDelayMs: 0,
    output: undefined,
    submittedAt: input.clock.now(),
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
          description: 'The handler is executing; progress flows.',
          entry: 'beginAttempt',
          invoke: {
            id: 'handler',
            src: 'runHandler',
            input: ({ context, self }) => ({
              jobId: context.id,
              type: context.type,
              payload: context.payload,
              attempt: context.attempt,
              // Always present in `running`; see JobContext.allocation.
              allocation: context.allocation as Allocation,
              progress: (fraction: number, note?: string) =>
                self.send(
                  note === undefined
                    ? { type: 'job.progress', fraction, attempt: context.attempt }
                    : { type: 'job.progress', fraction, note, attempt: context.attempt },
                ),
            }),
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
          on: {
            'job.progress': { guard: 'isCurrentAttempt', actions: 'recordProgress' },
          },
          after: {
            jobTimeout: [
              {
                guard: and(['hasTimeout', 'hasAttemptsLeft']),
                target: '#job.retrying',
                actions: 'recordTimeout',
              },
              { guard: 'hasTimeout', target: '#job.failed', actions: 'recordTimeout' },
            ],
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

/** Maps the machine's state value (with its `allocated` parent) to one of the eight job states. */
export function jobStateOf(value: StateValue): JobState {
  if (typeof value === 'string') return value as JobState;
  const inner = (value as { allocated?: StateValue }).allocated;
  return inner === 'running' ? 'running' : 'scheduled';
}
