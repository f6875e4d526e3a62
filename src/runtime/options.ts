/**
 * The options of `createScheduler()`: one type whose every field says its default, merged in
 * one place, with bad values rejected at once naming the option, the value and its type.
 */
import type { InspectionEvent, Observer } from 'xstate';
import { DEFAULT_BACKOFF, type BackoffPolicy } from '../core/backoff.js';
import { InvalidOptionError, InvalidPoolError, type InvalidJobError } from '../core/errors.js';
import {
  checkAttempts,
  checkBackoff,
  checkKeys,
  checkStopTimeout,
  isObject,
  MAX_TIMEOUT_MS,
  type UnknownFieldError,
} from '../core/job-spec.js';
import { normalisePool } from '../core/pool.js';
import type { NodeSpec, PlacementPolicy } from '../core/resources.js';
import { applyOverrides, type DetectHostOptions } from '../actors/host.js';
import type { Measured } from '../actors/measure.js';
import type { Handlers } from '../actors/handler.js';
import { createRealClock, type SchedulerClock } from './clock.js';
import type { PoolOption } from './pool.js';
import type { JobStore } from '../store/store.js';

const STORE_METHODS = ['open', 'accept', 'update', 'prune', 'setPaused', 'close'] as const;

export type SchedulerOptions<H extends Handlers = Handlers> = {
  /** Job type → async handler. */
  handlers: H;
  /**
   * The machine(s) to schedule on: `'detect'` reads this host with systeminformation; or a
   * declared pool; or `{ detect: true, override }`. @default 'detect'
   */
  resources?: PoolOption;
  /** Jobs holding resources (scheduled or running) at once. @default 4 */
  maxConcurrentJobs?: number;
  /**
   * The jobs that wait — pending + queued + retrying — at once (`stats().queue.size`); `submit()`
   * throws `QueueFullError` beyond (`submitWhenRoom()` waits for a place instead). Running jobs
   * take no place, so a running job that fails and retries is never refused: it comes back even
   * when the queue is full, which may take the waiting count past this for a while — by at most
   * the running attempts that fail meanwhile (never more than `maxConcurrentJobs`); `submit()`
   * refuses until it is below again. @default 100
   */
  maxQueueSize?: number;
  /** The safety-net scheduling tick; scheduling is also event-driven. @default 5_000 */
  schedulingIntervalMs?: number;
  /** Host measurement interval for reconciliation. @default 30_000 */
  monitorIntervalMs?: number;
  /** Reconcile with measured free memory/VRAM. @default true when the pool is detected */
  monitor?: boolean;
  /** Kept free beyond what is measured. @default { memoryMb: 512, vramMb: 256 } */
  headroom?: { memoryMb?: number; vramMb?: number };
  /** Per-attempt timeout when a job gives none. @default undefined (none) */
  defaultTimeoutMs?: number;
  /**
   * How long an attempt told to stop (timeout, cancel, shutdown) may keep its resources while its
   * handler has not settled, when a job gives none: then they are force-released with a
   * `job.forceReleased` event, the handler abandoned, and the job ends without a retry (failed, or
   * cancelled if it was cancelled). @default Infinity: held until the handler settles (truth first)
   */
  stopTimeoutMs?: number;
  /**
   * Attempts (the first included) and the backoff between them. Jitter (equal jitter: a delay in
   * [d/2, d]) only when asked: a backoff given here or on a job without `jitter: true` waits
   * exactly its delay; the fields it leaves out come from the default below.
   * @default { attempts: 3, backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 60_000, jitter: true } }
   */
  retry?: { attempts?: number; backoff?: Partial<BackoffPolicy> };
  /** A queued job gains a level per interval, up to maxLevels. @default { intervalMs: 60_000, maxLevels: 2 } */
  aging?: { intervalMs?: number; maxLevels?: number };
  /** `strict`: the head blocks those behind it; `backfill`: a later job that fits may start. @default 'backfill' */
  queuePolicy?: 'strict' | 'backfill';
  /** @default 'best-fit' */
  placement?: PlacementPolicy;
  /**
   * A job that no node of the pool could hold, even idle: `'reject'` — `submit()` throws
   * `UnschedulableError`; `'wait'` — it is accepted and waits (`waitReason: 'noNode'`) until a
   * node that can hold it joins (`scheduler.addNode`). With `'wait'` a declared pool may be empty
   * (`{ nodes: [] }`): nodes join later. @default 'reject'
   */
  unschedulable?: 'reject' | 'wait';
  /** Once the head has waited this long, nothing is backfilled past it. @default 300_000 */
  reserveAfterMs?: number;
  /** Queued jobs one scheduling round may try past the head. @default 64 */
  backfillDepth?: number;
  /** Finished jobs kept as records for `get()` and `list()`. @default 10_000 */
  retainFinished?: number;
  /** The one clock. @default real time; `createVirtualClock()` in tests and simulations */
  clock?: SchedulerClock;
  /** The random source of retry jitter (seed it for reproducible runs). @default Math.random */
  random?: () => number;
  /** XState inspection, given to every actor (e.g. `createBrowserInspector().inspect`). */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** Host detection options (for `resources: 'detect'`). */
  detect?: DetectHostOptions;
  /** Takes one host measurement for the monitor. @default readMeasured */
  measure?: () => Promise<Measured>;
  /**
   * Where a durable scheduler journals its jobs (e.g. `sqliteStore('state.db')`): every accepted
   * job before `submit()` returns, and every transition; opened again, it recovers them. Payloads
   * must then be JSON. @default none: jobs live in memory only
   */
  store?: JobStore;
};

