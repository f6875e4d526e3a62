/**
 * The progress protocol between a job's process and the scheduler: a line on standard output
 * such as `progress: 0.42 resizing tile 3` (or `progress: 42% resizing tile 3`). Any other line
 * is ordinary output.
 */

/**
 * The head of a progress line; the note is the trimmed rest. (A pattern for the whole line, with
 * a lazy note and trailing spaces, backtracked quadratically on a long line of spaces.)
 */
const PATTERN = /^\s*progress:\s*(\d+(?:\.\d+)?|\.\d+)(%?)(?=\s|$)/i;

/**
 * How much of a progress note is kept (UTF-16 code units): a note is shown on one terminal line
 * and redrawn several times a second, and a line may be 64 KiB ({@link MAX_LINE_LENGTH}).
 */
export const MAX_NOTE_LENGTH = 1024;

/** A progress report read from one line of output. */
export type ProgressLine = { fraction: number; note?: string };

/**
 * The progress a line reports, or `undefined` when it is not a progress line. The fraction is
 * not clamped here: the engine clamps it to [0, 1] for every handler alike. A note longer than
 * {@link MAX_NOTE_LENGTH} is cut to it.
 *
 * @example
 * parseProgressLine('progress: 0.5 upscaling'); // { fraction: 0.5, note: 'upscaling' }
 * parseProgressLine('progress: 80%');            // { fraction: 0.8 }
 */
export function parseProgressLine(line: string): ProgressLine | undefined {
  const match = PATTERN.exec(line);
  if (!match) return undefined;
  const [head, amount, percent] = match;
  const fraction = Number(amount) / (percent ? 100 : 1);
  let note = line.slice(head.length).trim();
  if (note.length > MAX_NOTE_LENGTH) {
    // Cut on a code point: a surrogate pair is kept whole or left out whole.
    const high = note.charCodeAt(MAX_NOTE_LENGTH - 1);
    note = note.slice(0, high >= 0xd800 && high <= 0xdbff ? MAX_NOTE_LENGTH - 1 : MAX_NOTE_LENGTH).trimEnd();
  }
  return note ? { fraction, note } : { fraction };
}

/**
 * How much of one line the splitter keeps (UTF-16 code units): the rest of a longer line is
 * dropped. Lines are read for progress reports and the last error message, which are short;
 * the log file gets the output whole either way.
 */
export const MAX_LINE_LENGTH = 64 * 1024;

/** A line end: `\n`, `\r\n`, or a lone `\r` (a progress bar redrawing its line). */
const LINE_END = /\r\n?|\n/g;

/** What {@link createLineSplitter} returns. */
export type LineSplitter = {
  /** Takes the next chunk of the stream; calls `onLine` for every line it completes. */
  push(chunk: string): void;
  /** Hands back the unfinished last line, if any, when the stream ends. */
  flush(): void;
  /** Code units of the unfinished line held now (at most `maxLineLength`). */
  readonly buffered: number;
  /** Code units the line-end search has passed over in all (each one once: linear time). */
  readonly scanned: number;
};

/**
 * Splits a stream of text chunks into lines (`\n`, `\r\n` or `\r`), holding a partial last line
 * until the rest arrives. Linear in the input and bounded in memory, whatever the output looks
 * like: each chunk is searched once from where the last line ended (the held part is never
 * searched again), and at most `maxLineLength` code units of a line are kept — a process that
 * writes 100 MB without a newline (binary output, a progress bar redrawn with `\r` only) costs
 * one pass and 64 KiB.
 *
 * @example
 * const lines = createLineSplitter((line) => console.log(line));
 * lines.push('progress: 0.4'); lines.push('2 note\n'); // logs 'progress: 0.42 note'
 */
export function createLineSplitter(
  onLine: (line: string) => void,
  maxLineLength: number = MAX_LINE_LENGTH,
): LineSplitter {
  const lineEnd = new RegExp(LINE_END.source, 'g');
  let pending = '';
  // The last chunk ended with '\r': a '\n' that starts the next one belongs to that line end.
  let afterCr = false;
  let scanned = 0;
  const keep = (text: string, from: number, to: number) => {
    const room = maxLineLength - pending.length;
    if (room > 0 && to > from) pending += text.slice(from, Math.min(to, from + room));
  };
  return {
    push(chunk) {
      if (chunk === '') return;
      let from = afterCr && chunk.charCodeAt(0) === 10 ? 1 : 0;
      afterCr = false;
      // One forward pass over the chunk: each search starts where the last line ended.
      scanned += chunk.length - from;
      lineEnd.lastIndex = from;
      for (let match = lineEnd.exec(chunk); match !== null; match = lineEnd.exec(chunk)) {
        keep(chunk, from, match.index);
        const line = pending;
        pending = '';
        from = lineEnd.lastIndex;
        afterCr = match[0] === '\r' && from === chunk.length;
        onLine(line);
      }
      keep(chunk, from, chunk.length);
    },
    flush() {
      if (pending !== '') onLine(pending);
      pending = '';
      afterCr = false;
    },
    get buffered() {
      return pending.length;
    },
    get scanned() {
      return scanned;
    },
  };
}
