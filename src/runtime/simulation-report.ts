/**
 * Turns the engine's events into a simulation report. It listens to `events$` only (never
 * `list()`, which costs O(jobs) per call), so recording costs O(1) per event and the report
 * O(n log n) at the end (sorting for percentiles).
 */
import {
  DependencyCycleError,
  DuplicateJobError,
  InvalidJobError,
  QueueFullError,
  UnknownDependencyError,
  UnschedulableError,
} from '../core/errors.js';
import { PRIORITY_NAMES, type PriorityName } from '../core/priority.js';
import type { ResourceTotals } from '../core/resources.js';
import { JOB_STATES, type Allocation } from '../core/types.js';
import type { SchedulerEvent } from './types.js';
import type {
  DurationBreakdown,
  DurationStats,
  RejectionGroup,
  SimulatedJobState,
  SimulationJob,
  SimulationJobReport,
  SimulationReport,
  Utilisation,
} from './simulation-types.js';

/** What a field of a request is, in words, and what holds it: `GPUs` … `a node`. */
const RESOURCE_WORDS: Record<string, { what: string; holder: string; unit: string }> = {
  'resources.gpu': { what: 'GPUs', holder: 'a node', unit: '' },
  'resources.vramMb': { what: 'VRAM', holder: 'a GPU', unit: ' MB' },
  'resources.cpu': { what: 'CPU cores', holder: 'a node', unit: '' },
  'resources.memoryMb': { what: 'memory', holder: 'a node', unit: ' MB' },
};

/**
 * Why the engine refused a job, in words that follow a count ("289 asked for more GPUs than a
 * node has (at most 8)"), and the key it is grouped by.
 */
export function rejectionReason(error: unknown): Omit<RejectionGroup, 'count' | 'firstJob'> {
  if (error instanceof UnschedulableError) {
    const { field, max } = error;
    const words = RESOURCE_WORDS[field];
    const base = { error: error.name, field };
    if (words)
      return {
        ...base,
        reason: `asked for more ${words.what} than ${words.holder} has (at most ${max}${words.unit})`,
      };
    if (field.startsWith('resources.custom.')) {
      const name = field.slice('resources.custom.'.length);
      return {
        ...base,
        reason:
          max === 0
            ? `asked for ${JSON.stringify(name)}, which no node has`
            : `asked for more ${JSON.stringify(name)} than a node has (at most ${max})`,
      };
    }
    return {
      ...base,
      reason: 'asked for more than any one node has at once (CPU, memory, GPUs with that VRAM, custom)',
    };
  }
  if (error instanceof QueueFullError)
    return { error: error.name, reason: `arrived when the queue was full (maxQueueSize ${error.max})` };
  if (error instanceof UnknownDependencyError)
    return {
      error: error.name,
      field: error.field,
      reason: 'depended on a job that was rejected or never submitted',
    };
  if (error instanceof DuplicateJobError)
    return { error: error.name, field: error.field, reason: 'reused the id of an earlier job' };
  if (error instanceof DependencyCycleError)
    return { error: error.name, field: error.field, reason: 'depended on each other in a cycle' };
  if (error instanceof InvalidJobError)
    return {
      error: error.name,
      field: error.field,
      reason: `had an invalid ${error.field} (${error.allowed})`,
    };
  const name = error instanceof Error ? error.name : 'Error';
  return { error: name, reason: `were refused: ${error instanceof Error ? error.message : String(error)}` };
}

type Track = {
  state: SimulatedJobState;
  submittedAt: number | undefined;
  startedAt: number | undefined;
  endedAt: number | undefined;
  attempts: number;
  allocation: Allocation | undefined;
  error: string | undefined;
  /** Start of the holding interval in progress, if any. */
  holdingSince: number | undefined;
};

type Amounts = { cpu: number; memoryMb: number; gpu: number; vramMb: number };

const ALL_STATES: readonly SimulatedJobState[] = ['unsubmitted', 'rejected', ...JOB_STATES];

