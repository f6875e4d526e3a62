/**
 * The `command` job handler of the CLI: runs one attempt of a job as a process. An argv array is
 * spawned directly, a string through `/bin/sh -c`. The process leads its own process group, and
 * every process of the attempt carries its token (`AI_BATCH_JOB_TOKEN`), so a timeout, a cancel
 * or the end of the job reaches its whole tree — also what left the group (see process-group.ts).
 * Standard output and error are appended, as they are, to `<logDir>/<job-id>.log`; `progress:
 * 0.42 note` lines on standard output become progress. Exit code 0 resolves; anything else
 * rejects, and a process that cannot be started at all (or a log that cannot be opened safely)
 * fails the job without retries. The attempt settles only once its whole tree is gone, so the
 * engine never hands its resources on while a process of it still runs.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, constants, createWriteStream, fstatSync, mkdirSync, openSync } from 'node:fs';
import nodePath from 'node:path';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnrecoverableError } from '../core/errors.js';
import type { HandlerContext, JobHandler } from '../actors/handler.js';
import { cudaVisibleDevices, jobEnv } from './job-env.js';
import { DEFAULT_KILL_GRACE_MS, readStat, terminateTree, type ProcessTree } from './process-group.js';
import type { ProcessRegistry } from './process-registry.js';
import { createLineSplitter, parseProgressLine } from './progress-line.js';

/** What a `command` job carries as its payload. */
export type CommandPayload = {
  /** An argv array (spawned directly) or a shell string (run with `/bin/sh -c`). */
  command: string | readonly string[];
  /** Added to the CLI's own environment. */
  env: Readonly<Record<string, string>>;
  /** An absolute folder. */
  cwd: string;
  /** The run's log folder, kept in the state file so that a resumed run finds it (not read here). */
  logDir?: string;
};

/** What a successful attempt resolves with (the `output` of `job.completed`). */
export type CommandResult = { exitCode: 0; log: string };

/** Options of {@link createCommandHandler}. */
export type CommandHandlerOptions = {
  /** Where `<job-id>.log` files go; created when the first job starts. */
  logDir: string;
  /** Tracks each process group until it is gone. */
  registry: ProcessRegistry;
  /** SIGTERM → SIGKILL grace when a process tree is ended. @default 2_000 */
  killGraceMs?: number;
  /** The environment every job starts from. @default process.env */
  baseEnv?: NodeJS.ProcessEnv;
  /**
   * A line written to a job's log before its next attempt's header, once (a resumed run says why
   * the job runs again); taken out of the map when written.
   */
  notes?: Map<string, string>;
};

/** How long to wait for output pipes held by a process that escaped the group, once it is gone. */
const PIPE_GRACE_MS = 1_000;

/** The path of a job's log file. */
export function logFileOf(logDir: string, jobId: string): string {
  return nodePath.join(logDir, `${jobId}.log`);
}

/**
 * Opens a job's log for appending (a retry appends to the log of the attempts before it), never
 * through a link: a symbolic link planted at the log's name (`O_NOFOLLOW`) is refused, and so is
 * anything but a regular file with one name (a FIFO, a device — opened without blocking — or a
 * hard link to some other file). Throws an `UnrecoverableError` that says why.
 */
export function openLog(logPath: string): number {
  const flags =
    constants.O_WRONLY |
    constants.O_APPEND |
    constants.O_CREAT |
    (constants.O_NOFOLLOW ?? 0) |
    (constants.O_NONBLOCK ?? 0);
  let fd: number;
  try {
    fd = openSync(logPath, flags, 0o666);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') {
      throw new UnrecoverableError(
        `refusing the log ${logPath}: it is a symbolic link (ai-batch does not follow links in the log folder)`,
      );
    }
    if (code === 'ENXIO') {
      throw new UnrecoverableError(`refusing the log ${logPath}: it is not a regular file`);
    }
    throw new UnrecoverableError(`cannot open the log ${logPath}: ${code ?? (error as Error).message}`);
  }
  const stat = fstatSync(fd);
  if (!stat.isFile() || stat.nlink > 1) {
    closeSync(fd);
    throw new UnrecoverableError(
      `refusing the log ${logPath}: it is ${stat.isFile() ? 'a hard link to another file' : 'not a regular file'}`,
    );
  }
  return fd;
}

/**
 * Creates the handler to register as `handlers: { command }`.
 *
 * @example
 * const registry = new ProcessRegistry();
 * createScheduler({ handlers: { command: createCommandHandler({ logDir, registry }) } });
 */
export function createCommandHandler(
  options: CommandHandlerOptions,
): JobHandler<CommandPayload, CommandResult> {
  return (context) => runAttempt(context, options);
}

