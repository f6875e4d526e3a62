/**
 * The live terminal view as a pure function of what the scheduler reports: a header with counts,
 * a bar per running job with its progress and note, the queue by priority, and the resources in
 * use against capacity. The terminal controller (`live-view.ts`) only decides when to redraw.
 */
import { levelOf } from '../core/priority.js';
import type { JobState } from '../core/types.js';
import type { JobSnapshot, SchedulerStats } from '../runtime/types.js';
import { fit, formatAllocation, formatDuration, formatPercent, formatUsage, progressBar } from './format.js';
import { padEndColumns, stringWidth } from './text-width.js';

/** What one frame shows. */
export type FrameInput = {
  /** Every job the scheduler knows, in submission order. */
  jobs: readonly JobSnapshot[];
  stats: SchedulerStats;
  /** Clock time now, for how long each job has run. */
  now: number;
  /** Clock time the run began. */
  startAt: number;
  /**
   * Terminal columns; every line is cut to fit (measured in columns: CJK and emoji take two), so
   * the frame's height is its line count.
   */
  width: number;
  /** A line for what the CLI is doing, e.g. "draining: Ctrl-C again cancels running jobs". */
  status?: string;
  /** Queue rows shown before "… N more". @default 8 */
  maxQueueRows?: number;
};

const BAR_WIDTH = 20;
const WAITING: ReadonlySet<JobState> = new Set(['pending', 'queued', 'retrying']);

function waitText(job: JobSnapshot): string {
  switch (job.state) {
    case 'pending':
      return 'waiting for dependencies';
    case 'retrying':
      return `retrying (attempt ${job.attempt}/${job.maxAttempts} failed)`;
    default:
      if (job.waitReason === 'noNode') return 'waiting for a node that can hold it';
      return job.waitReason === undefined ? 'queued' : `waiting for ${job.waitReason}`;
  }
}

/**
 * Waiting jobs in the order the scheduler favours them: effective priority first (aging and
 * boosts included), then submission time. Pending and retrying jobs are listed with them, since
 * a user reads "the queue" as everything not yet running.
 */
export function queueOrder(jobs: readonly JobSnapshot[]): JobSnapshot[] {
  return jobs
    .filter((job) => WAITING.has(job.state))
    .sort(
      (a, b) =>
        levelOf(b.effectivePriority) - levelOf(a.effectivePriority) ||
        a.submittedAt - b.submittedAt ||
        (a.id < b.id ? -1 : 1),
    );
}

/** The frame's lines, each at most `width` columns wide (so none wraps). */
export function renderFrame(input: FrameInput): string[] {
  const { jobs, stats, now, width } = input;
  const counts = stats.jobs;
  const live = jobs.filter((job) => job.state === 'running' || job.state === 'scheduled');
  const queue = queueOrder(jobs);
  const lines: string[] = [];
  lines.push(
    `ai-batch  ${formatDuration(now - input.startAt)}  ` +
      `running ${counts.running + counts.scheduled}${stats.stopping > 0 ? ` (${stats.stopping} stopping)` : ''} · waiting ${counts.pending + counts.queued + counts.retrying} · ` +
      `done ${counts.completed} · failed ${counts.failed} · cancelled ${counts.cancelled}`,
  );
  let idWidth = 4;
  for (let i = 0; i < jobs.length && idWidth < 24; i++) {
    idWidth = Math.min(24, Math.max(idWidth, stringWidth((jobs[i] as JobSnapshot).id)));
  }
  lines.push('running');
  if (live.length === 0) lines.push('  (none)');
  for (const job of live) {
    const ran = job.startedAt === undefined ? '' : formatDuration(now - job.startedAt);
    const note = job.stopping
      ? `  stopping (${job.stopping.reason}) for ${formatDuration(now - job.stopping.since)}, holding its resources`
      : job.progress.note
        ? `  ${job.progress.note}`
        : '';
    const held = job.allocation ? formatAllocation(job.allocation) : '';
    const where = held ? `  ${held}` : '';
    const retry = job.attempt > 1 ? ` (try ${job.attempt}/${job.maxAttempts})` : '';
    lines.push(
      `  ${padEndColumns(job.id, idWidth)} ${progressBar(job.progress.fraction, BAR_WIDTH)} ` +
        `${formatPercent(job.progress.fraction).padStart(4)} ${ran.padStart(6)}${retry}${note}${where}`,
    );
  }
  const maxRows = input.maxQueueRows ?? 8;
  lines.push(`queue (${queue.length})`);
  if (queue.length === 0) lines.push('  (empty)');
  for (const job of queue.slice(0, maxRows)) {
    const boosted = job.effectivePriority !== job.priority ? ` (from ${job.priority})` : '';
    lines.push(
      `  ${job.effectivePriority.padEnd(10)} ${padEndColumns(job.id, idWidth)} ${waitText(job)}${boosted}`,
    );
  }
  if (queue.length > maxRows) lines.push(`  … ${queue.length - maxRows} more`);
  const usage = formatUsage(stats.resources.allocated, stats.resources.capacity);
  lines.push(`resources  ${usage || 'none declared'}`);
  if (input.status) lines.push(input.status);
  return lines.map((line) => fit(line, Math.max(1, width)));
}
