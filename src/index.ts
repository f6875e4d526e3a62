/**
 * ai-batch-scheduler — the public entry point. Everything a user may import is listed here by
 * name; nothing else under src/ is public.
 */

// Vocabulary
export { JOB_STATES, FINAL_JOB_STATES, HOLDING_JOB_STATES } from './core/types.js';
export type {
  Allocation,
  GpuAssignment,
  JobError,
  JobErrorKind,
  JobState,
  NowSource,
  QueuedWaitReason,
  WaitReason,
} from './core/types.js';

// Errors
export { UnrecoverableError, isUnrecoverable } from './core/errors.js';

// Retry backoff
export { DEFAULT_BACKOFF, backoffDelay } from './core/backoff.js';
export type { BackoffPolicy } from './core/backoff.js';
export type { Progress } from './core/progress.js';

// Machines
export { jobMachine, jobStateOf, MAX_TIMER_DELAY_MS } from './machines/job.machine.js';
export type {
  JobContext,
  JobEmitted,
  JobEvent,
  JobHandlerInput,
  JobMachineInput,
  JobMachineSnapshot,
} from './machines/job.machine.js';
export { toMermaid, transitionTable, renderMachineDoc, eventLabel, leafStates } from './machines/diagram.js';
export type { TransitionRow } from './machines/diagram.js';
