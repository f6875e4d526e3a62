/**
 * Every per-step invariant, on each way a scheduler can host its jobs:
 *
 * - `unwatched` — nobody subscribed to `events$`, no `inspect`: the library's default, where a job
 *   accepted straight into the queue gets its actor only when first needed (deferred actors);
 * - `inspect` — XState's `createActor` hosts every job (an `inspect` observer is set);
 * - `watched` — `events$` has a subscriber, so every job's actor starts at submit.
 *
 * The model-based test (scheduler.model.test.ts) checks a watched scheduler against a full model;
 * this one drives all three with random submits (GPUs, shares, dependencies, timeouts, retries,
 * hanging and abort-ignoring handlers), cancels, boosts, reads, pauses, resumes and shutdowns, and
 * after every step checks what must hold whatever the host: resources never over capacity, held
 * exactly by scheduled and running jobs and exactly as the ledger says, every grant released once,
 * a job's snapshot consistent with its state, counts that add up, the queue and concurrency bounds,
 * only unfinished jobs with an actor; and at the end, everything released, each result settled
 * once, no timer left.
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import {
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type JobSnapshot,
  type JobState,
  type PriorityName,
  type ShutdownReport,
} from '../../src/index.js';
import type { ResourceLedger } from '../../src/core/ledger.js';
import { JOB_STATES, type Allocation } from '../../src/core/types.js';
import { countOnLedger } from '../helpers/ledger-count.js';
import { numRuns } from '../helpers/num-runs.js';

type Host = 'unwatched' | 'inspect' | 'watched';
/** `stubborn`: never settles, abort or not (only a stop timeout or shutdown gives up on it). */
type Payload = { ms: number; failUntil: number; hang: boolean; ignoreAbort: boolean; stubborn: boolean };
type Step =
  | {
      kind: 'submit';
      gpu: number;
      prio: PriorityName;
      payload: Payload;
      timeoutMs?: number;
      stopTimeoutMs?: number;
      dep?: number;
      attempts?: number;
    }
  | { kind: 'advance'; ms: number }
  | { kind: 'cancel' | 'boost' | 'peek'; pick: number }
  | { kind: 'pause' | 'resume' }
  | { kind: 'shutdown'; mode: 'drain' | 'cancel'; timeoutMs: number };

const PRIORITIES: PriorityName[] = ['critical', 'high', 'normal', 'low', 'background'];
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      {
        kind: fc.constant('submit' as const),
        gpu: fc.constantFrom(0, 0.5, 1, 2),
        prio: fc.constantFrom(...PRIORITIES),
        payload: fc.record({
          ms: fc.integer({ min: 0, max: 300 }),
          failUntil: fc.integer({ min: 0, max: 3 }),
          hang: fc.integer({ min: 0, max: 9 }).map((n) => n < 1),
          ignoreAbort: fc.integer({ min: 0, max: 9 }).map((n) => n < 1),
          stubborn: fc.integer({ min: 0, max: 19 }).map((n) => n < 1),
        }),
        timeoutMs: fc.integer({ min: 20, max: 400 }),
        stopTimeoutMs: fc.integer({ min: 0, max: 600 }),
        dep: fc.nat(),
        attempts: fc.integer({ min: 1, max: 3 }),
      },
      { requiredKeys: ['kind', 'gpu', 'payload', 'prio'] },
    ),
  },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 300 }) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constantFrom('cancel' as const, 'boost' as const, 'peek' as const),
      pick: fc.nat(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constantFrom('pause' as const, 'resume' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('shutdown' as const),
      mode: fc.constantFrom('drain' as const, 'cancel' as const),
      timeoutMs: fc.integer({ min: 0, max: 300 }),
    }),
  },
);

function ensure(condition: boolean, what: () => string): asserts condition {
  if (!condition) throw new Error(what());
}

const HOLDING = new Set<JobState>(['scheduled', 'running']);
const WAITING = new Set<JobState>(['pending', 'queued', 'retrying']);
const FINAL = new Set<JobState>(['completed', 'failed', 'cancelled']);
const STATES = JOB_STATES;

