/** The public shapes of the scheduler runtime: snapshots, stats, events, handles. */
import type { Observable } from 'rxjs';
import type { PriorityName } from '../core/priority.js';
import type { Progress } from '../core/progress.js';
import type { Allocation, JobError, JobState, WaitReason } from '../core/types.js';
import type { NormalisedNode, ResourceTotals } from '../core/resources.js';
import type { JobSpec } from '../core/job-spec.js';
import type { Pressure } from '../core/reconcile.js';
import type { Handlers, PayloadOf } from '../actors/handler.js';
import type { JobStopping, StopReason } from '../machines/job.machine.js';

export type { JobStopping, StopReason };

/** A job as observers see it: plain data. */
export type JobSnapshot = {
  id: string;
  type: string;
  group?: string;
  state: JobState;
  priority: PriorityName;
  /** Base + aging + boost, while queued; the base priority otherwise. */
  effectivePriority: PriorityName;
  /** Tries started so far, the first included. */
  attempt: number;
  maxAttempts: number;
  progress: Progress;
  waitReason?: WaitReason;
  allocation?: Allocation;
  error?: JobError;
  /**
   * While `running`: the attempt was told to stop (cancel, timeout, shutdown) and its handler has
   * not settled yet. It keeps its resources until then (or until its `stopTimeoutMs` runs out).
   */
  stopping?: JobStopping;
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
};

/** Counts by state, the queue, and the resources. */
export type SchedulerStats = {
  jobs: Record<JobState, number>;
  /** `size` counts pending + queued + retrying jobs. */
  queue: { size: number; max: number };
  /** Running attempts told to stop whose handlers have not settled: they still hold their resources. */
  stopping: number;
  resources: {
    capacity: ResourceTotals;
    allocated: ResourceTotals;
    free: ResourceTotals;
    measured?: Partial<ResourceTotals>;
  };
  /**
   * The nodes of the pool (zeros until it is known): `active` take new jobs; `retired` ones
   * (`scheduler.retireNode`) still hold allocations and leave with the last one.
   */
  nodes?: { active: number; retired: number };
};

/** One node of the pool, as `scheduler.nodes()` shows it. */
export type PoolNode = {
  node: NormalisedNode;
  /** `retired`: takes nothing new; it leaves the pool when its last allocation is released. */
  state: 'active' | 'retired';
  /** The jobs holding an allocation on it (scheduled or running). */
  jobIds: string[];
};

/** What `scheduler.retireNode()` did. */
export type RetiredNode = {
  nodeId: string;
  /** The jobs still holding an allocation on it: they run on; their units stay held until they end. */
  jobIds: string[];
  /** It held nothing: it has left the pool already (`node.removed`). */
  removed: boolean;
};

