/**
 * A job with no actor yet. While a job only waits (pending, queued) its steps are context
 * updates, so its snapshot is kept as data and stepped with the machine's own compiled
 * transitions (`passiveStep`); the first step that needs an actor (starting the handler) makes
 * one from that snapshot, and from then on the actor takes every event. Like an actor, it takes
 * events sent while it is reporting a step after that step, in order.
 */
import type { JobEvent } from '../machines/job.machine.js';
import { passiveStep, type JobLogicSnapshot } from '../machines/job.logic.js';
import type { JobActor, JobRecord } from './job-records.js';

/** What a passive job needs of the scheduler. */
export type PassiveHost = {
  /** Reports a step, as the logic's step hook does for an actor. */
  step: (record: JobRecord, snapshot: JobLogicSnapshot) => void;
  /** Makes and starts the job's actor from `snapshot`, and sets it as the record's actor. */
  activate: (record: JobRecord, snapshot: JobLogicSnapshot) => JobActor;
};

export class PassiveJob {
  private busy = false;
  private inbox: JobEvent[] | undefined;

  constructor(
    private readonly record: JobRecord,
    private snapshot: JobLogicSnapshot,
    private readonly host: PassiveHost,
  ) {}

  getSnapshot(): JobLogicSnapshot {
    return this.snapshot;
  }

  send(event: JobEvent): void {
    if (this.busy) {
      (this.inbox ??= []).push(event);
      return;
    }
    this.busy = true;
    try {
      this.take(event);
      for (let next = this.inbox?.shift(); next; next = this.inbox?.shift()) this.take(next);
    } finally {
      this.busy = false;
      this.inbox = undefined;
    }
  }

  private take(event: JobEvent): void {
    const record = this.record;
    if (record.actor !== this) {
      // It has an actor now (or has ended: then the event is dropped, as a final actor would).
      record.actor?.send(event);
      return;
    }
    const next = passiveStep(this.snapshot, event);
    if (next === undefined) {
      this.host.activate(record, this.snapshot).send(event);
      return;
    }
    if (next === this.snapshot) return;
    this.snapshot = next;
    this.host.step(record, next);
  }
}
