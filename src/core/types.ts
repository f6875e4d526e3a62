/**
 * Plain data shared by every layer: job states, priorities, allocations and errors.
 * Nothing here has behaviour; it is the vocabulary of the public API.
 */

/** The eight states of a job's lifecycle. */
export type JobState =
  'pending' | 'queued' | 'scheduled' | 'running' | 'retrying' | 'completed' | 'failed' | 'cancelled';

/** Every job state, in lifecycle order. */
export const JOB_STATES: readonly JobState[] = [
  'pending',
  'queued',
  'scheduled',
  'running',
  'retrying',
  'completed',
  'failed',
  'cancelled',
];

/** The states a job never leaves. */
export const FINAL_JOB_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

/** The states in which a job holds an allocation. */
export const HOLDING_JOB_STATES: readonly JobState[] = ['scheduled', 'running'];

/**
 * Why a job that is not running is waiting. `noNode`: no node of the pool could hold it, even
 * idle (the `unschedulable: 'wait'` option, or a node it needed retired): it waits for one that
 * can to join.
 */
export type WaitReason = 'dependencies' | 'resources' | 'concurrency' | 'paused' | 'backoff' | 'noNode';

/** Reasons the scheduler may give a queued job (the others follow from the state itself). */
export type QueuedWaitReason = Extract<WaitReason, 'resources' | 'concurrency' | 'paused' | 'noNode'>;

/** What ended an attempt or a job badly. */
/** `interrupted`: the attempt was running when its (durable) scheduler stopped — a crash, a kill. */
export type JobErrorKind = 'error' | 'timeout' | 'cancelled' | 'dependency' | 'shutdown' | 'interrupted';

/** The last error of a job, as plain data. */
export type JobError = {
  kind: JobErrorKind;
  message: string;
  /** For kind `dependency`: the id of the dependency that failed or was cancelled. */
  dependencyId?: string;
};

/** The share of one GPU granted to a job. */
export type GpuAssignment = {
  /** The GPU's index on its node (what `CUDA_VISIBLE_DEVICES` names). */
  index: number;
  /** 1 for a whole GPU, or a share in (0, 1). */
  share: number;
  /** VRAM reserved on this GPU, in MB. */
  vramMb: number;
};

/** What a job was granted: a node, GPUs, CPU, memory and custom resources. */
export type Allocation = {
  /** Unique per grant; releasing the same id twice changes nothing. */
  id: string;
  nodeId: string;
  cpu: number;
  memoryMb: number;
  gpus: GpuAssignment[];
  custom: Record<string, number>;
};

/** Reads the current time in milliseconds from the one injected clock. */
export type NowSource = {
  now(): number;
};
