/** Turning a job actor's snapshot into the plain `JobSnapshot` of the public API. */
import type { NormalisedJob } from '../core/job-spec.js';
import { nameOf } from '../core/priority.js';
import { jobStateOf, type JobStateSnapshot } from '../machines/job.machine.js';
import type { JobSnapshot } from './types.js';

/** The plain snapshot of a job; `effectiveLevel` is its level in the queue when queued. */
export function toJobSnapshot(
  id: string,
  spec: Pick<NormalisedJob, 'type' | 'priority' | 'group'>,
  snap: JobStateSnapshot,
  effectiveLevel: number,
): JobSnapshot {
  const c = snap.context;
  const out: JobSnapshot = {
    id,
    type: spec.type,
    state: jobStateOf(snap.value),
    priority: spec.priority,
    effectivePriority: nameOf(effectiveLevel),
    attempt: c.attempt,
    maxAttempts: c.maxAttempts,
    progress: c.progress,
    submittedAt: c.submittedAt,
  };
  if (spec.group !== undefined) out.group = spec.group;
  if (c.waitReason !== undefined) out.waitReason = c.waitReason;
  if (c.allocation !== undefined) out.allocation = c.allocation;
  if (c.error !== undefined) out.error = c.error;
  if (c.stopping !== undefined && out.state === 'running') out.stopping = { ...c.stopping };
  if (c.startedAt !== undefined) out.startedAt = c.startedAt;
  if (c.endedAt !== undefined) out.endedAt = c.endedAt;
  return out;
}
