/**
 * Shutdown: checking its options, cancelling what has not started, draining or aborting what
 * runs, and the report of what became of each job.
 */
import { InvalidOptionError } from '../core/errors.js';
import { checkKeys, isObject } from '../core/job-spec.js';
import type { JobState } from '../core/types.js';
import type { SchedulerClock } from './clock.js';
import { HOLDING, WAITING, type JobActor, type JobRecord, type JobRecords } from './job-records.js';
import type { ShutdownReport } from './types.js';

/** `drain` lets running jobs finish (for a while); `cancel` aborts them at once. */
export type ShutdownMode = 'drain' | 'cancel';

/** The options of `Scheduler.shutdown()`. */
export type ShutdownOptions = {
  /** `drain` (default) lets running jobs finish for up to `timeoutMs`; `cancel` aborts them at once. */
  mode?: ShutdownMode;
  /** How long `drain` waits for running jobs before it aborts them. @default 10_000 */
  timeoutMs?: number;
  /**
   * How long shutdown then waits for aborted attempts to really stop (their handlers to settle).
   * Past it, those still running are named in `report.stillRunning`, their resources are
   * force-released (`job.forceReleased`) and shutdown resolves. `Infinity` waits for ever.
   * @default 10_000
   */
  stopTimeoutMs?: number;
};

const SHUTDOWN_KEYS: ReadonlySet<string> = new Set(['mode', 'timeoutMs', 'stopTimeoutMs']);

/** Checks shutdown options and fills in the defaults (drain, for up to 10 s; then 10 s to stop). */
export function checkShutdownOptions(options: ShutdownOptions): {
  mode: ShutdownMode;
  timeoutMs: number;
  stopTimeoutMs: number;
} {
  if (!isObject(options))
    throw new InvalidOptionError('options', options, "an object { mode: 'drain' | 'cancel', timeoutMs }");
  checkKeys(
    '',
    options,
    SHUTDOWN_KEYS,
    (field, value, allowed, unknown) => new InvalidOptionError(field, value, allowed, unknown),
  );
  const mode = options.mode ?? 'drain';
  const timeoutMs = options.timeoutMs ?? 10_000;
  if (mode !== 'drain' && mode !== 'cancel')
    throw new InvalidOptionError('mode', mode, "'drain' or 'cancel'");
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new InvalidOptionError('timeoutMs', timeoutMs, 'a number of ms ≥ 0');
  }
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  if (typeof stopTimeoutMs !== 'number' || Number.isNaN(stopTimeoutMs) || stopTimeoutMs < 0) {
    throw new InvalidOptionError('stopTimeoutMs', stopTimeoutMs, 'a number of ms ≥ 0, or Infinity');
  }
  return { mode, timeoutMs, stopTimeoutMs };
}

/** A report with nothing in it yet. */
export function emptyShutdownReport(mode: ShutdownMode): ShutdownReport {
  return { mode, completed: [], failed: [], cancelled: [], aborted: [], timedOut: false, stillRunning: [] };
}

/** What `runShutdown` needs of the scheduler. */
export type ShutdownDeps = {
  records: JobRecords;
  clock: SchedulerClock;
  /** Resolves when no job is live. */
  onIdle: () => Promise<void>;
  /** The scheduler's `ready`: host detection may still be under way. */
  ready: Promise<void>;
  /** Releases what is left (timers, subscriptions, actors) and says the scheduler has shut down. */
  close: (report: ShutdownReport) => void;
  /** Resolves, with its `stopTimeoutMs`, when a second `shutdown({ mode: 'cancel' })` cuts a drain short. */
  escalated: Promise<number>;
  /** Attempts force-released earlier (their own stop timeout) whose handlers still run. */
  abandoned: () => Array<{ id: string; attempt: number }>;
};

/**
 * Cancels the jobs not started, then drains (up to `timeoutMs`) or aborts the running ones,
 * waits (up to `stopTimeoutMs`) for aborted attempts to stop — giving up on those that do not,
 * named in the report — and closes once detection is over. Resolves with `report`, filled in.
 */
