/**
 * `createScheduler()`: the shell around the actors. It checks what is submitted, creates one job
 * actor per live job (a root actor on the shared clock, so a growing backlog never copies a
 * parent's children map), relays what the job actors do to the scheduler actor and to
 * `events$`, tracks dependencies, and keeps finished jobs as plain records.
 */
import { BehaviorSubject, Subject, of, type Observable, type Subscription } from 'rxjs';
import { createActor, type Actor, type AnyActorRef } from 'xstate';
import {
  DuplicateJobError,
  InvalidJobError,
  InvalidOptionError,
  JobFailedError,
  QueueFullError,
  SchedulerClosedError,
  UnknownDependencyError,
} from '../core/errors.js';
import { findCycle, normaliseJobSpec, type JobSpec, type NormalisedJob } from '../core/job-spec.js';
import { DependencyCycleError } from '../core/errors.js';
import { levelOf, MAX_LEVEL } from '../core/priority.js';
import { assertCanEverFit, normalisePool, poolMaxima, toUnits, type PoolMaxima } from '../core/pool.js';
import type { NormalisedNode, ResourcePool } from '../core/resources.js';
import { FINAL_JOB_STATES, JOB_STATES, type JobState } from '../core/types.js';
import type { Boost } from '../core/queue.js';
import { handlerRunner, type Handlers } from '../actors/handler.js';
import { readMeasured } from '../actors/measure.js';
import { jobMachine, jobStateOf, type JobMachineSnapshot } from '../machines/job.machine.js';
import type { ResourceManagerInput } from '../machines/resourceManager.machine.js';
import { schedulerMachine } from '../machines/scheduler.machine.js';
import { resolveOptions, type ResolvedOptions, type SchedulerOptions } from './options.js';
import { resolvePool } from './pool.js';
import { toJobSnapshot } from './snapshot.js';
import type {
  BoostReport,
  BoostSignal,
  BoostSpec,
  BoostTarget,
  JobHandle,
  JobSnapshot,
  JobSubmission,
  SchedulerEvent,
  SchedulerStats,
  ShutdownReport,
} from './types.js';

type JobActor = Actor<typeof jobMachine>;

type JobRecord = {
  spec: NormalisedJob;
  actor: JobActor | undefined;
  /** Kept once the job is final; the actor is gone then. */
  final: JobSnapshot | undefined;
  state: JobState;
  /** Dependencies not yet ended in a way that lets this job run. */
  waitingOn: number;
  dependents: string[];
  /** A boost given while the job was not queued; applied when it queues. */
  boost: Boost | undefined;
  progressSeen: number;
  noteSeen: string | undefined;
  /** Running with attempts left (counted in `mayRetry`). */
  mayRetry: boolean;
  /** An allocation the job released in its last step, handed back once its events are out. */
  released: string | undefined;
  settle: { resolve: (value: unknown) => void; reject: (error: unknown) => void };
  result: Promise<unknown>;
  subject: BehaviorSubject<JobSnapshot> | undefined;
};

const WAITING: ReadonlySet<JobState> = new Set(['pending', 'queued', 'retrying']);
const HOLDING: ReadonlySet<JobState> = new Set(['scheduled', 'running']);
const FINAL: ReadonlySet<JobState> = new Set(FINAL_JOB_STATES);

/** A running scheduler; see DESIGN.md for the contract. */
export class Scheduler<H extends Handlers = Handlers> {
  /** Every event of the scheduler, as a typed union. */
  readonly events$: Observable<SchedulerEvent>;
  /** Resolves once the pool is known (at once for a declared pool; after host detection otherwise). */
  readonly ready: Promise<void>;

  private readonly options: ResolvedOptions;
  private readonly events = new Subject<SchedulerEvent>();
  private readonly records = new Map<string, JobRecord>();
  private readonly finishedOrder: string[] = [];
  private finishedHead = 0;
  private readonly groups = new Map<string, Set<string>>();
  private readonly counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
  private readonly actor: Actor<typeof schedulerMachine>;
  private readonly jobLogic: typeof jobMachine;
  private readonly inspect: SchedulerOptions['inspect'];
  private readonly handlers: Handlers;
  private pool: { nodes: NormalisedNode[]; maxima: PoolMaxima } | undefined;
  private idSeq = 0;
  private closed = false;
  private shutdownReport: ShutdownReport | undefined;
  private shutdownPromise: Promise<ShutdownReport> | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly timers = new Set<unknown>();
  private readonly subscriptions: Subscription[] = [];
  private readonly notifications: Array<() => void> = [];
  private notifying = false;
  private resourcesWired = false;
  private batching = false;
  /** Running jobs with attempts left: each may come back to the queue, so each holds a queue place. */
  private mayRetry = 0;
  /** The resource figures as they were when the resource manager stopped (after shutdown). */
  private finalResources: SchedulerStats['resources'] | undefined;

