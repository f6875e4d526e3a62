/**
 * Race tests with fast-check's scheduler: handler completions, cancels, timeouts (virtual time),
 * shutdowns and new submissions are released in every order fast-check chooses. Whatever wins,
 * each job resolves exactly once: its result settles once and agrees with its one final event,
 * its `state$` ends once, every grant is released exactly once, nothing starts after shutdown
 * began, and at the end every resource is free and no timer is left.
 */
import { beforeEach, describe, it } from 'vitest';
import fc from 'fast-check';
import {
  createScheduler,
  createVirtualClock,
  JobFailedError,
  type HandlerContext,
  type JobHandle,
  type JobSnapshot,
  type ResourceRequest,
  type Scheduler,
  type SchedulerEvent,
  type ShutdownReport,
  type VirtualClock,
} from '../../src/index.js';
import type { ResourceLedger } from '../../src/core/ledger.js';
import { checkLedgerInvariants } from '../helpers/ledger-invariants.js';
import { countOnLedger, type LedgerCounts } from '../helpers/ledger-count.js';
import { numRuns } from '../helpers/num-runs.js';

function ensure(condition: boolean, what: string | (() => string)): asserts condition {
  if (!condition) throw new Error(typeof what === 'string' ? what : what());
}

/** How an attempt ends: its outcome is released by fast-check's scheduler, or never (hang). */
type Outcome = 'succeed' | 'fail' | 'hang';
type Payload = { outcomes: Outcome[] };
type Output = { id: string; attempt: number };
type Handlers = { work: (ctx: HandlerContext<Payload>) => Promise<Output> };

const FINAL = new Set(['completed', 'failed', 'cancelled']);

/** One scheduler on a virtual clock, observed from every side. */
class Rig {
  readonly clock: VirtualClock = createVirtualClock();
  readonly scheduler: Scheduler<Handlers>;
  readonly ledger: ResourceLedger;
  readonly handles = new Map<string, JobHandle<Output>>();
  readonly finals = new Map<string, SchedulerEvent[]>();
  readonly settled = new Map<string, Array<{ ok: boolean; value: unknown }>>();
  readonly streamEnds = new Map<string, { finals: number; completes: number }>();
  readonly startedAt = new Map<string, number[]>();
  readonly log: string[] = [];
  /** Grants and releases counted on the ledger itself (the scheduler places on it directly). */
  readonly counts: LedgerCounts;
  /** Outcomes released after their attempt had ended: they must change nothing. */
  late = 0;
  closedAt: number | undefined;
  waitingAtClose: string[] = [];
  report: ShutdownReport | undefined;
  private seq = 0;

  constructor(
    readonly s: fc.Scheduler,
    options: { gpus: number; maxConcurrentJobs: number; attempts: number },
  ) {
    this.scheduler = createScheduler({
      clock: this.clock,
      handlers: { work: (ctx) => this.run(ctx) },
      resources: {
        cpu: 4,
        memoryMb: 8_192,
        gpus: Array.from({ length: options.gpus }, () => ({ vramMb: 8_000 })),
      },
      maxConcurrentJobs: options.maxConcurrentJobs,
      retry: { attempts: options.attempts, backoff: { type: 'fixed', delayMs: 0, jitter: false } },
      schedulingIntervalMs: 1_000,
      monitor: false,
      // The lean host by default; XState's createActor hosts the jobs when inspected.
      ...(HOST === 'xstate' ? { inspect: () => undefined } : {}),
    });
    const rm = this.scheduler['actor'].system.get('resourceManager');
    ensure(rm !== undefined, 'the resource manager runs');
    const ledger = (rm.getSnapshot() as { context: { ledger: ResourceLedger } }).context.ledger;
    this.ledger = ledger;
    this.counts = countOnLedger(ledger);
    this.scheduler.events$.subscribe((e) => {
      if (e.type === 'job.started') {
        this.log.push(`started ${e.job.id}`);
        if (this.closedAt !== undefined) this.log.push(`!! ${e.job.id} started after shutdown began`);
        this.startedAt.set(e.job.id, [...(this.startedAt.get(e.job.id) ?? []), this.clock.now()]);
      }
      if (e.type === 'job.completed' || e.type === 'job.failed' || e.type === 'job.cancelled') {
        this.log.push(`${e.type} ${e.job.id} (${e.job.error?.kind ?? 'ok'})`);
        this.finals.set(e.job.id, [...(this.finals.get(e.job.id) ?? []), e]);
      }
    });
  }

  private run({ id, payload, attempt, signal }: HandlerContext<Payload>): Promise<Output> {
    const outcome = payload.outcomes[Math.min(attempt, payload.outcomes.length) - 1] ?? 'succeed';
    if (outcome === 'hang')
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    // The outcome ignores the abort on purpose: it may arrive after the attempt ended.
    return this.s.schedule(Promise.resolve(), `${outcome} ${id}#${attempt}`).then(() => {
      if (signal.aborted) this.late++;
      if (outcome === 'fail') throw new Error(`${id}#${attempt} failed`);
      return { id, attempt };
    });
  }

