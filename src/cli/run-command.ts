/**
 * `ai-batch run`: checks the whole job file and the pool before anything runs, submits every job
 * at once (all or nothing), reports events as they come, handles Ctrl-C, waits until every job
 * process tree is gone, and returns the exit code (0 when every job completed, 1 otherwise).
 */
import { mkdirSync } from 'node:fs';
import nodePath from 'node:path';
import { resolvePool } from '../runtime/pool.js';
import { createScheduler } from '../runtime/scheduler.js';
import type { ResourcePool } from '../core/resources.js';
import type { RunArgs } from './args.js';
import { createCommandHandler } from './command-handler.js';
import { handleInterrupts } from './interrupts.js';
import { loadJobFile, loadPoolFile } from './load-file.js';
import type { JobFile } from './job-file.js';
import { liveView } from './live-view.js';
import { checkJobsFitPool } from './pool-file.js';
import { ProcessRegistry } from './process-registry.js';
import { jsonReporter, lineReporter, type Reporter, type Writers } from './reporter.js';
import { submitErrorToJobFileError, toSubmission, type CliHandlers } from './submission.js';
import { summarise } from './summary.js';
import { UsageError } from './usage-error.js';

/** The default log folder of a run that began at `date`: `ai-batch-logs/2025-01-31T09-30-00-000Z`. */
export function defaultLogDir(date: Date): string {
  return nodePath.join('ai-batch-logs', date.toISOString().replace(/[:.]/g, '-'));
}

/** Where the pool comes from: `--resources`, else the job file's `resources`, else this host. */
async function choosePool(
  args: RunArgs,
  jobFile: JobFile,
  warn: (text: string) => void,
): Promise<{ pool: ResourcePool; label: string; detected: boolean }> {
  if (args.resources !== undefined) {
    return { pool: loadPoolFile(args.resources), label: `--resources ${args.resources}`, detected: false };
  }
  if (jobFile.resources !== undefined) {
    return { pool: jobFile.resources, label: `the resources of ${jobFile.file}`, detected: false };
  }
  // Detected here rather than by the scheduler, so that a job that could never fit this host is
  // refused before anything runs, like any other problem of the file.
  const { pool, warnings } = await resolvePool('detect');
  for (const warning of warnings) warn(`ai-batch: warning: ${warning}\n`);
  return { pool, label: 'this machine (detected)', detected: true };
}

function chooseReporter(
  args: RunArgs,
  write: Writers,
  startAt: number,
  scheduler: ReturnType<typeof createScheduler<CliHandlers>>,
): Reporter {
  if (args.json) return jsonReporter(write, startAt);
  const stdout = process.stdout;
  if (!stdout.isTTY || process.env['TERM'] === 'dumb') return lineReporter(write, startAt);
  return liveView({
    write,
    columns: () => stdout.columns || 80,
    snapshot: () => ({ jobs: scheduler.list(), stats: scheduler.stats() }),
    now: () => Date.now(),
    startAt,
  });
}

/**
 * Runs a job file. Throws `JobFileError` (a bad job or pool file, a job that can never fit, a
 * dependency problem) before anything has run; resolves with the exit code otherwise.
 */
export async function runCommand(args: RunArgs, write: Writers): Promise<0 | 1> {
  const startAt = Date.now();
  const jobFile = loadJobFile(args.file);
  const { pool, label, detected } = await choosePool(args, jobFile, write.err);
  checkJobsFitPool(jobFile.file, jobFile.jobs, pool, label);

  const logDir = nodePath.resolve(args.logs ?? defaultLogDir(new Date(startAt)));
  // Made now: a log folder that cannot be made (a file of that name, no permission) would fail
  // every job at its start; refused here, before anything runs.
  try {
    mkdirSync(logDir, { recursive: true });
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`--logs: cannot make the log folder ${logDir} (${why}); nothing was run`, 'run');
  }
  const registry = new ProcessRegistry();
  const scheduler = createScheduler<CliHandlers>({
    resources: pool,
    handlers: { command: createCommandHandler({ logDir, registry }) },
    // The file is submitted whole, and every record is kept for the summary.
    maxQueueSize: Number.POSITIVE_INFINITY,
    retainFinished: Number.POSITIVE_INFINITY,
    monitor: detected,
    ...(args.maxConcurrent === undefined ? {} : { maxConcurrentJobs: args.maxConcurrent }),
    // A job told to stop keeps its resources until its processes are gone (the engine's default),
    // unless --stop-timeout (or a job's stopTimeout) says how long at most.
    ...(args.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: args.stopTimeoutMs }),
  });
  // Shutdown's own wait for stopped jobs follows the same rule: for ever, unless --stop-timeout.
  const stopTimeoutMs = args.stopTimeoutMs ?? Number.POSITIVE_INFINITY;
  const reporter = chooseReporter(args, write, startAt, scheduler);
  const specs = jobFile.jobs.map(toSubmission);
  // Listening before the first job starts: Node's default for SIGINT would exit at once and
  // leave the (detached) job processes running.
  const stopListening = handleInterrupts({
    scheduler,
    registry,
    notice: (notice) => reporter.notice(notice),
    drainTimeoutMs: args.drainTimeoutMs,
    stopTimeoutMs,
    now: () => Date.now(),
  });
  try {
    const subscription = scheduler.events$.subscribe((event) => reporter.event(event));
    try {
      // Announced first, so the JSON stream begins with it; a refused batch has started nothing.
      reporter.start({
        type: 'run.started',
        at: startAt,
        file: jobFile.file,
        jobs: specs.length,
        pool: label,
        logDir,
      });
      scheduler.submitAll(specs);
    } catch (error) {
      subscription.unsubscribe();
      await scheduler.shutdown({ mode: 'cancel', stopTimeoutMs });
      throw submitErrorToJobFileError(error, jobFile) ?? error;
    }
    await scheduler.onIdle();
    await scheduler.shutdown({ mode: 'drain', timeoutMs: args.drainTimeoutMs, stopTimeoutMs });
    // The engine frees resources when an attempt ends; the processes of a stopped job may still be
    // going down. The run is over only when they are gone.
    await registry.settled();
    subscription.unsubscribe();
    const summary = summarise(scheduler.list(), logDir, Date.now() - startAt);
    reporter.finish(summary);
    return summary.exitCode;
  } finally {
    stopListening();
    // Only reached with live processes when something above threw: leave nothing behind.
    registry.killAll();
  }
}