/** Every option with its default applied. */
export type ResolvedOptions = {
  resources: PoolOption;
  maxConcurrentJobs: number;
  maxQueueSize: number;
  schedulingIntervalMs: number;
  monitorIntervalMs: number;
  monitor: boolean;
  headroom: { memoryMb: number; vramMb: number };
  defaultTimeoutMs: number | undefined;
  /** Undefined: held until the handler settles. */
  stopTimeoutMs: number | undefined;
  retryAttempts: number;
  backoff: BackoffPolicy;
  aging: { intervalMs: number; maxLevels: number };
  queuePolicy: 'strict' | 'backfill';
  placement: PlacementPolicy;
  unschedulable: 'reject' | 'wait';
  reserveAfterMs: number;
  backfillDepth: number;
  retainFinished: number;
  clock: SchedulerClock;
  random: () => number;
  detect: DetectHostOptions;
  measure: (() => Promise<Measured>) | undefined;
  store: JobStore | undefined;
};

function count(field: string, value: unknown, fallback: number, min: number, allowInfinity = false): number {
  if (value === undefined) return fallback;
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidOptionError(
      field,
      value,
      `a whole number ≥ ${min}${allowInfinity ? ' or Infinity' : ''}`,
    );
  }
  return value;
}

function duration(field: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TIMEOUT_MS) {
    throw new InvalidOptionError(field, value, `a number of ms in [${min}, ${MAX_TIMEOUT_MS}]`);
  }
  return value;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T))
    throw new InvalidOptionError(field, value, `one of ${allowed.join(', ')}`);
  return value as T;
}

const OPTION_KEYS: ReadonlySet<string> = new Set([
  'handlers',
  'resources',
  'maxConcurrentJobs',
  'maxQueueSize',
  'schedulingIntervalMs',
  'monitorIntervalMs',
  'monitor',
  'headroom',
  'defaultTimeoutMs',
  'stopTimeoutMs',
  'retry',
  'aging',
  'queuePolicy',
  'placement',
  'unschedulable',
  'reserveAfterMs',
  'backfillDepth',
  'retainFinished',
  'clock',
  'random',
  'inspect',
  'detect',
  'measure',
  'store',
]);
const optionError: UnknownFieldError = (field, value, allowed, unknown) =>
  new InvalidOptionError(field, value, allowed, unknown);

/** An optional object option whose keys are all in `keys`. */
function objectOption(field: string, value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isObject(value)) throw new InvalidOptionError(field, value, `an object { ${keys.join(', ')} }`);
  checkKeys(field, value, new Set(keys), optionError);
  return value;
}

