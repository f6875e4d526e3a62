/**
 * What must hold after every step of the model-based runtime test, and after its shutdown.
 */
import {
  JobFailedError,
  PRIORITY_NAMES,
  type Allocation,
  type JobSnapshot,
  type JobState,
} from '../../../src/index.js';
import { checkLedgerInvariants } from '../ledger-invariants.js';
import { fitsNow, viewOf } from './oracle.js';
import { attemptBound, behaviourOf, ensure, FINAL, HOLDING, NEVER_MS, type ModelJob } from './types.js';
import { startShutdown, type World } from './world.js';

/** Every per-step invariant. */
export function checkStep(w: World, step: string): void {
  ensure(w.violations.length === 0, () => `after ${step}: ${w.violations.join('; ')}`);
  ensure(w.counts.releaseIgnored === 0, `after ${step}: a release was ignored (released twice or unknown)`);
  const now = w.clock.now();
  const cfg = w.cfg;
  const stats = w.scheduler.stats();
  const { capacity, allocated } = stats.resources;
  for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const) {
    ensure(
      allocated[k] >= -1e-9 && allocated[k] <= capacity[k] + 1e-9,
      () => `after ${step}: ${k} allocated ${allocated[k]} of ${capacity[k]}`,
    );
  }
  const totals = w.ledger.totals().allocated;
  ensure(
    Math.abs(totals.cpu - allocated.cpu) < 1e-9 &&
      totals.memoryMb === allocated.memoryMb &&
      Math.abs(totals.gpu - allocated.gpu) < 1e-9 &&
      totals.vramMb === allocated.vramMb,
    () => `after ${step}: stats ${JSON.stringify(allocated)} ≠ ledger ${JSON.stringify(totals)}`,
  );
  // Every accepted job in exactly one state; counts agree with the jobs.
  const list = w.scheduler.list();
  const byState = new Map<JobState, number>();
  const seenIds = new Set<string>();
  const held: Allocation[] = [];
  for (const s of list) {
    ensure(!seenIds.has(s.id), `after ${step}: ${s.id} listed twice`);
    seenIds.add(s.id);
    byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
    const job = w.jobs.get(s.id);
    ensure(job !== undefined, `after ${step}: listed job ${s.id} was never accepted`);
    ensure(
      HOLDING.has(s.state) === (s.allocation !== undefined),
      () => `after ${step}: ${s.id} is ${s.state} ${s.allocation ? 'with' : 'without'} an allocation`,
    );
    if (s.allocation) held.push(s.allocation);
    ensure(
      s.attempt <= s.maxAttempts && s.maxAttempts === job.maxAttempts,
      () => `after ${step}: ${s.id} attempt ${s.attempt} of ${s.maxAttempts} (model ${job.maxAttempts})`,
    );
    ensure(
      job.handlerCalls === job.started && job.started === s.attempt,
      () =>
        `after ${step}: ${s.id} attempt ${s.attempt}, started ${job.started}, handler calls ${job.handlerCalls}`,
    );
    checkJob(w, step, job, s, now);
  }
  // Retention keeps every live job and the `retainFinished` most recently finished ones.
  // (Which of the jobs that finished at the same instant goes first is not specified.)
  const finished = w.finishedOrder.length;
  const expectListed = w.accepted.length - Math.max(0, finished - cfg.retainFinished);
  ensure(
    seenIds.size === expectListed,
    () => `after ${step}: listed ${seenIds.size} jobs, expected ${expectListed}`,
  );
  for (const job of w.jobs.values())
    ensure(
      job.finalState !== undefined || seenIds.has(job.id),
      `after ${step}: live job ${job.id} is not listed`,
    );
  const sum = Object.values(stats.jobs).reduce((a, b) => a + b, 0);
  ensure(
    sum === w.accepted.length,
    () => `after ${step}: Σ stats.jobs = ${sum}, accepted ${w.accepted.length}`,
  );
  for (const state of ['pending', 'queued', 'scheduled', 'running', 'retrying'] as const) {
    ensure(
      stats.jobs[state] === (byState.get(state) ?? 0),
      () => `after ${step}: stats.jobs.${state} = ${stats.jobs[state]}, listed ${byState.get(state) ?? 0}`,
    );
  }
  // Resources held exactly by scheduled and running jobs, and nothing else.
  const ledgerIds = w.ledger
    .allocations()
    .map((a) => a.id)
    .sort();
  const jobIds = held.map((a) => a.id).sort();
  ensure(
    ledgerIds.join() === jobIds.join(),
    () => `after ${step}: ledger holds [${ledgerIds.join()}], jobs hold [${jobIds.join()}]`,
  );
  checkLedgerInvariants(w.ledger, held);
  // Resource truth: no two live attempts (handler bodies not yet settled) share a unit beyond its
  // capacity: each one's grant is still on the ledger, unless shutdown gave up on it and said so.
  const onLedger = new Set(ledgerIds);
  for (const [key, body] of w.liveBodies) {
    const error = w.jobs.get(body.id)?.finalError;
    ensure(
      onLedger.has(body.allocation.id) || /force-released/.test(error?.message ?? ''),
      () => `after ${step}: ${key} still runs, but its grant ${body.allocation.id} went back`,
    );
  }
  const stoppingJobs = w.scheduler.list().filter((j) => j.stopping !== undefined);
  ensure(
    stoppingJobs.every((j) => j.state === 'running') && stats.stopping === stoppingJobs.length,
    () =>
      `after ${step}: stats.stopping ${stats.stopping}; stopping jobs ${stoppingJobs.map((j) => j.state)}`,
  );
  // Every grant is released once, and only once its job lets go.
  ensure(
    w.counts.grants - w.counts.releases === ledgerIds.length,
    () =>
      `after ${step}: ${w.counts.grants} grants − ${w.counts.releases} releases ≠ ${ledgerIds.length} held`,
  );
  const holding = stats.jobs.scheduled + stats.jobs.running;
  ensure(holding <= cfg.maxConcurrentJobs, `after ${step}: ${holding} holding > ${cfg.maxConcurrentJobs}`);
  const waiting = stats.jobs.pending + stats.jobs.queued + stats.jobs.retrying;
  ensure(stats.queue.size === waiting, `after ${step}: queue.size ${stats.queue.size} ≠ ${waiting}`);
  // A submit never fills the queue past maxQueueSize; only a running job that fails and retries
  // may take it past, so what waits and what holds together never pass both limits.
  ensure(
    stats.queue.size + holding <= cfg.maxQueueSize + cfg.maxConcurrentJobs,
    () =>
      `after ${step}: queue size ${stats.queue.size} + ${holding} holding > maxQueueSize ` +
      `${cfg.maxQueueSize} + maxConcurrentJobs ${cfg.maxConcurrentJobs} ` +
      `(pending ${stats.jobs.pending}, queued ${stats.jobs.queued}, retrying ${stats.jobs.retrying})`,
  );
  checkWorkConserving(w, step, holding, now);
  // No timer leaks: the scheduler's timers are the running jobs' timeouts, the backoffs, the
  // live boosts, the tick, the monitor and the drain deadline — nothing per finished job.
  const stopped = w.shutdown?.report !== undefined;
  const bound =
    stats.jobs.running +
    stats.jobs.retrying +
    w.boostTimers.filter((until) => until > now).length +
    (w.paused || w.closed ? 0 : 1) +
    (cfg.monitor && !stopped ? 1 : 0) +
    (w.closed && !stopped ? 1 : 0);
  const timers = w.clock.pendingTimers() - w.testTimers.size;
  ensure(
    timers <= bound,
    () => `after ${step}: the scheduler holds ${timers} timers; at most ${bound} expected`,
  );
}

