/**
 * The vocabulary of the runtime's model-based test: handler behaviours chosen per attempt
 * through the payload, the configuration of one run, and what the model keeps of each job.
 */
import type { HandlerContext, JobSnapshot, JobState, NodeSpec, ResourceRequest } from '../../../src/index.js';
import type { UnitRequest } from '../../../src/core/pool.js';

/** A cheap assertion for the hot per-step checks (vitest's expect is slow). */
export function ensure(condition: boolean, what: string | (() => string)): asserts condition {
  if (!condition) throw new Error(typeof what === 'string' ? what : what());
}

// ——— handler behaviours, one per attempt, chosen through the payload ———

export type Behaviour =
  | { kind: 'succeed'; ms: number }
  | { kind: 'fail'; ms: number }
  | { kind: 'rejectValue'; ms: number }
  | { kind: 'unrecoverable'; ms: number }
  | { kind: 'throw' }
  | { kind: 'hang' }
  | { kind: 'ignoreAbort'; ms: number };

export type Payload = { plan: Behaviour[]; progress: boolean };
export type Output = { id: string; attempt: number };

export const behaviourOf = (plan: readonly Behaviour[], attempt: number): Behaviour =>
  plan[Math.min(attempt, plan.length) - 1] as Behaviour;

/** When an attempt must have left `running` at the latest (ms after it started). */
export function attemptBound(b: Behaviour, timeoutMs: number | undefined): number {
  // A handler that ignores its abort runs its course: timed out, it stays running (stopping),
  // holding its resources, until it settles.
  if (b.kind === 'ignoreAbort') return b.ms;
  const own = b.kind === 'throw' ? 0 : b.kind === 'hang' ? Number.POSITIVE_INFINITY : b.ms;
  return Math.min(own, timeoutMs ?? Number.POSITIVE_INFINITY);
}

export const SUCCEEDS: ReadonlySet<Behaviour['kind']> = new Set(['succeed', 'ignoreAbort']);
export const FAILS: ReadonlySet<Behaviour['kind']> = new Set([
  'fail',
  'rejectValue',
  'unrecoverable',
  'throw',
]);

// ——— the configuration of one run ———

export type Config = {
  nodes: NodeSpec[];
  maxConcurrentJobs: number;
  maxQueueSize: number;
  queuePolicy: 'strict' | 'backfill';
  attempts: number;
  backoff: { type: 'fixed' | 'exponential'; delayMs: number; maxDelayMs: number; jitter: boolean };
  aging: { intervalMs: number; maxLevels: number };
  schedulingIntervalMs: number;
  monitor: boolean;
  monitorIntervalMs: number;
  reserveAfterMs: number;
  defaultTimeoutMs: number | undefined;
  retainFinished: number;
  shutdown: { mode: 'drain' | 'cancel'; timeoutMs: number };
  seed: number;
};

/** Longer than any run lasts: with it, the head's reservation never kicks in. */
export const NEVER_MS = 2 ** 31 - 1;

// ——— what the model keeps of each job ———

/** One accepted job as the model sees it, from its spec and the events it emitted. */
export type ModelJob = {
  id: string;
  base: number;
  request: ResourceRequest;
  units: UnitRequest;
  group: string | undefined;
  deps: string[];
  policy: 'afterok' | 'afterany';
  maxAttempts: number;
  timeoutMs: number | undefined;
  plan: Behaviour[];
  /** The last state the model saw through events (pending/scheduled have none). */
  seen: JobState;
  finalEvents: number;
  finalState: JobState | undefined;
  finalError: JobSnapshot['error'];
  started: number;
  handlerCalls: number;
  attemptAt: number;
  attemptEpoch: number;
  queuedAt: number;
  queueOrder: number;
  retryAt: number;
  retryDelayMs: number;
  retryEpoch: number;
  boost: { toLevel?: number; byLevels?: number; until: number } | undefined;
  cancelRequested: boolean;
  result: { settled: number; ok?: boolean; value?: unknown };
};

/** What the model knows of a job before submit() names it. */
export type Draft = Pick<
  ModelJob,
  'base' | 'request' | 'units' | 'group' | 'deps' | 'policy' | 'maxAttempts' | 'timeoutMs' | 'plan'
>;

export type Handlers = { work: (ctx: HandlerContext<Payload>) => Promise<Output> };

export const HOLDING: ReadonlySet<JobState> = new Set(['scheduled', 'running']);
export const WAITING: ReadonlySet<JobState> = new Set(['pending', 'queued', 'retrying']);
export const FINAL: ReadonlySet<JobState> = new Set(['completed', 'failed', 'cancelled']);
