/**
 * The scheduler's book of jobs: one plain record per job (live or finished), the counts by
 * state, the groups, and the retention of finished records (at most `retainFinished`).
 */
import type { BehaviorSubject } from 'rxjs';
import type { Actor } from 'xstate';
import type { NormalisedJob } from '../core/job-spec.js';
import type { UnitRequest } from '../core/pool.js';
import { nameOf } from '../core/priority.js';
import { DONE_PROGRESS, NO_PROGRESS, type Progress } from '../core/progress.js';
import type { Boost, QueueEntry } from '../core/queue.js';
import { FINAL_JOB_STATES, JOB_STATES, type JobError, type JobState } from '../core/types.js';
import type { JobLogic } from '../machines/job.logic.js';
import type { JobContext } from '../machines/job.machine.js';
import type { JobSnapshot } from './types.js';

/** Index tables and the ended jobs' times are kept in chunks of 1,024. */
const CHUNK_BITS = 10;
const CHUNK = 1 << CHUNK_BITS;
/** What `JobRecords.ended` keeps per job: submit, start and end times, attempts, progress code. */
const ENDED_SLOTS = 5;
const PROGRESS_NONE = 0;
const PROGRESS_DONE = 1;
const PROGRESS_OWN = 2;

/** A live job's actor: on the lean host, or XState's when inspected (see job-intake.ts). */
export type JobActor = Pick<Actor<JobLogic>, 'send' | 'getSnapshot'>;

/**
 * What jobs of one shape share: their normalised spec but for id and payload, and their request
 * in ledger units. Most workloads submit a handful of shapes, so one frozen object serves many
 * jobs (see `JobRecords.kindOf`): a record holds one pointer where it held ten fields.
 */
export type JobKind = Readonly<Omit<NormalisedJob, 'id' | 'payload'>> & {
  /** The request in ledger units. */
  readonly units: UnitRequest;
};

/** What the scheduler keeps of one job: its id, payload and kind, and its state. */
export type JobRecord = {
  readonly id: string;
  readonly payload: unknown;
  readonly kind: JobKind;
  /** `kind.units`, here too: the dispatcher places `value.units` of what it queues. */
  readonly units: UnitRequest;
  /**
   * The record is its own queue entry (the queue keeps no index and makes no entry object of its
   * own): `queueEntry` is the record itself while queued; the queue owns the fields below it.
   */
  queueEntry: QueueEntry<JobRecord> | undefined;
  base: number;
  queuedAt: number;
  order: number;
  /** The boost the queue applies (live while queued). */
  boost: Boost | undefined;
  value: JobRecord;
  prev: QueueEntry<JobRecord> | undefined;
  next: QueueEntry<JobRecord> | undefined;
  /**
   * The job's actor while it is live; none yet for a job that went straight into the queue and
   * has not been needed since (see `JobRecords.actorOf`).
   */
  actor: JobActor | undefined;
  /**
   * Undefined until the job ended; then the shared chunk that keeps, from `timesAt`, its submit,
   * start and end times, the attempts it had started and its progress (see `JobRecords.ended`).
   * An ended job keeps no snapshot object: its snapshot is made when asked (`endedSnapshot`) —
   * at a deep backlog the record is in the old generation, and a new object kept by it would be
   * copied and promoted by the scavenger (docs/performance.md, steps 20 and 23).
   */
  times: Float64Array | undefined;
  timesAt: number;
  state: JobState;
  /** What few jobs need (dependencies, boosts, progress, `result`, `state$`): made at the first. */
  rare: RareFields | undefined;
  /**
   * How the job ended: `UNSETTLED` until then, then its output — as it is, no wrapper object — or
   * a `Failure` (what `result` rejects with, made when asked).
   */
  outcome: unknown;
  /** The job actor's transitions seen (see `JobLogicSnapshot.steps`). */
  steps: number;
  /** The retry-jitter seed drawn at submit, for an actor that starts later. */
  seed: number;
  /** Its place in submission order (see `JobRecords`). */
  seq: number;
  /**
   * The N of its generated id `job-N`, by which it is kept (−1: a chosen id, kept in a map): read
   * here, not from the id, so that finishing and dropping it never touch the id string.
   */
  readonly n: number;
};