const LIVE: ReadonlySet<SimulatedJobState> = new Set([
  'pending',
  'queued',
  'scheduled',
  'running',
  'retrying',
]);

function amountsOf(allocation: Allocation): Amounts {
  let gpu = 0;
  let vramMb = 0;
  for (const g of allocation.gpus) {
    gpu += g.share;
    vramMb += g.vramMb;
  }
  return { cpu: allocation.cpu, memoryMb: allocation.memoryMb, gpu, vramMb };
}

/** Count, mean, nearest-rank p50/p99 and max of a list of durations. */
export function durationStats(values: number[]): DurationStats {
  const n = values.length;
  if (n === 0) return { count: 0, mean: 0, p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  const rank = (p: number) => sorted[Math.max(0, Math.ceil(p * n) - 1)] as number;
  return { count: n, mean: sum / n, p50: rank(0.5), p99: rank(0.99), max: sorted[n - 1] as number };
}

function breakdown(samples: Array<{ priority: PriorityName; value: number }>): DurationBreakdown {
  const byPriority: DurationBreakdown['byPriority'] = {};
  // Highest priority first, so that the report reads in order of importance.
  for (const priority of [...PRIORITY_NAMES].reverse()) {
    const values = samples.filter((s) => s.priority === priority).map((s) => s.value);
    if (values.length > 0) byPriority[priority] = durationStats(values);
  }
  return { overall: durationStats(samples.map((s) => s.value)), byPriority };
}

/** Records what happens to each job of a simulation and builds the report. */
export class SimulationRecorder {
  private readonly tracks: Track[];
  private readonly index = new Map<string, number>();
  /** allocated × ms, summed over finished holding intervals. */
  private readonly busy: Amounts = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 };
  private frozen = false;
  private live = 0;
  /** Why jobs were refused, by reason, in the order each reason was first seen. */
  private readonly refusals = new Map<string, RejectionGroup>();
  /** The last submission, start or end seen. */
  lastEventAt = 0;

  constructor(private readonly jobs: readonly SimulationJob[]) {
    this.tracks = jobs.map((job, i) => {
      this.index.set(job.id, i);
      return {
        state: 'unsubmitted',
        submittedAt: undefined,
        startedAt: undefined,
        endedAt: undefined,
        attempts: 0,
        allocation: undefined,
        error: undefined,
        holdingSince: undefined,
      };
    });
  }

  /** Jobs submitted and not yet final. */
  get liveJobs(): number {
    return this.live;
  }

  /** Stops recording: what the engine does while it shuts down is not part of the run. */
  freeze(): void {
    this.frozen = true;
  }

  /** The engine refused a job at submit. */
  rejected(i: number, at: number, error: unknown): void {
    const track = this.tracks[i] as Track;
    track.state = 'rejected';
    track.submittedAt = at;
    track.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const why = rejectionReason(error);
    const key = `${why.error}\u0000${why.reason}`;
    let group = this.refusals.get(key);
    if (!group) {
      group = { ...why, count: 0, firstJob: (this.jobs[i] as SimulationJob).id };
      this.refusals.set(key, group);
    }
    group.count++;
  }

  /** Records one engine event. */
  record(event: SchedulerEvent): void {
    if (this.frozen || !event.type.startsWith('job.') || !('job' in event)) return;
    const i = this.index.get(event.job.id);
    if (i === undefined) return;
    const track = this.tracks[i] as Track;
    const { at, job } = event;
    switch (event.type) {
      case 'job.submitted':
        track.state = 'pending';
        track.submittedAt = at;
        this.live++;
        this.lastEventAt = Math.max(this.lastEventAt, at);
        return;
      case 'job.queued':
        track.state = 'queued';
        return;
      case 'job.started':
        track.state = 'running';
        track.startedAt ??= at;
        track.attempts = job.attempt;
        track.allocation = job.allocation;
        track.holdingSince = at;
        this.lastEventAt = Math.max(this.lastEventAt, at);
        return;
      case 'job.retrying':
        track.state = 'retrying';
        track.attempts = job.attempt;
        this.release(track, at);
        return;
      case 'job.completed':
      case 'job.failed':
      case 'job.cancelled':
        track.state = job.state;
        track.attempts = job.attempt;
        track.endedAt = at;
        if (job.error) track.error = job.error.message;
        this.release(track, at);
        this.live--;
        this.lastEventAt = Math.max(this.lastEventAt, at);
        return;
      default:
        return;
    }
  }

  private release(track: Track, at: number): void {
    if (track.holdingSince === undefined || !track.allocation) return;
    this.addBusy(track.allocation, at - track.holdingSince);
    track.holdingSince = undefined;
  }

  private addBusy(allocation: Allocation, ms: number, into: Amounts = this.busy): void {
    const a = amountsOf(allocation);
    into.cpu += a.cpu * ms;
    into.memoryMb += a.memoryMb * ms;
    into.gpu += a.gpu * ms;
    into.vramMb += a.vramMb * ms;
  }

  /** The report of a run over [startMs, endMs]; jobs still holding count up to endMs. */
  report(
    startMs: number,
    endMs: number,
    capacity: ResourceTotals,
    allocatedAtEnd: ResourceTotals,
  ): SimulationReport {
    const counts = Object.fromEntries(ALL_STATES.map((s) => [s, 0])) as Record<SimulatedJobState, number>;
    const waits: Array<{ priority: PriorityName; value: number }> = [];
    const jcts: Array<{ priority: PriorityName; value: number }> = [];
    const busy = { ...this.busy };
    const jobs = this.tracks.map((track, i): SimulationJobReport => {
      const priority = (this.jobs[i] as SimulationJob).priority ?? 'normal';
      counts[track.state]++;
      // A job still holding at the end counts up to endMs (without closing its interval).
      if (track.holdingSince !== undefined && track.allocation && LIVE.has(track.state)) {
        this.addBusy(track.allocation, endMs - track.holdingSince, busy);
      }
      const out: SimulationJobReport = {
        id: (this.jobs[i] as SimulationJob).id,
        priority,
        state: track.state,
        attempts: track.attempts,
      };
      if (track.submittedAt !== undefined) out.submittedAt = track.submittedAt;
      if (track.startedAt !== undefined) out.startedAt = track.startedAt;
      if (track.endedAt !== undefined) out.endedAt = track.endedAt;
      if (track.submittedAt !== undefined && track.startedAt !== undefined) {
        out.waitMs = track.startedAt - track.submittedAt;
        waits.push({ priority, value: out.waitMs });
      }
      if (
        (track.state === 'completed' || track.state === 'failed') &&
        track.submittedAt !== undefined &&
        track.endedAt !== undefined
      ) {
        out.jctMs = track.endedAt - track.submittedAt;
        jcts.push({ priority, value: out.jctMs });
      }
      if (track.allocation) out.allocation = track.allocation;
      if (track.error !== undefined) out.error = track.error;
      return out;
    });
    const makespanMs = Math.max(0, endMs - startMs);
    const share = (used: number, cap: number) => (cap > 0 && makespanMs > 0 ? used / (cap * makespanMs) : 0);
    const utilisation: Utilisation = {
      cpu: share(busy.cpu, capacity.cpu),
      memoryMb: share(busy.memoryMb, capacity.memoryMb),
      gpu: share(busy.gpu, capacity.gpu),
      vramMb: share(busy.vramMb, capacity.vramMb),
    };
    // Largest first; equal groups in the order they were first seen (a stable sort).
    const rejections = [...this.refusals.values()]
      .sort((a, b) => b.count - a.count)
      .map((group) => ({ ...group }));
    return {
      jobs,
      counts,
      rejections,
      startMs,
      endMs,
      makespanMs,
      utilisation,
      wait: breakdown(waits),
      jct: breakdown(jcts),
      resources: { capacity, allocatedAtEnd },
    };
  }
}
