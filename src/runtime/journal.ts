/**
 * The durable scheduler's side of the store port: what it writes at each point of truth (a job
 * accepted, queued, started, retrying, ended; pause; retention), and how what a store holds is
 * read back into jobs (see `Scheduler`'s recovery). Without a store none of this runs.
 */
import { InvalidJobError } from '../core/errors.js';
import type { JobSpec, NormalisedJob } from '../core/job-spec.js';
import { levelOf, MAX_LEVEL, nameOf } from '../core/priority.js';
import type { Boost } from '../core/queue.js';
import { FINAL_JOB_STATES, type JobError, type JobState } from '../core/types.js';
import type { JobContext } from '../machines/job.machine.js';
import type {
  JobStore,
  JsonValue,
  StoreContents,
  StoredBoost,
  StoredJob,
  StoredStatus,
} from '../store/store.js';

/** Whether `value` is plain JSON: null, booleans, finite numbers, strings, arrays and plain objects of them. */
export function isJson(value: unknown, depth = 0): value is JsonValue {
  if (depth > 1_000) return false;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!(i in value) || !isJson(value[i], depth + 1)) return false;
    return true;
  }
  if (typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value)) {
    if (!isJson((value as Record<string, unknown>)[key], depth + 1)) return false;
  }
  return Object.getOwnPropertySymbols(value).length === 0;
}

/** A durable scheduler refuses a payload that could not be read back as it was. */
export function assertJsonPayload(payload: unknown): void {
  if (payload !== undefined && !isJson(payload))
    throw new InvalidJobError(
      'payload',
      payload,
      'JSON (a durable scheduler keeps payloads in its store): null, booleans, finite numbers, strings, arrays and plain objects of them',
    );
}

/**
 * What a store keeps of an accepted job: its spec with every default applied (so a restart under
 * other defaults runs it as it was accepted), and its resource request as given.
 */
export function storedJob(job: NormalisedJob, spec: JobSpec, seq: number, submittedAt: number): StoredJob {
  const stored: { [key: string]: JsonValue } = {
    type: job.type,
    priority: job.priority,
    retry: { attempts: job.maxAttempts, backoff: { ...job.backoff } },
    dependsOn: [...job.dependsOn],
    dependencyPolicy: job.dependencyPolicy,
    // `null`: held until the handler settles (Infinity is not JSON).
    stopTimeoutMs: job.stopTimeoutMs ?? null,
  };
  if (job.payload !== undefined) stored['payload'] = job.payload as JsonValue;
  // As given (plain data: checked at submit); the store serializes it before `accept` returns.
  if (spec.resources !== undefined) stored['resources'] = spec.resources as unknown as JsonValue;
  if (job.timeoutMs !== undefined) stored['timeoutMs'] = job.timeoutMs;
  if (job.group !== undefined) stored['group'] = job.group;
  return { id: job.id, seq, spec: stored, submittedAt };
}

/** The job spec a stored job is checked again as, on recovery (its dependencies: those still known). */
export function specOf(stored: StoredJob, known: (id: string) => boolean): JobSpec {
  const { stopTimeoutMs, dependsOn } = stored.spec;
  // Copied key by key: object rest (`...rest`) takes V8's slow path, ~3 µs a job at recovery.
  const spec: Record<string, unknown> = { id: stored.id };
  for (const key in stored.spec)
    if (key !== 'stopTimeoutMs' && key !== 'dependsOn' && key !== 'id') spec[key] = stored.spec[key];
  spec['stopTimeoutMs'] =
    stopTimeoutMs === null || stopTimeoutMs === undefined ? Number.POSITIVE_INFINITY : stopTimeoutMs;
  if (Array.isArray(dependsOn))
    spec['dependsOn'] = dependsOn.filter((d): d is string => typeof d === 'string' && known(d));
  return spec as unknown as JobSpec;
}

