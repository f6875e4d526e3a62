/**
 * The environment a job's process gets: the CLI's own, the job's `env`, and what the scheduler
 * granted it — the GPUs as `CUDA_VISIBLE_DEVICES`, so CUDA programs see exactly those.
 */
import type { Allocation } from '../core/types.js';
import { JOB_TOKEN_ENV } from './process-group.js';

/** What the runner adds to every job's environment (the job's `env` cannot override these). */
export type JobEnvInput = {
  jobId: string;
  attempt: number;
  allocation: Allocation;
  /** The folder of this run's log files. */
  logDir: string;
  /**
   * The attempt's token, as `AI_BATCH_JOB_TOKEN`: every process that inherits it is the job's,
   * and is ended with it even if it left the job's process group.
   */
  token?: string;
};

/**
 * The GPU indexes of an allocation, comma-joined, as CUDA expects them. Empty when the job has
 * no GPU: an empty `CUDA_VISIBLE_DEVICES` hides every GPU, so a job that asked for none cannot
 * take one behind the scheduler's back.
 */
export function cudaVisibleDevices(allocation: Allocation): string {
  return allocation.gpus.map((gpu) => gpu.index).join(',');
}

/**
 * The full environment of one attempt:
 * `base` + the job's `env` + `CUDA_VISIBLE_DEVICES`, `AI_BATCH_ALLOCATION` (the allocation as
 * JSON), `AI_BATCH_JOB_ID`, `AI_BATCH_ATTEMPT` (1-based), `AI_BATCH_LOG_DIR` and, when given,
 * `AI_BATCH_JOB_TOKEN`.
 */
export function jobEnv(
  base: NodeJS.ProcessEnv,
  jobEnvVars: Readonly<Record<string, string>>,
  input: JobEnvInput,
): NodeJS.ProcessEnv {
  return {
    ...base,
    ...jobEnvVars,
    CUDA_VISIBLE_DEVICES: cudaVisibleDevices(input.allocation),
    AI_BATCH_ALLOCATION: JSON.stringify(input.allocation),
    AI_BATCH_JOB_ID: input.jobId,
    AI_BATCH_ATTEMPT: String(input.attempt),
    AI_BATCH_LOG_DIR: input.logDir,
    ...(input.token === undefined ? {} : { [JOB_TOKEN_ENV]: input.token }),
  };
}