function checkJob(w: World, step: string, job: ModelJob, s: JobSnapshot, now: number): void {
  const at = `after ${step}: ${s.id}`;
  if (job.finalState !== undefined) {
    ensure(s.state === job.finalState, `${at} is ${s.state} after it ended ${job.finalState}`);
    return;
  }
  ensure(!FINAL.has(s.state), `${at} is ${s.state} without a final event`);
  ensure(s.state !== 'scheduled', `${at} was granted resources but did not start`);
  ensure(s.state === job.seen, `${at} is ${s.state}; its events say ${job.seen}`);
  if (s.state === 'queued') {
    const paused = w.paused && !w.closed;
    ensure(
      (s.waitReason === 'paused') === paused,
      () =>
        `${at} is queued with waitReason ${s.waitReason} while the scheduler is ${paused ? '' : 'not '}paused`,
    );
    const level = w.level(job, now);
    ensure(
      s.effectivePriority === PRIORITY_NAMES[level],
      () =>
        `${at} effective priority ${s.effectivePriority}, model ${PRIORITY_NAMES[level]} ` +
        `(base ${job.base}, queued at ${job.queuedAt}, boost ${JSON.stringify(job.boost)})`,
    );
  }
  if (s.state === 'running') {
    const b = behaviourOf(job.plan, s.attempt);
    const due = now - job.attemptAt >= attemptBound(b, job.timeoutMs);
    ensure(
      !(due && (b.kind === 'throw' || w.epoch > job.attemptEpoch)),
      () =>
        `${at} still running ${now - job.attemptAt} ms into attempt ${s.attempt} ` +
        `(${behaviourOf(job.plan, s.attempt).kind}, timeout ${job.timeoutMs})`,
    );
  }
  if (s.state === 'retrying') {
    const due = now - job.retryAt >= job.retryDelayMs;
    ensure(
      !(due && w.epoch > job.retryEpoch),
      `${at} still retrying past its ${job.retryDelayMs} ms backoff`,
    );
  }
  // Dependencies: pending only while one has not ended; afterok never outlives a failed one.
  const deps = job.deps.map((d) => w.jobs.get(d) as ModelJob);
  if (s.state === 'pending')
    ensure(
      deps.some((d) => d.finalState === undefined),
      `${at} pending though every dependency ended`,
    );
  if (job.policy === 'afterok') {
    const bad = deps.find((d) => d.finalState === 'failed' || d.finalState === 'cancelled');
    ensure(!bad, () => `${at} is ${s.state} though its dependency ${bad?.id} ended ${bad?.finalState}`);
  }
}

