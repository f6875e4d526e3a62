/**
 * What a user sees of a job: its snapshot (for a queued job, read against the scheduler as it
 * is now) and its handle.
 */
import { BehaviorSubject, of, type Observable } from 'rxjs';
import type { Actor } from 'xstate';
import type { JobStateSnapshot } from '../machines/job.machine.js';
import type { Dispatcher } from '../core/dispatcher.js';
import type { QueuedJob, schedulerMachine } from '../machines/scheduler.machine.js';
import type { SchedulerClock } from './clock.js';
import { endedSnapshot, hasEnded, rareOf, resultOf, type JobActor, type JobRecord } from './job-records.js';
import { toJobSnapshot } from './snapshot.js';
import type { JobHandle, JobSnapshot } from './types.js';

/** What a queued job's snapshot is read against. */
export type QueueView = {
  scheduler: Actor<typeof schedulerMachine>;
  dispatcher: Dispatcher<QueuedJob>;
  clock: SchedulerClock;
  /** Queued jobs that no node of the pool could hold, waiting for one to join (by id). */
  noNode: ReadonlyMap<string, unknown>;
};

/** A job's snapshot: the final one once final, else built from `snap` (or its actor's own). */
export function snapshotOf(record: JobRecord, view: QueueView, snap?: JobStateSnapshot): JobSnapshot {
  if (hasEnded(record)) return endedSnapshot(record);
  const current = snap ?? (record.actor as JobActor).getSnapshot();
  const out = toJobSnapshot(record.id, record.kind, current, effectiveLevel(record, view));
  if (record.state === 'queued')
    out.waitReason =
      view.noNode.size > 0 && view.noNode.has(record.id)
        ? 'noNode'
        : (queuedWaitReason(out.waitReason, view) ?? 'resources');
  return out;
}

/** What a job handle asks of its scheduler. */
export type HandleOwner = {
  snapshotOf(record: JobRecord): JobSnapshot;
  cancel(id: string): boolean;
};

/**
 * A job's handle. `id` and `cancel` work detached from it (`const { id, cancel } = handle`);
 * `result` and `state$` make their promise and subject only once someone asks, so a large
 * backlog costs none.
 */
class Handle implements JobHandle {
  readonly id: string;
  private cancelJob: (() => boolean) | undefined = undefined;

  constructor(
    private readonly record: JobRecord,
    private readonly owner: HandleOwner,
  ) {
    this.id = record.id;
  }

  /**
   * Works detached (`const { cancel } = handle`) and is one function however often it is read;
   * made on first read, as most handles are never asked to cancel.
   */
  get cancel(): () => boolean {
    const { owner, id } = this;
    return (this.cancelJob ??= () => owner.cancel(id));
  }

  get result(): Promise<unknown> {
    return resultOf(this.record);
  }

  get state$(): Observable<JobSnapshot> {
    const record = this.record;
    if (hasEnded(record)) return of(endedSnapshot(record));
    const rare = rareOf(record);
    rare.subject ??= new BehaviorSubject(this.owner.snapshotOf(record));
    return rare.subject.asObservable();
  }
}

/** A job's handle (see `Handle`). */
export function jobHandle(record: JobRecord, owner: HandleOwner): JobHandle {
  return new Handle(record, owner);
}

/**
 * Why a queued job waits, read from the scheduler as it is now: paused, every slot taken, or
 * (the job's own last word) resources. Deriving it costs O(1) per read, where telling every
 * queued job each time a slot fills or frees would cost O(queue).
 */
function queuedWaitReason(own: JobSnapshot['waitReason'], view: QueueView): JobSnapshot['waitReason'] {
  const scheduler = view.scheduler.getSnapshot();
  if (scheduler.matches({ ready: 'paused' }) || scheduler.matches({ starting: 'pausedEarly' }))
    return 'paused';
  if (view.dispatcher.full) return 'concurrency';
  return own === 'paused' || own === 'concurrency' ? 'resources' : own;
}

function effectiveLevel(record: JobRecord, view: QueueView): number {
  if (record.state !== 'queued') return record.kind.level;
  // The record carries its queue entry: no lookup by id.
  const entry = record.queueEntry;
  return entry ? view.dispatcher.queue.level(entry, view.clock.now()) : record.kind.level;
}
