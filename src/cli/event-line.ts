/**
 * One human-readable line per scheduler event, for runs without a terminal (CI logs, files):
 * `[  1.2s] started    upscale-1 attempt 1/2 on gpu 0 ×0.5 · cpu 1`.
 */
import type { JobSnapshot, SchedulerEvent } from '../runtime/types.js';
import { formatAllocation, formatDuration, formatMb, formatPercent } from './format.js';

const VERB_WIDTH = 10;

function stamp(at: number, startAt: number): string {
  return `[${formatDuration(Math.max(0, at - startAt)).padStart(7)}]`;
}

function attemptOf(job: JobSnapshot): string {
  return `attempt ${job.attempt}/${job.maxAttempts}`;
}

function line(at: number, startAt: number, verb: string, text: string): string {
  return `${stamp(at, startAt)} ${verb.padEnd(VERB_WIDTH)} ${text}`;
}

/**
 * The line for one event, or `undefined` for events that say nothing a reader of a log needs
 * (`resources.changed` follows every start and end, whose lines already name the allocation).
 * `startAt` is the clock time the run began; lines show time since then.
 */
export function renderEventLine(event: SchedulerEvent, startAt: number): string | undefined {
  const at = event.at;
  switch (event.type) {
    case 'job.submitted':
      return line(at, startAt, 'submitted', `${event.job.id} (${event.job.priority})`);
    case 'job.queued':
      return line(at, startAt, 'queued', `${event.job.id} (${event.job.effectivePriority})`);
    case 'job.started': {
      const held = event.job.allocation ? formatAllocation(event.job.allocation) : '';
      const where = held ? ` on ${held}` : '';
      return line(at, startAt, 'started', `${event.job.id} ${attemptOf(event.job)}${where}`);
    }
    case 'job.progress': {
      const { fraction, note } = event.job.progress;
      return line(
        at,
        startAt,
        'progress',
        `${event.job.id} ${formatPercent(fraction)}${note ? ` ${note}` : ''}`,
      );
    }
    case 'job.stopping':
      return line(
        at,
        startAt,
        'stopping',
        `${event.job.id} (${event.reason}): waiting for its processes to end; it keeps its resources until then`,
      );
    case 'job.forceReleased':
      return line(
        at,
        startAt,
        'WARNING',
        `${event.job.id} attempt ${event.attempt}: its resources were released ` +
          `${formatDuration(event.stoppingMs)} after it was told to stop (${event.reason}), but its ` +
          `processes have not ended (stop timeout); they may still be using them`,
      );
    case 'job.retrying':
      return line(
        at,
        startAt,
        'retrying',
        `${event.job.id} ${attemptOf(event.job)} failed: ${event.job.error?.message ?? 'unknown error'}; ` +
          `next try in ${formatDuration(event.delayMs)}`,
      );
    case 'job.completed': {
      const took = event.job.startedAt === undefined ? '' : ` in ${formatDuration(at - event.job.startedAt)}`;
      return line(at, startAt, 'completed', `${event.job.id}${took}`);
    }
    case 'job.failed':
      return line(
        at,
        startAt,
        'failed',
        `${event.job.id} (${attemptOf(event.job)}): ${event.job.error?.message ?? 'failed'}`,
      );
    case 'job.cancelled':
      return line(at, startAt, 'cancelled', `${event.job.id}: ${event.job.error?.message ?? 'cancelled'}`);
    case 'job.boosted':
      return line(at, startAt, 'boosted', event.jobIds.join(', '));
    case 'boost.expired':
      return line(at, startAt, 'unboosted', event.jobIds.join(', '));
    case 'boost.ignored':
      return line(
        at,
        startAt,
        'boost',
        `ignored for ${event.jobs.map((j) => `${j.id} (${j.state})`).join(', ')}`,
      );
    case 'boost.invalid':
      return line(at, startAt, 'boost', `invalid: ${event.message}`);
    case 'resources.changed':
      return undefined;
    case 'store.writeFailed':
      return line(
        at,
        startAt,
        'WARNING',
        `the state store could not be written${event.jobId ? ` (job ${event.jobId})` : ''}: ${event.message}`,
      );
    case 'resources.pressure': {
      const p = event.pressure;
      const what = p.resource === 'vram' ? `GPU ${p.gpuIndex ?? '?'} VRAM` : 'memory';
      return line(
        at,
        startAt,
        'pressure',
        `${event.nodeId}: ${what} used outside ai-batch; admitting ${formatMb(p.limitMb)} of ` +
          `${formatMb(p.capacityMb)} (${formatMb(p.measuredFreeMb)} free)`,
      );
    }
    case 'resources.pressureEnded':
      return line(at, startAt, 'pressure', `${event.nodeId}: ${event.resource} pressure ended`);
    case 'node.added': {
      const n = event.node;
      return line(
        at,
        startAt,
        'node',
        `${n.id} joined: ${n.gpus.length} GPU${n.gpus.length === 1 ? '' : 's'} · cpu ${n.cpu} · ${formatMb(n.memoryMb)}`,
      );
    }
    case 'node.retired':
      return line(
        at,
        startAt,
        'node',
        `${event.nodeId} retired: nothing new starts on it` +
          (event.jobIds.length > 0 ? `; still running ${event.jobIds.join(', ')}` : ''),
      );
    case 'node.removed':
      return line(at, startAt, 'node', `${event.nodeId} left the pool`);
    case 'scheduler.ready':
      return line(at, startAt, 'ready', event.warnings.length ? event.warnings.join('; ') : 'pool known');
    case 'scheduler.paused':
      return line(at, startAt, 'paused', '');
    case 'scheduler.resumed':
      return line(at, startAt, 'resumed', '');
    case 'scheduler.idle':
      return line(at, startAt, 'idle', 'nothing left to run');
    case 'scheduler.shutdown': {
      const r = event.report;
      return line(
        at,
        startAt,
        'shutdown',
        `${r.mode}: ${r.completed.length} completed while draining, ${r.cancelled.length} not started, ` +
          `${r.aborted.length} stopped${r.timedOut ? ' (drain timed out)' : ''}` +
          (r.stillRunning.length > 0
            ? `; gave up waiting for ${r.stillRunning.map((j) => j.id).join(', ')} (resources force-released)`
            : ''),
      );
    }
  }
}