/** A job's status as journaled, from its actor's context as it enters `state`. */
export function statusOf(state: JobState, c: JobContext): StoredStatus {
  const status: StoredStatus = { state, attempt: c.attempt };
  if (state === 'queued' && c.queuedAt !== undefined) status.queuedAt = c.queuedAt;
  if (c.startedAt !== undefined) status.startedAt = c.startedAt;
  if (c.endedAt !== undefined) status.endedAt = c.endedAt;
  if (c.error !== undefined) status.error = c.error;
  if (state === 'completed' && c.output !== undefined && isJson(c.output)) status.output = c.output;
  return status;
}

/** A boost as journaled: its level by priority name (as `boost()` is given it), not by number. */
export function storedBoost(boost: Boost): StoredBoost {
  const stored: StoredBoost = { until: boost.until };
  if (boost.toLevel !== undefined) stored.to = nameOf(boost.toLevel);
  if (boost.byLevels !== undefined) stored.by = boost.byLevels;
  return stored;
}

/** A journaled boost read back, if it is still live at `now` (and makes sense); else undefined. */
export function boostOf(stored: StoredBoost | undefined, now: number): Boost | undefined {
  if (typeof stored !== 'object' || stored === null) return undefined;
  const { to, by, until } = stored;
  if (typeof until !== 'number' || !(until > now)) return undefined;
  const toLevel = to === undefined ? undefined : levelOf(to);
  const byLevels =
    typeof by === 'number' && Number.isInteger(by) && Math.abs(by) <= MAX_LEVEL ? by : undefined;
  if (toLevel === -1 || (toLevel === undefined && byLevels === undefined)) return undefined;
  return {
    until,
    ...(toLevel === undefined ? {} : { toLevel }),
    ...(byLevels === undefined ? {} : { byLevels }),
  };
}

const ENDED: ReadonlySet<JobState> = new Set(FINAL_JOB_STATES);

/** The error of an attempt that was running when its scheduler stopped (a crash, a kill). */
export function interrupted(attempt: number): JobError {
  return {
    kind: 'interrupted',
    message: `attempt ${attempt} was interrupted: its scheduler stopped while it ran`,
  };
}

/** One accepted job as journaled, with the status it was accepted in. */
export type JournalEntry = { job: StoredJob; status: StoredStatus };

/** The store calls of a durable scheduler. */
export class Journal {
  /** The submission-order number of the next accepted job (after those recovered). */
  nextSeq = 0;

  /**
   * @param onWriteError told when a transition could not be journaled (a full disk): the job goes
   * on in memory, but a crash before the next successful write would recover it as it was stored.
   */
  constructor(
    private readonly store: JobStore,
    private readonly onWriteError: (error: unknown, jobId: string | undefined) => void = () => undefined,
  ) {
    this.grouped = typeof store.sync === 'function';
  }

  /** Opens the store: what it holds (the scheduler recovers it). */
  open(): StoreContents {
    return this.store.open();
  }

  accept(entries: readonly JournalEntry[]): void {
    // A job may take the id of one retention just let go: that one leaves the store first.
    this.flushPrune();
    // What is written but not yet durable goes first, on its own: a failure there is the
    // transitions' (reported), not this submit's.
    this.sync();
    this.store.accept(entries);
  }

