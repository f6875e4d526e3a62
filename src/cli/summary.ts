/**
 * The end of a run: counts by final state, the jobs that did not complete and why, and the exit
 * code (0 when every job completed, 1 otherwise). Pure; printed by the reporters.
 */
import type { JobSnapshot } from '../runtime/types.js';
import { formatDuration } from './format.js';
import { renderResumed, type ResumeCounts } from './resume.js';

/** What a run ended with; also the final line of `--json` output (`type: 'run.summary'`). */
export type RunSummary = {
  type: 'run.summary';
  /** 0 when every job completed; 1 when any failed, was cancelled or did not end. */
  exitCode: 0 | 1;
  total: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Jobs that were still live when the run ended (only after an interrupted shutdown). */
  unfinished: number;
  /** Every job that did not complete, with its state and last error. */
  problems: Array<{ id: string; state: string; kind?: string; message?: string }>;
  /** The folder of the log files. */
  logDir: string;
  /** Wall time of the run. */
  elapsedMs: number;
  /** A run that resumed from its state file: what it found there. */
  resumed?: ResumeCounts;
};

/** Sums up a run from the final snapshots of its jobs. */
export function summarise(
  jobs: readonly JobSnapshot[],
  logDir: string,
  elapsedMs: number,
  resumed?: ResumeCounts,
): RunSummary {
  const summary: RunSummary = {
    type: 'run.summary',
    exitCode: 0,
    total: jobs.length,
    completed: 0,
    failed: 0,
    cancelled: 0,
    unfinished: 0,
    problems: [],
    logDir,
    elapsedMs,
    ...(resumed === undefined ? {} : { resumed }),
  };
  for (const job of jobs) {
    if (job.state === 'completed') summary.completed++;
    else if (job.state === 'failed') summary.failed++;
    else if (job.state === 'cancelled') summary.cancelled++;
    else summary.unfinished++;
    if (job.state !== 'completed') {
      summary.problems.push({
        id: job.id,
        state: job.state,
        ...(job.error ? { kind: job.error.kind, message: job.error.message } : {}),
      });
    }
  }
  summary.exitCode = summary.completed === summary.total ? 0 : 1;
  return summary;
}

/** The summary as lines for people. */
export function renderSummary(summary: RunSummary): string[] {
  const lines = [
    `${summary.exitCode === 0 ? 'done' : 'finished with problems'}: ${summary.completed}/${summary.total} completed, ` +
      `${summary.failed} failed, ${summary.cancelled} cancelled` +
      `${summary.unfinished > 0 ? `, ${summary.unfinished} unfinished` : ''} in ${formatDuration(summary.elapsedMs)}`,
  ];
  if (summary.resumed !== undefined) lines.push(`  ${renderResumed(summary.resumed)}`);
  for (const problem of summary.problems) {
    lines.push(`  ${problem.state.padEnd(9)} ${problem.id}${problem.message ? `: ${problem.message}` : ''}`);
  }
  lines.push(`logs: ${summary.logDir}`);
  return lines;
}