/**
 * A job record's fields that most jobs never use, in an object of their own made when first
 * needed: a queued job in a deep backlog is then smaller (fewer bytes to keep, to copy when the
 * garbage collector promotes it, and to bring into the caches when it starts).
 */
export type RareFields = {
  /** Dependencies not yet ended in a way that lets this job run. */
  waitingOn: number;
  /** Jobs waiting on this one (made at the first). */
  dependents: string[] | undefined;
  /** The boost given to it while it waits (also while not queued: applied when it queues). */
  boostGiven: Boost | undefined;
  /** The progress last told (a `job.progress` event goes out when it changes). */
  progressSeen: number;
  noteSeen: string | undefined;
  /** The `result` promise, made when first asked for (most callers never ask). */
  result: Promise<unknown> | undefined;
  settle: { resolve: (value: unknown) => void; reject: (error: unknown) => void } | undefined;
  subject: BehaviorSubject<JobSnapshot> | undefined;
  /** Why it did not complete, once ended so. */
  endError: JobError | undefined;
  /** Its progress when it ended, where that is not a shared one (see `JobRecords.ended`). */
  endProgress: Progress | undefined;
  /** Its running attempt was told to stop and has not stopped yet (counted in `stats().stopping`). */
  stopping: boolean;
  /** Recovered from a store: the attempts it had and its last error (its actor starts from them). */
  restored: { attempt: number; error: JobError | undefined; submittedAt: number } | undefined;
};

/** A record's rare fields, made now if it had none. */
export function rareOf(record: JobRecord): RareFields {
  return (record.rare ??= {
    waitingOn: 0,
    dependents: undefined,
    boostGiven: undefined,
    progressSeen: 0,
    noteSeen: undefined,
    result: undefined,
    settle: undefined,
    subject: undefined,
    endError: undefined,
    endProgress: undefined,
    stopping: false,
    restored: undefined,
  });
}

/** The outcome of a job that has not ended (see `JobRecord.outcome`). */
export const UNSETTLED: unique symbol = Symbol('unsettled');

/** How a job that did not complete ended: what its `result` rejects with, made when asked (a stack trace costs µs). */
export class Failure {
  constructor(readonly error: () => Error) {
    FAILURES.add(this);
  }
}

/**
 * Every `Failure`: an outcome is told from an output by this set, not by `instanceof`, which
 * would run a user's Proxy traps (an output whose `getPrototypeOf` throws must still complete).
 */
const FAILURES = new WeakSet<object>();

function isFailure(outcome: unknown): outcome is Failure {
  return typeof outcome === 'object' && outcome !== null && FAILURES.has(outcome);
}

/** A job's `result` promise, made on first ask (settled already if the job has ended). */
export function resultOf(record: JobRecord): Promise<unknown> {
  const rare = rareOf(record);
  if (rare.result) return rare.result;
  const outcome = record.outcome;
  const result =
    outcome === UNSETTLED
      ? new Promise<unknown>((resolve, reject) => (rare.settle = { resolve, reject }))
      : isFailure(outcome)
        ? Promise.reject(outcome.error())
        : Promise.resolve(outcome);
  // Callers that never handle a rejection must not see it reported as unhandled.
  result.catch(() => undefined);
  rare.result = result;
  return result;
}

/** Records how a job ended — its output, or a `Failure` — and settles its `result` if someone asked for it. */
export function settle(record: JobRecord, outcome: unknown): void {
  record.outcome = outcome;
  const rare = record.rare;
  const waiting = rare?.settle;
  if (!rare || !waiting) return;
  rare.settle = undefined;
  if (isFailure(outcome)) waiting.reject(outcome.error());
  else waiting.resolve(outcome);
}

/** States of a job that waits for a start: it holds a queue place. */
export const WAITING: ReadonlySet<JobState> = new Set(['pending', 'queued', 'retrying']);
/** States of a job that holds a slot and resources. */
export const HOLDING: ReadonlySet<JobState> = new Set(['scheduled', 'running']);
/** States a job never leaves. */
export const FINAL: ReadonlySet<JobState> = new Set(FINAL_JOB_STATES);

