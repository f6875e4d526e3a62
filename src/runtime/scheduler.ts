/**
 * `createScheduler()`: the shell around the actors. It checks what is submitted, creates one job
 * actor per live job (a root actor on the shared clock, so a growing backlog never copies a
 * parent's children map), relays what the job actors do to the scheduler actor and to
 * `events$`, tracks dependencies, and keeps finished jobs as plain records.
 *
 * The `Scheduler` class is the façade and the relay (`onJob`); the parts live beside it:
 * job-intake (checking specs, creating job actors), job-records (records, counts, retention),
 * job-view (snapshots and handles), dependencies, boosts, resources, and shutdown.
 */
import { Subject, type Observable, type Subscription } from 'rxjs';
import { createActor, type Actor, type AnyActorRef } from 'xstate';
import {
  DependencyCycleError,
  InvalidJobError,
  InvalidPoolError,
  JobFailedError,
  QueueFullError,
  SchedulerClosedError,
} from '../core/errors.js';
import { Dispatcher } from '../core/dispatcher.js';
import { checkKeys, findCycle, isObject, type JobSpec } from '../core/job-spec.js';
import type { ResourceLedger } from '../core/ledger.js';
import { JOB_STATES, type JobError, type JobState } from '../core/types.js';
import type { NodeSpec, NormalisedNode } from '../core/resources.js';
import { runHandler, type Handlers } from '../actors/handler.js';
import { jobStateOf, type JobStateSnapshot } from '../machines/job.machine.js';
import { createJobLogic, type JobLogicSnapshot } from '../machines/job.logic.js';
import { LeanActor } from './lean-actor.js';
import { schedulerMachine } from '../machines/scheduler.machine.js';
import { resolveOptions, type ResolvedOptions, type SchedulerOptions } from './options.js';
import { resolvePool } from './pool.js';
import { Room, type RoomOptions } from './room.js';
import {
  assertJsonPayload,
  boostOf,
  interrupted,
  Journal,
  specOf,
  storedJob,
  type JournalEntry,
} from './journal.js';
import type { StoreContents, StoredJob, StoredStatus } from '../store/store.js';
import { levelOf } from '../core/priority.js';
import { toUnits } from '../core/pool.js';
import type { Boost } from '../core/queue.js';
import { DONE_PROGRESS, NO_PROGRESS } from '../core/progress.js';
import type { JobContext, JobMachineInput } from '../machines/job.machine.js';
import type { NormalisedJob } from '../core/job-spec.js';
import { Boosts } from './boosts.js';
import { Dependencies } from './dependencies.js';
import {
  createJobActor,
  Intake,
  jobInput,
  jobSeed,
  NO_IDS,
  type CheckedJob,
  type JobHost,
} from './job-intake.js';
import {
  FINAL,
  Failure,
  HOLDING,
  JobRecords,
  endedSnapshot,
  hasEnded,
  rareOf,
  settle,
  type JobActor,
  type JobRecord,
} from './job-records.js';
import { jobHandle, snapshotOf, type QueueView } from './job-view.js';
import {
  canHold,
  cancelMisfits,
  changedPool,
  declaredPool,
  resourceInput,
  ResourceLink,
} from './resources.js';
import {
  abortRunning,
  checkShutdownOptions,
  emptyShutdownReport,
  runShutdown,
  stopRetryForShutdown,
  type ShutdownOptions,
} from './shutdown.js';
import type {
  BoostReport,
  BoostSignal,
  BoostSpec,
  BoostTarget,
  JobHandle,
  JobSnapshot,
  JobSubmission,
  PoolNode,
  RetiredNode,
  SchedulerEvent,
  SchedulerStats,
  ShutdownReport,
} from './types.js';

const noop = (): void => undefined;

/** The start message (one object: events are never mutated). */
const START = { type: 'job.start' } as const;

/** A running scheduler: `createScheduler()` makes one. */
export class Scheduler<H extends Handlers = Handlers> {
  /** Every event of the scheduler, as a typed union. */
  readonly events$: Observable<SchedulerEvent>;
  /** Resolves once the pool is known (at once for a declared pool; after host detection otherwise). */
  readonly ready: Promise<void>;

  private readonly options: ResolvedOptions;
  private readonly events = new Subject<SchedulerEvent>();
  private readonly records: JobRecords;
  private readonly dependencies: Dependencies;
  private readonly boosts: Boosts;
  private readonly actor: Actor<typeof schedulerMachine>;
  /** The queue, the slots and the rounds; the scheduler actor opens and shuts it. */
  private readonly dispatcher: Dispatcher<JobRecord>;
  private ledger: ResourceLedger | undefined;
  /** A granted job whose actor was busy: no other job starts before it runs (start order). */
  private awaiting: string | undefined;
  private pumping = false;
  private pumpAgain = false;
  /** The ids of a batch being accepted (see `submitAll`), and its jobs not yet accepted. */
  private reserved: ReadonlySet<string> = NO_IDS;
  private reservedPlaces = 0;
  private readonly view: QueueView;
  private readonly resources: ResourceLink;
  /** The job logic and what every job actor shares (one object for all of them). */
  private readonly jobHost: JobHost;
  private readonly inspect: SchedulerOptions['inspect'];
  /**
   * A job actor took an event: its record follows when it took a transition (the lean host
   * tells every event, as XState's observers are told; the logic's hook only transitions).
   */
  private readonly onStep = (snap: JobLogicSnapshot, actor: object): void => {
    const record = this.recordOf(actor);
    if (!record?.actor || snap.steps === record.steps) return;
    record.steps = snap.steps;
    this.onJob(record, snap);
  };
  /** The records of XState-hosted job actors (inspected); a lean actor carries its own (`tag`). */
  private readonly inspected = new WeakMap<object, JobRecord>();

  /** The record of a job actor: never looked up by id, so a job's actor and record always agree. */
  private recordOf(actor: object): JobRecord | undefined {
    return actor instanceof LeanActor ? (actor.tag as JobRecord | undefined) : this.inspected.get(actor);
  }

  /** What job handles call back (one object for all of them). */
  private readonly handleOwner = {
    // A handle's state$ shows what is durable (as get does).
    snapshotOf: (record: JobRecord) => {
      this.journal?.sync();
      return this.snapshotOf(record);
    },
    cancel: (id: string) => this.cancel(id),
  };
  /** Checks what is submitted (and knows the pool, once it is known). */
  private readonly intake: Intake;
  private closed = false;
  private shutdownReport: ShutdownReport | undefined;
  private shutdownPromise: Promise<ShutdownReport> | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Callers of `submitWhenRoom` and `onRoom` waiting for places, first come first served. */
  private readonly room = new Room(() => this.freePlaces());
  /** A durable scheduler's journal (`options.store`); undefined in memory. */
  private readonly journal: Journal | undefined;
  /** Running attempts told to stop whose handlers have not settled (`stats().stopping`). */
  private stoppingCount = 0;
  /** Cuts a draining shutdown short (a second `shutdown({ mode: 'cancel' })`). */
  private escalate: ((stopTimeoutMs: number) => void) | undefined;
  /** Attempts force-released by their own stop timeout, until their handlers settle (for the shutdown report). */
  private readonly abandoned = new Map<string, { attempt: number; left: { settled: boolean } }>();
  /**
   * Queued jobs that no node of the pool could hold, even idle, by id, in the order they came to
   * wait: they are kept out of the dispatcher's queue (where one at the head would hold up every
   * job behind it) and enter it when a node that can hold them joins (`addNode`).
   */
  private readonly noNode = new Map<string, JobRecord>();
  /**
   * Whether a job that queues may fit no node of the pool: under `unschedulable: 'wait'`, or once
   * a node was retired. Until then every queued job was checked at its submit, and queuing
   * costs no check.
   */
  private poolMayMisfit: boolean;
  /** Retired nodes whose last allocation went back in this step: `node.removed` follows the step's own events. */
  private removedNodes: string[] = [];