  /**
   * Group commit. A store with `sync` may keep updates until it is called: the journal calls it
   * before anything can follow from what it wrote — before a handler is called (`starting`),
   * before events reach a listener (`moved` when `urgent`), before a public read (the scheduler
   * calls `sync`), before an accept, and otherwise in a microtask queued when the first unsynced
   * write was made. A job's `result` settles after that write, so its reactions run after that
   * microtask; the ends of all attempts that settle in one turn, and the start that follows one,
   * share one write.
   */
  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      this.store.sync?.();
    } catch (error) {
      this.onWriteError(error, undefined);
    }
  }

  /** Updates written but not yet synced; a microtask to sync them is queued. */
  private dirty = false;
  private syncQueued = false;
  private readonly grouped: boolean;
  private readonly syncLater = (): void => {
    this.syncQueued = false;
    this.sync();
  };

  /** An update was written to a store that groups commits: synced now if `urgent`, else in a microtask. */
  private written(urgent: boolean): void {
    if (!this.grouped) return;
    this.dirty = true;
    if (urgent) this.sync();
    else if (!this.syncQueued) {
      this.syncQueued = true;
      queueMicrotask(this.syncLater);
    }
  }

  /**
   * A job moved to `state` at `now`, with the boost it was given (kept while live and the job has
   * not ended). `scheduled` is not kept (a job not yet started recovers as queued), and `running`
   * was written by `starting`, before the handler was called.
   */
  moved(
    id: string,
    state: JobState,
    context: JobContext,
    now: number,
    boost: Boost | undefined,
    urgent: boolean,
  ): void {
    if (state === 'scheduled' || state === 'running') return;
    const status = statusOf(state, context);
    if (state === 'retrying') {
      // Its backoff's timer was armed in this step, for `retryDelayMs`: a recovery waits until then.
      status.retryAt = now + context.retryDelayMs;
      this.retryAts.set(id, status.retryAt);
    } else if (this.retryAts.size > 0) this.retryAts.delete(id);
    if (boost !== undefined && boost.until > now && !ENDED.has(state)) status.boost = storedBoost(boost);
    this.write(id, status);
    this.written(urgent);
  }

  /** When the backoff of each job now `retrying` ends (see `moved`), to write its status again. */
  private readonly retryAts = new Map<string, number>();

  /** A job's next attempt is about to start (its handler is called in the same step). */
  starting(id: string, context: JobContext, now: number, boost: Boost | undefined): void {
    const status: StoredStatus = {
      state: 'running',
      attempt: context.attempt + 1,
      startedAt: context.startedAt ?? now,
    };
    // Still its own if the attempt fails and the job queues again before `until`.
    if (boost !== undefined && boost.until > now) status.boost = storedBoost(boost);
    this.write(id, status);
    // Durable before the handler is called, with whatever was written before it.
    this.written(true);
  }

  /**
   * A waiting job (pending, queued or retrying; `context`: its actor's, now) was given `boost`:
   * its status is written again, with it.
   */
  boosted(id: string, state: JobState, context: JobContext, now: number, boost: Boost, urgent = false): void {
    const status = statusOf(state, context);
    const retryAt = state === 'retrying' ? this.retryAts.get(id) : undefined;
    if (retryAt !== undefined) status.retryAt = retryAt;
    if (boost.until > now) status.boost = storedBoost(boost);
    this.write(id, status);
    this.written(urgent);
  }

  /** Writes a job's status (synced in a microtask at the latest). */
  update(id: string, status: StoredStatus): void {
    this.write(id, status);
    this.written(false);
  }

  private write(id: string, status: StoredStatus): void {
    try {
      this.store.update(id, status);
    } catch (error) {
      this.onWriteError(error, id);
    }
  }

  /**
   * Forgets finished jobs retention let go — gathered over one turn of the event loop's microtasks
   * and written at once (one transaction, not one per finished job): a pruning lost to a crash only
   * leaves finished jobs in the store, which recovery keeps as finished.
   */
  prune(ids: readonly string[]): void {
    if (ids.length === 0) return;
    const first = this.pruning.length === 0;
    for (const id of ids) this.pruning.push(id);
    if (first) queueMicrotask(() => this.flushPrune());
  }

  private pruning: string[] = [];

  private flushPrune(): void {
    const ids = this.pruning;
    if (ids.length === 0) return;
    this.pruning = [];
    try {
      this.store.prune(ids);
    } catch (error) {
      this.onWriteError(error, undefined);
    }
    this.written(false);
  }

  paused(paused: boolean): void {
    try {
      this.store.setPaused(paused);
    } catch (error) {
      this.onWriteError(error, undefined);
    }
    this.written(true);
  }

  close(): void {
    this.flushPrune();
    this.sync();
    try {
      this.store.close();
    } catch (error) {
      this.onWriteError(error, undefined);
    }
  }
}
