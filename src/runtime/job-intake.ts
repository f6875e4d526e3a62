/**
 * Taking a job in: checking a spec against what the scheduler knows, and creating the job's
 * actor (a root actor on the shared clock, so a growing backlog never copies a parent's
 * children map).
 */
import { createActor, fromTransition, type AnyActorRef } from 'xstate';
import { DuplicateJobError, UnknownDependencyError } from '../core/errors.js';
import { normaliseJobSpec, type JobSpec, type NormalisedJob } from '../core/job-spec.js';
import { assertCanEverFit, toUnits, type UnitRequest } from '../core/pool.js';
import type { Handlers } from '../actors/handler.js';
import { initialJobSnapshot, type JobLogic, type JobLogicSnapshot } from '../machines/job.logic.js';
import type { JobActor, JobRecords } from './job-records.js';
import type { ResolvedOptions, SchedulerOptions } from './options.js';
import type { KnownPool } from './resources.js';

/** An accepted job and its request in ledger units. */
export type CheckedJob = { job: NormalisedJob; units: UnitRequest };

/** What a spec is checked against. */
export type IntakeContext = {
  options: ResolvedOptions;
  handlers: Handlers;
  records: JobRecords;
  /** The pool, once known: until then jobs are checked only for their shape. */
  pool: KnownPool | undefined;
};

/**
 * Checks one job. `batch` holds the ids already taken in this submission; `batchIds` the ids
 * a batch declares, which its jobs may depend on in any order.
 */
export function checkJob(
  spec: JobSpec,
  context: IntakeContext,
  batch: ReadonlySet<string>,
  batchIds: ReadonlySet<string> = batch,
): CheckedJob {
  const { options, handlers, records, pool } = context;
  const job = normaliseJobSpec(spec, {
    isHandlerType: (type) => Object.hasOwn(handlers, type),
    handlerTypes: () => Object.keys(handlers),
    defaultTimeoutMs: options.defaultTimeoutMs,
    retryAttempts: options.retryAttempts,
    backoff: options.backoff,
    newId: () => records.newId(batch),
  });
  if (records.has(job.id) || batch.has(job.id)) throw new DuplicateJobError(job.id);
  for (const dep of job.dependsOn) {
    if (!records.has(dep) && !batchIds.has(dep)) {
      throw new UnknownDependencyError(job.id, dep);
    }
  }
  const units = toUnits(job.resources);
  if (pool) assertCanEverFit(units, pool.nodes, pool.maxima);
  return { job, units };
}

/**
 * The actor all job actors hang under. They share its actor system (clock, inspection) instead of
 * making one each (~1.5 KB and ~1 µs per job); it takes their done events and keeps nothing.
 * Being its children costs nothing per job: this logic keeps no map of them.
 */
export function createJobsRoot(
  options: ResolvedOptions,
  inspect: SchedulerOptions['inspect'],
  onError: (jobId: string, error: unknown) => void,
): AnyActorRef {
  // A job actor that fails (a bug: its logic threw) tells its parent, here.
  const logic = fromTransition((state: null, event: { type: string; actorId?: string; error?: unknown }) => {
    if (event.type.startsWith('xstate.error.actor.') && event.actorId !== undefined)
      onError(event.actorId, event.error);
    return state;
  }, null);
  return createActor(logic, { clock: options.clock, ...(inspect ? { inspect } : {}) }).start();
}

/** An accepted job's first snapshot, as data (see `initialJobSnapshot`); its retry jitter is seeded from `random`. */
export function firstSnapshot(job: NormalisedJob, options: ResolvedOptions): JobLogicSnapshot {
  return initialJobSnapshot({
    id: job.id,
    type: job.type,
    ...(job.group === undefined ? {} : { group: job.group }),
    payload: job.payload,
    clock: options.clock,
    maxAttempts: job.maxAttempts,
    ...(job.timeoutMs === undefined ? {} : { timeoutMs: job.timeoutMs }),
    backoff: job.backoff,
    seed: Math.floor(options.random() * 2 ** 32) | 0,
  });
}

/** Makes (does not start) a job's actor from its snapshot, under the jobs root. */
export function createJobActor(
  logic: JobLogic,
  id: string,
  snapshot: JobLogicSnapshot,
  parent: AnyActorRef,
): JobActor {
  // `input` is not read when a snapshot is given (XState's typing asks for it all the same).
  return createActor(logic, { parent, id, snapshot, input: snapshot.context as never });
}
