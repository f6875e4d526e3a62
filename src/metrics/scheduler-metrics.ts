/**
 * Prometheus metrics of a scheduler (issue 17, "Operations"; docs/metrics.md): of any scheduler —
 * a single host's today, the global scheduler (the leader, whose pool is the registered hosts)
 * later — read through its public API only.
 *
 * Two sources, each for what it tells truly:
 * - gauges (jobs by state, waiting jobs by priority and reason, capacity and allocation per node)
 *   are read at scrape time, from `stats()`, `list()`, `nodes()` and `get()`: a scrape shows the
 *   scheduler as it is then, and nothing is kept between scrapes;
 * - counters and histograms (submissions, attempts by outcome, retries, ends, queue wait and run
 *   time) follow `events$`, timed by the events' own `at` (the scheduler's clock, virtual in
 *   tests). All that is kept per job is when a job now waiting in the queue was queued, and when
 *   an attempt now running started; both are let go at the job's next step.
 *
 * Counters start at zero when the collector is made (a process's counters do: Prometheus's
 * `rate()` and `increase()` expect resets): what happened before — jobs a durable scheduler
 * recovered, say — is in the gauges, not the counters. An attempt whose queueing or start came
 * before the collector is not timed.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Subscription, Observable } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import { PRIORITY_NAMES } from '../core/priority.js';
import { JOB_STATES, type JobState } from '../core/types.js';
import type { JobSnapshot, SchedulerEvent, SchedulerStats } from '../runtime/types.js';
import { checkBuckets, checkOptionObject, checkPrefix, Registration, registryOf, seconds } from './common.js';

/** One node of a pool as `scheduler.nodes()` shows it: what the metrics read of it. */
export type MetricsPoolNode = {
  node: {
    id: string;
    cpu: number;
    memoryMb: number;
    gpus: ReadonlyArray<{ vramMb: number }>;
    custom: Readonly<Record<string, number>>;
  };
  state: string;
  /** The jobs holding an allocation on it. */
  jobIds: readonly string[];
};

/**
 * What the metrics read of a scheduler: a `Scheduler` (`createScheduler()`) is one. `nodes()`,
 * when the scheduler has it, gives capacity and allocation per node; without it they are given
 * for the whole pool, as node `all`.
 */
export type SchedulerMetricsSource = {
  readonly events$: Observable<SchedulerEvent>;
  stats(): SchedulerStats & { nodes?: { active: number; retired: number } };
  list(filter?: { state?: JobState }): JobSnapshot[];
  get(id: string): JobSnapshot | undefined;
  nodes?(): readonly MetricsPoolNode[];
};

/** `schedulerMetrics`'s options. */
export type SchedulerMetricsOptions = {
  /** Where the metrics are registered. @default a new Registry of their own */
  registry?: Registry;
  /** The start of every metric name. @default 'ai_batch_' */
  prefix?: string;
  /** Upper bounds of the histograms' buckets, in seconds. @default 0.1 s to 1 day (see docs/metrics.md) */
  buckets?: { queueWait?: number[]; run?: number[] };
};

/** The metrics of one scheduler, registered. */
export type SchedulerMetrics = {
  readonly registry: Registry;
  /** Stops following the scheduler and takes its metrics out of the registry. Idempotent. */
  close(): void;
};