/** Job records by id, in submission order, with the counts and groups kept in step. */
export class JobRecords {
  /** Jobs by state; moved only by `add` and `moved`. */
  readonly counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  /** Records in submission order, by `seq`. */
  private readonly order = new IndexTable<JobRecord>();
  /**
   * Records of generated ids (`job-N`), by N: no hashing of strings, and dense (N counts up). A
   * chosen id, even of that form, goes into `named`: chosen numbers may be far apart.
   */
  private readonly numbered = new IndexTable<JobRecord>();
  /** Records with any other id. */
  private readonly named = new Map<string, JobRecord>();
  private nextSeq = 0;
  /** The kinds made last, newest first (see `kindOf`). */
  private readonly kinds: JobKind[] = [];
  private readonly groups = new Map<string, Set<string>>();
  /**
   * Finished jobs, oldest first, as pairs: the `seq` of each, and the N of its generated id — or
   * the record itself where its id was chosen or it has a group. Dropping the oldest thus
   * touches neither its record nor its id, which at a deep backlog are long out of the caches.
   */
  private readonly finishedSeq: number[] = [];
  private readonly finishedRef: Array<JobRecord | number | undefined> = [];
  private finishedHead = 0;
  private batching = false;
  private idSeq = 0;
  /** A job chose an id of the form `newId` makes (see `newId`). */
  private chosenLikeOurs = false;
  /**
   * Ended jobs' figures, `ENDED_SLOTS` per job, in chunks of 1,024 jobs: a chunk lives while a
   * record that uses it does (a retained one, or one a job handle still holds).
   */
  private timesChunk = new Float64Array(0);
  private timesUsed = CHUNK;

  private droppedCount = 0;

  /**
   * @param retainFinished how many finished records to keep
   * @param wake makes the actor of a job that has none yet (see `actorOf`)
   */
  constructor(
    private readonly retainFinished: number,
    private readonly wake: (record: JobRecord) => JobActor = noActor,
  ) {}

  /**
   * A live job's actor (undefined once the job is final). A job accepted straight into the queue
   * (`Scheduler.acceptQueued`) gets its actor only here, when first needed — to start, to be
   * cancelled, at shutdown — so that a job waiting in a deep backlog holds no actor: it is such a
   * job while it is `queued` with no actor (every other job has one from its submit to its end).
   * A snapshot read does not make one (`Scheduler.currentSnapshot`).
   */
  actorOf(record: JobRecord): JobActor | undefined {
    if (!this.waitsWithoutActor(record)) return record.actor;
    record.actor = this.wake(record);
    return record.actor;
  }

  /** Whether the job is one accepted straight into the queue whose actor is not made yet. */
  waitsWithoutActor(record: JobRecord): boolean {
    return record.actor === undefined && record.state === 'queued' && record.times === undefined;
  }

  /** How many finished records retention has let go. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** How many finished records are kept (`retainFinished`). */
  get retainLimit(): number {
    return this.retainFinished;
  }

