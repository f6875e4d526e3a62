/**
 * Taking a job in: checking a spec against what the scheduler knows, and creating the job's
 * actor (a root actor on the shared clock, so a growing backlog never copies a parent's
 * children map).
 */
import { createActor } from 'xstate';
import { DuplicateJobError, UnknownDependencyError } from '../core/errors.js';
import {
  normaliseJobSpec,
  requestOf,
  type JobSpec,
  type JobSpecContext,
  type NormalisedJob,
} from '../core/job-spec.js';
import { assertCanEverFit, toUnits, type UnitRequest } from '../core/pool.js';
import type { Handlers } from '../actors/handler.js';
import type { JobLogic, JobLogicEvent, JobLogicSnapshot } from '../machines/job.logic.js';
import type { JobMachineInput } from '../machines/job.machine.js';
import { LeanActor, type LeanHost } from './lean-actor.js';
import type { JobActor, JobRecord, JobRecords } from './job-records.js';
import type { SchedulerClock } from './clock.js';
import type { ResolvedOptions, SchedulerOptions } from './options.js';
import { canHold, type KnownPool } from './resources.js';

/**
 * An accepted job and its request in ledger units. `noNode`: no node of the pool could hold it
 * (accepted under `unschedulable: 'wait'`; it waits for a node that can to join).
 */
export type CheckedJob = { job: NormalisedJob; units: UnitRequest; generated: boolean; noNode?: true };

/** Ids taken by no one. */
export const NO_IDS: ReadonlySet<string> = new Set();

/**
 * Checks jobs against what the scheduler knows. One object per scheduler, which is also the
 * context the spec check calls back (a submit makes no closures).
 */
export class Intake implements JobSpecContext {
  /** The pool, once known: until then jobs are checked only for their shape. */
  pool: KnownPool | undefined = undefined;
  /** `unschedulable: 'wait'`: a job no node could hold is accepted (`CheckedJob.noNode`). */
  readonly waitForNode: boolean;
  readonly defaultTimeoutMs: number | undefined;
  readonly defaultStopTimeoutMs: number | undefined;
  readonly retryAttempts: number;
  readonly backoff: ResolvedOptions['backoff'];
  /** The ids already taken by the submission under check. */
  private batch: ReadonlySet<string> = NO_IDS;
  /** The ids its jobs declare (a later job's too): a generated id must not take one of them. */
  private declared: ReadonlySet<string> = NO_IDS;

  constructor(
    options: ResolvedOptions,
    private readonly handlers: Handlers,
    private readonly records: JobRecords,
  ) {
    this.defaultTimeoutMs = options.defaultTimeoutMs;
    this.defaultStopTimeoutMs = options.stopTimeoutMs;
    this.retryAttempts = options.retryAttempts;
    this.backoff = options.backoff;
    this.waitForNode = options.unschedulable === 'wait';
  }

  isHandlerType(type: string): boolean {
    return Object.hasOwn(this.handlers, type);
  }

  handlerTypes(): string[] {
    return Object.keys(this.handlers);
  }

  newId(): string {
    // `records.newId` skips the ids taken; the ones a later job of the batch declares are not
    // taken yet, and are skipped here (each call moves the sequence on).
    let id = this.records.newId(this.batch);
    while (this.declared.has(id)) id = this.records.newId(this.batch);
    return id;
  }

  /**
   * Checks one job. `batch` holds the ids already taken in this submission; `batchIds` the ids
   * a batch declares, which its jobs may depend on in any order.
   */
  check(spec: JobSpec, batch: ReadonlySet<string>, batchIds: ReadonlySet<string> = batch): CheckedJob {
    const { records, pool } = this;
    this.batch = batch;
    this.declared = batchIds;
    let job: NormalisedJob;
    try {
      job = normaliseJobSpec(spec, this);
    } finally {
      this.batch = NO_IDS;
      this.declared = NO_IDS;
    }
    // A generated id is new by construction (see `JobRecords.newId`); a chosen one is looked up.
    if (spec.id !== undefined && (records.has(job.id) || batch.has(job.id)))
      throw new DuplicateJobError(job.id);
    for (const dep of job.dependsOn) {
      if (!records.has(dep) && !batchIds.has(dep)) {
        throw new UnknownDependencyError(job.id, dep, records.dropped > 0 ? records.retainLimit : undefined);
      }
    }
    // Converted once, here: the job keeps its units, not the object it was given (which its
    // submitter may change or reuse after the submit).
    const units = toUnits(requestOf(spec));
    if (pool && !pool.fits.has(units)) {
      if (this.waitForNode) {
        if (!canHold(pool, units)) return { job, units, generated: spec.id === undefined, noNode: true };
      } else {
        assertCanEverFit(units, pool.nodes, pool.maxima);
        pool.fits.add(units);
      }
    }
    return { job, units, generated: spec.id === undefined };
  }
}

/** A job's retry-jitter seed, drawn from `random`. */
export function jobSeed(options: ResolvedOptions): number {
  return Math.floor(options.random() * 2 ** 32) | 0;
}

/** What an accepted job's actor starts from; its retry jitter is seeded from `random`. */
export function jobInput(
  record: JobRecord,
  options: ResolvedOptions,
  seed = jobSeed(options),
): JobMachineInput {
  const { kind } = record;
  const input: JobMachineInput = {
    id: record.id,
    type: kind.type,
    payload: record.payload,
    clock: options.clock,
    maxAttempts: kind.maxAttempts,
    backoff: kind.backoff,
    seed,
  };
  if (kind.group !== undefined) input.group = kind.group;
  if (kind.timeoutMs !== undefined) input.timeoutMs = kind.timeoutMs;
  if (kind.stopTimeoutMs !== undefined) input.stopTimeoutMs = kind.stopTimeoutMs;
  const restored = record.rare?.restored;
  if (restored) {
    input.attempt = restored.attempt;
    if (restored.error !== undefined) input.error = restored.error;
  }
  return input;
}

/** What the job actors of one scheduler share (see `LeanHost`). */
export type JobHost = LeanHost<JobLogicSnapshot, JobLogicEvent> & {
  readonly logic: JobLogic;
  readonly clock: SchedulerClock;
};

/**
 * A job's actor: hosted by the lean host (see lean-actor.ts), or — when the scheduler is
 * inspected — by XState's `createActor`, so that the inspector sees every job actor. Both run the
 * same logic (`host.logic`).
 */
export function createJobActor(
  host: JobHost,
  input: JobMachineInput,
  inspect: SchedulerOptions['inspect'],
  /** Where it is inspected: hears of a logic that threw (the lean host tells `host.onError`). */
  onError: (error: unknown) => void,
): JobActor {
  if (!inspect) return new LeanActor(host, input);
  // Named by the job's id, so an inspector shows and finds it by that id (Stately's names an actor
  // by `actorRef.id`; without one, XState gives the session id, `x:N`). Not a `systemId`: each
  // job is the root of a system of its own, so one would name it only there, and the inspector
  // does not show it.
  const actor = createActor(host.logic, { clock: host.clock, inspect, input, id: input.id });
  actor.subscribe({ error: onError });
  actor.start();
  return actor;
}