  constructor(options: SchedulerOptions<H>) {
    this.options = resolveOptions(options as SchedulerOptions);
    this.inspect = options.inspect;
    this.handlers = options.handlers;
    this.events$ = this.events.asObservable();
    this.jobLogic = jobMachine.provide({ actors: { runHandler: handlerRunner(options.handlers) } });
    const declared = this.declaredPool();
    this.actor = createActor(schedulerMachine, {
      clock: this.options.clock,
      ...(this.inspect ? { inspect: this.inspect } : {}),
      input: {
        clock: this.options.clock,
        resources: declared ? this.resourceInput(declared) : undefined,
        maxConcurrentJobs: this.options.maxConcurrentJobs,
        queuePolicy: this.options.queuePolicy,
        aging: this.options.aging,
        schedulingIntervalMs: this.options.schedulingIntervalMs,
        reserveAfterMs: this.options.reserveAfterMs,
        backfillDepth: this.options.backfillDepth,
      },
    });
    this.actor.start();
    if (declared) {
      this.wireResources();
      this.ready = Promise.resolve();
    } else {
      this.ready = this.detect();
      // A failed detection is reported through `ready`; it must not crash an unobserved process.
      this.ready.catch(() => undefined);
    }
  }

  /**
   * Accepts a job, synchronously. Throws a typed error — `InvalidJobError`, `UnschedulableError`,
   * `DuplicateJobError`, `UnknownDependencyError`, `DependencyCycleError`, `QueueFullError`,
   * `SchedulerClosedError` — and then nothing was enqueued.
   */
  submit<TResult = unknown>(spec: JobSubmission<H>): JobHandle<TResult> {
    const job = this.check(spec as JobSpec, new Set());
    this.assertRoom(1);
    return this.accept(job) as JobHandle<TResult>;
  }

  /**
   * Accepts several jobs at once, all or none: they may depend on each other in any order
   * (a cycle among them throws `DependencyCycleError`).
   */
  submitAll(specs: ReadonlyArray<JobSubmission<H>>): JobHandle[] {
    if (!Array.isArray(specs)) throw new InvalidJobError('jobs', specs, 'an array of job specs');
    const batch = new Set<string>();
    const declared = new Set(
      specs.map((s) => (s as JobSpec)?.id).filter((id): id is string => typeof id === 'string'),
    );
    const jobs = specs.map((spec) => {
      const job = this.check(spec as JobSpec, batch, declared);
      batch.add(job.id);
      return job;
    });
    const cycle = findCycle(new Map(jobs.map((j) => [j.id, j.dependsOn])));
    if (cycle) throw new DependencyCycleError(cycle);
    this.assertRoom(jobs.length);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    const handles = new Map<string, JobHandle>();
    const visit = (job: NormalisedJob) => {
      if (handles.has(job.id)) return;
      for (const dep of job.dependsOn) {
        const inBatch = byId.get(dep);
        if (inBatch) visit(inBatch);
      }
      handles.set(job.id, this.accept(job));
    };
    // Keep finished records while the batch goes in: a dependency that fails at once must not
    // be dropped by retention before a later job of the batch looks it up.
    this.batching = true;
    try {
      jobs.forEach(visit);
    } finally {
      this.batching = false;
      this.retain();
    }
    return jobs.map((j) => handles.get(j.id) as JobHandle);
  }

  /** A job's snapshot (finished jobs too, within `retainFinished`). */
  get(id: string): JobSnapshot | undefined {
    const record = this.records.get(id);
    return record ? this.snapshotOf(record) : undefined;
  }