  get(id: string): JobRecord | undefined {
    const n = numberOf(id);
    return (n < 0 ? undefined : this.numbered.get(n)) ?? this.named.get(id);
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  /**
   * Every record, in submission order. Like a `Map`'s, the iteration sees records added after it
   * began and skips those dropped before it reaches them.
   */
  *entries(): IterableIterator<[string, JobRecord]> {
    for (const record of this.order.values()) yield [record.id, record];
  }

  /** The ids of every job, or of one group's, in submission order. */
  ids(group?: string): IterableIterator<string> {
    return group === undefined ? this.allIds() : (this.groups.get(group) ?? new Set<string>()).values();
  }

  private *allIds(): IterableIterator<string> {
    for (const record of this.order.values()) yield record.id;
  }

  /** A new record for an accepted job, `pending`; `generated`: its id came from `newId`. */
  add(job: NormalisedJob, units: UnitRequest, generated = false): JobRecord {
    const n = generated ? numberOf(job.id) : -1;
    // An object literal, not a class: V8 pretenures a literal whose objects survive (at a deep
    // backlog these records are made in the old generation, never copied by the scavenger); a
    // class instance has no allocation site to learn that (docs/performance.md, step 17's note).
    const record: JobRecord = {
      id: job.id,
      payload: job.payload,
      kind: this.kindOf(job, units),
      units,
      queueEntry: undefined,
      base: 0,
      queuedAt: 0,
      order: 0,
      boost: undefined,
      value: undefined as unknown as JobRecord,
      prev: undefined,
      next: undefined,
      actor: undefined,
      times: undefined,
      timesAt: 0,
      state: 'pending',
      rare: undefined,
      outcome: UNSETTLED,
      steps: 0,
      seed: 0,
      seq: this.nextSeq++,
      n,
    };
    if (!generated && job.id.startsWith('job-')) this.chosenLikeOurs = true;
    record.value = record;
    this.order.set(record.seq, record);
    if (n < 0) this.named.set(job.id, record);
    else this.numbered.set(n, record);
    this.counts.pending++;
    if (job.group !== undefined) {
      const members = this.groups.get(job.group) ?? new Set<string>();
      members.add(job.id);
      this.groups.set(job.group, members);
    }
    return record;
  }

  /**
   * The kind of a job: a recent one with the same fields (the last 8 kinds; a job that names
   * dependencies gets its own, so the shared ones all hold the one empty `dependsOn`), else a new
   * frozen one.
   */
  private kindOf(job: NormalisedJob, units: UnitRequest): JobKind {
    const shared = job.dependsOn.length === 0;
    if (shared)
      for (const k of this.kinds)
        if (
          k.type === job.type &&
          k.level === job.level &&
          k.units === units &&
          k.timeoutMs === job.timeoutMs &&
          k.stopTimeoutMs === job.stopTimeoutMs &&
          k.maxAttempts === job.maxAttempts &&
          k.backoff === job.backoff &&
          k.group === job.group &&
          k.dependencyPolicy === job.dependencyPolicy
        )
          return k;
    const kind: JobKind = Object.freeze({
      type: job.type,
      priority: job.priority,
      level: job.level,
      timeoutMs: job.timeoutMs,
      stopTimeoutMs: job.stopTimeoutMs,
      maxAttempts: job.maxAttempts,
      backoff: job.backoff,
      group: job.group,
      dependsOn: job.dependsOn,
      dependencyPolicy: job.dependencyPolicy,
      units,
    });
    if (shared) {
      if (this.kinds.length >= 8) this.kinds.pop();
      this.kinds.unshift(kind);
    }
    return kind;
  }

  /** Records a job's move to `state`. */
  moved(record: JobRecord, state: JobState): void {
    const prev = record.state;
    this.counts[prev]--;
    this.counts[state]++;
    record.state = state;
    if (this.leftQueue !== undefined && WAITING.has(prev) && !WAITING.has(state)) this.leftQueue();
  }

  /**
   * Told when a job stops waiting, so that a place of `maxQueueSize` comes free (see `Room`);
   * set once someone first waits for room (until then a move costs nothing more).
   */
  leftQueue: (() => void) | undefined = undefined;

  /**
   * Jobs that wait — pending, queued or retrying — what `maxQueueSize` bounds. A running job takes
   * no place: one that fails and retries comes back whether or not there is room.
   */
  queueSize(): number {
    return this.counts.pending + this.counts.queued + this.counts.retrying;
  }

  /** Jobs not yet final. */
  liveCount(): number {
    return this.queueSize() + this.counts.scheduled + this.counts.running;
  }

  /** Where the generated ids stand: `rewindIds` takes back those made since (a refused submit). */
  idMark(): number {
    return this.idSeq;
  }

  rewindIds(mark: number): void {
    this.idSeq = mark;
  }

  /** Generated ids go on past `job-n` (jobs recovered from a store hold the ones up to it). */
  advanceIds(n: number): void {
    this.idSeq = Math.max(this.idSeq, n);
  }

  /** A fresh `job-N` id, taken neither by a record nor by `batch`. */
  newId(batch: ReadonlySet<string>): string {
    let id: string;
    // Only a job that chose a `job-…` id of its own can hold one not yet made here: until one
    // does, a fresh id needs no lookup in a table of every job.
    do id = `job-${++this.idSeq}`;
    while ((this.chosenLikeOurs && this.has(id)) || batch.has(id));
    return id;
  }

  /**
   * Keeps what an ended job's snapshot needs, from its actor's last context, in a shared chunk:
   * no object per job, and no field on the record for what only an ended job has (a queued
   * job's record is the larger part of a deep backlog). Its progress is kept as a code — none,
   * done, or (rarely: a note, or a fraction it stopped at) the object itself in its rare fields.
   */
  ended(record: JobRecord, context: JobContext): void {
    if (context.error !== undefined) rareOf(record).endError = context.error;
    const progress = context.progress;
    const code =
      progress === NO_PROGRESS ? PROGRESS_NONE : progress === DONE_PROGRESS ? PROGRESS_DONE : PROGRESS_OWN;
    if (code === PROGRESS_OWN) rareOf(record).endProgress = progress;
    if (this.timesUsed === CHUNK) {
      this.timesChunk = new Float64Array(ENDED_SLOTS * CHUNK);
      this.timesUsed = 0;
    }
    const at = ENDED_SLOTS * this.timesUsed++;
    const times = this.timesChunk;
    times[at] = context.submittedAt;
    times[at + 1] = context.startedAt ?? Number.NaN;
    times[at + 2] = context.endedAt ?? Number.NaN;
    times[at + 3] = context.attempt;
    times[at + 4] = code;
    record.times = times;
    record.timesAt = at;
  }

  /** Notes that a job finished; the oldest finished records may go. */
  finished(record: JobRecord): void {
    const n = record.kind.group === undefined ? record.n : -1;
    this.finishedSeq.push(record.seq);
    this.finishedRef.push(n < 0 ? record : n);
    this.retain();
  }

  /**
   * Runs `work` with finished records kept: a dependency that fails at once must not be dropped
   * by retention before a later job of the batch looks it up.
   */
  batch<T>(work: () => T): T {
    this.batching = true;
    try {
      return work();
    } finally {
      this.batching = false;
      this.retain();
    }
  }

  /** Told the ids of finished records retention let go (a durable scheduler forgets them in its store). */
  onDrop: ((ids: string[]) => void) | undefined = undefined;

  /** Keeps at most `retainFinished` finished records, dropping the oldest. */
  private retain(): void {
    if (this.batching) return;
    const { finishedSeq, finishedRef } = this;
    const dropped: string[] | undefined = this.onDrop ? [] : undefined;
    while (finishedSeq.length - this.finishedHead > this.retainFinished) {
      const oldest = this.finishedHead++;
      this.droppedCount++;
      const ref = finishedRef[oldest];
      if (dropped && ref !== undefined) dropped.push(typeof ref === 'number' ? `job-${ref}` : ref.id);
      // Let a dropped record go now, not when the list is next compacted.
      finishedRef[oldest] = undefined;
      this.order.delete(finishedSeq[oldest] as number);
      if (typeof ref === 'number') this.numbered.delete(ref);
      else if (ref) {
        if (ref.n >= 0) this.numbered.delete(ref.n);
        else this.named.delete(ref.id);
        if (ref.kind.group !== undefined) this.groups.get(ref.kind.group)?.delete(ref.id);
      }
    }
    if (dropped && dropped.length > 0) this.onDrop?.(dropped);
    if (this.finishedHead > 1_024 && this.finishedHead * 2 > finishedSeq.length) {
      finishedSeq.splice(0, this.finishedHead);
      finishedRef.splice(0, this.finishedHead);
      this.finishedHead = 0;
    }
  }
}

/** Whether the job ended (its figures are kept: see `JobRecords.ended`). */
export function hasEnded(record: JobRecord): boolean {
  return record.times !== undefined;
}

/**
 * An ended job's snapshot, made from its record (see `JobRecords.ended`): what `toJobSnapshot`
 * made of its last context (an ended job has no allocation and no wait reason).
 */
export function endedSnapshot(record: JobRecord): JobSnapshot {
  const { kind, timesAt } = record;
  const times = record.times as Float64Array;
  const code = times[timesAt + 4];
  const out: JobSnapshot = {
    id: record.id,
    type: kind.type,
    state: record.state,
    priority: kind.priority,
    effectivePriority: nameOf(kind.level),
    attempt: times[timesAt + 3] as number,
    maxAttempts: kind.maxAttempts,
    progress:
      code === PROGRESS_NONE
        ? NO_PROGRESS
        : code === PROGRESS_DONE
          ? DONE_PROGRESS
          : (record.rare?.endProgress as Progress),
    submittedAt: times[timesAt] as number,
  };
  if (kind.group !== undefined) out.group = kind.group;
  const error = record.rare?.endError;
  if (error !== undefined) out.error = error;
  const startedAt = times[timesAt + 1] as number;
  const endedAt = times[timesAt + 2] as number;
  if (!Number.isNaN(startedAt)) out.startedAt = startedAt;
  if (!Number.isNaN(endedAt)) out.endedAt = endedAt;
  return out;
}

function noActor(record: JobRecord): JobActor {
  throw new Error(`job ${record.id} has no actor and no way to make one`);
}

/** The N of an id `job-N` (N from 1 to 2³¹ − 1 written without leading zeros), else −1. */
export function numberOf(id: string): number {
  // Plain-JS callers may pass anything as an id (`get(undefined)` finds nothing, as it did).
  if (typeof id !== 'string') return -1;
  const length = id.length;
  if (length < 5 || length > 14 || id.charCodeAt(0) !== 106 || !id.startsWith('job-')) return -1;
  let n = 0;
  for (let i = 4; i < length; i++) {
    const digit = id.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9 || (digit === 0 && i === 4)) return -1;
    n = n * 10 + digit;
  }
  return n <= 0x7fffffff ? n : -1;
}