/**
 * Work conservation: scheduling is event-driven, so once a step is over no queued job that
 * may start (strict: the head; backfill: any, unless the head's need is reserved) fits while a
 * slot is free. Aging reorders the queue without an event (the tick catches up), so the check
 * applies where aging cannot change what may start.
 */
function checkWorkConserving(w: World, step: string, holding: number, now: number): void {
  const cfg = w.cfg;
  if (w.paused || w.closed || holding >= cfg.maxConcurrentJobs) return;
  const strict = cfg.queuePolicy === 'strict';
  if (cfg.aging.maxLevels > 0 && (strict || cfg.reserveAfterMs !== NEVER_MS)) return;
  const queued = w.queued().sort((a, b) => (w.ahead(a, b, now) ? -1 : 1));
  const head = queued[0];
  if (!head) return;
  const view = viewOf(w.ledger);
  const headFits = fitsNow(view, head.units);
  const at = () => `after ${step} (at ${now}, ${holding} holding, queue ${queued.map((j) => j.id).join()})`;
  ensure(!headFits, () => `${at()}: the head ${head.id} fits and did not start`);
  if (strict || now - head.queuedAt >= cfg.reserveAfterMs) return;
  const idle = queued.find((j) => fitsNow(view, j.units));
  ensure(!idle, () => `${at()}: ${idle?.id} fits and did not start (backfill, head ${head.id} not reserved)`);
}

/** How long shutdown waits for aborted attempts to stop (its `stopTimeoutMs` default). */
const STOP_WAIT_MS = 10_000;

/**
 * Ends a run: shuts down (the run's own mode, unless a step already did), lets it finish in
 * virtual time, and checks what must hold afterwards — the report, every job final exactly once
 * with a result that agrees, every resource free, no timer left, nothing accepted any more.
 */
