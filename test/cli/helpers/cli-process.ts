/**
 * Runs the `ai-batch` CLI from source as a real child process (`node --import tsx
 * src/cli/main.ts …`) and lets a test wait for lines of its output and for its exit — never for
 * wall-clock time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import nodePath from 'node:path';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The repository root. */
export const REPO_ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../../..');

/** A running CLI. */
export type CliProcess = {
  child: ChildProcess;
  /** Every stdout line so far. */
  lines: string[];
  /** Resolves with the first stdout line (seen so far or later) that `match` accepts. */
  waitForLine(match: (line: string) => boolean): Promise<string>;
  /** Resolves when the process has exited and its output is read. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /**
   * Closes the reading end of the CLI's standard output, as `ai-batch run … | head` does once
   * `head` has its lines: the CLI's next write to it fails with EPIPE.
   */
  closeStdout(): void;
};

/** tsx's loader by URL: `--import tsx` would look for tsx from the CLI's working folder. */
const TSX = pathToFileURL(createRequire(nodePath.join(REPO_ROOT, 'package.json')).resolve('tsx')).href;

/** Starts `ai-batch <args>` in `cwd` (default: the repository root). */
export function startCli(args: readonly string[], options: { cwd?: string } = {}): CliProcess {
  const child = spawn(
    process.execPath,
    ['--import', TSX, nodePath.join(REPO_ROOT, 'src/cli/main.ts'), ...args],
    {
      cwd: options.cwd ?? REPO_ROOT,
      // Standard output is a pipe, never a terminal: the CLI writes lines, not its live view.
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines: string[] = [];
  const waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const reader = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  reader.on('line', (line) => {
    lines.push(line);
    for (const waiter of [...waiters]) {
      if (waiter.match(line)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  const closed = new Promise<void>((resolve) => reader.on('close', resolve));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  ).then(async (result) => {
    await closed;
    return { ...result, stdout: lines.join('\n'), stderr };
  });
  return {
    child,
    lines,
    exited,
    closeStdout() {
      reader.close();
      child.stdout?.destroy();
    },
    waitForLine(match) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        void exited.then(() => reject(new Error(`the CLI exited before the line came; stderr:\n${stderr}`)));
      });
    },
  };
}

/** Runs `ai-batch <args>` to its end. */
export function runCli(args: readonly string[], options: { cwd?: string } = {}) {
  return startCli(args, options).exited;
}

/** A parsed `--json` line. */
export type JsonLine = {
  type: string;
  job?: {
    id: string;
    state: string;
    attempt: number;
    progress?: { fraction: number; note?: string };
    allocation?: { gpus: Array<{ index: number; share: number }> };
    error?: { kind: string; message: string };
  };
  [key: string]: unknown;
};

/** Parses every line of a `--json` stream; throws (failing the test) on a line that is not JSON. */
export function parseJsonLines(stdout: string): JsonLine[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as JsonLine);
}

/** A matcher for `waitForLine`: a JSON line of this type (and job id, if given). */
export function jsonEvent(type: string, jobId?: string): (line: string) => boolean {
  return (line) => {
    try {
      const event = JSON.parse(line) as JsonLine;
      return event.type === type && (jobId === undefined || event.job?.id === jobId);
    } catch {
      return false;
    }
  };
}

/**
 * True when the process is gone. A killed process whose parent died stays a zombie until init
 * reaps it, and some container inits never do; a zombie runs nothing, so it counts as gone.
 */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

/**
 * SIGKILLs every process whose pid is written in one of `files` and that is still alive: the
 * cleanup of a test whose CLI may have left a job process behind (the bug it checks for).
 */
export function killLeftovers(files: readonly string[]): void {
  for (const file of files) {
    let pid: number;
    try {
      pid = Number(readFileSync(file, 'utf8').trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(pid) || pid <= 1 || processGone(pid)) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
}
