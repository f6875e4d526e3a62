/**
 * How a run reports what happens: `--json` writes one JSON object per line (every scheduler
 * event as it is, then a `run.summary`); without a terminal it writes one line per event for
 * people. The live terminal view is in `live-view.ts`. Every reporter writes through the
 * functions it is given, so tests can read what it wrote.
 */
import type { SchedulerEvent } from '../runtime/types.js';
import { renderEventLine } from './event-line.js';
import { renderResumed, type ResumeCounts } from './resume.js';
import { renderSummary, type RunSummary } from './summary.js';

/** A message from the CLI itself, e.g. about Ctrl-C; `type` is its JSON form's type. */
export type Notice = {
  type: 'run.interrupted';
  at: number;
  action: 'drain' | 'cancel' | 'kill';
  message: string;
};

/** The first thing a run reports: what runs, where, and where its logs go. */
export type RunStarted = {
  type: 'run.started';
  at: number;
  file: string;
  jobs: number;
  /** Where the pool came from, in words (e.g. `--resources pool.yaml`). */
  pool: string;
  logDir: string;
  /** The state file (absent with `--state none`). */
  state?: string;
  /** A run that resumed from its state file: what it found there. */
  resumed?: ResumeCounts;
};

/** What the run command tells its reporter. */
export interface Reporter {
  /** The run begins; called once, before any event. */
  start(info: RunStarted): void;
  /** Every scheduler event, in order. */
  event(event: SchedulerEvent): void;
  /** Something the CLI did (Ctrl-C handling). */
  notice(notice: Notice): void;
  /** The run is over; nothing is reported after this. */
  finish(summary: RunSummary): void;
}

/** Where reporters write: standard output and standard error, one chunk at a time. */
export type Writers = { out: (text: string) => void; err: (text: string) => void };

/**
 * Writes to a standard stream that may have gone away: a reader that stopped reading
 * (`ai-batch run jobs.yaml | head`: EPIPE) or a terminal that was closed (EIO). What cannot be
 * written is dropped, and the run goes on — its jobs, their logs and its exit code do not depend
 * on anyone reading its report. Without this, the stream's error event would end the CLI at once
 * and leave its job processes running with nobody to stop them.
 */
export function lenientWriter(stream: NodeJS.WritableStream): (text: string) => void {
  let broken = false;
  stream.on('error', () => {
    broken = true;
  });
  return (text) => {
    if (broken) return;
    try {
      stream.write(text);
    } catch {
      broken = true;
    }
  };
}

/**
 * `--json`: one JSON object per line on standard output — each `SchedulerEvent` unchanged, a
 * `run.interrupted` line per Ctrl-C, and a final `run.summary` line. Notices, and the warning of
 * a `job.forceReleased` event, also go to standard error as text, for the person at the terminal.
 */
export function jsonReporter(write: Writers, startAt = 0): Reporter {
  return {
    start: (info) => write.out(`${JSON.stringify(info)}\n`),
    event: (event) => {
      write.out(`${JSON.stringify(event)}\n`);
      if (event.type === 'job.forceReleased')
        write.err(`ai-batch: ${renderEventLine(event, startAt) ?? ''}\n`);
    },
    notice: (notice) => {
      write.out(`${JSON.stringify(notice)}\n`);
      write.err(`ai-batch: ${notice.message}\n`);
    },
    finish: (summary) => write.out(`${JSON.stringify(summary)}\n`),
  };
}

/** Without a terminal: one line per event (see `renderEventLine`), notices, then the summary. */
export function lineReporter(write: Writers, startAt: number): Reporter {
  return {
    start: (info) => {
      write.out(`${startLine(info)}\n`);
      if (info.resumed !== undefined)
        write.out(`ai-batch: ${renderResumed(info.resumed)} (state ${info.state ?? ''})\n`);
    },
    event: (event) => {
      const text = renderEventLine(event, startAt);
      if (text !== undefined) write.out(`${text}\n`);
    },
    notice: (notice) => write.out(`ai-batch: ${notice.message}\n`),
    finish: (summary) => write.out(`${renderSummary(summary).join('\n')}\n`),
  };
}

/** `ai-batch: 8 jobs from jobs.yaml on --resources pool.yaml; logs in ai-batch-logs/…` */
export function startLine(info: RunStarted): string {
  return `ai-batch: ${info.jobs} job(s) from ${info.file} on ${info.pool}; logs in ${info.logDir}`;
}
