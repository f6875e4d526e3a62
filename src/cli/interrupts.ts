/**
 * Ctrl-C during `ai-batch run`. Job processes lead their own process groups, so the terminal's
 * SIGINT reaches only the CLI, which decides:
 * 1. drain — start nothing new (queued jobs are cancelled), let running jobs finish for up to
 *    the drain timeout, then stop them;
 * 2. cancel — stop the running jobs now (each one's whole process tree);
 * 3. kill — SIGKILL every job process group and exit at once with code 130.
 * SIGTERM cancels, as a second Ctrl-C does; so does SIGHUP (the terminal was closed, the SSH
 * connection dropped): Node's default for it would end the CLI at once and leave the job
 * processes, which are not in the terminal's foreground group, running with nobody to stop them.
 */
import type { Scheduler } from '../runtime/scheduler.js';
import { formatDuration } from './format.js';
import type { ProcessRegistry } from './process-registry.js';
import type { Notice } from './reporter.js';

/** What the interrupt handling acts on. */
export type InterruptTarget = {
  scheduler: Pick<Scheduler, 'shutdown' | 'cancel' | 'list'>;
  registry: Pick<ProcessRegistry, 'killAll'>;
  notice: (notice: Notice) => void;
  drainTimeoutMs: number;
  /**
   * How long shutdown waits for stopped jobs' processes before it force-releases their
   * resources. @default Infinity (until they are gone)
   */
  stopTimeoutMs?: number;
  now: () => number;
  /** Ends the process on the third Ctrl-C. @default process.exit */
  exit?: (code: number) => void;
};

/** The source of signals. @default process */
export type SignalSource = Pick<NodeJS.Process, 'on' | 'off'>;

/**
 * Listens for SIGINT, SIGTERM and SIGHUP until the returned function is called. While it
 * listens, Node's default (exit at once, leaving detached job processes behind) is off.
 */
export function handleInterrupts(target: InterruptTarget, signals: SignalSource = process): () => void {
  let interrupts = 0;
  const stopTimeoutMs = target.stopTimeoutMs ?? Number.POSITIVE_INFINITY;
  const running = () =>
    target.scheduler.list().filter((job) => job.state === 'running' || job.state === 'scheduled');

  const cancelRunning = (why: string) => {
    const ids = running().map((job) => job.id);
    target.notice({
      type: 'run.interrupted',
      at: target.now(),
      action: 'cancel',
      message: `${why}: stopping ${ids.length} running job(s)${ids.length ? ` (${ids.join(', ')})` : ''}`,
    });
    // shutdown() returns the drain already under way, if any; cancelling each job stops it now.
    void target.scheduler.shutdown({ mode: 'cancel', stopTimeoutMs });
    for (const id of ids) target.scheduler.cancel(id);
  };

  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      const count = running().length;
      target.notice({
        type: 'run.interrupted',
        at: target.now(),
        action: 'drain',
        message:
          `Ctrl-C: draining — starting nothing new, waiting up to ${formatDuration(target.drainTimeoutMs)} ` +
          `for ${count} running job(s); Ctrl-C again to stop them`,
      });
      void target.scheduler.shutdown({ mode: 'drain', timeoutMs: target.drainTimeoutMs, stopTimeoutMs });
    } else if (interrupts === 2) {
      cancelRunning('Ctrl-C again');
    } else {
      target.notice({
        type: 'run.interrupted',
        at: target.now(),
        action: 'kill',
        message: 'Ctrl-C a third time: killing every job process and exiting',
      });
      target.registry.killAll();
      (target.exit ?? process.exit)(130);
    }
  };
  const onSigterm = () => cancelRunning('SIGTERM');
  const onSighup = () => cancelRunning('SIGHUP');

  signals.on('SIGINT', onSigint);
  signals.on('SIGTERM', onSigterm);
  signals.on('SIGHUP', onSighup);
  return () => {
    signals.off('SIGINT', onSigint);
    signals.off('SIGTERM', onSigterm);
    signals.off('SIGHUP', onSighup);
  };
}
