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
export type ShutdownOptions = { timeoutMs?: number; mode?: ShutdownMode };

const SHUTDOWN_KEYS: ReadonlySet<string> = new Set(['mode', 'timeoutMs']);

/** Checks shutdown options and fills in the defaults (drain, for up to 10 s). */
export function checkShutdownOptions(options: ShutdownOptions): { mode: ShutdownMode; timeoutMs: number } {
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
  return { mode, timeoutMs };
}

/** A report with nothing in it yet. */
export function emptyShutdownReport(mode: ShutdownMode): ShutdownReport {
  return { mode, completed: [], failed: [], cancelled: [], aborted: [], timedOut: false };
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
};

/**
 * Cancels the jobs not started, then drains (up to `timeoutMs`) or aborts the running ones,
 * and closes once detection is over. Resolves with `report`, filled in.
 */
export async function runShutdown(
  deps: ShutdownDeps,
  report: ShutdownReport,
  mode: ShutdownMode,
  timeoutMs: number,
): Promise<ShutdownReport> {
  const { records, clock } = deps;
  for (const [id, record] of records.entries()) {
    if (WAITING.has(record.state)) cancelForShutdown(id, records.actorOf(record), report.cancelled);
  }
  if (mode === 'cancel') abortRunning(records, report);
  else if (records.liveCount() > 0) {
    let timer: unknown;
    const drained = await Promise.race([
      deps.onIdle().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = clock.setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clock.clearTimeout(timer);
    if (!drained) {
      report.timedOut = true;
      abortRunning(records, report);
    }
  }
  await deps.ready.catch(() => undefined);
  deps.close(report);
  return report;
}

/** Aborts every running job (kind `shutdown`), noting it in the shutdown report. */
export function abortRunning(records: JobRecords, report: ShutdownReport): void {
  for (const [id, record] of records.entries()) {
    if (HOLDING.has(record.state)) cancelForShutdown(id, records.actorOf(record), report.aborted);
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
