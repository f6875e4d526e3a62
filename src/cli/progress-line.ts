/**
 * The progress protocol between a job's process and the scheduler: a line on standard output
 * such as `progress: 0.42 resizing tile 3` (or `progress: 42% resizing tile 3`). Any other line
 * is ordinary output.
 */

const PATTERN = /^\s*progress:\s*(\d+(?:\.\d+)?|\.\d+)(%?)(?:\s+(.*?))?\s*$/i;

/** A progress report read from one line of output. */
export type ProgressLine = { fraction: number; note?: string };

/**
 * The progress a line reports, or `undefined` when it is not a progress line. The fraction is
 * not clamped here: the engine clamps it to [0, 1] for every handler alike.
 *
 * @example
 * parseProgressLine('progress: 0.5 upscaling'); // { fraction: 0.5, note: 'upscaling' }
 * parseProgressLine('progress: 80%');            // { fraction: 0.8 }
 */
export function parseProgressLine(line: string): ProgressLine | undefined {
  const match = PATTERN.exec(line);
  if (!match) return undefined;
  const [, amount, percent, note] = match;
  const fraction = Number(amount) / (percent ? 100 : 1);
  return note ? { fraction, note } : { fraction };
}

/**
 * Splits a stream of text chunks into lines (`\n` or `\r\n`), holding a partial last line until
 * the rest arrives; `flush()` hands back what is left when the stream ends.
 */
export function createLineSplitter(onLine: (line: string) => void): {
  push(chunk: string): void;
  flush(): void;
} {
  let pending = '';
  return {
    push(chunk) {
      pending += chunk;
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        onLine(pending.slice(0, newline).replace(/\r$/, ''));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    },
    flush() {
      if (pending !== '') onLine(pending);
      pending = '';
    },
  };
}
