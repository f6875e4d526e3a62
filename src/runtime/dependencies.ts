/**
 * Dependency bookkeeping between job records: a job waits for the dependencies not yet ended,
 * starts once the last one lets it, and (afterok) is failed by one that did not complete.
 */
import type { JobState } from '../core/types.js';
import { FINAL, rareOf, type JobActor, type JobRecord, type JobRecords } from './job-records.js';
import type { ShutdownReport } from './types.js';

/** The message that a job may queue (one object: events are never mutated). */
const READY = { type: 'job.ready' } as const;

/** Links dependents to their dependencies and tells them when those end. */
export class Dependencies {
  private readonly notifications: Array<() => void> = [];
  private notifying = false;

  /**
   * @param records the book of jobs dependencies are looked up in
   * @param shutdownReport the report of a shutdown under way, if any
   */
  constructor(
    private readonly records: JobRecords,
    private readonly shutdownReport: () => ShutdownReport | undefined,
  ) {}

  /**
   * Links a just-accepted job (its actor started) to its dependencies, which are all known: it
   * waits for those not yet ended; a failed one (afterok) cancels it; with none left it is ready.
   * `actor` is the one just started (the record may have dropped it already, if the job ended).
   */
  link(record: JobRecord, actor: JobActor): void {
    let failedDep: { id: string; state: JobState } | undefined;
    for (const dep of record.kind.dependsOn) {
      const depRecord = this.records.get(dep) as JobRecord;
      if (!FINAL.has(depRecord.state)) {
        rareOf(record).waitingOn++;
        (rareOf(depRecord).dependents ??= []).push(record.id);
      } else if (depRecord.state !== 'completed' && record.kind.dependencyPolicy === 'afterok') {
        failedDep ??= { id: dep, state: depRecord.state };
      }
    }
    if (failedDep) this.failed(record, failedDep.id, failedDep.state);
    else if ((record.rare?.waitingOn ?? 0) === 0) actor.send(READY);
  }

  /** Tells the dependents of a job that just ended in `state`, and forgets them. */
  ended(record: JobRecord, state: JobState): void {
    const id = record.id;
    const rare = record.rare;
    const dependents = rare?.dependents;
    if (rare) rare.dependents = undefined;
    for (const dependent of dependents ?? []) this.notify(() => this.dependencyEnded(dependent, id, state));
  }

  private failed(record: JobRecord, depId: string, state: JobState): void {
    const report = this.shutdownReport();
    if (report) {
      // Shutdown cancelled the dependency: the dependent ends for the same reason, not its own.
      if (!report.cancelled.includes(record.id)) report.cancelled.push(record.id);
      record.actor?.send({ type: 'job.cancel', reason: 'shutdown' });
      return;
    }
    record.actor?.send({
      type: 'job.dependencyFailed',
      dependencyId: depId,
      message: `dependency ${depId} was ${state}`,
    });
  }

  /** Runs dependency notifications one after another, so long chains never grow the stack. */
  private notify(work: () => void): void {
    this.notifications.push(work);
    if (this.notifying) return;
    this.notifying = true;
    try {
      for (let next = this.notifications.shift(); next; next = this.notifications.shift()) next();
    } finally {
      this.notifying = false;
    }
  }

  private dependencyEnded(dependentId: string, depId: string, state: JobState): void {
    const record = this.records.get(dependentId);
    if (!record?.actor || record.state !== 'pending') return;
    if (state !== 'completed' && record.kind.dependencyPolicy === 'afterok') {
      this.failed(record, depId, state);
      return;
    }
    if (--rareOf(record).waitingOn === 0) record.actor.send(READY);
  }
}
