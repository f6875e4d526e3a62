/**
 * `simulate()`: replays a list of jobs through the real engine — the same `createScheduler()`,
 * job machines, queue and resource ledger as production — under a virtual clock, and reports
 * what happened. Nothing is re-implemented: jobs are submitted when the clock reaches their
 * arrival time, and "run" through one handler that waits their duration on that clock.
 */
import { ATTEMPT, type JobHandler } from '../actors/handler.js';
import type { AttemptSignal } from '../machines/job.logic.js';
import { InvalidOptionError } from '../core/errors.js';
import { isObject } from '../core/job-spec.js';
import { nextRandom } from '../core/random.js';
import { createVirtualClock, type SchedulerClock } from './clock.js';
import { createScheduler, type Scheduler } from './scheduler.js';
import { checkSimulationJobs, checkSimulationOptions } from './simulation-input.js';
import { SimulationRecorder } from './simulation-report.js';
import type { SimulationInput, SimulationJob, SimulationReport } from './simulation-types.js';

/** The engine's default aging interval, which is also the simulation's default tick. */
const DEFAULT_AGING_INTERVAL_MS = 60_000;

/** What the simulated handler is told about a job. */
type RunPayload = { durationMs: number; fails: boolean | number };

/** A reproducible random source (mulberry32) for the engine's retry jitter. */
function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    const [value, next] = nextRandom(state);
    state = next;
    return value;
  };
}

/**
 * The one handler of a simulation: waits `durationMs` on the virtual clock, then succeeds or
 * fails as the job says. An abort (cancel, shutdown, timeout) clears its timer at once, so a
 * cancelled job leaves nothing behind on the clock. `Infinity` sets no timer at all: the
 * virtual clock would run a timer of infinite delay at once.
 */
function runHandler(clock: SchedulerClock): JobHandler<RunPayload> {
  return (context) =>
    new Promise<void>((resolve, reject) => {
      const { payload, attempt } = context;
      const failing =
        payload.fails === true || (typeof payload.fails === 'number' && attempt <= payload.fails);
      let done = false;
      const finish = () => {
        done = true;
        if (failing) reject(new Error(`simulated failure of attempt ${attempt}`));
        else resolve();
      };
      const timer = Number.isFinite(payload.durationMs)
        ? clock.setTimeout(finish, payload.durationMs)
        : undefined;
      const onAbort = () => {
        if (done) return;
        done = true;
        if (timer !== undefined) clock.clearTimeout(timer);
        reject(new Error('aborted'));
      };
      // The engine's attempt tells of the abort without an AbortController (~4% of a replay).
      const hook = (context as { [ATTEMPT]?: AttemptSignal })[ATTEMPT];
      if (hook?.onAbort) return hook.onAbort(onAbort);
      const signal = context.signal;
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
    });
}

/**
 * Replays jobs through the real engine in virtual time and reports per-job times and states,
 * makespan, utilisation per resource, and wait and JCT statistics (overall and by priority).
 *
 * Deterministic: the same input and `options.seed` give the same report. A malformed job
 * throws `InvalidJobError` naming `jobs[i].<field>` before anything runs; a job the engine
 * refuses at its arrival (queue full, can never fit the pool) is reported as `rejected`.
 *
 * @example
 * ```ts
 * const report = await simulate({
 *   resources: { nodes: [{ cpu: 8, memoryMb: 32_768, gpus: 2 }] },
 *   jobs: [
 *     { id: 'a', submitAtMs: 0, durationMs: 60_000, resources: { gpu: 2 } },
 *     { id: 'b', submitAtMs: 1_000, durationMs: 30_000, resources: { gpu: 1 }, priority: 'high' },
 *   ],
 * });
 * report.jobs[1]?.waitMs; // 59_000: b waited for a's GPUs
 * ```
 */
