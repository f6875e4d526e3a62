/**
 * The shapes of `simulate()`: what goes in (a pool, jobs with arrival times and durations,
 * scheduler options) and the report that comes out. Plain data only.
 */
import type { BackoffPolicy } from '../core/backoff.js';
import type { PriorityName } from '../core/priority.js';
import type { PlacementPolicy, ResourcePool, ResourceRequest, ResourceTotals } from '../core/resources.js';
import type { Allocation, JobState } from '../core/types.js';
import type { VirtualClock } from './clock.js';
import type { Scheduler } from './scheduler.js';

/** One job of a simulation: when it arrives, how long it runs, what it needs. */
export type SimulationJob = {
  /** Unique within the input. */
  id: string;
  /** Virtual time at which it is submitted, in ms (≥ 0). */
  submitAtMs: number;
  /**
   * How long each attempt runs, in ms (≥ 0). `Infinity`: it never ends (for placement
   * studies); stop such a run with `options.untilMs`.
   */
  durationMs: number;
  /** @default {} (nothing beyond a concurrency slot) */
  resources?: ResourceRequest;
  /** @default 'normal' */
  priority?: PriorityName;
  /** Ids of jobs that must end first; each must arrive no later than this one. */
  dependsOn?: string[];
  /** @default 'afterok' */
  dependencyPolicy?: 'afterok' | 'afterany';
  /** For grouping (e.g. a trace's virtual cluster). */
  group?: string;
  /**
   * `true`: every attempt fails (after running `durationMs`); a number n: the first n attempts
   * fail and a later one succeeds. @default false
   */
  fails?: boolean | number;
};

/** Scheduler options of a simulation; each has the engine's default unless said otherwise. */
export type SimulationOptions = {
  /** @default 'backfill' */
  queuePolicy?: 'strict' | 'backfill';
  /** @default 'best-fit' */
  placement?: PlacementPolicy;
  /** Pending + queued + retrying jobs; an arrival beyond is rejected (`QueueFullError`). @default Infinity */
  maxQueueSize?: number;
  /** Jobs holding resources at once. @default Infinity */
  maxConcurrentJobs?: number;
  /** @default the engine's: { intervalMs: 60_000, maxLevels: 2 } */
  aging?: { intervalMs?: number; maxLevels?: number };
  /** @default the engine's: 3 attempts, exponential backoff from 1 s with jitter */
  retry?: { attempts?: number; backoff?: Partial<BackoffPolicy> };
  /** Seeds the random source (retry jitter): same input and seed, same report. @default 1 */
  seed?: number;
  /**
   * Stops the run at this virtual time (ms): jobs still live are reported in the state they had
   * then, and jobs arriving later as `unsubmitted`. @default run until nothing more can happen
   */
  untilMs?: number;
  /**
   * The engine's safety-net tick. Scheduling is event-driven; without an event the queue's
   * order only changes when aging raises a job, so the tick defaults to the aging interval
   * (the engine's own default, 5 s, gives the same schedule to within a tick at many times the
   * cost on a long trace). @default `aging.intervalMs` (60_000)
   */
  schedulingIntervalMs?: number;
  /** @default the engine's (300_000) */
  reserveAfterMs?: number;
  /** @default the engine's (64) */
  backfillDepth?: number;
};

/** What `simulate()` takes. */
export type SimulationInput = {
  /** The pool: one node, or `{ nodes }`. */
  resources: ResourcePool;
  jobs: readonly SimulationJob[];
  options?: SimulationOptions;
  /**
   * Called once with the real scheduler and the virtual clock before the first arrival, e.g.
   * to subscribe to `events$` or sample `stats()` in tests. It must not submit jobs.
   */
  observe?: (scheduler: Scheduler, clock: VirtualClock) => void;
};

/**
 * A job's state when the run stopped: an engine state, `rejected` (the engine refused it at
 * submit: queue full, can never fit the pool, a dependency it names was itself rejected), or
 * `unsubmitted` (it would arrive after `untilMs`).
 */
export type SimulatedJobState = JobState | 'rejected' | 'unsubmitted';

/** One job in the report. Times are virtual ms. */
export type SimulationJobReport = {
  id: string;
  priority: PriorityName;
  state: SimulatedJobState;
  /** Absent for `unsubmitted` jobs. */
  submittedAt?: number;
  /** The first attempt's start. */
  startedAt?: number;
  /** When it reached a final state (absent when it was still live at the end). */
  endedAt?: number;
  /** Attempts started, the first included. */
  attempts: number;
  /** startedAt − submittedAt, once it started. */
  waitMs?: number;
  /** endedAt − submittedAt, for jobs that completed or failed. */
  jctMs?: number;
  /** The last attempt's allocation (node, GPUs and shares, CPU, memory). */
  allocation?: Allocation;
  /** Why it failed, was cancelled or was rejected. */
  error?: string;
};

/** Summary statistics of a set of durations (ms); all 0 when `count` is 0. */
export type DurationStats = {
  count: number;
  mean: number;
  /** Nearest-rank percentiles. */
  p50: number;
  p99: number;
  max: number;
};

/** Statistics overall and by base priority (only priorities that have samples). */
export type DurationBreakdown = {
  overall: DurationStats;
  byPriority: Partial<Record<PriorityName, DurationStats>>;
};

/** Time-weighted allocated ÷ capacity over [startMs, endMs], in [0, 1] (0 when capacity is 0). */
export type Utilisation = { cpu: number; memoryMb: number; gpu: number; vramMb: number };

/** Jobs the engine refused at submit for one reason (see `SimulationReport.rejections`). */
export type RejectionGroup = {
  /**
   * Why, in words that follow a count: e.g. `asked for more GPUs than a node has (at most 8)`,
   * `arrived when the queue was full (maxQueueSize 100)`.
   */
  reason: string;
  /** The error the engine threw: `UnschedulableError`, `QueueFullError`, … */
  error: string;
  /** The field it named (e.g. `resources.gpu`), where it named one. */
  field?: string;
  count: number;
  /** The first job refused for it (in arrival order). */
  firstJob: string;
};

/** What `simulate()` resolves with. Deterministic: same input and seed, same report. */
export type SimulationReport = {
  /** Every input job, in input order. */
  jobs: SimulationJobReport[];
  counts: Record<SimulatedJobState, number>;
  /** The rejected jobs grouped by why they were refused, the largest group first. */
  rejections: RejectionGroup[];
  /** The first submission. */
  startMs: number;
  /** The last start or end, or `untilMs` when the run was cut there. */
  endMs: number;
  makespanMs: number;
  utilisation: Utilisation;
  /** Waits of jobs that started. */
  wait: DurationBreakdown;
  /** Job completion times of jobs that completed or failed. */
  jct: DurationBreakdown;
  resources: { capacity: ResourceTotals; allocatedAtEnd: ResourceTotals };
};
