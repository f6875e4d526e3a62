/**
 * The system under test and the model beside it: one scheduler on a virtual clock whose one
 * handler type does what each job's payload says, and a model of every job fed by `events$`.
 * Violations seen while events flow are collected and reported by the next step's check.
 */
import {
  createScheduler,
  createVirtualClock,
  PRIORITY_NAMES,
  UnrecoverableError,
  type Allocation,
  type JobSnapshot,
  type NodeSpec,
  type Scheduler,
  type SchedulerEvent,
  type ShutdownReport,
  type VirtualClock,
} from '../../../src/index.js';
import type { ResourceLedger } from '../../../src/core/ledger.js';
import { fitsNow, mulberry, viewOf } from './oracle.js';
import {
  behaviourOf,
  ensure,
  FAILS,
  HOLDING,
  SUCCEEDS,
  WAITING,
  type Config,
  type Draft,
  type Handlers,
  type ModelJob,
  type Output,
  type Payload,
} from './types.js';
import { countOnLedger, type LedgerCounts } from '../ledger-count.js';

/** The system under test and the model beside it. */
export class World {
  readonly clock: VirtualClock = createVirtualClock();
  readonly scheduler: Scheduler<Handlers>;
  readonly ledger: ResourceLedger;
  readonly jobs = new Map<string, ModelJob>();
  readonly accepted: string[] = [];
  readonly finishedOrder: string[] = [];
  readonly violations: string[] = [];
  /** Timers this test's own handlers hold: not the scheduler's. */
  readonly testTimers = new Set<unknown>();
  /** Handler bodies not yet settled (by `id#attempt`), whatever the engine thinks of them. */
  readonly liveBodies = new Map<string, { id: string; allocation: Allocation }>();
  /** When the timers of boosts that took effect fire. */
  readonly boostTimers: number[] = [];
  readonly outside: { memoryMb: number; vramMb: number[] };
  /** Advances completed so far: a timer due by `now` has fired once an advance ran after it was set. */
  epoch = 0;
  paused = false;
  closed = false;
  queueSeq = 0;
  idSeq = 0;
  /** Grants and releases counted on the ledger itself (see `countOnLedger`). */
  readonly counts: LedgerCounts;
  eventsDone = false;
  eventsAfterShutdown = 0;
  shutdown:
    | {
        startedAt: number;
        mode: 'drain' | 'cancel';
        timeoutMs: number;
        waiting: string[];
        holding: string[];
        report?: ShutdownReport;
        at?: number;
      }
    | undefined;
  /** The job being submitted: recorded on its `job.submitted` event. */
  draft: Draft | undefined;

  constructor(readonly cfg: Config) {
    const host = cfg.nodes[0] as NodeSpec;
    const hostGpus = Array.isArray(host.gpus) ? host.gpus : [];
    this.outside = { memoryMb: 0, vramMb: hostGpus.map(() => 0) };
    const handlers: Handlers = {
      work: ({ id, payload, attempt, allocation, signal, progress }) => {
        // Every handler body from its start until its promise settles, with what it runs on.
        const key = `${id}#${attempt}`;
        this.liveBodies.set(key, { id, allocation });
        let body: Promise<Output>;
        try {
          body = this.runHandler(id, payload, attempt, signal, progress);
        } catch (error) {
          this.liveBodies.delete(key);
          throw error;
        }
        const gone = () => this.liveBodies.delete(key);
        body.then(gone, gone);
        return body;
      },
    };
    this.scheduler = createScheduler({
      clock: this.clock,
      handlers,
      resources: { nodes: cfg.nodes },
      maxConcurrentJobs: cfg.maxConcurrentJobs,
      maxQueueSize: cfg.maxQueueSize,
      queuePolicy: cfg.queuePolicy,
      retry: { attempts: cfg.attempts, backoff: cfg.backoff },
      aging: cfg.aging,
      schedulingIntervalMs: cfg.schedulingIntervalMs,
      monitorIntervalMs: cfg.monitorIntervalMs,
      monitor: cfg.monitor,
      headroom: { memoryMb: 0, vramMb: 0 },
      measure: async () => ({
        freeMemoryMb: Math.max(0, host.memoryMb - this.outside.memoryMb),
        gpus: hostGpus.map((g, index) => ({
          index,
          freeVramMb: Math.max(0, g.vramMb - (this.outside.vramMb[index] ?? 0)),
          totalVramMb: g.vramMb,
        })),
        warnings: [],
      }),
      reserveAfterMs: cfg.reserveAfterMs,
      retainFinished: cfg.retainFinished,
      random: mulberry(cfg.seed),
      ...(cfg.defaultTimeoutMs === undefined ? {} : { defaultTimeoutMs: cfg.defaultTimeoutMs }),
    });
    const rm = this.scheduler['actor'].system.get('resourceManager');
    ensure(rm !== undefined, 'a declared pool starts the resource manager at once');
    this.ledger = (rm.getSnapshot() as { context: { ledger: ResourceLedger } }).context.ledger;
    const counts = countOnLedger(this.ledger);
    this.counts = counts;
    rm.on('resources.releaseIgnored', () => counts.releaseIgnored++);
    this.scheduler.events$.subscribe({
      next: (e) => this.onEvent(e),
      complete: () => (this.eventsDone = true),
    });
  }