  /** Jobs, optionally of one state and/or group, in submission order. */
  list(filter: { state?: JobState; group?: string } = {}): JobSnapshot[] {
    const out: JobSnapshot[] = [];
    const ids =
      filter.group === undefined
        ? this.records.keys()
        : (this.groups.get(filter.group) ?? new Set<string>()).values();
    for (const id of ids) {
      const record = this.records.get(id);
      if (!record || (filter.state !== undefined && record.state !== filter.state)) continue;
      out.push(this.snapshotOf(record));
    }
    return out;
  }

  /**
   * Cancels a job in any non-final state: a running job's signal is aborted and its resources
   * are released as it leaves `running`. False when the job is unknown or already final.
   */
  cancel(id: string): boolean {
    const record = this.records.get(id);
    if (!record?.actor || FINAL.has(record.state)) return false;
    record.actor.send({ type: 'job.cancel', reason: 'user' });
    return true;
  }

  /** Raises queued jobs at once, for `forMs`; running and finished jobs are left alone and named. */
  boost(target: BoostTarget, spec: BoostSpec): BoostReport {
    const { toLevel, byLevels, forMs } = checkBoost(spec);
    const ids = this.targetIds(target);
    const now = this.options.clock.now();
    const boost: Boost = {
      until: now + forMs,
      ...(toLevel === undefined ? {} : { toLevel }),
      ...(byLevels === undefined ? {} : { byLevels }),
    };
    const report: BoostReport = { boosted: [], ignored: [], until: boost.until };
    const queued: string[] = [];
    for (const id of ids) {
      const record = this.records.get(id);
      if (!record) continue;
      if (!WAITING.has(record.state)) {
        report.ignored.push({ id, state: record.state });
        continue;
      }
      record.boost = boost;
      report.boosted.push(id);
      if (record.state === 'queued') queued.push(id);
    }
    if (queued.length > 0) this.actor.send({ type: 'scheduler.boost', jobIds: queued, boost });
    if (report.boosted.length > 0) {
      this.emit({ type: 'job.boosted', at: now, jobIds: report.boosted, until: boost.until });
      const timer = this.options.clock.setTimeout(() => {
        this.timers.delete(timer);
        for (const id of report.boosted) {
          const record = this.records.get(id);
          if (record?.boost === boost) record.boost = undefined;
        }
        this.actor.send({ type: 'scheduler.boostExpired' });
        this.emit({ type: 'boost.expired', at: this.options.clock.now(), jobIds: report.boosted });
      }, forMs);
      this.timers.add(timer);
    }
    if (report.ignored.length > 0) this.emit({ type: 'boost.ignored', at: now, jobs: report.ignored });
    return report;
  }

  /** Applies every boost signal of a stream (e.g. "a user is waiting on group X") as it comes. */
  connectBoosts(boost$: Observable<BoostSignal>): Subscription {
    const subscription = boost$.subscribe({
      next: (signal) => {
        try {
          const { target, ...spec } = signal;
          this.boost(target, spec as BoostSpec);
        } catch (error) {
          this.emit({
            type: 'boost.invalid',
            at: this.options.clock.now(),
            message: (error as Error).message,
          });
        }
      },
      error: (error: unknown) =>
        this.emit({
          type: 'boost.invalid',
          at: this.options.clock.now(),
          message: `boost stream failed: ${String(error)}`,
        }),
    });
    this.subscriptions.push(subscription);
    return subscription;
  }

  /** Stops new starts; running jobs go on. */
  pause(): void {
    if (this.closed) return;
    this.actor.send({ type: 'scheduler.pause' });
    this.emit({ type: 'scheduler.paused', at: this.options.clock.now() });
  }

  /** Starts jobs again. */
  resume(): void {
    if (this.closed) return;
    this.actor.send({ type: 'scheduler.resume' });
    this.emit({ type: 'scheduler.resumed', at: this.options.clock.now() });
  }