  constructor(options: SchedulerOptions<H>) {
    this.options = resolveOptions(options as SchedulerOptions);
    this.poolMayMisfit = this.options.unschedulable === 'wait';
    // Opened first: a store that is locked, damaged or too new refuses before anything starts.
    const journal = this.options.store
      ? new Journal(this.options.store, (error, jobId) =>
          this.emit({
            type: 'store.writeFailed',
            at: this.options.clock.now(),
            message: error instanceof Error ? error.message : String(error),
            ...(jobId === undefined ? {} : { jobId }),
          }),
        )
      : undefined;
    const stored = journal?.open();
    this.journal = journal;
    this.inspect = options.inspect;
    this.events$ = this.events.asObservable();
    this.records = new JobRecords(this.options.retainFinished, (record) => {
      const actor = new LeanActor(this.jobHost, undefined, true);
      actor.tag = record;
      // Started here, before the record holds it: its first steps replay what the record says
      // already (queued, as of the submit), so they are not news (`onStep` skips a record
      // without an actor) — a `state$` subscriber does not hear `queued` twice.
      record.steps = actor.getSnapshot().steps;
      return actor;
    });
    this.intake = new Intake(this.options, options.handlers, this.records);
    this.dependencies = new Dependencies(this.records, () => this.shutdownReport);
    // XState's host (under inspection) tells the step through the logic's hook and keeps every
    // snapshot; the lean host tells it as an observer and keeps none, so steps update in place.
    this.jobHost = {
      logic: createJobLogic(runHandler(options.handlers), this.inspect ? this.onStep : undefined, {
        inPlace: !this.inspect,
      }),
      clock: this.options.clock,
      onError: (error, actor) => {
        const record = this.recordOf(actor);
        if (record) this.failed(record, error);
      },
      onSnapshot: this.onStep,
      // A deferred job actor (see `acceptQueued`) starts as if made at submit: submitted and
      // ready then, with the seed drawn then. The submit time is when it entered the queue: such a
      // job was queued once, at submit, and nothing queues it again before its actor has started
      // (every other path to the queue goes through the actor).
      wake: (actor) => {
        const record = actor.tag as JobRecord;
        const at = this.dispatcher.queue.enqueuedAt(record);
        const input = jobInput(record, this.options, record.seed);
        // A job recovered from a store was submitted before it was queued again.
        input.submittedAt = record.rare?.restored?.submittedAt ?? at;
        return { input, events: [{ type: 'job.ready', at }] };
      },
    };
    this.dispatcher = new Dispatcher<JobRecord>(
      {
        maxConcurrentJobs: this.options.maxConcurrentJobs,
        queuePolicy: this.options.queuePolicy,
        reserveAfterMs: this.options.reserveAfterMs,
        backfillDepth: this.options.backfillDepth,
        aging: this.options.aging,
      },
      // The records are the queue's values and carry their entries: no second index by id.
      (id) => this.records.get(id),
    );
    const declared = declaredPool(this.options.resources);
    const declaredInput = declared ? resourceInput(declared, this.options) : undefined;
    this.intake.pool = declaredInput?.known;
    if (declaredInput) this.attach(declaredInput.ledger);
    this.actor = createActor(schedulerMachine, {
      clock: this.options.clock,
      ...(this.inspect ? { inspect: this.inspect } : {}),
      input: {
        clock: this.options.clock,
        dispatcher: this.dispatcher,
        resources: declaredInput?.input,
        schedulingIntervalMs: this.options.schedulingIntervalMs,
      },
    });
    this.actor.on('scheduler.round', () => this.pump());
    this.view = {
      scheduler: this.actor,
      dispatcher: this.dispatcher,
      clock: this.options.clock,
      noNode: this.noNode,
    };
    this.resources = new ResourceLink({
      clock: this.options.clock,
      ledger: () => this.ledger,
      manager: () => this.actor.system.get('resourceManager') as AnyActorRef | undefined,
      capacityChanged: () => this.actor.send({ type: 'scheduler.capacityChanged' }),
      emit: (event) => this.emit(event),
      observed: () => this.events.observed,
    });
    this.boosts = new Boosts({
      clock: this.options.clock,
      records: this.records,
      send: (message) => this.actor.send(message),
      emit: (event) => this.emit(event),
      // A boost survives a crash: the waiting job's status is written again, with it.
      given: journal
        ? (record, boost) => {
            const snap = this.currentSnapshot(record);
            // Written at once when someone listens: `job.boosted` follows.
            if (snap)
              journal.boosted(
                record.id,
                record.state,
                snap.context,
                this.options.clock.now(),
                boost,
                this.listening,
              );
          }
        : undefined,
    });
    this.actor.start();
    if (declared) {
      this.resources.wire();
      this.ready = Promise.resolve();
    } else {
      this.ready = this.detect();
      // A failed detection is reported through `ready`; it must not crash an unobserved process.
      this.ready.catch(() => undefined);
    }
    if (journal && stored) {
      // Retention lets finished jobs go from the store too.
      this.records.onDrop = (ids) => journal.prune(ids);
      this.recover(stored);
    }
  }

  /**
   * Accepts a job, synchronously. Throws a typed error — `InvalidJobError`, `UnschedulableError`,
   * `DuplicateJobError`, `UnknownDependencyError`, `DependencyCycleError`, `QueueFullError`,
   * `SchedulerClosedError` — and then nothing was enqueued.
   */
  submit<TResult = unknown>(spec: JobSubmission<H>): JobHandle<TResult> {
    // A submit from a listener while a batch goes in must not take an id or a place of the batch.
    const ids = this.records.idMark();
    let checked: CheckedJob;
    try {
      checked = this.check(spec as JobSpec, this.reserved, NO_IDS);
      this.assertRoom(1);
      // On disk before it is accepted: a store that cannot take it refuses the submit.
      if (this.journal) this.journal.accept([this.entryOf(checked, spec as JobSpec)]);
    } catch (error) {
      // Refused: it changes nothing, not even the next generated id.
      this.records.rewindIds(ids);
      throw error;
    }
    return this.accept(checked) as JobHandle<TResult>;
  }