  submit(
    request: ResourceRequest,
    outcomes: Outcome[],
    timeoutMs?: number,
    after?: { id: string; policy: 'afterok' | 'afterany' },
  ): string | undefined {
    const id = `j${++this.seq}`;
    let handle: JobHandle<Output>;
    try {
      handle = this.scheduler.submit<Output>({
        type: 'work',
        id,
        payload: { outcomes },
        resources: request,
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(after === undefined ? {} : { dependsOn: [after.id], dependencyPolicy: after.policy }),
      });
    } catch (error) {
      ensure((error as Error).name === 'SchedulerClosedError', () => `submit threw ${String(error)}`);
      ensure(this.closedAt !== undefined, 'only a closed scheduler refuses these jobs');
      return undefined;
    }
    this.handles.set(id, handle);
    this.settled.set(id, []);
    const ends = { finals: 0, completes: 0 };
    this.streamEnds.set(id, ends);
    handle.result.then(
      (value) => this.settled.get(id)?.push({ ok: true, value }),
      (value: unknown) => this.settled.get(id)?.push({ ok: false, value }),
    );
    handle.state$.subscribe({
      next: (snap) => {
        if (FINAL.has(snap.state)) ends.finals++;
      },
      complete: () => ends.completes++,
    });
    return id;
  }

  /** Runs `action` when fast-check's scheduler releases it; a failure inside is recorded, not lost. */
  at(label: string, action: () => unknown): void {
    void this.s.schedule(Promise.resolve(), label).then(async () => {
      try {
        await action();
      } catch (error) {
        this.log.push(`!! ${label}: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
  }

  shutdown(mode: 'drain' | 'cancel', timeoutMs: number): void {
    if (this.closedAt !== undefined) return;
    this.closedAt = this.clock.now();
    this.waitingAtClose = this.scheduler
      .list()
      .filter((j) => j.state === 'pending' || j.state === 'queued' || j.state === 'retrying')
      .map((j) => j.id);
    this.log.push(`shutdown(${mode})`);
    void this.scheduler.shutdown({ mode, timeoutMs }).then((r) => (this.report = r));
  }

  /** What must hold at any quiet moment: nothing over-allocated, grants held exactly by jobs. */
  checkQuiet(when: string): void {
    const jobs = this.scheduler.list();
    const held = jobs.filter((j) => j.state === 'scheduled' || j.state === 'running');
    for (const j of jobs)
      ensure(
        (j.allocation !== undefined) === (j.state === 'scheduled' || j.state === 'running'),
        () => `${when}: ${j.id} is ${j.state} ${j.allocation ? 'with' : 'without'} an allocation`,
      );
    const allocations = held.map((j) => j.allocation as NonNullable<JobSnapshot['allocation']>);
    const inLedger = this.ledger
      .allocations()
      .map((a) => a.id)
      .sort()
      .join();
    ensure(
      inLedger ===
        allocations
          .map((a) => a.id)
          .sort()
          .join(),
      () => `${when}: the ledger holds [${inLedger}], jobs hold [${allocations.map((a) => a.id).join()}]`,
    );
    checkLedgerInvariants(this.ledger, allocations);
    ensure(this.counts.releaseIgnored === 0, `${when}: an allocation was released twice`);
    ensure(!this.log.some((l) => l.startsWith('!!')), () => `${when}: ${this.log.join('; ')}`);
  }

  /** Releases scheduled tasks one at a time, in fast-check's order, letting each one settle. */
  async drive(): Promise<void> {
    for (let i = 0; i < 500 && this.s.count() > 0; i++) {
      await this.s.waitNext(1);
      await this.clock.flush();
      this.checkQuiet(`step ${i}`);
    }
  }

  /** Shuts down (if nothing did), lets it finish, and checks that every job resolved exactly once. */
  async finish(): Promise<void> {
    this.shutdown('cancel', 0);
    await this.clock.flush();
    await this.drive();
    await this.clock.advanceBy(60_000);
    ensure(this.report !== undefined, 'shutdown resolved');
    this.checkQuiet('after shutdown');
    const where = () => this.log.join('; ');
    for (const [id, handle] of this.handles) {
      const finals = this.finals.get(id) ?? [];
      ensure(finals.length === 1, () => `${id}: ${finals.length} final events (${where()})`);
      const final = finals[0] as Extract<
        SchedulerEvent,
        { type: 'job.completed' | 'job.failed' | 'job.cancelled' }
      >;
      const settled = this.settled.get(id) ?? [];
      ensure(settled.length === 1, () => `${id}: result settled ${settled.length} times`);
      const result = settled[0] as { ok: boolean; value: unknown };
      ensure(
        result.ok === (final.type === 'job.completed'),
        () => `${id}: result ${result.ok}, event ${final.type}`,
      );
      if (result.ok) {
        const out = result.value as Output;
        ensure(
          out.id === id && out.attempt === final.job.attempt,
          () =>
            `${id} completed with attempt ${out.attempt}'s output; its last attempt is ${final.job.attempt}`,
        );
      } else {
        ensure(
          result.value instanceof JobFailedError,
          () => `${id}: result rejected with ${String(result.value)}`,
        );
      }
      const snap = this.scheduler.get(id);
      ensure(snap?.state === final.job.state, () => `${id}: ${snap?.state} after its ${final.type}`);
      const ends = this.streamEnds.get(id) as { finals: number; completes: number };
      ensure(
        ends.finals === 1 && ends.completes === 1,
        () => `${id}: state$ gave ${ends.finals} finals, ${ends.completes} completes`,
      );
      const starts = this.startedAt.get(id) ?? [];
      ensure(
        starts.length === final.job.attempt,
        () => `${id}: ${starts.length} starts, ${final.job.attempt} attempts`,
      );
      void handle;
    }
    ensure(
      this.counts.grants === this.counts.releases,
      () => `${this.counts.grants} grants, ${this.counts.releases} releases (${where()})`,
    );
    const starts = [...this.startedAt.values()].reduce((n, times) => n + times.length, 0);
    ensure(
      this.counts.grants >= starts,
      () => `${starts} starts but only ${this.counts.grants} grants counted on the ledger (${where()})`,
    );
    ensure(this.ledger.allocations().length === 0, 'every resource is free');
    const stats = this.scheduler.stats();
    for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const)
      ensure(stats.resources.allocated[k] === 0, () => `${k} allocated after shutdown`);
    ensure(
      this.clock.pendingTimers() === 0,
      () => `${this.clock.pendingTimers()} timers left after shutdown`,
    );
  }
}