export async function finish(w: World): Promise<void> {
  if (!w.shutdown) startShutdown(w, w.cfg.shutdown.mode, w.cfg.shutdown.timeoutMs);
  const sd = w.shutdown as NonNullable<World['shutdown']>;
  await w.clock.flush();
  // Draining (cancel: none), then up to shutdown's stopTimeoutMs (10 s by default) for aborted
  // attempts that ignore their abort to stop, then one tick.
  const budget = (sd.mode === 'drain' ? sd.timeoutMs : 0) + STOP_WAIT_MS + w.cfg.schedulingIntervalMs;
  const step = Math.max(1, Math.ceil(budget / 8));
  for (let i = 0; i < 12 && sd.report === undefined; i++) {
    await w.clock.advanceBy(step);
    w.epoch++;
  }
  ensure(
    sd.report !== undefined,
    `shutdown(${sd.mode}, ${sd.timeoutMs}) never resolved (now ${w.clock.now()})`,
  );
  const at = sd.at as number;
  ensure(
    at - sd.startedAt <= budget,
    () => `shutdown resolved ${at - sd.startedAt} ms after it began; bound ${budget}`,
  );
  // Time passes for a cancel only while an aborted attempt that ignores its abort runs on.
  if (sd.mode === 'cancel' && at !== sd.startedAt)
    ensure(
      sd.report?.aborted.some((id) => {
        const job = w.jobs.get(id);
        return job !== undefined && job.plan.some((b) => b.kind === 'ignoreAbort');
      }) ?? false,
      'shutdown(cancel) took virtual time with no attempt ignoring its abort',
    );
  // Those still running when shutdown gave up are named, and were aborted ones.
  for (const { id } of sd.report?.stillRunning ?? [])
    ensure(sd.report?.aborted.includes(id) ?? false, () => `stillRunning names ${id}, not aborted`);
  checkStep(w, 'shutdown resolved');
  ensure(w.eventsDone, 'events$ completes at shutdown');
  const report = sd.report;
  const stats = w.scheduler.stats();
  for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const)
    ensure(
      stats.resources.allocated[k] === 0,
      () => `after shutdown ${k} allocated ${stats.resources.allocated[k]}`,
    );
  ensure(w.ledger.allocations().length === 0, 'after shutdown the ledger holds nothing');
  ensure(
    w.counts.grants === w.counts.releases,
    () => `after shutdown ${w.counts.grants} grants, ${w.counts.releases} releases`,
  );
  ensure(stats.queue.size === 0, 'after shutdown the queue is empty');
  ensure(stats.jobs.scheduled + stats.jobs.running === 0, 'after shutdown nothing runs');
  const named = [...report.completed, ...report.failed, ...report.cancelled, ...report.aborted];
  ensure(
    new Set(named).size === named.length,
    () => `a job is named twice in the report ${JSON.stringify(report)}`,
  );
  for (const id of w.accepted) {
    const job = w.jobs.get(id) as ModelJob;
    ensure(job.finalEvents === 1, () => `${id}: ${job.finalEvents} final events`);
    ensure(job.result.settled === 1, () => `${id}: result settled ${job.result.settled} times`);
    ensure(
      job.result.ok === (job.finalState === 'completed'),
      () => `${id}: result ok=${job.result.ok}, ${job.finalState}`,
    );
    if (job.result.ok === false) {
      const e = job.result.value;
      ensure(e instanceof JobFailedError, () => `${id}: result rejected with ${String(e)}`);
    }
  }
  for (const id of [...report.cancelled, ...report.aborted]) {
    const job = w.jobs.get(id);
    ensure(
      job?.finalState === 'cancelled',
      () => `report names ${id} cancelled/aborted; it ended ${job?.finalState}`,
    );
  }
  for (const id of report.completed)
    ensure(w.jobs.get(id)?.finalState === 'completed', `report names ${id} completed`);
  // What the report says matches what the jobs were doing when shutdown began.
  const sorted = (ids: readonly string[]) => [...ids].sort().join();
  const isIn = (ids: readonly string[]) => (id: string) => ids.includes(id);
  for (const id of sd.waiting) {
    const job = w.jobs.get(id) as ModelJob;
    ensure(
      job.cancelRequested || job.finalError?.kind === 'shutdown',
      () =>
        `${id} was waiting when shutdown began and ended ${job.finalState} (${JSON.stringify(job.finalError)})`,
    );
  }
  ensure(
    sd.waiting.every(isIn(report.cancelled)),
    () => `not every waiting job is reported cancelled: ${JSON.stringify({ report, sd })}`,
  );
  ensure(
    report.completed.every(isIn(sd.holding)) && report.aborted.every(isIn(sd.holding)),
    () =>
      `the report names completed/aborted jobs that were not running at shutdown: ${JSON.stringify({ report, sd })}`,
  );
  if (sd.mode === 'cancel') {
    ensure(
      sorted(report.cancelled) === sorted(sd.waiting) &&
        sorted(report.aborted) === sorted(sd.holding) &&
        report.completed.length === 0 &&
        !report.timedOut,
      () => `shutdown(cancel) report ${JSON.stringify(report)}; at the start ${JSON.stringify(sd)}`,
    );
  } else {
    // timedOut says whether the drain ran out of time: only then is it over past the deadline.
    const took = at - sd.startedAt;
    ensure(
      report.timedOut ? took >= sd.timeoutMs : took <= sd.timeoutMs,
      () => `drain(${sd.timeoutMs}): timedOut ${report.timedOut}, resolved after ${took} ms`,
    );
  }
  for (const id of report.failed)
    ensure(
      w.jobs.get(id)?.finalState === 'failed',
      () => `report names ${id} failed; it ended ${w.jobs.get(id)?.finalState}`,
    );
  // Nothing of the scheduler's is left on the clock; only this test's abort-ignoring handlers.
  ensure(
    w.clock.pendingTimers() === w.testTimers.size,
    () => `after shutdown ${w.clock.pendingTimers()} timers pending, ${w.testTimers.size} of them the test's`,
  );
  // Late results of abort-ignoring handlers change nothing.
  await w.clock.advanceBy(10_000);
  w.epoch++;
  ensure(w.clock.pendingTimers() === 0, 'no timer is left');
  checkStep(w, 'late handler results');
  ensure(w.eventsAfterShutdown === 0, 'no event after events$ completed');
  let refused: unknown;
  try {
    w.scheduler.submit({ type: 'work', payload: { plan: [{ kind: 'throw' }], progress: false } });
  } catch (error) {
    refused = error;
  }
  ensure(
    (refused as Error | undefined)?.name === 'SchedulerClosedError',
    'a shut-down scheduler refuses jobs',
  );
}
