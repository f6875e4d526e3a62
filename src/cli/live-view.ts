/**
 * The live terminal view: redraws the frame of `frame.ts` in place with ANSI escapes, at most
 * every `throttleMs` and once a second for the clocks. Lines about jobs that end or retry are
 * printed above the frame and stay, so the scrollback tells the story once the run is over.
 */
import type { SchedulerEvent } from '../runtime/types.js';
import type { JobSnapshot, SchedulerStats } from '../runtime/types.js';
import { renderEventLine } from './event-line.js';
import { fit } from './format.js';
import { renderFrame } from './frame.js';
import { startLine, type Reporter, type Writers } from './reporter.js';
import { renderResumed } from './resume.js';
import { renderSummary } from './summary.js';

/** Options of {@link liveView}. */
export type LiveViewOptions = {
  write: Writers;
  /** Terminal columns now (read at each redraw, so a resize takes effect). */
  columns: () => number;
  /** What the scheduler knows now. */
  snapshot: () => { jobs: JobSnapshot[]; stats: SchedulerStats };
  now: () => number;
  startAt: number;
  /** @default 100 */
  throttleMs?: number;
};

const KEEP: ReadonlySet<SchedulerEvent['type']> = new Set([
  'job.completed',
  'job.failed',
  'job.cancelled',
  'job.retrying',
  'job.forceReleased',
]);
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
/** Moves the cursor to the start of the line `n` lines up, then clears to the end of the screen. */
const rewind = (n: number) => (n > 0 ? `\x1b[${n}F\x1b[J` : '');

/** A reporter that keeps a live frame at the bottom of the terminal. */
export function liveView(options: LiveViewOptions): Reporter {
  const { write } = options;
  const throttleMs = options.throttleMs ?? 100;
  let height = 0;
  let status: string | undefined;
  let kept: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  let finished = false;
  const restoreCursor = () => write.out(SHOW_CURSOR);
  process.once('exit', restoreCursor);

  const draw = () => {
    timer = undefined;
    const { jobs, stats } = options.snapshot();
    const width = options.columns();
    const frame = renderFrame({
      jobs,
      stats,
      now: options.now(),
      startAt: options.startAt,
      width,
      ...(status === undefined ? {} : { status }),
    });
    const above = kept.map((line) => `${fit(line, width)}\n`).join('');
    kept = [];
    write.out(`${rewind(height)}${above}${frame.join('\n')}\n`);
    height = frame.length;
  };
  const schedule = () => {
    if (!finished && timer === undefined) timer = setTimeout(draw, throttleMs);
  };
  // The clocks in the frame move even when no event comes; this timer must not keep a run alive.
  const ticker = setInterval(schedule, 1_000);
  ticker.unref();
  write.out(HIDE_CURSOR);

  return {
    start: (info) => {
      kept.push(startLine(info));
      if (info.resumed !== undefined)
        kept.push(`ai-batch: ${renderResumed(info.resumed)} (state ${info.state ?? ''})`);
      schedule();
    },
    event: (event) => {
      if (KEEP.has(event.type)) {
        const line = renderEventLine(event, options.startAt);
        if (line !== undefined) kept.push(line);
      }
      schedule();
    },
    notice: (notice) => {
      status = notice.message;
      schedule();
    },
    finish: (summary) => {
      finished = true;
      clearTimeout(timer);
      clearInterval(ticker);
      // The frame gives way to the summary: what ended, and how, is already in the lines above.
      const width = options.columns();
      const above = kept.map((line) => `${fit(line, width)}\n`).join('');
      kept = [];
      write.out(`${rewind(height)}${above}${renderSummary(summary).join('\n')}\n${SHOW_CURSOR}`);
      process.off('exit', restoreCursor);
    },
  };
}