/** The clock must be one: a misshapen one would fail later, from a timer, out of reach. */
function checkClock(clock: unknown): void {
  if (clock === undefined) return;
  const c = clock as Record<string, unknown> | null;
  const ok =
    typeof c === 'object' &&
    c !== null &&
    typeof c['now'] === 'function' &&
    typeof c['setTimeout'] === 'function' &&
    typeof c['clearTimeout'] === 'function' &&
    typeof c['scheduler'] === 'object' &&
    typeof c['backgroundScheduler'] === 'object';
  if (!ok) {
    throw new InvalidOptionError(
      'clock',
      clock,
      'a SchedulerClock { now, setTimeout, clearTimeout, scheduler, backgroundScheduler } (createVirtualClock() or createRealClock())',
    );
  }
}

/**
 * `{ detect: true, override }`: the override is checked now, as a node, so that a bad one fails
 * here and not once detection ends (when jobs would already be waiting for a pool).
 */
function checkDetectedPool(resources: Record<string, unknown>): void {
  if (resources['detect'] !== true) {
    throw new InvalidOptionError(
      'resources.detect',
      resources['detect'],
      'true (with an optional override); to declare a pool, leave detect out',
    );
  }
  checkKeys('resources', resources, new Set(['detect', 'override']), optionError);
  const override = resources['override'];
  if (override === undefined) return;
  if (!isObject(override))
    throw new InvalidOptionError('resources.override', override, 'an object of node fields');
  try {
    // As detection will apply it: its undefined fields leave the detected figures alone.
    normalisePool(applyOverrides({ cpu: 1, memoryMb: 1 }, override as Partial<NodeSpec>));
  } catch (error) {
    if (!(error instanceof InvalidPoolError)) throw error;
    throw new InvalidOptionError(
      error.field.replace(/^nodes\[0\]/, 'resources.override'),
      error.value,
      error.allowed,
      error.unknownField,
    );
  }
}