/** Everything `scheduler.events$` emits; `at` is clock time in ms. */
export type SchedulerEvent =
  /** Accepted by `submit()`. */
  | { type: 'job.submitted'; at: number; job: JobSnapshot }
  /** Eligible and waiting for resources or a slot. */
  | { type: 'job.queued'; at: number; job: JobSnapshot }
  /** Resources granted and the handler started. */
  | { type: 'job.started'; at: number; job: JobSnapshot }
  /** The handler reported progress. */
  | { type: 'job.progress'; at: number; job: JobSnapshot }
  /**
   * A running attempt was told to stop (`reason`); its handler has not settled, so the job stays
   * `running` and keeps its resources until it does (see `JobSnapshot.stopping`).
   */
  | { type: 'job.stopping'; at: number; job: JobSnapshot; reason: StopReason }
  /**
   * A stopping attempt's resources were released before its handler settled — its `stopTimeoutMs`
   * ran out, or shutdown gave up on it — and the handler runs on, abandoned: the resources may
   * still be in use. `stoppingMs`: how long it had been told to stop.
   */
  | {
      type: 'job.forceReleased';
      at: number;
      job: JobSnapshot;
      attempt: number;
      reason: StopReason;
      stoppingMs: number;
    }
  /** An attempt failed; the job waits out its backoff holding nothing. */
  | { type: 'job.retrying'; at: number; job: JobSnapshot; delayMs: number }
  | { type: 'job.completed'; at: number; job: JobSnapshot; output: unknown }
  | { type: 'job.failed'; at: number; job: JobSnapshot }
  | { type: 'job.cancelled'; at: number; job: JobSnapshot }
  /** A boost took effect on these queued (or not yet queued) jobs. */
  | { type: 'job.boosted'; at: number; jobIds: string[]; until: number }
  /** A boost found these jobs running or finished, and did nothing to them. */
  | { type: 'boost.ignored'; at: number; jobs: Array<{ id: string; state: JobState }> }
  | { type: 'boost.expired'; at: number; jobIds: string[] }
  /** A boost signal from `connectBoosts()` that was not valid; nothing changed. */
  | { type: 'boost.invalid'; at: number; message: string }
  /**
   * A durable scheduler could not journal a transition, a pause or a pruning (a full disk): the
   * jobs go on in memory, but until a later write succeeds a crash would recover the old state.
   * (An accept that cannot be journaled is refused instead: `submit()` throws.)
   */
  | { type: 'store.writeFailed'; at: number; message: string; jobId?: string }
  /** Capacity, allocated or free amounts changed. */
  | { type: 'resources.changed'; at: number; resources: SchedulerStats['resources'] }
  /** Memory or VRAM held outside the scheduler lowered what it admits. */
  | { type: 'resources.pressure'; at: number; nodeId: string; pressure: Pressure }
  | {
      type: 'resources.pressureEnded';
      at: number;
      nodeId: string;
      resource: 'memory' | 'vram';
      gpuIndex?: number;
    }
  /** A node joined the pool (`scheduler.addNode`): its capacity is free at once. */
  | { type: 'node.added'; at: number; node: NormalisedNode }
  /**
   * A node was retired (`scheduler.retireNode`): nothing new starts on it; `jobIds` still run on
   * it, holding their allocations until they end.
   */
  | { type: 'node.retired'; at: number; nodeId: string; jobIds: string[] }
  /** A retired node left the pool: its last allocation was released (or it held none). */
  | { type: 'node.removed'; at: number; nodeId: string }
  /** The pool is known (after host detection), with what detection had to guess. */
  | { type: 'scheduler.ready'; at: number; warnings: string[] }
  | { type: 'scheduler.paused'; at: number }
  | { type: 'scheduler.resumed'; at: number }
  /** Nothing is pending, queued, running or retrying. */
  | { type: 'scheduler.idle'; at: number }
  | { type: 'scheduler.shutdown'; at: number; report: ShutdownReport };

/** What `shutdown()` resolves with. */
export type ShutdownReport = {
  mode: 'drain' | 'cancel';
  /** Jobs that completed while the scheduler drained. */
  completed: string[];
  /** Jobs that failed for good while the scheduler drained. */
  failed: string[];
  /** Jobs that had not started (pending, queued, retrying), cancelled with kind `shutdown`. */
  cancelled: string[];
  /**
   * Jobs that were running and were aborted: at once in `cancel` mode, at the timeout in `drain`,
   * or when an attempt failed during the drain and would have retried.
   */
  aborted: string[];
  /** True when `drain` ran out of time. */
  timedOut: boolean;
  /**
   * Attempts whose handlers still had not settled when shutdown stopped waiting for them
   * (`stopTimeoutMs`): their resources were force-released (`job.forceReleased`), and they may
   * still be running.
   */
  stillRunning: Array<{ id: string; attempt: number }>;
};

/** A submitted job. */
export type JobHandle<TResult = unknown> = {
  readonly id: string;
  /** Resolves with the handler's output; rejects with `JobFailedError` when it failed or was cancelled. */
  readonly result: Promise<TResult>;
  /** The job's snapshots: the current one at once, then every change; completes when it ends. */
  readonly state$: Observable<JobSnapshot>;
  /** Cancels the job (see `scheduler.cancel`). */
  cancel(): boolean;
};

/** A job spec whose type names a handler and whose payload is what that handler takes. */
export type JobSubmission<H extends Handlers> = {
  [K in keyof H & string]: Omit<JobSpec<PayloadOf<H[K]>>, 'type'> & { type: K };
}[keyof H & string];

/** Which jobs a boost applies to. */
export type BoostTarget = { group: string } | { ids: readonly string[] };

/** How much a boost raises: `to` a priority (at least), or `by` levels; for `forMs`. */
export type BoostSpec = ({ to: PriorityName; by?: never } | { by: number; to?: never }) & { forMs: number };

/** What `boost()` did. */
export type BoostReport = {
  /** Queued, pending or retrying jobs now boosted (pending ones take effect when they queue). */
  boosted: string[];
  /** Running or finished jobs: a boost does nothing to them. */
  ignored: Array<{ id: string; state: JobState }>;
  until: number;
};

/** A boost signal from an application's real-time path, for `connectBoosts()`. */
export type BoostSignal = { target: BoostTarget } & BoostSpec;