export async function simulate(input: SimulationInput): Promise<SimulationReport> {
  if (typeof input !== 'object' || input === null) {
    throw new InvalidOptionError('input', input, 'an object { resources, jobs, options }');
  }
  const pool: unknown = input.resources;
  if (!isObject(pool) || 'detect' in pool) {
    // Not 'detect': a simulation runs on the pool it is given, never on this host's.
    throw new InvalidOptionError('resources', pool, 'a pool { cpu, memoryMb, gpus } or { nodes: [...] }');
  }
  const options = input.options ?? {};
  checkSimulationOptions(options);
  const { untilMs, seed, ...engine } = options;
  const jobs = input.jobs;
  const order = checkSimulationJobs(jobs);
  // Virtual time starts at the first arrival, not at 0: before it, the engine's periodic tick
  // would step through nothing — for a trace stamped with epoch times (~1.8e12 ms), 3e7 ticks.
  const firstArrival = order[0];
  const clock = createVirtualClock({
    startAt: firstArrival === undefined ? 0 : (jobs[firstArrival] as SimulationJob).submitAtMs,
  });
  const hasDependencies = jobs.some((job) => (job.dependsOn?.length ?? 0) > 0);
  const scheduler = createScheduler({
    ...engine,
    maxQueueSize: engine.maxQueueSize ?? Number.POSITIVE_INFINITY,
    maxConcurrentJobs: engine.maxConcurrentJobs ?? Number.POSITIVE_INFINITY,
    // Without an event, the queue's order changes only when a job gains an aging level, so a
    // tick per aging interval notices that; the engine's 5 s tick notices it sooner but costs
    // ~12× as many virtual-time steps (each a retry of the queue) on a months-long trace.
    schedulingIntervalMs:
      engine.schedulingIntervalMs ?? engine.aging?.intervalMs ?? DEFAULT_AGING_INTERVAL_MS,
    resources: input.resources,
    handlers: { run: runHandler(clock) },
    clock,
    monitor: false,
    random: seededRandom(seed ?? 1),
    // A dependency must still be known to the engine when its dependent arrives; without
    // dependencies, finished records are dropped at once to keep long traces small.
    retainFinished: hasDependencies ? Number.POSITIVE_INFINITY : 0,
  });
  const recorder = new SimulationRecorder(jobs);
  const subscription = scheduler.events$.subscribe((event) => recorder.record(event));
  const capacity = scheduler.stats().resources.capacity;

  // One timer at a time: the next distinct arrival instant, which submits every job due then.
  let cursor = 0;
  const submit = (i: number) => {
    const job = jobs[i] as SimulationJob;
    try {
      scheduler.submit({
        type: 'run',
        id: job.id,
        payload: { durationMs: job.durationMs, fails: job.fails ?? false },
        ...(job.resources === undefined ? {} : { resources: job.resources }),
        ...(job.priority === undefined ? {} : { priority: job.priority }),
        ...(job.dependsOn === undefined ? {} : { dependsOn: job.dependsOn }),
        ...(job.dependencyPolicy === undefined ? {} : { dependencyPolicy: job.dependencyPolicy }),
        ...(job.group === undefined ? {} : { group: job.group }),
      });
    } catch (error) {
      recorder.rejected(i, clock.now(), error);
    }
  };
  const arrive = (due: number) => {
    // Compare with the arrival time itself, not clock.now(): now + (due − now) may round.
    for (let i = order[cursor]; i !== undefined && (jobs[i] as SimulationJob).submitAtMs <= due;) {
      submit(i);
      i = order[++cursor];
    }
    armNextArrival();
  };
  const armNextArrival = () => {
    const next = order[cursor];
    if (next === undefined) return;
    const due = (jobs[next] as SimulationJob).submitAtMs;
    clock.setTimeout(() => arrive(due), due - clock.now());
  };

  try {
    // Observers read (events$, stats(), get()); the cast only widens the handler map they see.
    input.observe?.(scheduler as unknown as Scheduler, clock);
    armNextArrival();
    if (untilMs === undefined) await clock.runUntilIdle({ maxTimers: Number.POSITIVE_INFINITY });
    else await clock.advanceBy(Math.max(0, untilMs - clock.now()));
    recorder.freeze();
    const first = order[0];
    const startMs =
      first !== undefined && cursor > 0 ? (jobs[first] as SimulationJob).submitAtMs : (untilMs ?? 0);
    const cut = untilMs !== undefined && (recorder.liveJobs > 0 || cursor < order.length);
    const endMs = Math.max(startMs, cut ? (untilMs as number) : recorder.lastEventAt);
    return recorder.report(startMs, endMs, capacity, scheduler.stats().resources.allocated);
  } finally {
    recorder.freeze();
    subscription.unsubscribe();
    // Whatever is still live (never-ending jobs, jobs stuck behind them) is cancelled.
    const closed = scheduler.shutdown({ mode: 'cancel', timeoutMs: 0 });
    await clock.flush();
    await closed;
  }
}
