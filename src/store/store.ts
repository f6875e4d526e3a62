/**
 * The store port: where a durable scheduler journals what it accepted and every transition of
 * its jobs, and what it reads back when it opens again. The engine calls it at its points of
 * truth (accept, start of an attempt, end of an attempt, a job's end, pause); nothing else in the
 * engine knows which adapter is behind it. A scheduler without a store journals nothing and pays
 * nothing. Every call is synchronous: when `accept` returns, the jobs are on disk (as far as the
 * adapter's durability setting promises), so `submit()` may say they were accepted. An adapter
 * may group commits: with a `sync` method, `update`, `prune` and `setPaused` may stay unwritten
 * until `sync` (or the next `accept`) is called, and the engine calls it before anything can
 * follow from them (see `sync`).
 */
import type { PriorityName } from '../core/priority.js';
import type { JobError, JobState } from '../core/types.js';

/** A JSON value: what payloads, outputs and the stored parts of a job are made of. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What a store keeps of an accepted job: enough to rebuild its spec exactly. */
export type StoredJob = {
  id: string;
  /** Its place in submission order (0, 1, 2, …; the scheduler's own sequence). */
  seq: number;
  /** The job spec as submitted, defaults applied (a plain JSON object: type, payload, priority, …). */
  spec: { [key: string]: JsonValue };
  /** Clock time (ms) it was accepted. */
  submittedAt: number;
};

/**
 * A boost given to a waiting job (`scheduler.boost`), as journaled: to at least priority `to`,
 * or up `by` levels, until clock time `until` (ms).
 */
export type StoredBoost = { to?: PriorityName; by?: number; until: number };

/** Where a job stands, as last journaled. */
export type StoredStatus = {
  state: JobState;
  /** Attempts started so far. */
  attempt: number;
  /** When it last entered `queued` (aging counts from here). */
  queuedAt?: number;
  /** When its first attempt started. */
  startedAt?: number;
  endedAt?: number;
  /** Its last error (a failed attempt, a timeout, a cancel, …). */
  error?: JobError;
  /** A completed job's output (JSON). */
  output?: JsonValue;
  /**
   * A boost it had and that was still live when this status was written (a job not yet ended):
   * a recovered job keeps it until `until`, as it would have.
   */
  boost?: StoredBoost;
  /** While `retrying`: the clock time (ms) its backoff ends; a recovered job waits until then. */
  retryAt?: number;
};

/** What a store held when it was opened. */
export type StoreContents = {
  /** Every job kept, in submission order, with its last status. */
  jobs: Array<{ job: StoredJob; status: StoredStatus }>;
  /** Whether the scheduler was paused. */
  paused: boolean;
  /**
   * The least seq the next accepted job may have, where the store knows of seqs above those it
   * holds (jobs it accepted and has let go since it opened). The scheduler numbers its next
   * accepted job from the greater of this and the highest seq held, plus one.
   */
  nextSeq?: number;
};

/** The port a durable scheduler journals to (`createScheduler({ store })`). */
export interface JobStore {
  /**
   * Opens the store (creating it if new) for this scheduler alone, and reads what it holds.
   * Throws `StoreLockedError` if another scheduler has it open, `StoreCorruptError` for a file
   * that is not a store (or is damaged), `StoreVersionError` for a store of a newer schema.
   */
  open(): StoreContents;
  /**
   * Journals newly accepted jobs, with their first status, all or none (one `submitAll` is one
   * call), in submission order: each seq above any the store holds or accepted since it opened.
   */
  accept(jobs: ReadonlyArray<{ job: StoredJob; status: StoredStatus }>): void;
  /** Journals a job's new status. */
  update(id: string, status: StoredStatus): void;
  /** Forgets finished jobs that retention let go. */
  prune(ids: readonly string[]): void;
  /** Journals pause / resume. */
  setPaused(paused: boolean): void;
  /**
   * Makes every `update`, `prune` and `setPaused` so far durable (one write for all of them), or
   * throws (a full disk) having kept none of them. Optional: without it each call is durable when
   * it returns. With it, the engine calls it before a handler is called, before events or a
   * public read could show what was written, before `accept`, and at the latest in a microtask
   * queued by the first unsynced write — so no job's `result` settles before its end is durable.
   * `accept` writes anything unsynced with the accepted jobs.
   */
  sync?(): void;
  /** Lets go of the store (its lock too), syncing first. Idempotent. */
  close(): void;
}