async function runAttempt(
  { id, payload, attempt, allocation, signal, progress }: HandlerContext<CommandPayload>,
  options: CommandHandlerOptions,
): Promise<CommandResult> {
  signal.throwIfAborted();
  const graceMs = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const logPath = logFileOf(options.logDir, id);
  mkdirSync(options.logDir, { recursive: true });
  const log = createWriteStream('', { fd: openLog(logPath) });
  let logError: Error | undefined;
  log.on('error', (error) => (logError ??= error));
  const argv =
    typeof payload.command === 'string' ? ['/bin/sh', '-c', payload.command] : [...payload.command];
  const [file = '', ...args] = argv;
  const token = randomUUID();
  const note = options.notes?.get(id);
  if (note !== undefined) {
    options.notes?.delete(id);
    log.write(note);
  }
  log.write(
    `=== ai-batch: job ${id}, attempt ${attempt}, ${new Date().toISOString()}, ` +
      `CUDA_VISIBLE_DEVICES=${JSON.stringify(cudaVisibleDevices(allocation))}\n` +
      `=== ${argv.map((a) => JSON.stringify(a)).join(' ')}\n`,
  );

  const child = spawn(file, args, {
    cwd: payload.cwd,
    env: jobEnv(options.baseEnv ?? process.env, payload.env, {
      jobId: id,
      attempt,
      allocation,
      logDir: options.logDir,
      token,
    }),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const failed = once(child, 'error').then(([error]) => error as NodeJS.ErrnoException);
  // Without a listener, a failed spawn would also reject `exited` and go unhandled.
  exited.catch(() => undefined);
  const pid = child.pid;
  if (pid === undefined) {
    const error = await failed;
    await finishLog(log, `=== could not start: ${error.message}\n`);
    throw new UnrecoverableError(`cannot start ${JSON.stringify(file)}: ${error.code ?? error.message}`);
  }

  const since = readStat(pid)?.starttime;
  const tree: ProcessTree = {
    pgid: pid,
    token,
    ...(since !== undefined && Number.isFinite(since) ? { since } : {}),
  };
  let ending: Promise<void> | undefined;
  const endGroup = () =>
    (ending ??= terminateTree(tree, graceMs, {
      onLingering: (pids) =>
        log.write(
          `=== processes ${pids.join(', ')} still alive after SIGKILL (uninterruptible, or not ours to ` +
            `signal); the job keeps its resources until they end\n`,
        ),
    }));
  const task = (async () => {
    const onAbort = () => void endGroup();
    signal.addEventListener('abort', onAbort, { once: true });
    let lastError = '';
    const out = createLineSplitter((line) => {
      const report = parseProgressLine(line);
      if (report && !signal.aborted) progress(report.fraction, report.note);
    });
    const err = createLineSplitter((line) => {
      if (line.trim() !== '') lastError = line.trim();
    });
    // The log gets the bytes as they are (binary output too); the lines are read from their
    // UTF-8 text. A chatty process waits for the disk rather than filling this process's memory.
    const forward = (from: Readable, lines: { push(chunk: string): void }) => {
      const text = new StringDecoder('utf8');
      return from.on('data', (chunk: Buffer) => {
        lines.push(text.write(chunk));
        if (!log.write(chunk)) {
          from.pause();
          log.once('drain', () => from.resume());
        }
      });
    };
    forward(child.stdout, out);
    forward(child.stderr, err);
    const closed = once(child, 'close');
    const [code, exitSignal] = await exited;
    // The job ends with its leader: what it left running goes too, in its group or not (as Slurm
    // does), since the scheduler is about to hand its resources to another job.
    await endGroup();
    const pipesGrace = new AbortController();
    await Promise.race([closed, sleep(PIPE_GRACE_MS, undefined, { signal: pipesGrace.signal })]).catch(
      () => undefined,
    );
    pipesGrace.abort();
    child.stdout.destroy();
    child.stderr.destroy();
    out.flush();
    err.flush();
    signal.removeEventListener('abort', onAbort);
    const how = exitSignal === null ? `exit code ${code}` : `signal ${exitSignal}`;
    await finishLog(log, `=== ${signal.aborted ? 'stopped by ai-batch' : 'ended'}: ${how}\n`);
    return { code, exitSignal, lastError };
  })();
  options.registry.track(tree, task);

  const { code, exitSignal, lastError } = await task;
  if (logError) throw new Error(`cannot write the log ${logPath}: ${logError.message}`);
  if (signal.aborted) throw new Error(`stopped by ai-batch (${exitSignal ?? `exit code ${code}`})`);
  if (code === 0) return { exitCode: 0, log: logPath };
  const detail = lastError ? `: ${lastError.slice(0, 200)}` : '';
  throw new Error(
    exitSignal === null ? `exited with code ${code}${detail}` : `killed by ${exitSignal}${detail}`,
  );
}

async function finishLog(log: NodeJS.WritableStream, line: string): Promise<void> {
  await new Promise<void>((resolve) => {
    log.write(line);
    log.end(resolve);
  });
}
