/**
 * `ai-batch run`: checks the whole job file and the pool before anything runs, submits every job
 * at once (all or nothing), reports events as they come, handles Ctrl-C, waits until every job
 * process tree is gone, and returns the exit code (0 when every job completed, 1 otherwise).
 */
import { mkdirSync, rmSync } from 'node:fs';
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
import { StoreLockedError } from '../store/errors.js';
import { sqliteStore, sqliteStoreFiles } from '../store/sqlite.js';
import type { JobStore, StoreContents } from '../store/store.js';
import { endLeftovers, findLeftovers } from './leftovers.js';
import { defaultStatePath, planResume, stateInLogDir, type ResumePlan } from './resume.js';

/** The state file of a run: opened, planned, and what the scheduler is given. */
type State = { path: string; store: JobStore; plan: ResumePlan };

/**
 * Opens the run's state file (made if new) and decides what to resume. The store stays open and
 * locked: the scheduler is given a store whose `open()` answers with the jobs kept. Refuses a
 * state that is locked by another run, damaged or too new (a `UsageError`), and a changed
 * completed job (a `JobFileError`); then nothing has changed in it.
 */
function openState(path: string, jobFile: JobFile, fresh: boolean): State {
  try {
    mkdirSync(nodePath.dirname(path), { recursive: true });
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`--state: cannot make the folder of ${path} (${why}); nothing was run`, 'run');
  }
  const inner = sqliteStore(path);
  let contents: StoreContents;
  try {
    contents = inner.open();
  } catch (error) {
    if (error instanceof StoreLockedError) {
      throw new UsageError(
        `--state: ${path} is in use by another ai-batch run (it holds the file's lock); nothing was run — ` +
          `wait for that run to end, or give this one --state <other file> or --state none`,
        'run',
      );
    }
    const why = error instanceof Error ? error.message : String(error);
    throw new UsageError(
      `--state: cannot use ${path}: ${why}; nothing was run (--state <other file>, or --state none)`,
      'run',
    );
  }
  let plan: ResumePlan;
  try {
    if (fresh) {
      inner.prune(contents.jobs.map((e) => e.job.id));
      contents = {
        jobs: [],
        paused: false,
        ...(contents.nextSeq === undefined ? {} : { nextSeq: contents.nextSeq }),
      };
    }
    plan = planResume(contents, jobFile);
    // What had not completed is forgotten, and submitted again from the file.
    inner.prune(plan.forget);
    // A run paused by Ctrl-C before is not paused now.
    if (contents.paused) inner.setPaused(false);
  } catch (error) {
    inner.close();
    throw error;
  }
  const kept = plan.kept;
  // Jobs submitted again are numbered after every job the store held (those forgotten too).
  const nextSeq = contents.nextSeq;
  const store: JobStore = {
    open: () => ({ jobs: kept, paused: false, ...(nextSeq === undefined ? {} : { nextSeq }) }),
    accept: (jobs) => inner.accept(jobs),
    update: (id, status) => inner.update(id, status),
    prune: (ids) => inner.prune(ids),
    setPaused: (paused) => inner.setPaused(paused),
    // The adapter groups commits: the scheduler says when they must be written.
    sync: () => inner.sync?.(),
    close: () => inner.close(),
  };
  return { path, store, plan };
}

/**
 * Made before anything runs: a log folder that cannot be made (a file of that name, no
 * permission) would fail every job at its start.
 */
function makeLogDir(logDir: string): void {
  try {
    mkdirSync(logDir, { recursive: true });
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new UsageError(`--logs: cannot make the log folder ${logDir} (${why}); nothing was run`, 'run');
  }
}

/** Deletes a state file and the files beside it (SQLite's, the store's operation log). */
function removeState(path: string): void {
  for (const file of sqliteStoreFiles(path)) rmSync(file, { force: true });
}

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

  // The state file of --logs goes in it: that folder is checked first.
  if (args.logs !== undefined) makeLogDir(nodePath.resolve(args.logs));
  const statePath =
    args.state === 'none'
      ? undefined
      : nodePath.resolve(
          args.state ?? (args.logs !== undefined ? stateInLogDir(args.logs) : defaultStatePath(args.file)),
        );
  const state = statePath === undefined ? undefined : openState(statePath, jobFile, args.fresh);
  try {
    return await runWith(args, write, startAt, jobFile, { pool, label, detected }, state);
  } finally {
    state?.store.close();
  }
}

async function runWith(
  args: RunArgs,
  write: Writers,
  startAt: number,
  jobFile: JobFile,
  { pool, label, detected }: { pool: ResourcePool; label: string; detected: boolean },
  state: State | undefined,
): Promise<0 | 1> {
  // A resumed run logs where the run before did, unless --logs says otherwise.
  const logDir = nodePath.resolve(args.logs ?? state?.plan.logDir ?? defaultLogDir(new Date(startAt)));
  makeLogDir(logDir);
  if (state?.plan.logDir !== undefined) {
    // The run before is gone (this one holds the lock), but its job processes may not be.
    const leftovers = findLeftovers(state.plan.logDir, new Set(state.plan.forget));
    if (leftovers.length > 0) {
      const which = leftovers.map((l) => `job ${l.jobId} (pids ${l.pids.join(', ')})`).join(', ');
      write.err(`ai-batch: ending what the run before left running: ${which}\n`);
      await endLeftovers(leftovers);
    }
  }
  const registry = new ProcessRegistry();
  const scheduler = createScheduler<CliHandlers>({
    resources: pool,
    handlers: {
      command: createCommandHandler({
        logDir,
        registry,
        ...(state === undefined ? {} : { notes: state.plan.notes }),
      }),
    },
    ...(state === undefined ? {} : { store: state.store }),
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
  const specs =
    state === undefined
      ? jobFile.jobs.map((job) => toSubmission(job))
      : jobFile.jobs.filter((job) => state.plan.submit.has(job.id)).map((job) => toSubmission(job, logDir));
  const resumed = state?.plan.counts;
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
        jobs: jobFile.jobs.length,
        pool: label,
        logDir,
        ...(state === undefined ? {} : { state: state.path }),
        ...(resumed === undefined ? {} : { resumed }),
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
    const summary = summarise(scheduler.list(), logDir, Date.now() - startAt, resumed);
    // Every job completed: nothing is left to resume, and the same command starts over.
    if (state !== undefined && summary.exitCode === 0) {
      state.store.close();
      removeState(state.path);
    }
    reporter.finish(summary);
    return summary.exitCode;
  } finally {
    stopListening();
    // Only reached with live processes when something above threw: leave nothing behind.
    registry.killAll();
  }
}