  // ——— the handler ———

  private runHandler(
    id: string,
    payload: Payload,
    attempt: number,
    signal: AbortSignal,
    progress: (fraction: number, note?: string) => void,
  ): Promise<Output> {
    const job = this.jobs.get(id);
    if (!job) {
      this.violations.push(`handler ran for unknown job ${id}`);
      return Promise.reject(new Error('unknown'));
    }
    job.handlerCalls++;
    if (attempt !== job.handlerCalls)
      this.violations.push(`${id}: handler attempt ${attempt}, call ${job.handlerCalls}`);
    if (signal.aborted) this.violations.push(`${id}: handler started with an aborted signal`);
    const b = behaviourOf(payload.plan, attempt);
    if (payload.progress) progress(0.5, `attempt ${attempt}`);
    const output: Output = { id, attempt };
    switch (b.kind) {
      case 'throw':
        throw new Error(`${id} threw synchronously`);
      case 'hang':
        return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
      case 'ignoreAbort':
        return new Promise((resolve) => {
          if (!Number.isFinite(b.ms)) return;
          const t = this.clock.setTimeout(() => {
            this.testTimers.delete(t);
            resolve(output);
          }, b.ms);
          this.testTimers.add(t);
        });
      default:
        return this.wait(b.ms, signal).then(() => {
          if (b.kind === 'succeed') return output;
          if (b.kind === 'unrecoverable') throw new UnrecoverableError(`${id} cannot go on`);
          if (b.kind === 'rejectValue') return Promise.reject(`${id} rejected with a string`);
          throw new Error(`${id} failed`);
        });
    }
  }