  /**
   * Accepts several jobs at once, all or none: they may depend on each other in any order
   * (a cycle among them throws `DependencyCycleError`), and a chain of them may be as long as
   * the queue allows. A generated id never takes an id that a job of the batch declares.
   */
  submitAll(specs: ReadonlyArray<JobSubmission<H>>): JobHandle[] {
    if (!Array.isArray(specs)) throw new InvalidJobError('jobs', specs, 'an array of job specs');
    // Array.from: a hole in a sparse array is a job spec of `undefined`, refused as one.
    const all: ReadonlyArray<JobSubmission<H> | undefined> = Array.from(specs);
    const batch = new Set<string>(this.reserved);
    const declared = new Set(
      all.map((s) => (s as JobSpec | undefined)?.id).filter((id): id is string => typeof id === 'string'),
    );
    const ids = this.records.idMark();
    let jobs: CheckedJob[];
    try {
      jobs = all.map((spec, i) => {
        let checked: CheckedJob;
        try {
          checked = this.check(spec as JobSpec, batch, declared);
        } catch (error) {
          // Which job of the batch: `jobs[3].resources.gpu`.
          if (error instanceof InvalidJobError)
            throw new InvalidJobError(
              `jobs[${i}].${error.field}`,
              error.value,
              error.allowed,
              error.unknownField,
            );
          throw error;
        }
        batch.add(checked.job.id);
        return checked;
      });
      const cycle = findCycle(new Map(jobs.map(({ job }) => [job.id, job.dependsOn])));
      if (cycle) throw new DependencyCycleError(cycle);
      this.assertRoom(jobs.length);
      // All or none, on disk before any is accepted.
      if (this.journal) this.journal.accept(jobs.map((c, i) => this.entryOf(c, all[i] as JobSpec)));
    } catch (error) {
      this.records.rewindIds(ids);
      throw error;
    }
    const byId = new Map(jobs.map((c) => [c.job.id, c]));
    const handles = new Map<string, JobHandle>();
    // Each job goes in after the jobs of the batch it depends on (depth-first, in the order they
    // are listed). A stack of its own, not recursion: a chain listed dependents-first is as deep
    // as it is long (100,000 jobs overflowed the call stack). No cycle: checked above.
    const stack: CheckedJob[] = [];
    const next: number[] = [];
    const visit = (root: CheckedJob) => {
      if (handles.has(root.job.id)) return;
      stack.push(root);
      next.push(0);
      while (stack.length > 0) {
        const top = stack.length - 1;
        const checked = stack[top] as CheckedJob;
        const deps = checked.job.dependsOn;
        const i = next[top] as number;
        if (i < deps.length) {
          next[top] = i + 1;
          const inBatch = byId.get(deps[i] as string);
          if (inBatch && !handles.has(inBatch.job.id)) {
            stack.push(inBatch);
            next.push(0);
          }
          continue;
        }
        stack.pop();
        next.pop();
        // Reached twice on the stack at once only through a cycle, which was refused above.
        this.reservedPlaces--;
        handles.set(checked.job.id, this.accept(checked));
      }
    };
    // While the batch goes in, its ids and places are reserved: a listener told of one of its
    // jobs may submit, but not a job of the same id, and not into places the batch counted on.
    const { reserved, reservedPlaces } = this;
    this.reserved = batch;
    this.reservedPlaces = reservedPlaces + jobs.length;
    try {
      // Keep finished records while the batch goes in: a dependency that fails at once must not
      // be dropped by retention before a later job of the batch looks it up.
      this.records.batch(() => jobs.forEach(visit));
    } finally {
      this.reserved = reserved;
      this.reservedPlaces = reservedPlaces;
    }
    return jobs.map((c) => handles.get(c.job.id) as JobHandle);
  }