/** How an attempt ended, as the `outcome` label says it. */
export const ATTEMPT_OUTCOMES = ['completed', 'failed', 'timeout', 'cancelled', 'interrupted'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** Every reason a job waits, as its snapshot's `waitReason` says (zeros included in the gauge). */
const WAIT_REASONS = ['dependencies', 'resources', 'concurrency', 'paused', 'backoff', 'noNode'] as const;

/** The states in which a job waits, and the reason a snapshot in that state gives when it gives none. */
const WAITING: ReadonlyArray<[JobState, string]> = [
  ['pending', 'dependencies'],
  ['queued', 'resources'],
  ['retrying', 'backoff'],
];

const FINAL_STATES = ['completed', 'failed', 'cancelled'] as const;

/** Resources as the `resource` label names them: base units (bytes), custom ones as `custom:<name>`. */
type Amounts = { cpu: number; memoryMb: number; gpu: number; vramMb: number; custom: Record<string, number> };

const MB = 1_048_576;

function setAmounts(gauge: Gauge, node: string, amounts: Amounts): void {
  gauge.set({ node, resource: 'cpu' }, amounts.cpu);
  gauge.set({ node, resource: 'memory_bytes' }, amounts.memoryMb * MB);
  gauge.set({ node, resource: 'gpu' }, amounts.gpu);
  gauge.set({ node, resource: 'vram_bytes' }, amounts.vramMb * MB);
  for (const [name, value] of Object.entries(amounts.custom))
    gauge.set({ node, resource: `custom:${name}` }, value);
}

function emptyAmounts(): Amounts {
  return { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0, custom: {} };
}

/** How the attempt that a job's end (or retry) closed ended. */
function outcomeOf(event: SchedulerEvent & { job: JobSnapshot }): AttemptOutcome {
  if (event.type === 'job.completed') return 'completed';
  if (event.type === 'job.cancelled') return 'cancelled';
  switch (event.job.error?.kind) {
    case 'timeout':
      return 'timeout';
    case 'interrupted':
      return 'interrupted';
    case 'cancelled':
    case 'shutdown':
      return 'cancelled';
    default:
      return 'failed';
  }
}

/**
 * Prometheus metrics of a scheduler (every metric, its labels and units: docs/metrics.md). Serve
 * them with `serveMetrics(metrics.registry, { port })`, or add them to a registry of your own.
 * Throws `InvalidOptionError` naming the option for a bad prefix, registry or buckets, and for a
 * registry that holds these metrics already (another scheduler's, under the same prefix).
 */
export function schedulerMetrics(
  scheduler: SchedulerMetricsSource,
  options: SchedulerMetricsOptions = {},
): SchedulerMetrics {
  if (
    typeof scheduler !== 'object' ||
    scheduler === null ||
    typeof scheduler.stats !== 'function' ||
    typeof (scheduler.events$ as { subscribe?: unknown } | undefined)?.subscribe !== 'function'
  )
    throw new InvalidOptionError('scheduler', scheduler, 'a scheduler (createScheduler())');
  const checked = checkOptionObject<SchedulerMetricsOptions>('options', options, [
    'registry',
    'prefix',
    'buckets',
  ]);
  const prefix = checkPrefix(checked.prefix);
  const buckets = checkOptionObject<NonNullable<SchedulerMetricsOptions['buckets']>>(
    'buckets',
    checked.buckets,
    ['queueWait', 'run'],
  );
  const registry = registryOf(checked.registry);
  const queueWaitBuckets = checkBuckets('buckets.queueWait', buckets.queueWait);
  const runBuckets = checkBuckets('buckets.run', buckets.run);

  const name = (n: string): string => `${prefix}${n}`;
  const names = [
    'jobs',
    'jobs_waiting',
    'jobs_stopping',
    'nodes',
    'resource_capacity',
    'resource_allocated',
    'jobs_submitted_total',
    'job_attempts_total',
    'job_retries_total',
    'jobs_finished_total',
    'job_queue_wait_seconds',
    'job_run_seconds',
  ].map(name);
  const registration = new Registration(registry);
  registration.claim(names);
  const registers = [registry];

  const jobs: Gauge<'state'> = new Gauge({
    name: name('jobs'),
    help: 'Jobs the scheduler knows, by state (finished ones as long as it retains them).',
    labelNames: ['state'],
    registers,
    collect: () => {
      const counts = scheduler.stats().jobs;
      for (const state of JOB_STATES) jobs.set({ state }, counts[state] ?? 0);
    },
  });

  const waiting: Gauge<'priority' | 'reason'> = new Gauge({
    name: name('jobs_waiting'),
    help: 'Jobs waiting to run (pending, queued or retrying), by effective priority and wait reason.',
    labelNames: ['priority', 'reason'],
    registers,
    collect: () => {
      const counts = new Map<string, number>();
      for (const [state, fallback] of WAITING)
        for (const job of scheduler.list({ state })) {
          const key = `${job.effectivePriority}\u0000${job.waitReason ?? fallback}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      waiting.reset();
      for (const priority of PRIORITY_NAMES)
        for (const reason of WAIT_REASONS) waiting.set({ priority, reason }, 0);
      for (const [key, count] of counts) {
        const [priority = '', reason = ''] = key.split('\u0000');
        waiting.set({ priority, reason }, count);
      }
    },
  });

  const stopping: Gauge = new Gauge({
    name: name('jobs_stopping'),
    help: 'Running attempts told to stop whose handlers have not settled yet (they still hold their resources).',
    registers,
    collect: () => {
      stopping.set(scheduler.stats().stopping);
    },
  });

  const nodes: Gauge<'state'> = new Gauge({
    name: name('nodes'),
    help: 'Nodes of the pool: active ones take new jobs; retired ones take none and leave with their last allocation.',
    labelNames: ['state'],
    registers,
    collect: () => {
      nodes.reset();
      const counts = scheduler.stats().nodes;
      if (counts) {
        nodes.set({ state: 'active' }, counts.active);
        nodes.set({ state: 'retired' }, counts.retired);
      }
    },
  });

  /** Capacity and allocation by node: from `nodes()`, or the pool's totals as node `all`. */
  const perNode = (): Array<{ node: string; capacity: Amounts; allocated: Amounts }> => {
    if (typeof scheduler.nodes !== 'function') {
      const { capacity, allocated } = scheduler.stats().resources;
      return [{ node: 'all', capacity, allocated }];
    }
    return scheduler.nodes().map(({ node, jobIds }) => {
      const capacity: Amounts = {
        cpu: node.cpu,
        memoryMb: node.memoryMb,
        gpu: node.gpus.length,
        vramMb: node.gpus.reduce((sum, g) => sum + g.vramMb, 0),
        custom: { ...node.custom },
      };
      const allocated = emptyAmounts();
      for (const custom of Object.keys(node.custom)) allocated.custom[custom] = 0;
      for (const id of jobIds) {
        const a = scheduler.get(id)?.allocation;
        if (!a || a.nodeId !== node.id) continue;
        allocated.cpu += a.cpu;
        allocated.memoryMb += a.memoryMb;
        for (const g of a.gpus) {
          allocated.gpu += g.share;
          allocated.vramMb += g.vramMb;
        }
        for (const [k, v] of Object.entries(a.custom)) allocated.custom[k] = (allocated.custom[k] ?? 0) + v;
      }
      return { node: node.id, capacity, allocated };
    });
  };

  const capacity: Gauge<'node' | 'resource'> = new Gauge({
    name: name('resource_capacity'),
    help: 'What each node of the pool has, by resource (cpu: cores; gpu: GPUs; memory and VRAM in bytes; custom:<name>: units).',
    labelNames: ['node', 'resource'],
    registers,
    collect: () => {
      capacity.reset();
      for (const n of perNode()) setAmounts(capacity, n.node, n.capacity);
    },
  });

  const allocated: Gauge<'node' | 'resource'> = new Gauge({
    name: name('resource_allocated'),
    help: 'What is allocated to jobs on each node, by resource (units as resource_capacity; gpu counts shares).',
    labelNames: ['node', 'resource'],
    registers,
    collect: () => {
      allocated.reset();
      for (const n of perNode()) setAmounts(allocated, n.node, n.allocated);
    },
  });

  const submitted = new Counter({
    name: name('jobs_submitted_total'),
    help: 'Jobs accepted by submit().',
    registers,
  });
  const attempts = new Counter<'outcome'>({
    name: name('job_attempts_total'),
    help: 'Attempts that ended, by outcome (completed, failed, timeout, cancelled, interrupted).',
    labelNames: ['outcome'],
    registers,
  });
  const retries = new Counter({
    name: name('job_retries_total'),
    help: 'Failed attempts after which the job waits out its backoff to try again.',
    registers,
  });
  const finished = new Counter<'state'>({
    name: name('jobs_finished_total'),
    help: 'Jobs that reached a final state, by that state.',
    labelNames: ['state'],
    registers,
  });
  const queueWait = new Histogram({
    name: name('job_queue_wait_seconds'),
    help: 'Time from queued to started, per attempt (a retry waits again from when its backoff ended).',
    buckets: queueWaitBuckets,
    registers,
  });
  const run = new Histogram<'outcome'>({
    name: name('job_run_seconds'),
    help: 'Time from an attempt started to its end, by outcome.',
    labelNames: ['outcome'],
    buckets: runBuckets,
    registers,
  });
  for (const outcome of ATTEMPT_OUTCOMES) {
    attempts.inc({ outcome }, 0);
    run.zero({ outcome });
  }
  for (const state of FINAL_STATES) finished.inc({ state }, 0);

  /** When each job now queued was queued, and when each attempt now running started. */
  const queuedAt = new Map<string, number>();
  const startedAt = new Map<string, number>();

  const attemptEnded = (event: SchedulerEvent & { job: JobSnapshot }): void => {
    const id = event.job.id;
    queuedAt.delete(id);
    const started = startedAt.get(id);
    if (started === undefined) return;
    startedAt.delete(id);
    const outcome = outcomeOf(event);
    attempts.inc({ outcome });
    run.observe({ outcome }, seconds(Math.max(0, event.at - started)));
  };

  let subscription: Subscription | undefined = scheduler.events$.subscribe({
    next: (event) => {
      switch (event.type) {
        case 'job.submitted':
          submitted.inc();
          return;
        case 'job.queued':
          queuedAt.set(event.job.id, event.at);
          return;
        case 'job.started': {
          const id = event.job.id;
          const queued = queuedAt.get(id);
          queuedAt.delete(id);
          if (queued !== undefined) queueWait.observe(seconds(Math.max(0, event.at - queued)));
          startedAt.set(id, event.at);
          return;
        }
        case 'job.retrying':
          retries.inc();
          attemptEnded(event);
          return;
        case 'job.completed':
        case 'job.failed':
        case 'job.cancelled':
          finished.inc({ state: event.job.state });
          attemptEnded(event);
          return;
        default:
          return;
      }
    },
  });

  return {
    registry,
    close(): void {
      subscription?.unsubscribe();
      subscription = undefined;
      queuedAt.clear();
      startedAt.clear();
      registration.remove();
    },
  };
}