  private wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const t = this.clock.setTimeout(() => {
        this.testTimers.delete(t);
        resolve();
      }, ms);
      this.testTimers.add(t);
      signal.addEventListener('abort', () => {
        this.clock.clearTimeout(t);
        this.testTimers.delete(t);
        reject(signal.reason);
      });
    });
  }

  // ——— the model ———

  /** Effective level: base + aging + a live boost, clamped (recomputed, not read from the queue). */
  level(job: ModelJob, now: number): number {
    const { intervalMs, maxLevels } = this.cfg.aging;
    let level =
      job.base + (maxLevels > 0 ? Math.min(maxLevels, Math.floor((now - job.queuedAt) / intervalMs)) : 0);
    if (job.boost && job.boost.until > now) {
      level += job.boost.byLevels ?? 0;
      if (job.boost.toLevel !== undefined) level = Math.max(level, job.boost.toLevel);
    }
    return Math.max(0, Math.min(PRIORITY_NAMES.length - 1, level));
  }

  /** True when `a` comes before `b` in the queue's order. */
  ahead(a: ModelJob, b: ModelJob, now: number): boolean {
    const la = this.level(a, now);
    const lb = this.level(b, now);
    return la > lb || (la === lb && a.queueOrder < b.queueOrder);
  }

  queued(): ModelJob[] {
    return [...this.jobs.values()].filter((j) => j.seen === 'queued');
  }

  private fail(what: string): void {
    this.violations.push(`@${this.clock.now()} ${what}`);
  }

  private onEvent(e: SchedulerEvent): void {
    if (this.eventsDone) this.eventsAfterShutdown++;
    if (!('job' in e)) return;
    if (e.type === 'job.submitted') {
      // Inside submit(), before the job can move: the model learns of it here, so that it
      // sees the job queue, start or even end within the same submit() call.
      const draft = this.draft;
      this.draft = undefined;
      if (!draft || this.jobs.has(e.job.id)) this.fail(`unexpected job.submitted for ${e.job.id}`);
      else this.admit(e.job.id, draft);
      return;
    }
    const job = this.jobs.get(e.job.id);
    if (!job) {
      this.fail(`${e.type} for a job the model does not know: ${e.job.id}`);
      return;
    }
    const now = this.clock.now();
    if (job.finalState !== undefined) this.fail(`${e.type} for ${job.id} after it ended ${job.finalState}`);
    switch (e.type) {
      case 'job.queued':
        job.seen = 'queued';
        job.queuedAt = now;
        job.queueOrder = this.queueSeq++;
        if (this.closed) this.fail(`${job.id} queued after shutdown began`);
        break;
      case 'job.started':
        this.onStarted(job, e.job, now);
        break;
      case 'job.retrying':
        job.seen = 'retrying';
        job.retryAt = now;
        job.retryDelayMs = e.delayMs;
        job.retryEpoch = this.epoch;
        this.checkRetry(job, e.job);
        break;
      case 'job.completed':
      case 'job.failed':
      case 'job.cancelled':
        this.onFinal(job, e.job, e.type === 'job.completed' ? e.output : undefined);
        break;
      default:
        break;
    }
  }

  private onStarted(job: ModelJob, snap: JobSnapshot, now: number): void {
    const was = job.seen;
    job.seen = 'running';
    job.started++;
    job.attemptAt = now;
    job.attemptEpoch = this.epoch;
    const id = job.id;
    if (was !== 'queued') this.fail(`${id} started from ${was}, not from queued`);
    if (this.paused) this.fail(`${id} started while paused`);
    if (this.closed) this.fail(`${id} started after shutdown began`);
    if (job.started > job.maxAttempts)
      this.fail(`${id}: attempt ${job.started} > maxAttempts ${job.maxAttempts}`);
    if (snap.attempt !== job.started)
      this.fail(`${id}: snapshot attempt ${snap.attempt}, started ${job.started}`);
    const counts = this.scheduler.stats().jobs;
    if (counts.running + counts.scheduled > this.cfg.maxConcurrentJobs) {
      this.fail(
        `${id} started with ${counts.running + counts.scheduled} > ${this.cfg.maxConcurrentJobs} jobs holding`,
      );
    }
    for (const dep of job.deps) {
      const d = this.jobs.get(dep) as ModelJob;
      if (d.finalState === undefined) this.fail(`${id} started before its dependency ${dep} ended`);
      else if (job.policy === 'afterok' && d.finalState !== 'completed')
        this.fail(`${id} (afterok) started though ${dep} ended ${d.finalState}`);
    }
    const allocation = snap.allocation;
    if (!allocation) {
      this.fail(`${id} started without an allocation`);
      return;
    }
    // The grant respected the admission limits in force (a limit never revokes what is held).
    const node = this.ledger.node(this.ledger.nodes.findIndex((n) => n.id === allocation.nodeId));
    if (allocation.memoryMb > 0 && node.usedMemoryMb > node.memoryLimitMb)
      this.fail(`${id} granted ${allocation.memoryMb} MB past the admission limit ${node.memoryLimitMb}`);
    for (const part of allocation.gpus) {
      const g = node.gpus.find((x) => x.index === part.index);
      if (g && part.vramMb > 0 && g.usedVramMb > g.vramLimitMb)
        this.fail(`${id} granted VRAM on gpu ${part.index} past its limit ${g.vramLimitMb}`);
    }
    // Order: no queued job ahead of it that would have fit (strict: none ahead at all).
    const view = viewOf(this.ledger, allocation);
    for (const other of this.queued()) {
      if (other === job || !this.ahead(other, job, now)) continue;
      // Say whether the scheduler had already taken the other job out of its queue (granted or
      // ended, its events still to come): then the event order, not the choice, is wrong.
      const gone = !this.scheduler['dispatcher'].queue.has(other.id);
      const lv =
        `${other.id}@${this.level(other, now)} vs ${id}@${this.level(job, now)}` +
        (gone ? ` (${other.id} had already left the scheduler's queue; its own events come later)` : '');
      if (this.cfg.queuePolicy === 'strict') this.fail(`strict: ${id} started while ${lv} was ahead`);
      else if (fitsNow(view, other.units)) this.fail(`${id} started while ${lv} was ahead and fit`);
    }
  }

  private checkRetry(job: ModelJob, snap: JobSnapshot): void {
    const b = behaviourOf(job.plan, snap.attempt);
    if (snap.attempt >= job.maxAttempts)
      this.fail(`${job.id} retries after its last attempt ${snap.attempt}`);
    if (snap.error?.kind === 'timeout') {
      if (job.timeoutMs === undefined) this.fail(`${job.id} timed out without a timeout`);
    } else if (!FAILS.has(b.kind)) this.fail(`${job.id} retries after ${b.kind} (${snap.error?.message})`);
    else if (b.kind === 'unrecoverable') this.fail(`${job.id} retries after an UnrecoverableError`);
  }

  private onFinal(job: ModelJob, snap: JobSnapshot, output: unknown): void {
    const id = job.id;
    job.finalEvents++;
    job.finalState = snap.state;
    job.finalError = snap.error;
    job.seen = snap.state;
    this.finishedOrder.push(id);
    if (snap.allocation) this.fail(`${id} ended ${snap.state} still holding an allocation`);
    const b = snap.attempt > 0 ? behaviourOf(job.plan, snap.attempt) : undefined;
    const kind = snap.error?.kind;
    switch (snap.state) {
      case 'completed': {
        const out = output as Output | undefined;
        if (out?.id !== id || out.attempt !== snap.attempt)
          this.fail(`${id} completed with the output of another attempt: ${JSON.stringify(out)}`);
        if (!b || !SUCCEEDS.has(b.kind))
          this.fail(`${id} completed though attempt ${snap.attempt} was ${b?.kind}`);
        break;
      }
      case 'failed':
        if (kind === 'timeout') {
          if (job.timeoutMs === undefined) this.fail(`${id} timed out without a timeout`);
          if (snap.attempt !== job.maxAttempts) this.fail(`${id} failed on timeout with attempts left`);
        } else if (kind === 'error') {
          if (!b || !FAILS.has(b.kind))
            this.fail(`${id} failed though attempt ${snap.attempt} was ${b?.kind}`);
          else if (b.kind !== 'unrecoverable' && snap.attempt !== job.maxAttempts)
            this.fail(`${id} failed with attempts left (${snap.attempt}/${job.maxAttempts})`);
        } else this.fail(`${id} failed with error kind ${kind}`);
        break;
      case 'cancelled':
        if (kind === 'cancelled' && !job.cancelRequested)
          this.fail(`${id} cancelled though nobody cancelled it`);
        if (kind === 'shutdown' && !this.closed) this.fail(`${id} cancelled for shutdown before shutdown`);
        if (kind === 'dependency') {
          const bad = job.deps.some((d) => {
            const s = this.jobs.get(d)?.finalState;
            return s !== undefined && s !== 'completed';
          });
          if (job.policy !== 'afterok' || !bad) this.fail(`${id} cancelled for a dependency without cause`);
        }
        if (kind !== 'cancelled' && kind !== 'shutdown' && kind !== 'dependency')
          this.fail(`${id} cancelled with kind ${kind}`);
        break;
      default:
        this.fail(`${id}: final event with state ${snap.state}`);
    }
  }

  // ——— operations the commands use ———

  admit(id: string, d: Draft): void {
    this.accepted.push(id);
    this.jobs.set(id, {
      ...d,
      id,
      seen: 'pending',
      finalEvents: 0,
      finalState: undefined,
      finalError: undefined,
      started: 0,
      handlerCalls: 0,
      attemptAt: 0,
      attemptEpoch: 0,
      queuedAt: 0,
      queueOrder: 0,
      retryAt: 0,
      retryDelayMs: 0,
      retryEpoch: 0,
      boost: undefined,
      cancelRequested: false,
      result: { settled: 0 },
    });
  }

  newId(): string {
    return `j${++this.idSeq}`;
  }

  /** The ids the scheduler still knows (live jobs and the finished ones it retains). */
  retained(): Set<string> {
    return new Set(this.scheduler.list().map((s) => s.id));
  }
}

/** Starts a shutdown, noting which jobs were waiting and which were holding resources then. */
export function startShutdown(w: World, mode: 'drain' | 'cancel', timeoutMs: number): void {
  w.closed = true;
  const jobs = w.scheduler.list();
  const state: NonNullable<World['shutdown']> = {
    startedAt: w.clock.now(),
    mode,
    timeoutMs,
    waiting: jobs.filter((j) => WAITING.has(j.state)).map((j) => j.id),
    holding: jobs.filter((j) => HOLDING.has(j.state)).map((j) => j.id),
  };
  w.shutdown = state;
  void w.scheduler.shutdown({ mode, timeoutMs }).then((report) => {
    state.report = report;
    state.at = w.clock.now();
  });
}