export async function runShutdown(
  deps: ShutdownDeps,
  report: ShutdownReport,
  mode: ShutdownMode,
  timeoutMs: number,
  stopTimeoutMs: number,
): Promise<ShutdownReport> {
  const { records } = deps;
  for (const [id, record] of records.entries()) {
    if (WAITING.has(record.state)) cancelForShutdown(id, records.actorOf(record), report.cancelled);
  }
  let stopWait = stopTimeoutMs;
  if (mode === 'cancel') abortRunning(records, report);
  else {
    // Drains until idle, the timeout, or a second call that cancels (it aborted them already).
    let escalatedTo: number | undefined;
    const cut = deps.escalated.then((ms) => (escalatedTo = ms));
    const drained = await idleWithin(deps, timeoutMs, cut);
    if (escalatedTo !== undefined) stopWait = Math.min(stopWait, escalatedTo);
    else if (!drained) {
      report.timedOut = true;
      abortRunning(records, report);
    }
  }
  // Aborted attempts hold their resources until their handlers settle; wait for that, a while.
  if (!(await idleWithin(deps, stopWait))) {
    for (const [id, record] of records.entries()) {
      const actor = records.actorOf(record);
      if (record.state !== 'running' || !actor) continue;
      report.stillRunning.push({ id, attempt: actor.getSnapshot().context.attempt });
      actor.send(ABANDON);
    }
  }
  // …and those given up on before, by their own stop timeout, that still run.
  const named = new Set(report.stillRunning.map((r) => r.id));
  for (const left of deps.abandoned()) if (!named.has(left.id)) report.stillRunning.push(left);
  await deps.ready.catch(() => undefined);
  deps.close(report);
  return report;
}

const ABANDON = { type: 'job.abandon' } as const;

/**
 * True once no job is live, false if `ms` (Infinity: never) passed first or `interrupt` settled
 * first; no timer is left behind.
 */
async function idleWithin(deps: ShutdownDeps, ms: number, interrupt?: Promise<unknown>): Promise<boolean> {
  if (deps.records.liveCount() === 0) return true;
  let timer: unknown;
  const waits: Array<Promise<boolean>> = [deps.onIdle().then(() => true)];
  if (ms !== Number.POSITIVE_INFINITY)
    waits.push(
      new Promise<boolean>((resolve) => {
        timer = deps.clock.setTimeout(() => resolve(false), ms);
      }),
    );
  if (interrupt) waits.push(interrupt.then(() => false));
  const idle = await Promise.race(waits);
  if (timer !== undefined) deps.clock.clearTimeout(timer);
  return idle;
}

/** Aborts every running job (kind `shutdown`), noting it in the shutdown report (once). */
export function abortRunning(records: JobRecords, report: ShutdownReport): void {
  const noted = new Set(report.aborted);
  for (const [id, record] of records.entries()) {
    if (!HOLDING.has(record.state)) continue;
    const actor = records.actorOf(record);
    if (noted.has(id)) actor?.send({ type: 'job.cancel', reason: 'shutdown' });
    else cancelForShutdown(id, actor, report.aborted);
  }
}

/**
 * A job that failed while draining does not retry: nothing new starts during shutdown. Called
 * when it has just come back (`queued` or `retrying`) from `prev`.
 */
export function stopRetryForShutdown(
  record: JobRecord,
  prev: JobState,
  report: ShutdownReport | undefined,
): void {
  const id = record.id;
  if (report && !report.cancelled.includes(id) && !report.aborted.includes(id)) {
    (HOLDING.has(prev) ? report.aborted : report.cancelled).push(id);
  }
  record.actor?.send({ type: 'job.cancel', reason: 'shutdown' });
}

function cancelForShutdown(id: string, actor: JobActor | undefined, into: string[]): void {
  if (!actor) return;
  into.push(id);
  actor.send({ type: 'job.cancel', reason: 'shutdown' });
}