/** Applies the defaults and checks every option. */
export function resolveOptions(options: SchedulerOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('options', options, 'an object');
  checkKeys('', options, OPTION_KEYS, optionError);
  const handlers: unknown = options.handlers;
  if (
    typeof handlers !== 'object' ||
    handlers === null ||
    Array.isArray(handlers) ||
    handlers instanceof Map
  ) {
    throw new InvalidOptionError('handlers', handlers, 'an object of job type → async function');
  }
  for (const [type, fn] of Object.entries(handlers)) {
    if (typeof fn !== 'function') throw new InvalidOptionError(`handlers.${type}`, fn, 'a function');
  }
  const resources = options.resources ?? 'detect';
  if (
    resources !== 'detect' &&
    (typeof resources !== 'object' || resources === null || Array.isArray(resources))
  ) {
    throw new InvalidOptionError(
      'resources',
      resources,
      "'detect', a pool { cpu, memoryMb, gpus } or { nodes: [...] }",
    );
  }
  const detected = resources === 'detect' || (typeof resources === 'object' && 'detect' in resources);
  if (detected && resources !== 'detect') checkDetectedPool(resources as Record<string, unknown>);
  const { attempts, backoff } = objectOption('retry', options.retry, ['attempts', 'backoff']);
  const headroom = objectOption('headroom', options.headroom, ['memoryMb', 'vramMb']);
  const aging = objectOption('aging', options.aging, ['intervalMs', 'maxLevels']);
  if (options.monitor !== undefined && typeof options.monitor !== 'boolean')
    throw new InvalidOptionError('monitor', options.monitor, 'true or false');
  checkClock(options.clock);
  const inspect: unknown = options.inspect;
  if (
    inspect !== undefined &&
    typeof inspect !== 'function' &&
    !(isObject(inspect) && ['next', 'error', 'complete'].some((k) => typeof inspect[k] === 'function'))
  ) {
    throw new InvalidOptionError('inspect', inspect, 'a function or an Observer { next, error, complete }');
  }
  if (options.measure !== undefined && typeof options.measure !== 'function')
    throw new InvalidOptionError('measure', options.measure, 'a function resolving with a measurement');
  const store = options.store as Partial<Record<keyof JobStore, unknown>> | undefined;
  if (store !== undefined && (!isObject(store) || STORE_METHODS.some((m) => typeof store[m] !== 'function')))
    throw new InvalidOptionError(
      'store',
      options.store,
      `a store such as sqliteStore(path): an object with ${STORE_METHODS.join(', ')}`,
    );
  const detect = objectOption('detect', options.detect, ['si', 'os', 'id', 'timeoutMs', 'runNvidiaSmi']);
  if (detect['timeoutMs'] !== undefined) duration('detect.timeoutMs', detect['timeoutMs'], 0, 0);
  for (const key of ['si', 'os'] as const)
    if (detect[key] !== undefined && !isObject(detect[key]))
      throw new InvalidOptionError(
        `detect.${key}`,
        detect[key],
        'an object like the systeminformation / node:os module',
      );
  if (detect['runNvidiaSmi'] !== undefined && typeof detect['runNvidiaSmi'] !== 'function')
    throw new InvalidOptionError('detect.runNvidiaSmi', detect['runNvidiaSmi'], 'a function');
  if (detect['id'] !== undefined && (typeof detect['id'] !== 'string' || detect['id'] === ''))
    throw new InvalidOptionError('detect.id', detect['id'], 'a non-empty string');
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw new InvalidOptionError('random', options.random, 'a function returning [0, 1)');
  }
  let backoffPolicy: BackoffPolicy;
  try {
    backoffPolicy = checkBackoff('retry.backoff', backoff, DEFAULT_BACKOFF);
  } catch (error) {
    const e = error as InvalidJobError;
    throw new InvalidOptionError(e.field, e.value, e.allowed, e.unknownField);
  }
  return {
    resources,
    maxConcurrentJobs: count('maxConcurrentJobs', options.maxConcurrentJobs, 4, 1, true),
    maxQueueSize: count('maxQueueSize', options.maxQueueSize, 100, 1, true),
    schedulingIntervalMs: duration('schedulingIntervalMs', options.schedulingIntervalMs, 5_000),
    monitorIntervalMs: duration('monitorIntervalMs', options.monitorIntervalMs, 30_000),
    monitor: options.monitor ?? detected,
    headroom: {
      memoryMb: count('headroom.memoryMb', headroom['memoryMb'], 512, 0),
      vramMb: count('headroom.vramMb', headroom['vramMb'], 256, 0),
    },
    defaultTimeoutMs:
      options.defaultTimeoutMs === undefined
        ? undefined
        : duration('defaultTimeoutMs', options.defaultTimeoutMs, 0),
    stopTimeoutMs:
      options.stopTimeoutMs === undefined
        ? undefined
        : checkStopTimeout(
            'stopTimeoutMs',
            options.stopTimeoutMs,
            (f, v, a) => new InvalidOptionError(f, v, a),
          ),
    retryAttempts: attempts === undefined ? 3 : checkAttemptsOption(attempts),
    backoff: backoffPolicy,
    aging: {
      intervalMs: duration('aging.intervalMs', aging['intervalMs'], 60_000),
      maxLevels: count('aging.maxLevels', aging['maxLevels'], 2, 0),
    },
    queuePolicy: oneOf('queuePolicy', options.queuePolicy, ['strict', 'backfill'] as const, 'backfill'),
    placement: oneOf('placement', options.placement, ['best-fit', 'first-fit'] as const, 'best-fit'),
    unschedulable: oneOf('unschedulable', options.unschedulable, ['reject', 'wait'] as const, 'reject'),
    reserveAfterMs: duration('reserveAfterMs', options.reserveAfterMs, 300_000, 0),
    backfillDepth: count('backfillDepth', options.backfillDepth, 64, 0),
    retainFinished: count('retainFinished', options.retainFinished, 10_000, 0, true),
    clock: options.clock ?? createRealClock(),
    random: options.random ?? Math.random,
    detect: options.detect ?? {},
    measure: options.measure,
    store: options.store,
  };
}

function checkAttemptsOption(value: unknown): number {
  try {
    return checkAttempts('retry.attempts', value);
  } catch {
    throw new InvalidOptionError('retry.attempts', value, 'a whole number of attempts in [1, 1000]');
  }
}