  /**
   * Back-pressure: waits until the queue has a free place (`maxQueueSize`), then submits the job
   * and resolves with its handle — so a loop of many submits need not catch `QueueFullError`:
   * `for (const spec of specs) await scheduler.submitWhenRoom(spec)`. Callers are served in the
   * order they called (a later call never overtakes one waiting); a job is submitted in a
   * microtask once a place is free. Plain `submit()` calls are not held back by those waiting: a
   * caller that also submits directly (from an event listener, say) may take the places first. A
   * bad spec rejects at once
   * with the typed error of `submit()`, without waiting (and the spec is checked again as it goes
   * in: a job of the same id submitted meanwhile makes it reject with `DuplicateJobError`). Rejects
   * with `SchedulerClosedError` once shutdown begins, and with the signal's reason when
   * `options.signal` aborts; then nothing was submitted.
   */
  submitWhenRoom<TResult = unknown>(
    spec: JobSubmission<H>,
    options: RoomOptions = {},
  ): Promise<JobHandle<TResult>> {
    let signal: AbortSignal | undefined;
    try {
      signal = checkRoomOptions(options);
      if (this.room.waiting === 0 && this.freePlaces() >= 1 && !signal?.aborted)
        return Promise.resolve(this.submit<TResult>(spec));
      // Refused now if it would be refused when it goes in: bad input never waits.
      const ids = this.records.idMark();
      try {
        this.check(spec as JobSpec, this.reserved, NO_IDS);
      } finally {
        this.records.rewindIds(ids);
      }
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise((resolve, reject) => {
      const take = () => {
        try {
          resolve(this.submit<TResult>(spec));
        } catch (error) {
          reject(error as Error);
        }
      };
      this.waitForRoom(1, take, reject, signal);
    });
  }

  /**
   * Resolves once at least `places` places of the queue are free (at once if they are now) and
   * every earlier `submitWhenRoom`/`onRoom` caller was served — a moment when they were free, not
   * a reservation (p-queue's `onSizeLessThan(max - places + 1)`). Rejects as `submitWhenRoom`
   * does; `places` must be a whole number in [1, maxQueueSize] (`InvalidJobError` naming it).
   */
  onRoom(places = 1, options: RoomOptions = {}): Promise<void> {
    let signal: AbortSignal | undefined;
    try {
      const max = this.options.maxQueueSize;
      if (typeof places !== 'number' || !Number.isInteger(places) || places < 1 || places > max)
        throw new InvalidJobError('places', places, `a whole number in [1, ${max}] (maxQueueSize)`);
      signal = checkRoomOptions(options);
      if (this.closed) throw new SchedulerClosedError();
      if (this.room.waiting === 0 && this.freePlaces() >= places && !signal?.aborted)
        return Promise.resolve();
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise((resolve, reject) => this.waitForRoom(places, resolve, reject, signal));
  }

  /** A job's snapshot (finished jobs too, within `retainFinished`). */
  get(id: string): JobSnapshot | undefined {
    // What it shows is durable first (a group commit not yet written goes now).
    this.journal?.sync();
    const record = this.records.get(id);
    return record ? this.snapshotOf(record) : undefined;
  }

  /**
   * The handle of a job known now (as `get` knows it), as `submit()` gave it: await `result`,
   * follow `state$`, `cancel()`. For a job this process did not submit — one a durable
   * scheduler recovered from its store, finished or not — this is the way to its result.
   * Undefined for an unknown job (or one retention let go).
   */
  handle<TResult = unknown>(id: string): JobHandle<TResult> | undefined {
    this.journal?.sync();
    const record = this.records.get(id);
    return record ? (jobHandle(record, this.handleOwner) as JobHandle<TResult>) : undefined;
  }

  /** Jobs, optionally of one state and/or group, in submission order. */
  list(filter: { state?: JobState; group?: string } = {}): JobSnapshot[] {
    this.journal?.sync();
    checkListFilter(filter);
    const out: JobSnapshot[] = [];
    for (const id of this.records.ids(filter.group)) {
      const record = this.records.get(id);
      if (!record || (filter.state !== undefined && record.state !== filter.state)) continue;
      out.push(this.snapshotOf(record));
    }
    return out;
  }

  /**
   * Cancels a job in any non-final state. A running job's signal is aborted and it stays `running`
   * (`snapshot.stopping`, a `job.stopping` event) until its handler settles: only then is it
   * `cancelled` and its resources released (or after its `stopTimeoutMs`). False when the job is
   * unknown or already final.
   */
  cancel(id: string): boolean {
    const record = this.records.get(id);
    const actor = record && this.records.actorOf(record);
    if (!record || !actor || FINAL.has(record.state)) return false;
    actor.send({ type: 'job.cancel', reason: 'user' });
    // What the cancel did (a waiting job is cancelled now) is durable when it returns.
    this.journal?.sync();
    return true;
  }

  /** Raises queued jobs at once, for `forMs`; running and finished jobs are left alone and named. */
  boost(target: BoostTarget, spec: BoostSpec): BoostReport {
    const report = this.boosts.apply(target, spec);
    // Durable when it returns.
    this.journal?.sync();
    return report;
  }

  /** Applies every boost signal of a stream (e.g. "a user is waiting on group X") as it comes. */
  connectBoosts(boost$: Observable<BoostSignal>): Subscription {
    if (typeof (boost$ as { subscribe?: unknown } | null)?.subscribe !== 'function')
      throw new InvalidJobError(
        'boost$',
        boost$,
        'an Observable of boost signals { target, to | by, forMs }',
      );
    // Closed: its streams were ended at shutdown, and one connected now would never be.
    if (this.closed) throw new SchedulerClosedError();
    return this.boosts.connect(boost$);
  }

  /** Stops new starts; running jobs go on. */
  pause(): void {
    if (this.closed) return;
    // Shut at once: a round under way (started by the scheduler actor's own step, with this
    // message waiting behind it) must not start anything more.
    this.dispatcher.open = false;
    this.actor.send({ type: 'scheduler.pause' });
    this.journal?.paused(true);
    this.emit({ type: 'scheduler.paused', at: this.options.clock.now() });
  }

  /** Starts jobs again. */
  resume(): void {
    if (this.closed) return;
    this.actor.send({ type: 'scheduler.resume' });
    this.journal?.paused(false);
    this.emit({ type: 'scheduler.resumed', at: this.options.clock.now() });
  }

  /** Resolves when nothing is pending, queued, running or retrying (at once if so now). */
  onIdle(): Promise<void> {
    if (this.records.liveCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counts by state, the queue, and capacity/allocated/free/measured resources. */
  stats(): SchedulerStats {
    this.journal?.sync();
    return {
      jobs: { ...this.records.counts },
      queue: { size: this.records.queueSize(), max: this.options.maxQueueSize },
      stopping: this.stoppingCount,
      resources: this.resources.stats(),
      nodes: this.nodeCounts(),
    };
  }

  /**
   * A node joins the pool (a host registered): its capacity is free at once, and waiting jobs
   * start on it as usual (priority order, aging, backfill) — jobs that no node could hold before
   * (`waitReason: 'noNode'`) among them when it can hold them: they enter the queue now, in the
   * order they came to wait, and age from now (they waited apart, for a node, not in the queue's
   * order, which is first come first served within a level). Its `id` must be given and not be
   * a node present (a retired node still holding allocations is present until its last one is
   * released: then its id may join again, as a new node). Throws `InvalidPoolError` naming the
   * field (`node.id`, `node.cpu`, …) and changes nothing when the spec is bad, or when the pool
   * is not known yet (`await scheduler.ready`). Tells `node.added`.
   */
  addNode(spec: NodeSpec & { id: string }): NormalisedNode {
    const ledger = this.knownLedger();
    const node = ledger.addNode(spec);
    const pool = changedPool(ledger, this.intake.pool, true);
    this.intake.pool = pool;
    const now = this.options.clock.now();
    this.emit({ type: 'node.added', at: now, node });
    this.resources.changed();
    // Those waiting for a node that can hold them queue now, in the order they came to wait.
    for (const [id, record] of this.noNode) {
      if (!canHold(pool, record.units)) continue;
      this.noNode.delete(id);
      const given = record.rare?.boostGiven;
      this.dispatcher.enqueue(
        id,
        record.kind.level,
        now,
        record,
        given && given.until > now ? given : undefined,
      );
    }
    this.dispatcher.forgetDenials();
    this.pump();
    return node;
  }

  /**
   * Retires a node (its host left, or was lost): nothing new starts on it from now on. The jobs
   * running on it run on, and their units stay held until each ends (a unit is held until the
   * work on it has really stopped); the node leaves the pool with its last allocation
   * (`node.removed`), or at once when it holds none. Waiting jobs that no remaining node could
   * hold wait (`waitReason: 'noNode'`) until one that can joins — never cancelled for it. Says
   * which jobs still hold an allocation there; a node already retired changes nothing (and
   * says so again). Throws `InvalidPoolError` (field `nodeId`) for a node not in the pool.
   * Tells `node.retired`.
   */
  retireNode(nodeId: string): RetiredNode {
    const ledger = this.knownLedger();
    if (typeof nodeId !== 'string' || ledger.positionOf(nodeId) < 0) {
      const ids = ledger.nodes.slice(0, 10).map((n) => JSON.stringify(n.id));
      throw new InvalidPoolError(
        'nodeId',
        nodeId,
        `the id of a node in the pool (${ids.length === 0 ? 'it has none' : ids.join(', ')}${ledger.nodes.length > 10 ? ', …' : ''})`,
      );
    }
    const result = ledger.retireNode(nodeId);
    if (!result.retired) {
      const held = new Set(
        ledger
          .allocations()
          .filter((a) => a.nodeId === nodeId)
          .map((a) => a.id),
      );
      return { nodeId, jobIds: this.jobsHolding(held), removed: false };
    }
    const jobIds = this.jobsHolding(new Set(result.held.map((a) => a.id)));
    this.poolMayMisfit = true;
    this.intake.pool = changedPool(ledger, this.intake.pool, false);
    const now = this.options.clock.now();
    this.emit({ type: 'node.retired', at: now, nodeId, jobIds });
    if (result.removed) this.emit({ type: 'node.removed', at: now, nodeId });
    this.resources.changed();
    this.setAsideMisfits(now);
    // The head of the queue may have left it.
    this.pump();
    return { nodeId, jobIds, removed: result.removed };
  }

  /** The nodes of the pool (empty until it is known), with the jobs holding an allocation on each. */
  nodes(): PoolNode[] {
    const ledger = this.ledger;
    if (!ledger) return [];
    const jobOf = new Map<string, string>();
    for (const [jobId, allocationId] of this.dispatcher.holders) jobOf.set(allocationId, jobId);
    const byNode = new Map<string, string[]>();
    for (const a of ledger.allocations()) {
      const jobId = jobOf.get(a.id);
      if (jobId === undefined) continue;
      const list = byNode.get(a.nodeId);
      if (list) list.push(jobId);
      else byNode.set(a.nodeId, [jobId]);
    }
    return ledger.nodes.map((node) => ({
      node,
      state: ledger.isRetired(node.id) ? ('retired' as const) : ('active' as const),
      jobIds: byNode.get(node.id) ?? [],
    }));
  }

  /**
   * Stops accepting jobs and cancels those not started (kind `shutdown`). `drain` lets running
   * jobs finish for up to `timeoutMs`, then aborts them; `cancel` aborts them at once. Resolves
   * with a report once every resource is free and no timer, subscription or actor is left.
   */
  shutdown(options: ShutdownOptions = {}): Promise<ShutdownReport> {
    const checked = checkShutdownOptions(options);
    if (this.shutdownPromise) {
      // A second call may turn a drain into a cancel (a second Ctrl-C); it never turns one back.
      if (options.mode === 'cancel' && this.shutdownReport?.mode === 'drain') {
        abortRunning(this.records, this.shutdownReport);
        this.escalate?.(checked.stopTimeoutMs);
      }
      return this.shutdownPromise;
    }
    const { mode, timeoutMs, stopTimeoutMs } = checked;
    this.closed = true;
    this.room.close();
    const report = emptyShutdownReport(mode);
    this.shutdownReport = report;
    this.dispatcher.open = false;
    this.actor.send({ type: 'scheduler.close' });
    this.shutdownPromise = runShutdown(
      {
        records: this.records,
        clock: this.options.clock,
        onIdle: () => this.onIdle(),
        ready: this.ready,
        close: (done) => this.close(done),
        escalated: new Promise<number>((resolve) => (this.escalate = resolve)),
        abandoned: () => this.stillAbandoned(),
      },
      report,
      mode,
      timeoutMs,
      stopTimeoutMs,
    );
    return this.shutdownPromise;
  }

  // ——— internals ———

  /** The ledger, for a change to the pool: a typed error while the pool is not known yet. */
  private knownLedger(): ResourceLedger {
    if (!this.ledger)
      throw new InvalidPoolError('node', undefined, 'a change to a known pool (await scheduler.ready first)');
    return this.ledger;
  }

  /** The jobs holding one of these allocations. */
  private jobsHolding(allocationIds: ReadonlySet<string>): string[] {
    const out: string[] = [];
    if (allocationIds.size === 0) return out;
    for (const [jobId, allocationId] of this.dispatcher.holders)
      if (allocationIds.has(allocationId)) out.push(jobId);
    return out;
  }

  private nodeCounts(): { active: number; retired: number } {
    const ledger = this.ledger;
    if (!ledger) return { active: 0, retired: 0 };
    const active = ledger.activeNodes.length;
    return { active, retired: ledger.nodes.length - active };
  }

  /** Whether no node of the pool could hold a job's request (it then waits for one: `noNode`). */
  private fitsNoNode(record: JobRecord): boolean {
    const pool = this.intake.pool;
    return pool !== undefined && !canHold(pool, record.units);
  }

  /**
   * Takes the queued jobs that no node could hold now out of the dispatcher's queue, to wait
   * for a node (`noNode`). A job waiting without an actor gets one first: it is woken from its
   * place in the queue.
   */
  private setAsideMisfits(now: number): void {
    const out: JobRecord[] = [];
    for (const entry of this.dispatcher.queue.inOrder(now))
      if (this.fitsNoNode(entry.value)) out.push(entry.value);
    for (const record of out) {
      this.records.actorOf(record);
      this.dispatcher.dequeue(record.id);
      this.noNode.set(record.id, record);
    }
  }

  /** Tells `node.removed` for the retired nodes that left in this step. */
  private flushRemoved(): void {
    const ids = this.removedNodes;
    this.removedNodes = [];
    const at = this.options.clock.now();
    for (const nodeId of ids) this.emit({ type: 'node.removed', at, nodeId });
  }

  /** The end of a shutdown: nothing is left running, so everything else stops too. */
  private close(report: ShutdownReport): void {
    this.boosts.dispose();
    this.resources.freeze();
    this.actor.stop();
    this.journal?.close();
    this.emit({ type: 'scheduler.shutdown', at: this.options.clock.now(), report });
    this.events.complete();
  }

  private async detect(): Promise<void> {
    const { pool, warnings } = await resolvePool(this.options.resources, this.options.detect);
    if (this.shutdownPromise) return;
    const { input, known, ledger } = resourceInput(pool, this.options);
    this.intake.pool = known;
    this.attach(ledger);
    // Accepted before the pool was known, checked only for their shape: those no node can hold
    // are cancelled — or, under `unschedulable: 'wait'`, wait for a node that can.
    if (this.options.unschedulable === 'wait') this.setAsideMisfits(this.options.clock.now());
    else cancelMisfits(this.records, known);
    this.actor.send({ type: 'scheduler.poolReady', resources: input });
    this.resources.wire();
    this.emit({ type: 'scheduler.ready', at: this.options.clock.now(), warnings });
  }

  /** Checks one job (see `Intake.check`); nothing is accepted once the scheduler is closed. */
  private check(spec: JobSpec, batch: ReadonlySet<string>, batchIds?: ReadonlySet<string>): CheckedJob {
    if (this.closed) throw new SchedulerClosedError();
    const checked = this.intake.check(spec, batch, batchIds);
    if (this.journal) assertJsonPayload(checked.job.payload);
    return checked;
  }

  /** What the journal keeps of a job about to be accepted, with the status it is accepted in. */
  private entryOf(checked: CheckedJob, spec: JobSpec): JournalEntry {
    const { job } = checked;
    const now = this.options.clock.now();
    // As `accept` will place it: straight into the queue, or pending (its actor says queued next).
    const direct = !this.inspect && !this.listening && job.dependsOn.length === 0 && !checked.noNode;
    const status: StoredStatus = direct
      ? { state: 'queued', attempt: 0, queuedAt: now }
      : { state: 'pending', attempt: 0 };
    return { job: storedJob(job, spec, (this.journal as Journal).nextSeq++, now), status };
  }

  /**
   * Reads a store back into jobs: finished ones stay finished (results kept, never rerun);
   * waiting ones wait again, with their attempts and (queued) their waited time; an attempt that
   * was running when the scheduler stopped is interrupted — a failed attempt of kind
   * `interrupted`, retried if attempts are left. A job that can no longer be checked (its
   * handler type is gone, the pool cannot hold it) fails, saying why.
   */
  private recover(contents: StoreContents): void {
    const journal = this.journal as Journal;
    const now = this.options.clock.now();
    let lastSeq = -1;
    let lastN = 0;
    let startAfter = false;
    /** Boosts still live, given back once every job is in (see `Boosts.restore`). */
    const boosted: Array<{ record: JobRecord; boost: Boost }> = [];
    // Paused before anything recovered may start.
    if (contents.paused) this.pause();
    this.records.batch(() => {
      for (const { job: stored, status } of contents.jobs) {
        lastSeq = Math.max(lastSeq, stored.seq);
        const match = /^job-([1-9]\d*)$/.exec(stored.id);
        const generated = match !== null && Number(match[1]) <= Number.MAX_SAFE_INTEGER;
        if (generated) lastN = Math.max(lastN, Number(match[1]));
        let checked: CheckedJob | undefined;
        let refusal: unknown;
        try {
          checked = this.intake.check(
            specOf(stored, (id) => this.records.has(id)),
            NO_IDS,
            NO_IDS,
          );
        } catch (error) {
          refusal = error;
        }
        const job = checked?.job ?? this.unrunnable(stored.id, stored.spec, status.attempt);
        const record = this.records.add(job, checked?.units ?? toUnits({}), generated);
        const at = { submittedAt: stored.submittedAt, status };
        if (!checked) {
          const message = refusal instanceof Error ? refusal.message : String(refusal);
          this.endRecovered(record, 'failed', at, {
            kind: 'error',
            message: `recovered from the store, but cannot run: ${message}`,
          });
          continue;
        }
        if (FINAL.has(status.state)) {
          this.endRecovered(record, status.state, at, status.error);
          continue;
        }
        const attempt = status.attempt;
        let error = status.error;
        if (status.state === 'running') {
          error = interrupted(attempt);
          if (attempt >= job.maxAttempts) {
            this.endRecovered(record, 'failed', at, error);
            continue;
          }
        }
        const rare = rareOf(record);
        rare.restored = { attempt, error, submittedAt: stored.submittedAt };
        // A boost it was given, until the same time: set before it queues (which applies it).
        const boost = boostOf(status.boost, now);
        if (boost) {
          rare.boostGiven = boost;
          boosted.push({ record, boost });
        }
        const retryAt = status.state === 'retrying' ? status.retryAt : undefined;
        if (retryAt !== undefined && retryAt > now) {
          // In the middle of its backoff: it waits the rest of it, then queues as a retry does
          // (its dependencies were met: it ran). Its status is written again, with the same retryAt.
          const input = jobInput(record, this.options);
          input.submittedAt = stored.submittedAt;
          this.startActor(record, input).send({ type: 'job.retry', delayMs: retryAt - now });
          continue;
        }
        // Queued again as of when it was queued before (aging goes on); a retry whose backoff
        // ended while no scheduler ran, as of that end, when it would have queued.
        const queuedAt =
          status.state === 'queued' ? (status.queuedAt ?? now) : typeof retryAt === 'number' ? retryAt : now;
        if (!this.inspect && job.dependsOn.length === 0 && !checked.noNode) {
          // As an accepted job that nobody watches: into the queue with no actor (made when it
          // starts, from the restored attempts); nothing to write, the store says queued or the
          // recovery it implies. A deep recovered backlog costs what a submitted one does.
          if (this.enqueueWithoutActor(record, queuedAt, boost)) startAfter = true;
          continue;
        }
        const input = jobInput(record, this.options);
        input.submittedAt = stored.submittedAt;
        const actor = this.startActor(record, input);
        if (job.dependsOn.length === 0) actor.send({ type: 'job.ready', at: queuedAt });
        else this.dependencies.link(record, actor);
      }
    });
    journal.nextSeq = Math.max(lastSeq + 1, contents.nextSeq ?? 0);
    if (boosted.length > 0) this.boosts.restore(boosted);
    if (startAfter) this.pump();
    this.records.advanceIds(lastN);
  }

  /** A stored job that no longer passes the checks: kept, to be failed, with what can be read of it. */
  private unrunnable(id: string, spec: StoredJob['spec'], attempt: number): NormalisedJob {
    const type = typeof spec['type'] === 'string' ? spec['type'] : 'unknown';
    const group = typeof spec['group'] === 'string' ? spec['group'] : undefined;
    return {
      id,
      type,
      payload: spec['payload'],
      priority: 'normal',
      level: levelOf('normal'),
      timeoutMs: undefined,
      stopTimeoutMs: undefined,
      maxAttempts: Math.max(1, attempt),
      backoff: this.options.backoff,
      group,
      dependsOn: [],
      dependencyPolicy: 'afterok',
    };
  }

  /** A recovered job that has ended (or ends now): a finished record, its result settled. */
  private endRecovered(
    record: JobRecord,
    state: JobState,
    at: { submittedAt: number; status: StoredStatus },
    error: JobError | undefined,
  ): void {
    const { status } = at;
    const now = this.options.clock.now();
    const endedAt = status.endedAt ?? now;
    this.records.moved(record, state);
    const context = {
      submittedAt: at.submittedAt,
      startedAt: status.startedAt,
      endedAt,
      attempt: status.attempt,
      error,
      progress: state === 'completed' ? DONE_PROGRESS : NO_PROGRESS,
    } as JobContext;
    this.records.ended(record, context);
    const id = record.id;
    if (state === 'completed') settle(record, status.output);
    else {
      const e = error ?? { kind: 'error', message: state };
      const failed = state as 'failed' | 'cancelled';
      settle(record, new Failure(() => new JobFailedError(id, failed, e.kind, e.message)));
    }
    // A job that ends here (interrupted on its last attempt, or no longer runnable) says so on disk.
    if (status.state !== state || status.error !== error) {
      const update: StoredStatus = { state, attempt: status.attempt, endedAt };
      if (status.startedAt !== undefined) update.startedAt = status.startedAt;
      if (error !== undefined) update.error = error;
      (this.journal as Journal).update(id, update);
    }
    this.records.finished(record);
  }

  private assertRoom(n: number): void {
    if (this.freePlaces() < n) throw new QueueFullError(this.options.maxQueueSize);
  }

  /** Places of `maxQueueSize` free now (negative while retries have taken the queue past it). */
  private freePlaces(): number {
    return this.options.maxQueueSize - this.records.queueSize() - this.reservedPlaces;
  }

  /** Waits in the room's line (see `Room.wait`); the records tell it when places come free. */
  private waitForRoom(
    places: number,
    take: () => void,
    reject: (error: unknown) => void,
    signal: AbortSignal | undefined,
  ): void {
    this.records.leftQueue ??= () => this.room.freed();
    this.room.wait(places, take, reject, signal);
  }

  /** The pool is known: the dispatcher places on its ledger. */
  private attach(ledger: ResourceLedger): void {
    this.ledger = ledger;
    this.dispatcher.attach(ledger);
    ledger.onNodeRemoved = (node) => this.removedNodes.push(node.id);
  }

  private accept({ job, units, generated, noNode }: CheckedJob): JobHandle {
    const record = this.records.add(job, units, generated);
    // A job no node can hold gets its actor at once: it waits apart from the queue (`noNode`).
    if (!this.inspect && !this.listening && job.dependsOn.length === 0 && !noNode) this.acceptQueued(record);
    else this.acceptNow(record);
    return jobHandle(record, this.handleOwner);
  }

  /**
   * A job with nothing to wait for, that nobody is watching: it goes straight into the queue with
   * no actor; `records.actorOf` makes and starts one when it is first needed — its start, a
   * cancel, a shutdown — taking `job.ready` as of the submit (the actor then says `queued`, as the
   * record already does). A snapshot read (`get`, `list`, `state$`) reads a throwaway actor
   * instead (`currentSnapshot`). At a deep backlog what an actor holds (snapshot, context) would
   * live as long as the job waits; made at the start, it dies young (docs/performance.md).
   */
  private acceptQueued(record: JobRecord): void {
    if (this.enqueueWithoutActor(record, this.options.clock.now())) this.pump();
  }

  /**
   * Puts a job into the queue as of `at` with no actor (see `acceptQueued`); true if a round
   * should run.
   */
  private enqueueWithoutActor(record: JobRecord, at: number, boost?: Boost): boolean {
    // Drawn now, in submission order, as for an actor started at once (the jitter is the same).
    record.seed = jobSeed(this.options);
    // No actor yet: `records.actorOf` makes one (deferred, see `jobHost.wake`) when first needed.
    this.records.moved(record, 'queued');
    return this.dispatcher.enqueue(record.id, record.kind.level, at, record, boost);
  }

  private acceptNow(record: JobRecord): void {
    const actor = this.startActor(record, jobInput(record, this.options));
    if (this.listening)
      this.emit({
        type: 'job.submitted',
        at: this.options.clock.now(),
        job: this.snapshotOf(record),
      });
    this.dependencies.link(record, actor);
  }

  /** Makes and starts a job's actor, and ties it to its record (both ways). */
  private startActor(record: JobRecord, input: JobMachineInput): JobActor {
    const onError = this.inspect ? (error: unknown) => this.failed(record, error) : noop;
    const actor = createJobActor(this.jobHost, input, this.inspect, onError);
    record.actor = actor;
    if (actor instanceof LeanActor) actor.tag = record;
    else this.inspected.set(actor, record);
    return actor;
  }

  /** A job's logic threw: its `result` rejects with what it threw. */
  private failed(record: JobRecord, error: unknown): void {
    settle(record, new Failure(() => (error instanceof Error ? error : new Error(String(error)))));
  }

  private onJob(record: JobRecord, snap: JobStateSnapshot): void {
    const state = jobStateOf(snap.value);
    const prev = record.state;
    const id = record.id;
    const now = this.options.clock.now();
    if (state !== prev) {
      this.records.moved(record, state);
      // On disk before anything follows from it (a dependent starts, `result` settles).
      // Written at once when someone listens (events, the job's state$), else with the next
      // group commit — before `result` settles (see Journal.sync).
      this.journal?.moved(
        id,
        state,
        snap.context,
        now,
        record.rare?.boostGiven,
        this.listening || record.rare?.subject !== undefined,
      );
    }
    // Counts and resources move together: the allocation goes back now, but nothing new starts
    // on it until this job's own events are out ("a completed" before "b started").
    const released = state !== prev && this.handBack(record, state);
    if (prev === 'running' && state !== 'running' && record.rare?.stopping) this.stopped(record, snap, now);
    const left =
      prev === 'queued' &&
      state === 'cancelled' &&
      (this.dispatcher.dequeue(id) || (this.noNode.size > 0 && this.noNode.delete(id)));
    if (this.closed && state !== prev && (state === 'queued' || state === 'retrying')) {
      // A job that failed while draining does not retry: nothing new starts during shutdown.
      stopRetryForShutdown(record, prev, this.shutdownReport);
      if (this.removedNodes.length > 0) this.flushRemoved();
      return;
    }
    if (state === 'queued' && prev !== 'queued') {
      // Say so first: enqueueing may start the job at once, and "started" must follow "queued".
      if (this.listening) this.emit({ type: 'job.queued', at: now, job: this.snapshotOf(record, snap) });
      const given = record.rare?.boostGiven;
      const boost = given && given.until > now ? given : undefined;
      // No node could hold it (a node it needed was retired, or none ever could): it waits for
      // one apart from the queue. Otherwise a round runs unless the dispatcher can tell that it
      // would start nothing.
      if (this.poolMayMisfit && this.fitsNoNode(record)) this.noNode.set(id, record);
      else if (this.dispatcher.enqueue(id, record.kind.level, now, record, boost)) this.pump();
    } else if (state === 'running' && prev !== 'running') {
      const rare = record.rare;
      if (rare) {
        rare.progressSeen = 0;
        rare.noteSeen = undefined;
      }
      if (this.listening) this.emit({ type: 'job.started', at: now, job: this.snapshotOf(record, snap) });
      if (this.awaiting === id) {
        this.awaiting = undefined;
        this.pump();
      }
    } else if (state === 'running') {
      if (snap.context.stopping !== undefined && !record.rare?.stopping) {
        // Told to stop; until its handler settles it holds on to what it was granted.
        rareOf(record).stopping = true;
        this.stoppingCount++;
        if (this.listening)
          this.emit({
            type: 'job.stopping',
            at: now,
            job: this.snapshotOf(record, snap),
            reason: snap.context.stopping.reason,
          });
      }
      const { fraction, note } = snap.context.progress;
      const seen = record.rare;
      if (fraction !== (seen?.progressSeen ?? 0) || note !== seen?.noteSeen) {
        const rare = rareOf(record);
        rare.progressSeen = fraction;
        rare.noteSeen = note;
        if (this.listening) this.emit({ type: 'job.progress', at: now, job: this.snapshotOf(record, snap) });
      }
    } else if (state === 'retrying' && prev !== 'retrying') {
      if (this.listening)
        this.emit({
          type: 'job.retrying',
          at: now,
          job: this.snapshotOf(record, snap),
          delayMs: snap.context.retryDelayMs,
        });
    }
    if (FINAL.has(state) && !hasEnded(record)) this.finish(record, snap, state);
    else record.rare?.subject?.next(this.snapshotOf(record, snap));
    // A queued job that left (the head, perhaps) lets whoever is behind it try, after its events.
    if (released || left) this.pump();
    if (this.removedNodes.length > 0) this.flushRemoved();
    if (FINAL.has(state) && state !== prev) this.checkIdle();
  }

  /**
   * A stopping attempt left `running`: its handler settled — or, abandoned, its resources were
   * force-released while it may still run (`job.forceReleased`, told whether or not anyone listens
   * to the rest: it is a warning).
   */
  private stopped(record: JobRecord, snap: JobStateSnapshot, now: number): void {
    (record.rare as { stopping: boolean }).stopping = false;
    this.stoppingCount--;
    const c = snap.context;
    if (!c.abandoned || c.stopping === undefined) return;
    const left = (snap as JobLogicSnapshot).run?.left;
    if (left && !left.settled) {
      if (this.abandoned.size >= 64) this.stillAbandoned(); // forgets those settled since
      this.abandoned.set(record.id, { attempt: c.attempt, left });
    }
    if (this.events.closed) return;
    this.emit({
      type: 'job.forceReleased',
      at: now,
      job: this.snapshotOf(record, snap),
      attempt: c.attempt,
      reason: c.stopping.reason,
      stoppingMs: now - c.stopping.since,
    });
  }

  /** Attempts given up on (force-released) whose handlers still run: named in the shutdown report. */
  private stillAbandoned(): Array<{ id: string; attempt: number }> {
    const out: Array<{ id: string; attempt: number }> = [];
    for (const [id, { attempt, left }] of this.abandoned) {
      if (left.settled) this.abandoned.delete(id);
      else out.push({ id, attempt });
    }
    return out;
  }

  /**
   * Hands back the allocation a job released by leaving `scheduled`/`running` in this step (the
   * dispatcher keeps what each job holds: the record does not); true if one went back.
   */
  private handBack(record: JobRecord, state: JobState): boolean {
    if (HOLDING.has(state)) return false;
    const id = record.id;
    // The grant it held — or one it never took (cancelled with the grant still on its way).
    const released = this.dispatcher.holders.get(id);
    if (released === undefined) return false;
    if (this.awaiting === id) this.awaiting = undefined;
    this.dispatcher.release(id, released);
    this.resources.changed();
    return true;
  }

  /**
   * Runs a scheduling round: starts jobs, in the order the dispatcher chooses them, while it
   * finds resources and slots. A granted job whose actor is busy with its own step (it queued
   * in that step) takes its start after that step: nothing else starts before it has, so starts
   * follow the chosen order. Re-entrant calls (a start that frees something) run once more.
   */
  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        if (this.awaiting !== undefined) return;
        const now = this.options.clock.now();
        for (let d = this.dispatcher.next(now); d; d = this.dispatcher.next(now)) {
          const record = d.value;
          const actor = this.records.actorOf(record);
          if (d.kind === 'rejected') {
            // Checked at submit, so only a pool that changed under it gets here: it can never run.
            const message = d.error instanceof Error ? d.error.message : String(d.error);
            actor?.send({ type: 'job.cancel', reason: 'user', message });
            continue;
          }
          if (!actor) {
            // No live job to hand it to (cannot happen: queued jobs have actors); never leak it.
            this.dispatcher.release(d.id, d.allocation.id);
            if (this.removedNodes.length > 0) this.flushRemoved();
            continue;
          }
          this.resources.changed();
          actor.send({ type: 'job.allocated', allocation: d.allocation });
          // On disk before its handler is called (the start calls it at once): a crash while it
          // starts finds the attempt running, and counts it interrupted.
          if (this.journal)
            this.journal.starting(d.id, actor.getSnapshot().context, now, record.rare?.boostGiven);
          actor.send(START);
          if (record.state === 'queued') {
            this.awaiting = d.id;
            return;
          }
        }
      } while (this.pumpAgain);
    } finally {
      this.pumping = false;
    }
  }

  private finish(record: JobRecord, snap: JobStateSnapshot, state: JobState): void {
    const id = record.id;
    this.records.ended(record, snap.context);
    record.actor = undefined;
    const rare = record.rare;
    if (rare) rare.boostGiven = undefined;
    const at = this.options.clock.now();
    // Its snapshot, made only for those told of the end (see `JobRecords.ended`).
    const told = this.listening || record.rare?.subject !== undefined;
    const final = told ? endedSnapshot(record) : undefined;
    if (state === 'completed') {
      settle(record, snap.context.output);
      if (this.listening && final)
        this.emit({ type: 'job.completed', at, job: final, output: snap.context.output });
      if (this.shutdownReport) this.shutdownReport.completed.push(id);
    } else {
      if (state === 'failed' && this.shutdownReport) this.shutdownReport.failed.push(id);
      const error = snap.context.error ?? { kind: 'error', message: state };
      const cause = snap.context.cause;
      // The error (a stack trace, ~µs) is made only if someone asks for `result`.
      const failed = state as 'failed' | 'cancelled';
      settle(record, new Failure(() => new JobFailedError(id, failed, error.kind, error.message, { cause })));
      if (this.listening && final)
        this.emit({ type: state === 'failed' ? 'job.failed' : 'job.cancelled', at, job: final });
    }
    // Read again: a listener told of the end above may have asked for `state$` just now.
    const watched = record.rare;
    if (watched?.subject) {
      watched.subject.next(final ?? endedSnapshot(record));
      watched.subject.complete();
      watched.subject = undefined;
    }
    this.dependencies.ended(record, state);
    this.records.finished(record);
  }

  /** How many jobs had been accepted when `scheduler.idle` was last said (-1: never). */
  private idleSaidAt = -1;

  /**
   * Wakes `onIdle()` waiters and says so, once nothing is live — once per time the scheduler
   * becomes idle: a job that ends in another's end (a dependent cancelled by a failure) checks
   * too, inside the first one's check, and the first must not say it again. Idle again needs a job
   * accepted since, and the counts (moved only by accepts and moves) add up to the jobs accepted.
   */
  private checkIdle(): void {
    if (this.records.liveCount() !== 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    let accepted = 0;
    for (const state of JOB_STATES) accepted += this.records.counts[state];
    if (accepted === this.idleSaidAt) return;
    this.idleSaidAt = accepted;
    this.emit({ type: 'scheduler.idle', at: this.options.clock.now() });
  }

  private snapshotOf(record: JobRecord, snap?: JobStateSnapshot): JobSnapshot {
    return snapshotOf(record, this.view, snap ?? this.currentSnapshot(record));
  }

  /**
   * A live job's snapshot now. A job waiting without an actor (see `records.actorOf`) is read
   * from a throwaway one, started the same way — what its actor would say, as of its submit —
   * so that reading a deep backlog (`list()`) does not leave an actor behind for every job. The
   * throwaway changes nothing: its record has no actor, so its steps are not taken as the job's
   * (`onStep`), and a job that waits has no timers.
   */
  private currentSnapshot(record: JobRecord): JobStateSnapshot | undefined {
    if (!this.records.waitsWithoutActor(record)) return record.actor?.getSnapshot();
    const peek = new LeanActor(this.jobHost, undefined, true);
    peek.tag = record;
    return peek.getSnapshot();
  }

  private emit(event: SchedulerEvent): void {
    if (!this.events.closed) this.events.next(event);
  }

  /** Whether anyone listens: events with snapshots are built only then (they cost, and most jobs emit several). */
  private get listening(): boolean {
    return this.events.observed && !this.events.closed;
  }
}

const LIST_FILTER_KEYS: ReadonlySet<string> = new Set(['state', 'group']);
const ROOM_OPTION_KEYS: ReadonlySet<string> = new Set(['signal']);

/** The options of `submitWhenRoom()` and `onRoom()`: `{ signal? }`, or a typed error naming it. */
function checkRoomOptions(options: unknown): AbortSignal | undefined {
  if (!isObject(options)) throw new InvalidJobError('options', options, 'an object { signal }');
  checkKeys('options', options, ROOM_OPTION_KEYS);
  const { signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    throw new InvalidJobError('options.signal', signal, 'an AbortSignal');
  return signal;
}

/** `list()`'s filter: an object of a known state and/or a group, or a typed error naming it. */
function checkListFilter(filter: unknown): void {
  if (!isObject(filter)) throw new InvalidJobError('filter', filter, 'an object { state, group }');
  checkKeys('filter', filter, LIST_FILTER_KEYS);
  const { state, group } = filter;
  if (state !== undefined && !JOB_STATES.includes(state as JobState))
    throw new InvalidJobError('filter.state', state, `one of ${JOB_STATES.join(', ')}`);
  if (group !== undefined && typeof group !== 'string')
    throw new InvalidJobError('filter.group', group, 'a string');
}

/** Creates a scheduler; see `SchedulerOptions` for every option and its default. */
export function createScheduler<H extends Handlers>(options: SchedulerOptions<H>): Scheduler<H> {
  return new Scheduler(options);
}