async function run(
  steps: Step[],
  host: Host,
  maxQueueSize: number,
  maxConcurrentJobs: number,
): Promise<void> {
  const clock = createVirtualClock();
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: { cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }, { vramMb: 16_000 }] },
    maxConcurrentJobs,
    maxQueueSize,
    schedulingIntervalMs: 500,
    retry: { attempts: 2, backoff: { type: 'exponential', delayMs: 40, maxDelayMs: 300, jitter: true } },
    ...(host === 'inspect' ? { inspect: () => undefined } : {}),
    handlers: {
      work: ({ id, payload, attempt, allocation, signal }: HandlerContext<Payload>) => {
        // Every handler body, from its start until its promise has settled, with what it runs on.
        const key = `${id}#${attempt}`;
        live.set(key, { id, allocation });
        const body = workBody(payload, attempt, signal);
        const gone = () => live.delete(key);
        body.then(gone, gone);
        return body;
      },
    },
  });
  async function workBody(payload: Payload, attempt: number, signal: AbortSignal): Promise<string> {
    if (payload.stubborn) return new Promise<never>(() => undefined);
    if (payload.hang)
      return new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    // Ignores its abort: settles late, after its attempt has ended (must change nothing).
    if (payload.ignoreAbort)
      return new Promise<string>((resolve) => clock.setTimeout(() => resolve('late'), payload.ms + 500));
    await delay(clock, payload.ms, signal);
    if (attempt <= payload.failUntil) throw new Error(`attempt ${attempt} failed`);
    return `done ${attempt}`;
  }
  if (host === 'watched') scheduler.events$.subscribe(() => undefined);

  // The ledger, and every grant and release on it (the scheduler places on it directly).
  const rm = scheduler['actor'].system.get('resourceManager');
  ensure(rm !== undefined, () => 'a declared pool starts the resource manager at once');
  const ledger = (rm.getSnapshot() as { context: { ledger: ResourceLedger } }).context.ledger;
  const onLedger = countOnLedger(ledger);

  const ids: string[] = [];
  /** Handler bodies not yet settled (by job id and attempt), whatever the engine thinks of them. */
  const live = new Map<string, { id: string; allocation: Allocation }>();
  const settled = new Map<string, number>();
  const log: string[] = [];
  let accepted = 0;
  let closed = false;
  let report: ShutdownReport | undefined;

  const check = (at: string): void => {
    const where = () => `${host}, ${at} [${log.join(' ')}]`;
    ensure(onLedger.releaseIgnored === 0, () => `${where()}: a release of nothing held (twice, or unknown)`);
    const stats = scheduler.stats();
    const { capacity, allocated } = stats.resources;
    for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const)
      ensure(
        allocated[k] >= -1e-9 && allocated[k] <= capacity[k] + 1e-9,
        () => `${where()}: ${k} over capacity`,
      );
    const list = scheduler.list();
    const held: JobSnapshot[] = [];
    const counts = new Map<JobState, number>();
    for (const s of list) {
      counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
      const job = () => `${where()}: ${s.id} ${s.state}`;
      ensure(
        HOLDING.has(s.state) === (s.allocation !== undefined),
        () => `${job()} allocation ${!!s.allocation}`,
      );
      if (s.allocation) held.push(s);
      ensure(s.attempt <= s.maxAttempts, () => `${job()} attempt ${s.attempt} of ${s.maxAttempts}`);
      ensure(
        WAITING.has(s.state) === (s.waitReason !== undefined),
        () => `${job()} waitReason ${s.waitReason}`,
      );
      if (s.state === 'pending')
        ensure(s.waitReason === 'dependencies', () => `${job()} waits for ${s.waitReason}`);
      if (s.state === 'retrying')
        ensure(s.waitReason === 'backoff', () => `${job()} waits for ${s.waitReason}`);
      ensure(FINAL.has(s.state) === (s.endedAt !== undefined), () => `${job()} endedAt ${s.endedAt}`);
      if (s.state === 'running') ensure(s.startedAt !== undefined, () => `${job()} without startedAt`);
      if (s.state === 'completed') ensure(s.error === undefined, () => `${job()} with an error`);
      if (s.state === 'failed')
        ensure(
          s.error?.kind === 'error' || s.error?.kind === 'timeout',
          () => `${job()} error ${s.error?.kind}`,
        );
      if (s.state === 'cancelled')
        ensure(
          ['cancelled', 'shutdown', 'dependency'].includes(s.error?.kind ?? ''),
          () => `${job()} ${s.error?.kind}`,
        );
    }
    for (const state of STATES)
      ensure(stats.jobs[state] === (counts.get(state) ?? 0), () => `${where()}: stats.jobs.${state}`);
    const total = STATES.reduce((n, state) => n + stats.jobs[state], 0);
    ensure(total === accepted, () => `${where()}: ${total} jobs, ${accepted} accepted`);
    // Resources held exactly by scheduled and running jobs, as the ledger says; each grant once.
    const ledgerIds = ledger
      .allocations()
      .map((a) => a.id)
      .sort()
      .join();
    const jobIds = held
      .map((s) => s.allocation?.id)
      .sort()
      .join();
    ensure(ledgerIds === jobIds, () => `${where()}: ledger holds [${ledgerIds}], jobs hold [${jobIds}]`);
    ensure(
      onLedger.grants - onLedger.releases === held.length,
      () => `${where()}: ${onLedger.grants} grants − ${onLedger.releases} releases`,
    );
    ensure(held.length <= maxConcurrentJobs, () => `${where()}: ${held.length} jobs hold resources`);
    // Resource truth: no two live attempts (handler bodies not yet settled) share a unit beyond
    // its capacity — each one's grant is still held on the ledger — unless the engine gave up on
    // it (a stop timeout, or shutdown) and said so.
    const ledgerHeld = new Set(ledger.allocations().map((a) => a.id));
    const use = { cpu: 0, gpu: new Map<number, number>(), vram: new Map<number, number>() };
    for (const [key, body] of live) {
      const job = scheduler.get(body.id);
      const abandoned = /force-released/.test(job?.error?.message ?? '');
      ensure(
        ledgerHeld.has(body.allocation.id) || abandoned,
        () => `${where()}: ${key} still runs, but its grant ${body.allocation.id} went back (${job?.state})`,
      );
      if (abandoned) continue;
      use.cpu += body.allocation.cpu;
      for (const g of body.allocation.gpus) {
        use.gpu.set(g.index, (use.gpu.get(g.index) ?? 0) + g.share);
        use.vram.set(g.index, (use.vram.get(g.index) ?? 0) + g.vramMb);
      }
    }
    ensure(use.cpu <= capacity.cpu + 1e-9, () => `${where()}: live attempts use ${use.cpu} CPUs`);
    for (const [index, share] of use.gpu)
      ensure(share <= 1 + 1e-9, () => `${where()}: live attempts share GPU ${index} × ${share}`);
    for (const [index, mb] of use.vram)
      ensure(mb <= 16_000, () => `${where()}: live attempts use ${mb} MB of GPU ${index}'s VRAM`);
    // A job is `stopping` exactly while running and told to stop; counted in stats().
    const stopping = list.filter((j) => j.stopping !== undefined);
    ensure(
      stopping.every((j) => j.state === 'running'),
      () => `${where()}: a job not running says it is stopping`,
    );
    ensure(stats.stopping === stopping.length, () => `${where()}: stats.stopping ${stats.stopping}`);
    const waiting =
      (counts.get('pending') ?? 0) + (counts.get('queued') ?? 0) + (counts.get('retrying') ?? 0);
    ensure(
      stats.queue.size === waiting,
      () => `${where()}: queue size ${stats.queue.size}, ${waiting} waiting`,
    );
    // maxQueueSize bounds what submit() adds; a running job that fails and retries comes back
    // even to a full queue, so waiting + holding never passes maxQueueSize + maxConcurrentJobs.
    ensure(
      waiting + held.length <= maxQueueSize + maxConcurrentJobs,
      () =>
        `${where()}: ${waiting} waiting + ${held.length} holding > ${maxQueueSize} + ${maxConcurrentJobs}`,
    );
    // Only unfinished jobs have an actor: a finished job is a plain record.
    for (const [id, record] of scheduler['records'].entries())
      ensure(
        !FINAL.has(record.state) || record.actor === undefined,
        () => `${where()}: finished ${id} keeps an actor`,
      );
    if (closed)
      for (const s of list)
        ensure(!WAITING.has(s.state), () => `${where()}: ${s.id} ${s.state} after shutdown`);
  };

  for (const s of steps) {
    const pick = 'pick' in s && ids.length > 0 ? ids[s.pick % ids.length] : undefined;
    log.push(s.kind + (pick ? `:${pick}` : ''));
    switch (s.kind) {
      case 'submit': {
        const dep = s.dep !== undefined && ids.length > 0 ? ids[s.dep % ids.length] : undefined;
        const before = JSON.stringify(scheduler.stats());
        try {
          const handle = scheduler.submit({
            type: 'work',
            priority: s.prio,
            payload: s.payload,
            resources: s.gpu ? { gpu: s.gpu, cpu: 1 } : { cpu: 1 },
            ...(s.timeoutMs === undefined ? {} : { timeoutMs: s.timeoutMs }),
            ...(s.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: s.stopTimeoutMs }),
            ...(s.attempts === undefined ? {} : { retry: { attempts: s.attempts } }),
            ...(dep === undefined || !scheduler.get(dep)
              ? {}
              : { dependsOn: [dep], dependencyPolicy: 'afterok' as const }),
          });
          accepted++;
          ids.push(handle.id);
          settled.set(handle.id, 0);
          log.push(`=${handle.id}`);
          const once = () => settled.set(handle.id, (settled.get(handle.id) ?? 0) + 1);
          handle.result.then(once, once);
        } catch (error) {
          const name = (error as Error).name;
          ensure(
            name === 'QueueFullError' || name === 'SchedulerClosedError',
            () => `submit threw ${String(error)}`,
          );
          ensure(
            JSON.stringify(scheduler.stats()) === before,
            () => `a refused submit (${name}) changed the stats`,
          );
        }
        break;
      }
      case 'advance':
        await clock.advanceBy(s.ms);
        break;
      case 'cancel':
        if (pick) {
          const before = scheduler.get(pick)?.state;
          const cancelled = scheduler.cancel(pick);
          ensure(
            cancelled === (before !== undefined && !FINAL.has(before)),
            () => `cancel ${pick} from ${before}`,
          );
          // Cancelled — or, running, told to stop, to end cancelled once its handler settles.
          const after = scheduler.get(pick);
          if (cancelled)
            ensure(
              after?.state === 'cancelled' ||
                (after?.state === 'running' && after.stopping?.outcome === 'cancelled'),
              () => `cancel ${pick} left it running`,
            );
        }
        break;
      case 'boost':
        if (pick) scheduler.boost({ ids: [pick] }, { to: 'critical', forMs: 100 });
        break;
      case 'peek':
        if (pick) scheduler.get(pick);
        break;
      case 'pause':
        scheduler.pause();
        break;
      case 'resume':
        scheduler.resume();
        break;
      case 'shutdown':
        if (!closed) {
          closed = true;
          void scheduler.shutdown({ mode: s.mode, timeoutMs: s.timeoutMs }).then((r) => (report = r));
        }
        break;
    }
    await clock.flush();
    check(`after ${s.kind}`);
  }
  closed = true;
  void scheduler.shutdown({ mode: 'cancel', timeoutMs: 0 }).then((r) => (report ??= r));
  for (let i = 0; i < 30 && report === undefined; i++) await clock.advanceBy(1_000);
  ensure(report !== undefined, () => `${host}: shutdown never resolved`);
  check('after shutdown');
  await clock.advanceBy(5_000); // the abort-ignoring handlers settle now: nothing may change
  check('after late results');
  ensure(
    ledger.allocations().length === 0 && onLedger.grants === onLedger.releases,
    () => `${host}: resources held at the end`,
  );
  for (const [id, n] of settled) ensure(n === 1, () => `${host}: ${id}'s result settled ${n} times`);
  ensure(clock.pendingTimers() === 0, () => `${host}: ${clock.pendingTimers()} timers left`);
}

describe('every host keeps the invariants after every step', () => {
  it.each(['unwatched', 'inspect', 'watched'] as const)('%s', async (host) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }),
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 4 }),
        (steps, maxQueueSize, maxConcurrentJobs) => run(steps, host, maxQueueSize, maxConcurrentJobs),
      ),
      { numRuns: numRuns(300) },
    );
  });
});