const outcomeArb = fc.constantFrom<Outcome>('succeed', 'succeed', 'fail', 'hang');
const requestArb = fc.constantFrom<ResourceRequest>(
  {},
  { gpu: 1 },
  { gpu: 0.5, vramMb: 2_000 },
  { cpu: 2, memoryMb: 4_096 },
);

const RUNS = numRuns(200);
const TIMEOUT = Math.max(120_000, RUNS * 60);

/** Which host runs the job actors in the races below (both are raced, one describe each). */
let HOST: 'lean' | 'xstate' = 'lean';

describe.each(['lean', 'xstate'] as const)(
  'scheduler runtime — races (fast-check scheduler), %s host',
  (host) => {
    beforeEach(() => {
      HOST = host;
    });

    it(
      'cancel vs completion: a job ends once, cancelled or done, never both',
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.scheduler(),
            fc.array(
              fc.record({
                request: requestArb,
                outcomes: fc.array(outcomeArb, { minLength: 1, maxLength: 2 }),
              }),
              {
                minLength: 1,
                maxLength: 4,
              },
            ),
            fc.array(fc.nat(), { maxLength: 4 }),
            fc.integer({ min: 1, max: 3 }),
            async (s, jobs, cancels, attempts) => {
              const rig = new Rig(s, { gpus: 1, maxConcurrentJobs: 2, attempts });
              const ids = jobs.map((j) => rig.submit(j.request, j.outcomes) as string);
              for (const pick of cancels) {
                const id = ids[pick % ids.length] as string;
                rig.at(`cancel ${id}`, () => {
                  const before = rig.scheduler.get(id)?.state;
                  const ok = rig.scheduler.cancel(id);
                  const after = rig.scheduler.get(id);
                  rig.log.push(`cancel ${id} from ${before}: ${ok}`);
                  ensure(
                    ok === !FINAL.has(before as string),
                    `cancel(${id}) said ${ok} for a job in ${before}`,
                  );
                  // Cancelled at once, or — running — told to stop, to end cancelled once its handler settles.
                  const stopping = after?.state === 'running' && after.stopping?.outcome === 'cancelled';
                  if (ok)
                    ensure(
                      (after?.state === 'cancelled' || stopping) && after?.error?.kind === 'cancelled',
                      `${id} not cancelled`,
                    );
                });
              }
              await rig.drive();
              await rig.finish();
            },
          ),
          { numRuns: RUNS },
        );
      },
      TIMEOUT,
    );

    it(
      'timeout vs completion: whichever comes first decides the attempt; a late result is ignored',
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.scheduler(),
            fc.array(fc.array(outcomeArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
            fc.array(fc.integer({ min: 0, max: 150 }), { minLength: 1, maxLength: 4 }),
            fc.integer({ min: 1, max: 3 }),
            async (s, plans, advances, attempts) => {
              const rig = new Rig(s, { gpus: 2, maxConcurrentJobs: 3, attempts });
              for (const outcomes of plans) rig.submit({ gpu: 1 }, outcomes, 100);
              for (const ms of advances) rig.at(`advance ${ms}`, () => rig.clock.advanceBy(ms));
              await rig.drive();
              // A job whose attempt timed out failed with kind timeout only when it had no attempt left.
              for (const [id] of rig.handles) {
                const snap = rig.scheduler.get(id) as JobSnapshot;
                if (snap.state === 'failed' && snap.error?.kind === 'timeout')
                  ensure(snap.attempt === snap.maxAttempts, `${id} failed on a timeout with attempts left`);
                if (snap.state === 'running' && snap.startedAt !== undefined) {
                  const started = (rig.startedAt.get(id) ?? []).at(-1) as number;
                  ensure(rig.clock.now() - started < 100, () => `${id} runs past its 100 ms timeout`);
                }
              }
              await rig.finish();
            },
          ),
          { numRuns: RUNS },
        );
      },
      TIMEOUT,
    );

    it(
      'shutdown vs start: nothing starts once shutdown began; everything ends once and is released',
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.scheduler(),
            fc.array(
              fc.record({
                request: requestArb,
                outcomes: fc.array(outcomeArb, { minLength: 1, maxLength: 2 }),
                after: fc.option(fc.constantFrom('afterok', 'afterany' as const), { nil: undefined }),
              }),
              { minLength: 1, maxLength: 5 },
            ),
            fc.constantFrom('drain', 'cancel' as const),
            fc.integer({ min: 0, max: 500 }),
            fc.integer({ min: 0, max: 3 }),
            async (s, jobs, mode, timeoutMs, lateSubmits) => {
              const rig = new Rig(s, { gpus: 1, maxConcurrentJobs: 1, attempts: 2 });
              let prev: string | undefined;
              for (const j of jobs) {
                const after =
                  prev !== undefined && j.after !== undefined ? { id: prev, policy: j.after } : undefined;
                prev = rig.submit(j.request, j.outcomes, undefined, after);
              }
              rig.at(`shutdown ${mode}`, () => rig.shutdown(mode, timeoutMs));
              rig.at('advance', () => rig.clock.advanceBy(timeoutMs + 1));
              for (let i = 0; i < lateSubmits; i++) rig.at('submit', () => rig.submit({}, ['succeed']));
              await rig.drive();
              await rig.finish();
              const report = rig.report as ShutdownReport;
              for (const id of [...report.cancelled, ...report.aborted]) {
                const snap = rig.scheduler.get(id);
                ensure(
                  snap?.state === 'cancelled',
                  () => `report names ${id} cancelled; it is ${snap?.state}`,
                );
              }
              // Every job that had not started when shutdown began is cancelled for shutdown, and says so.
              for (const id of rig.waitingAtClose) {
                ensure(
                  report.cancelled.includes(id),
                  () => `${id} was waiting at shutdown; the report omits it (${rig.log.join('; ')})`,
                );
                const error = rig.scheduler.get(id)?.error;
                ensure(
                  error?.kind === 'shutdown',
                  () => `${id} was waiting at shutdown and ended with ${JSON.stringify(error)}`,
                );
              }
              for (const id of report.cancelled)
                ensure(
                  rig.scheduler.get(id)?.error?.kind === 'shutdown',
                  () =>
                    `${id} is reported cancelled by shutdown; its error is ${JSON.stringify(rig.scheduler.get(id)?.error)}`,
                );
            },
          ),
          { numRuns: RUNS },
        );
      },
      TIMEOUT,
    );

    it(
      'release vs grant: completions, cancels and new jobs contend for one GPU without a leak',
      async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.scheduler(),
            fc.array(
              fc.oneof(
                fc.record({ kind: fc.constant('submit' as const), request: requestArb, outcome: outcomeArb }),
                fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }),
              ),
              { minLength: 1, maxLength: 8 },
            ),
            async (s, actions) => {
              const rig = new Rig(s, { gpus: 1, maxConcurrentJobs: 3, attempts: 1 });
              rig.submit({ gpu: 1 }, ['succeed']);
              for (const a of actions) {
                rig.at(a.kind, () => {
                  if (a.kind === 'submit') rig.submit(a.request, [a.outcome]);
                  else {
                    const ids = [...rig.handles.keys()];
                    rig.scheduler.cancel(ids[a.pick % ids.length] as string);
                  }
                });
              }
              await rig.drive();
              await rig.finish();
            },
          ),
          { numRuns: RUNS },
        );
      },
      TIMEOUT,
    );
  },
);