  /** Resolves when nothing is pending, queued, running or retrying (at once if so now). */
  onIdle(): Promise<void> {
    if (this.liveCount() === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Counts by state, the queue, and capacity/allocated/free/measured resources. */
  stats(): SchedulerStats {
    return {
      jobs: { ...this.counts },
      queue: { size: this.queueSize(), max: this.options.maxQueueSize },
      resources: this.resourceStats(),
    };
  }

  /**
   * Stops accepting jobs and cancels those not started (kind `shutdown`). `drain` lets running
   * jobs finish for up to `timeoutMs`, then aborts them; `cancel` aborts them at once. Resolves
   * with a report once every resource is free and no timer, subscription or actor is left.
   */
  shutdown(options: { timeoutMs?: number; mode?: 'drain' | 'cancel' } = {}): Promise<ShutdownReport> {
    if (this.shutdownPromise) {
      // A second call may turn a drain into a cancel (a second Ctrl-C); it never turns one back.
      if (options.mode === 'cancel' && this.shutdownReport?.mode === 'drain') this.abortRunning();
      return this.shutdownPromise;
    }
    const mode = options.mode ?? 'drain';
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (mode !== 'drain' && mode !== 'cancel')
      throw new InvalidOptionError('mode', mode, "'drain' or 'cancel'");
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      throw new InvalidOptionError('timeoutMs', timeoutMs, 'a number of ms ≥ 0');
    }
    this.closed = true;
    const report: ShutdownReport = {
      mode,
      completed: [],
      failed: [],
      cancelled: [],
      aborted: [],
      timedOut: false,
    };
    this.shutdownReport = report;
    this.actor.send({ type: 'scheduler.close' });
    this.shutdownPromise = this.runShutdown(report, mode, timeoutMs);
    return this.shutdownPromise;
  }

  // ——— internals ———

  private async runShutdown(
    report: ShutdownReport,
    mode: 'drain' | 'cancel',
    timeoutMs: number,
  ): Promise<ShutdownReport> {
    for (const [id, record] of this.records) {
      if (record.actor && WAITING.has(record.state)) this.cancelForShutdown(id, record, report.cancelled);
    }
    const abortRunning = () => this.abortRunning();
    if (mode === 'cancel') abortRunning();
    else if (this.liveCount() > 0) {
      let timer: unknown;
      const drained = await Promise.race([
        this.onIdle().then(() => true),
        new Promise<boolean>((resolve) => {
          timer = this.options.clock.setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      this.options.clock.clearTimeout(timer);
      if (!drained) {
        report.timedOut = true;
        abortRunning();
      }
    }
    await this.ready.catch(() => undefined);
    for (const timer of this.timers) this.options.clock.clearTimeout(timer);
    this.timers.clear();
    for (const subscription of this.subscriptions) subscription.unsubscribe();
    this.finalResources = this.resourceStats();
    this.actor.stop();
    this.emit({ type: 'scheduler.shutdown', at: this.options.clock.now(), report });
    this.events.complete();
    return report;
  }

  /** Aborts every running job (kind `shutdown`), noting it in the shutdown report. */
  private abortRunning(): void {
    const report = this.shutdownReport;
    if (!report) return;
    for (const [id, record] of this.records) {
      if (record.actor && HOLDING.has(record.state)) this.cancelForShutdown(id, record, report.aborted);
    }
  }

  private cancelForShutdown(id: string, record: JobRecord, into: string[]): void {
    into.push(id);
    record.actor?.send({ type: 'job.cancel', reason: 'shutdown' });
  }

  private declaredPool(): ResourcePool | undefined {
    const option = this.options.resources;
    if (option === 'detect' || 'detect' in option) return undefined;
    return option;
  }

  private resourceInput(pool: ResourcePool): ResourceManagerInput {
    const nodes = normalisePool(pool);
    this.pool = { nodes, maxima: poolMaxima(nodes) };
    const input: ResourceManagerInput = { pool, placement: this.options.placement };
    if (this.options.monitor) {
      input.monitor = {
        clock: this.options.clock,
        intervalMs: this.options.monitorIntervalMs,
        read: this.options.measure ?? (() => readMeasured()),
        headroom: this.options.headroom,
      };
    }
    return input;
  }

  private async detect(): Promise<void> {
    const { pool, warnings } = await resolvePool(this.options.resources, this.options.detect);
    if (this.shutdownPromise) return;
    const input = this.resourceInput(pool);
    // Jobs accepted before the pool was known were checked only for their shape.
    for (const [id, record] of this.records) {
      if (!record.actor) continue;
      try {
        assertCanEverFit(
          toUnits(record.spec.resources),
          this.pool?.nodes ?? [],
          this.pool?.maxima as PoolMaxima,
        );
      } catch (error) {
        record.actor.send({
          type: 'job.cancel',
          reason: 'user',
          message: `${id}: ${(error as Error).message}`,
        });
      }
    }
    this.actor.send({ type: 'scheduler.poolReady', resources: input });
    this.wireResources();
    this.emit({ type: 'scheduler.ready', at: this.options.clock.now(), warnings });
  }

  private resourceManager(): AnyActorRef | undefined {
    return this.actor.system.get('resourceManager') as AnyActorRef | undefined;
  }

  private wireResources(): void {
    const rm = this.resourceManager();
    if (!rm || this.resourcesWired) return;
    this.resourcesWired = true;
    const at = () => this.options.clock.now();
    rm.on('resources.changed', () => {
      if (this.events.observed)
        this.emit({ type: 'resources.changed', at: at(), resources: this.resourceStats() });
    });
    rm.on('resources.pressure', (e: { nodeId: string; pressure: never }) => {
      this.actor.send({ type: 'scheduler.capacityChanged' });
      this.emit({ type: 'resources.pressure', at: at(), nodeId: e.nodeId, pressure: e.pressure });
    });
    rm.on(
      'resources.pressureEnded',
      (e: { nodeId: string; resource: 'memory' | 'vram'; gpuIndex?: number }) => {
        this.actor.send({ type: 'scheduler.capacityChanged' });
        this.emit({
          type: 'resources.pressureEnded',
          at: at(),
          nodeId: e.nodeId,
          resource: e.resource,
          ...(e.gpuIndex === undefined ? {} : { gpuIndex: e.gpuIndex }),
        });
      },
    );
  }

  private resourceStats(): SchedulerStats['resources'] {
    if (this.finalResources) return this.finalResources;
    const rm = this.resourceManager();
    if (rm) return (rm.getSnapshot() as { context: { stats: SchedulerStats['resources'] } }).context.stats;
    const zero = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0, custom: {} };
    return { capacity: zero, allocated: zero, free: zero };
  }

  /**
   * Checks one job. `batch` holds the ids already taken in this submission; `batchIds` the ids
   * a batch declares, which its jobs may depend on in any order.
   */
  private check(
    spec: JobSpec,
    batch: ReadonlySet<string>,
    batchIds: ReadonlySet<string> = batch,
  ): NormalisedJob {
    if (this.closed) throw new SchedulerClosedError();
    const job = normaliseJobSpec(spec, {
      isHandlerType: (type) => Object.hasOwn(this.handlers, type),
      handlerTypes: () => Object.keys(this.handlers),
      defaultTimeoutMs: this.options.defaultTimeoutMs,
      retryAttempts: this.options.retryAttempts,
      backoff: this.options.backoff,
      newId: () => this.newId(batch),
    });
    if (this.records.has(job.id) || batch.has(job.id)) throw new DuplicateJobError(job.id);
    for (const dep of job.dependsOn) {
      if (!this.records.has(dep) && !batchIds.has(dep)) {
        throw new UnknownDependencyError(job.id, dep);
      }
    }
    const units = toUnits(job.resources);
    if (this.pool) assertCanEverFit(units, this.pool.nodes, this.pool.maxima);
    return job;
  }

  private newId(batch: ReadonlySet<string>): string {
    let id: string;
    do id = `job-${++this.idSeq}`;
    while (this.records.has(id) || batch.has(id));
    return id;
  }

  private assertRoom(n: number): void {
    if (this.queueSize() + this.mayRetry + n > this.options.maxQueueSize) {
      throw new QueueFullError(this.options.maxQueueSize);
    }
  }

  private queueSize(): number {
    return this.counts.pending + this.counts.queued + this.counts.retrying;
  }

  private liveCount(): number {
    return this.queueSize() + this.counts.scheduled + this.counts.running;
  }

  private accept(job: NormalisedJob): JobHandle {
    let settle!: JobRecord['settle'];
    const result = new Promise<unknown>((resolve, reject) => (settle = { resolve, reject }));
    // Callers that never read `result` must not see an unhandled rejection.
    result.catch(() => undefined);
    const record: JobRecord = {
      spec: job,
      actor: undefined,
      final: undefined,
      state: 'pending',
      waitingOn: 0,
      dependents: [],
      boost: undefined,
      progressSeen: 0,
      noteSeen: undefined,
      mayRetry: false,
      released: undefined,
      settle,
      result,
      subject: undefined,
    };
    this.records.set(job.id, record);
    this.counts.pending++;
    if (job.group !== undefined) {
      const members = this.groups.get(job.group) ?? new Set<string>();
      members.add(job.id);
      this.groups.set(job.group, members);
    }
    const actor = createActor(this.jobLogic, {
      clock: this.options.clock,
      ...(this.inspect ? { inspect: this.inspect } : {}),
      input: {
        id: job.id,
        type: job.type,
        ...(job.group === undefined ? {} : { group: job.group }),
        payload: job.payload,
        clock: this.options.clock,
        maxAttempts: job.maxAttempts,
        ...(job.timeoutMs === undefined ? {} : { timeoutMs: job.timeoutMs }),
        backoff: job.backoff,
        seed: Math.floor(this.options.random() * 2 ** 32) | 0,
      },
    });
    record.actor = actor;
    actor.on('job.released', ({ allocation }) => {
      record.released = allocation.id;
    });
    actor.subscribe({
      next: (snap) => this.onJob(record, snap),
      error: (error: unknown) => record.settle.reject(error),
    });
    actor.start();
    this.emitLazy(() => ({
      type: 'job.submitted',
      at: this.options.clock.now(),
      job: this.snapshotOf(record),
    }));
    // Dependencies: the job waits for those not yet ended; a failed one (afterok) cancels it.
    let failedDep: { id: string; state: JobState } | undefined;
    for (const dep of job.dependsOn) {
      const depRecord = this.records.get(dep) as JobRecord;
      if (!FINAL.has(depRecord.state)) {
        record.waitingOn++;
        depRecord.dependents.push(job.id);
      } else if (depRecord.state !== 'completed' && job.dependencyPolicy === 'afterok') {
        failedDep ??= { id: dep, state: depRecord.state };
      }
    }
    if (failedDep) this.dependencyFailed(record, failedDep.id, failedDep.state);
    else if (record.waitingOn === 0) actor.send({ type: 'job.ready' });
    return this.handleOf(job.id, record);
  }

  private handleOf(id: string, record: JobRecord): JobHandle {
    const stream = () => this.stateStream(record);
    return {
      id,
      result: record.result,
      get state$(): Observable<JobSnapshot> {
        return stream();
      },
      cancel: () => this.cancel(id),
    };
  }

  /** A job's snapshots; the subject exists only once someone asks, so a large backlog costs none. */
  private stateStream(record: JobRecord): Observable<JobSnapshot> {
    if (record.final) return of(record.final);
    record.subject ??= new BehaviorSubject(this.snapshotOf(record));
    return record.subject.asObservable();
  }

  private dependencyFailed(record: JobRecord, depId: string, state: JobState): void {
    if (this.shutdownReport) {
      // Shutdown cancelled the dependency: the dependent ends for the same reason, not its own.
      if (!this.shutdownReport.cancelled.includes(record.spec.id))
        this.shutdownReport.cancelled.push(record.spec.id);
      record.actor?.send({ type: 'job.cancel', reason: 'shutdown' });
      return;
    }
    record.actor?.send({
      type: 'job.dependencyFailed',
      dependencyId: depId,
      message: `dependency ${depId} was ${state}`,
    });
  }

  private onJob(record: JobRecord, snap: JobMachineSnapshot): void {
    const state = jobStateOf(snap.value);
    const prev = record.state;
    const id = record.spec.id;
    const now = this.options.clock.now();
    if (state !== prev) {
      this.counts[prev]--;
      this.counts[state]++;
      record.state = state;
      const mayRetry = state === 'running' && snap.context.attempt < snap.context.maxAttempts;
      if (mayRetry !== record.mayRetry) {
        record.mayRetry = mayRetry;
        this.mayRetry += mayRetry ? 1 : -1;
      }
    }
    // Counts and resources move together: the allocation goes back now, but nothing new starts
    // on it until this job's own events are out ("a completed" before "b started").
    const released = this.handBack(record);
    if (state !== prev) {
      if (prev === 'queued' && state === 'cancelled')
        this.actor.send({ type: 'scheduler.dequeue', jobId: id });
    }
    if (this.closed && state !== prev && (state === 'queued' || state === 'retrying')) {
      // A job that failed while draining does not retry: nothing new starts during shutdown.
      const report = this.shutdownReport;
      if (report && !report.cancelled.includes(id) && !report.aborted.includes(id)) {
        (HOLDING.has(prev) ? report.aborted : report.cancelled).push(id);
      }
      record.actor?.send({ type: 'job.cancel', reason: 'shutdown' });
      return;
    }
    if (state === 'queued' && prev !== 'queued') {
      // Say so first: enqueueing may start the job at once, and "started" must follow "queued".
      this.emitLazy(() => ({ type: 'job.queued', at: now, job: this.snapshotOf(record, snap) }));
      const boost = record.boost && record.boost.until > now ? record.boost : undefined;
      this.actor.send({
        type: 'scheduler.enqueue',
        jobId: id,
        level: record.spec.level,
        job: { ref: record.actor as AnyActorRef, request: record.spec.resources, group: record.spec.group },
        ...(boost ? { boost } : {}),
      });
    } else if (state === 'running' && prev !== 'running') {
      record.progressSeen = 0;
      record.noteSeen = undefined;
      this.emitLazy(() => ({ type: 'job.started', at: now, job: this.snapshotOf(record, snap) }));
      this.actor.send({ type: 'scheduler.started', jobId: id });
    } else if (state === 'running') {
      const { fraction, note } = snap.context.progress;
      if (fraction !== record.progressSeen || note !== record.noteSeen) {
        record.progressSeen = fraction;
        record.noteSeen = note;
        this.emitLazy(() => ({ type: 'job.progress', at: now, job: this.snapshotOf(record, snap) }));
      }
    } else if (state === 'retrying' && prev !== 'retrying') {
      this.emitLazy(() => ({
        type: 'job.retrying',
        at: now,
        job: this.snapshotOf(record, snap),
        delayMs: snap.context.retryDelayMs,
      }));
    }
    if (FINAL.has(state) && !record.final) this.finish(record, snap, state);
    else record.subject?.next(this.snapshotOf(record, snap));
    // A queued job that left (the head, perhaps) lets whoever is behind it try, after its events.
    if (released || (prev === 'queued' && state === 'cancelled')) this.actor.send({ type: 'scheduler.kick' });
    if (FINAL.has(state) && state !== prev) this.checkIdle();
  }

  /** Hands an allocation the job released in this step back to the scheduler; true if one. */
  private handBack(record: JobRecord): boolean {
    const released = record.released;
    if (released === undefined) return false;
    record.released = undefined;
    this.actor.send({ type: 'scheduler.released', jobId: record.spec.id, allocationId: released });
    return true;
  }

  private finish(record: JobRecord, snap: JobMachineSnapshot, state: JobState): void {
    const id = record.spec.id;
    const final = toJobSnapshot(record.spec, snap, record.spec.level);
    record.final = final;
    record.actor = undefined;
    record.boost = undefined;
    const at = this.options.clock.now();
    if (state === 'completed') {
      record.settle.resolve(snap.context.output);
      this.emit({ type: 'job.completed', at, job: final, output: snap.context.output });
      if (this.shutdownReport) this.shutdownReport.completed.push(id);
    } else {
      const error = final.error ?? { kind: 'error', message: state };
      record.settle.reject(
        new JobFailedError(id, state as 'failed' | 'cancelled', error.kind, error.message),
      );
      this.emit({ type: state === 'failed' ? 'job.failed' : 'job.cancelled', at, job: final });
    }
    record.subject?.next(final);
    record.subject?.complete();
    record.subject = undefined;
    for (const dependent of record.dependents) this.notify(() => this.dependencyEnded(dependent, id, state));
    record.dependents = [];
    this.finishedOrder.push(id);
    this.retain();
  }

  /** Wakes `onIdle()` waiters and says so, once nothing is live. */
  private checkIdle(): void {
    if (this.liveCount() !== 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
    this.emit({ type: 'scheduler.idle', at: this.options.clock.now() });
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
    if (state !== 'completed' && record.spec.dependencyPolicy === 'afterok') {
      this.dependencyFailed(record, depId, state);
      return;
    }
    if (--record.waitingOn === 0) record.actor.send({ type: 'job.ready' });
  }

  /** Keeps at most `retainFinished` finished records, dropping the oldest. */
  private retain(): void {
    if (this.batching) return;
    while (this.finishedOrder.length - this.finishedHead > this.options.retainFinished) {
      const oldest = this.finishedOrder[this.finishedHead++] as string;
      const record = this.records.get(oldest);
      if (record?.final) {
        this.records.delete(oldest);
        if (record.spec.group !== undefined) this.groups.get(record.spec.group)?.delete(oldest);
      }
    }
    if (this.finishedHead > 1_024 && this.finishedHead * 2 > this.finishedOrder.length) {
      this.finishedOrder.splice(0, this.finishedHead);
      this.finishedHead = 0;
    }
  }

  private snapshotOf(record: JobRecord, snap?: JobMachineSnapshot): JobSnapshot {
    if (record.final) return record.final;
    const current = snap ?? (record.actor as JobActor).getSnapshot();
    const out = toJobSnapshot(record.spec, current, this.effectiveLevel(record));
    if (record.state === 'queued') out.waitReason = this.queuedWaitReason(out.waitReason) ?? 'resources';
    return out;
  }

  /**
   * Why a queued job waits, read from the scheduler as it is now: paused, every slot taken, or
   * (the job's own last word) resources. Deriving it costs O(1) per read, where telling every
   * queued job each time a slot fills or frees would cost O(queue).
   */
  private queuedWaitReason(own: JobSnapshot['waitReason']): JobSnapshot['waitReason'] {
    const scheduler = this.actor.getSnapshot();
    if (scheduler.matches({ ready: 'paused' })) return 'paused';
    if (scheduler.context.holders.size >= this.options.maxConcurrentJobs) return 'concurrency';
    return own === 'paused' || own === 'concurrency' ? 'resources' : own;
  }

  private effectiveLevel(record: JobRecord): number {
    if (record.state !== 'queued') return record.spec.level;
    const entry = this.actor.getSnapshot().context.queue.get(record.spec.id);
    return entry
      ? this.actor.getSnapshot().context.queue.level(entry, this.options.clock.now())
      : record.spec.level;
  }

  private targetIds(target: BoostTarget): string[] {
    if (
      typeof target === 'object' &&
      target !== null &&
      'group' in target &&
      typeof target.group === 'string'
    ) {
      return [...(this.groups.get(target.group) ?? [])];
    }
    if (typeof target === 'object' && target !== null && 'ids' in target && Array.isArray(target.ids))
      return [...target.ids];
    throw new InvalidJobError('target', target, '{ group } or { ids }');
  }

  private emit(event: SchedulerEvent): void {
    if (!this.events.closed) this.events.next(event);
  }

  /** Builds an event only when someone listens: snapshots cost, and most jobs emit several. */
  private emitLazy(build: () => SchedulerEvent): void {
    if (this.events.observed && !this.events.closed) this.events.next(build());
  }
}

function checkBoost(spec: BoostSpec): {
  toLevel: number | undefined;
  byLevels: number | undefined;
  forMs: number;
} {
  if (typeof spec !== 'object' || spec === null)
    throw new InvalidJobError('boost', spec, '{ to | by, forMs }');
  const { to, by, forMs } = spec as { to?: unknown; by?: unknown; forMs?: unknown };
  if ((to === undefined) === (by === undefined))
    throw new InvalidJobError('boost', spec, 'exactly one of to or by');
  if (to !== undefined && levelOf(to) < 0) throw new InvalidJobError('boost.to', to, 'a priority name');
  if (by !== undefined && (typeof by !== 'number' || !Number.isInteger(by) || Math.abs(by) > MAX_LEVEL)) {
    throw new InvalidJobError('boost.by', by, `a whole number of levels in [-${MAX_LEVEL}, ${MAX_LEVEL}]`);
  }
  if (typeof forMs !== 'number' || !Number.isFinite(forMs) || forMs <= 0) {
    throw new InvalidJobError('boost.forMs', forMs, 'a number of ms > 0');
  }
  return { toLevel: to === undefined ? undefined : levelOf(to), byLevels: by as number | undefined, forMs };
}

/** Creates a scheduler; see `SchedulerOptions` for every option and its default. */
export function createScheduler<H extends Handlers>(options: SchedulerOptions<H>): Scheduler<H> {
  return new Scheduler(options);
}
