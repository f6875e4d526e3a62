/**
 * From a checked job file to what the scheduler takes: one `command` job spec per job, and the
 * scheduler's own submit errors turned into job-file errors in the same one-line format.
 */
import {
  DependencyCycleError,
  DuplicateJobError,
  InvalidJobError,
  UnknownDependencyError,
  UnschedulableError,
} from '../core/errors.js';
import type { JobHandler } from '../actors/handler.js';
import type { JobSubmission } from '../runtime/types.js';
import type { CommandPayload, CommandResult } from './command-handler.js';
import { JobFileError } from './job-file-error.js';
import type { CommandJob, JobFile } from './job-file.js';

/** The handlers of a CLI run: one, for shell commands. */
export type CliHandlers = { command: JobHandler<CommandPayload, CommandResult> };

/**
 * The scheduler's spec for one job. `retries` are extra tries, the engine counts attempts
 * (the first included); a `retryDelay` becomes a fixed backoff without jitter. `logDir` is kept in
 * the payload of a run with a state file, so that a resumed run finds the log folder again.
 */
export function toSubmission(job: CommandJob, logDir?: string): JobSubmission<CliHandlers> {
  return {
    type: 'command',
    id: job.id,
    payload: {
      command: job.command,
      env: job.env,
      cwd: job.cwd,
      ...(logDir === undefined ? {} : { logDir }),
    },
    priority: job.priority,
    resources: job.resources,
    dependsOn: job.dependsOn,
    dependencyPolicy: job.dependencyPolicy,
    retry: {
      attempts: job.retries + 1,
      ...(job.retryDelayMs === undefined
        ? {}
        : { backoff: { type: 'fixed', delayMs: job.retryDelayMs, jitter: false } }),
    },
    ...(job.timeoutMs === undefined ? {} : { timeoutMs: job.timeoutMs }),
    ...(job.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: job.stopTimeoutMs }),
    ...(job.group === undefined ? {} : { group: job.group }),
  };
}

/**
 * A submit error as a `JobFileError` naming the file and, where the error says which, the job.
 * The job file checks catch these cases first; this keeps the message format if one slips by.
 */
export function submitErrorToJobFileError(error: unknown, jobFile: JobFile): JobFileError | undefined {
  const at = (id: string | undefined) => {
    const job = jobFile.jobs.find((j) => j.id === id);
    return job ? { index: job.index, id: job.id } : undefined;
  };
  if (error instanceof UnknownDependencyError) {
    return new JobFileError(jobFile.file, 'dependsOn', `dependsOn: ${error.message}`, at(error.jobId));
  }
  if (error instanceof DependencyCycleError) {
    return new JobFileError(jobFile.file, 'dependsOn', `dependsOn: ${error.message}`, at(error.cycle[0]));
  }
  if (error instanceof DuplicateJobError) {
    return new JobFileError(jobFile.file, 'id', error.message, at(error.id));
  }
  if (error instanceof InvalidJobError || error instanceof UnschedulableError) {
    return new JobFileError(jobFile.file, error.field, error.message);
  }
  return undefined;
}