type Chunk<T> = { readonly slots: Array<T | undefined>; live: number };

/**
 * Values by non-negative integer index (below 2³¹), kept in chunks of 1,024 slots: a lookup is
 * a small map's and an array's, with no string hashed and no table of every value rehashed as
 * values come and go. Indices are meant to grow (ids and submission order), so the values live
 * in few chunks; a chunk goes once it holds none, unless it is the newest.
 */
export class IndexTable<T> {
  private readonly chunks = new Map<number, Chunk<T>>();
  /** No chunk below `low` (it rises as the oldest go, seen when iterating); the newest is `high`. */
  private low = 0;
  private high = -1;

  get(index: number): T | undefined {
    return this.chunks.get(index >>> CHUNK_BITS)?.slots[index & (CHUNK - 1)];
  }

  /** Sets a value at a free index. */
  set(index: number, value: T): void {
    const key = index >>> CHUNK_BITS;
    let chunk = this.chunks.get(key);
    if (!chunk) {
      chunk = { slots: new Array<T | undefined>(CHUNK).fill(undefined), live: 0 };
      this.chunks.set(key, chunk);
      if (this.high < this.low || key < this.low) this.low = key;
      if (key > this.high) {
        // The newest chunk was kept while empty (it was being filled); it is not the newest now.
        if (this.chunks.get(this.high)?.live === 0) this.chunks.delete(this.high);
        this.high = key;
      }
    }
    const slot = index & (CHUNK - 1);
    if (chunk.slots[slot] === undefined) chunk.live++;
    chunk.slots[slot] = value;
  }

  delete(index: number): void {
    const key = index >>> CHUNK_BITS;
    const chunk = this.chunks.get(key);
    const slot = index & (CHUNK - 1);
    if (!chunk || chunk.slots[slot] === undefined) return;
    chunk.slots[slot] = undefined;
    if (--chunk.live > 0 || key === this.high) return;
    this.chunks.delete(key);
  }

  /** How many chunks it holds (for tests: emptied chunks must go). */
  get chunkCount(): number {
    return this.chunks.size;
  }

  /** The values by rising index; sees values set after it began, skips those deleted before. */
  *values(): IterableIterator<T> {
    // The oldest chunks went: start past them (`low` only rises here, so this costs once each).
    while (this.low < this.high && !this.chunks.has(this.low)) this.low++;
    for (let key = this.low; key <= this.high; key++) {
      const chunk = this.chunks.get(key);
      if (!chunk) continue;
      for (let slot = 0; slot < CHUNK; slot++) {
        const value = chunk.slots[slot];
        if (value !== undefined) yield value;
      }
    }
  }
}
