/**
 * What a user submits, checked at the door: every field in range or a typed error naming it.
 */
import { DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
import { DependencyCycleError, InvalidJobError, type UnknownField } from './errors.js';
import { levelOf, PRIORITY_NAMES, type PriorityName } from './priority.js';
import type { ResourceRequest } from './resources.js';
import { nearestName } from './suggest.js';

/** The most a timer may wait on Node (about 24.8 days). */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** One job as submitted. */
export type JobSpec<TPayload = unknown> = {
  /** The handler that runs it. */
  type: string;
  payload?: TPayload;
  /** Unique among known jobs; generated when absent. */
  id?: string;
  /** @default 'normal' */
  priority?: PriorityName;
  /** @default {} (no resources beyond a concurrency slot) */
  resources?: ResourceRequest;
  /** Per-attempt timeout in ms. @default the scheduler's `defaultTimeoutMs` */
  timeoutMs?: number;
  /**
   * How long an attempt told to stop (timeout, cancel, shutdown) may keep its resources while its
   * handler has not settled; then they are force-released (`job.forceReleased`) and the job ends
   * without a retry. `Infinity`: held until the handler settles. @default the scheduler's `stopTimeoutMs`
   */
  stopTimeoutMs?: number;
  /**
   * Fields left out come from the scheduler's `retry`; a backoff given here has jitter only
   * with `jitter: true` (`{ type: 'fixed', delayMs: 100 }` retries at exactly +100 ms).
   * @default the scheduler's `retry`
   */
  retry?: { attempts?: number; backoff?: Partial<BackoffPolicy> };
  /** For boosting and listing jobs together. */
  group?: string;
  /** Ids of jobs that must end first. */
  dependsOn?: readonly string[];
  /** `afterok` (default): run only if every dependency completed; `afterany`: once they all ended. */
  dependencyPolicy?: 'afterok' | 'afterany';
};

/** A checked job spec with every default applied. */
export type NormalisedJob<TPayload = unknown> = {
  id: string;
  type: string;
  payload: TPayload | undefined;
  priority: PriorityName;
  level: number;
  timeoutMs: number | undefined;
  /** Undefined: held until the handler settles. */
  stopTimeoutMs: number | undefined;
  maxAttempts: number;
  backoff: BackoffPolicy;
  group: string | undefined;
  dependsOn: readonly string[];
  dependencyPolicy: 'afterok' | 'afterany';
};

/** Shared by every job that names none (most): one object, not one per job. */
const NO_DEPENDENCIES: readonly string[] = Object.freeze([]);
/** A job's resource request, `{}` when it names none (its shape is checked by `normaliseJobSpec`). */
export function requestOf(spec: JobSpec): ResourceRequest {
  return spec.resources ?? NO_RESOURCES;
}
const NO_RESOURCES: ResourceRequest = Object.freeze({});

/** What checking needs to know about the scheduler. */
export type JobSpecContext = {
  isHandlerType: (type: string) => boolean;
  handlerTypes: () => string[];
  defaultTimeoutMs: number | undefined;
  defaultStopTimeoutMs: number | undefined;
  retryAttempts: number;
  backoff: BackoffPolicy;
  newId: () => string;
};

/** A plain object (not null, not an array): what every spec, option and pool must be. */
export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Throws for a key that `known` does not hold: a misspelt field (`timeout`, `retries`, `gpus`)
 * would otherwise be dropped without a word, and the job run without what it asked for. The
 * error says so in a sentence naming the nearest known field when one is close: `resources.gpus
 * is not a known field; did you mean gpu? (known: cpu, memoryMb, gpu, vramMb, custom)`.
 */
export function checkKeys(
  field: string,
  value: Record<string, unknown>,
  known: ReadonlySet<string>,
  error: UnknownFieldError = jobError,
): void {
  for (const key in value) {
    // Own keys only: an inherited one (a prototype's, or Object.prototype's) is not the caller's.
    if (!known.has(key) && Object.hasOwn(value, key)) {
      const at = field ? `${field}.${key}` : key;
      const names = [...known];
      throw error(at, value[key], `one of the known fields: ${names.join(', ')}`, {
        known: names,
        suggestion: nearestName(key, names),
      });
    }
  }
}

/** Makes the error of an unknown field (see `checkKeys`): `InvalidJobError` unless told. */
export type UnknownFieldError = (
  field: string,
  value: unknown,
  expected: string,
  unknown: UnknownField,
) => Error;

const jobError: UnknownFieldError = (field, value, expected, unknown) =>
  new InvalidJobError(field, value, expected, unknown);

const SPEC_KEYS: ReadonlySet<string> = new Set([
  'type',
  'payload',
  'id',
  'priority',
  'resources',
  'timeoutMs',
  'stopTimeoutMs',
  'retry',
  'group',
  'dependsOn',
  'dependencyPolicy',
]);
const RETRY_KEYS: ReadonlySet<string> = new Set(['attempts', 'backoff']);
const BACKOFF_KEYS: ReadonlySet<string> = new Set(['type', 'delayMs', 'maxDelayMs', 'jitter']);

/**
 * A stop timeout: ms in [0, MAX_TIMEOUT_MS], or `Infinity` for "hold until the handler settles"
 * (returned as undefined).
 */
export function checkStopTimeout(
  field: string,
  value: unknown,
  error: (field: string, value: unknown, allowed: string) => Error,
): number | undefined {
  if (value === Number.POSITIVE_INFINITY) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TIMEOUT_MS)
    throw error(
      field,
      value,
      `a number of ms in [0, ${MAX_TIMEOUT_MS}], or Infinity (hold until the handler settles)`,
    );
  return value;
}

function positiveTimeout(field: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_MS) {
    throw new InvalidJobError(field, value, `a number of ms in (0, ${MAX_TIMEOUT_MS}]`);
  }
  return value;
}

/**
 * Checks a backoff a job (or the scheduler's `retry` option) gives: the fields it names replace
 * those of `base`, and its jitter is on only if it says `jitter: true`.
 */
export function checkBackoff(
  field: string,
  value: unknown,
  base: BackoffPolicy = DEFAULT_BACKOFF,
): BackoffPolicy {
  if (value === undefined) return base;
  if (!isObject(value))
    throw new InvalidJobError(field, value, 'an object { type, delayMs, maxDelayMs, jitter }');
  checkKeys(field, value, BACKOFF_KEYS);
  // Jitter only when asked: a backoff that does not say `jitter: true` waits exactly its delay,
  // whatever the base it fills its other fields from (a user's `{ type: 'fixed', delayMs: 100 }`
  // retries at +100 ms, as BullMQ's does).
  const out = { ...base, jitter: false };
  if (value['type'] !== undefined) {
    if (value['type'] !== 'fixed' && value['type'] !== 'exponential') {
      throw new InvalidJobError(`${field}.type`, value['type'], "'fixed' or 'exponential'");
    }
    out.type = value['type'];
  }
  for (const key of ['delayMs', 'maxDelayMs'] as const) {
    const v = value[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > MAX_TIMEOUT_MS) {
      throw new InvalidJobError(`${field}.${key}`, v, `a number of ms in [0, ${MAX_TIMEOUT_MS}]`);
    }
    out[key] = v;
  }
  if (value['jitter'] !== undefined) {
    if (typeof value['jitter'] !== 'boolean')
      throw new InvalidJobError(`${field}.jitter`, value['jitter'], 'true or false');
    out.jitter = value['jitter'];
  }
  return out;
}

/** Checks retry attempts: total tries, the first included. */
export function checkAttempts(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1_000) {
    throw new InvalidJobError(field, value, 'a whole number of attempts in [1, 1000]');
  }
  return value;
}

/**
 * Checks a submitted job and applies the defaults. Resources are checked by the caller against
 * its pool. Throws `InvalidJobError` (naming the field) or `DependencyCycleError`.
 */
export function normaliseJobSpec<T>(spec: JobSpec<T>, ctx: JobSpecContext): NormalisedJob<T> {
  if (!isObject(spec)) throw new InvalidJobError('job', spec, 'an object such as { type, payload }');
  // A switch, not checkKeys' set: this runs on every submit (~30 ns against ~100).
  for (const key in spec) {
    switch (key) {
      case 'type':
      case 'payload':
      case 'id':
      case 'priority':
      case 'resources':
      case 'timeoutMs':
      case 'stopTimeoutMs':
      case 'retry':
      case 'group':
      case 'dependsOn':
      case 'dependencyPolicy':
        continue;
      default:
        checkKeys('', spec, SPEC_KEYS);
    }
  }
  const { type } = spec;
  if (typeof type !== 'string' || !ctx.isHandlerType(type)) {
    const known = ctx.handlerTypes();
    throw new InvalidJobError(
      'type',
      type,
      known.length
        ? `one of the handler types: ${known.join(', ')}`
        : 'a registered handler type (no handlers are registered)',
    );
  }
  if (
    spec.id !== undefined &&
    (typeof spec.id !== 'string' || spec.id.length === 0 || spec.id.length > 256)
  ) {
    throw new InvalidJobError('id', spec.id, 'a string of 1 to 256 characters');
  }
  const id = spec.id ?? ctx.newId();
  const priority = spec.priority ?? 'normal';
  const level = levelOf(priority);
  if (level < 0) throw new InvalidJobError('priority', spec.priority, `one of ${PRIORITY_NAMES.join(', ')}`);
  if (spec.resources !== undefined && !isObject(spec.resources)) {
    throw new InvalidJobError('resources', spec.resources, 'an object such as { gpu: 1, vramMb: 8000 }');
  }
  const timeoutMs = positiveTimeout('timeoutMs', spec.timeoutMs) ?? ctx.defaultTimeoutMs;
  const stopTimeoutMs =
    spec.stopTimeoutMs === undefined
      ? ctx.defaultStopTimeoutMs
      : checkStopTimeout('stopTimeoutMs', spec.stopTimeoutMs, (f, v, a) => new InvalidJobError(f, v, a));
  let maxAttempts = ctx.retryAttempts;
  let backoff = ctx.backoff;
  if (spec.retry !== undefined) {
    if (!isObject(spec.retry))
      throw new InvalidJobError('retry', spec.retry, 'an object { attempts, backoff }');
    checkKeys('retry', spec.retry, RETRY_KEYS);
    if (spec.retry.attempts !== undefined) maxAttempts = checkAttempts('retry.attempts', spec.retry.attempts);
    backoff = checkBackoff('retry.backoff', spec.retry.backoff, ctx.backoff);
  }
  if (spec.group !== undefined && (typeof spec.group !== 'string' || spec.group.length === 0)) {
    throw new InvalidJobError('group', spec.group, 'a non-empty string');
  }
  const deps = spec.dependsOn ?? [];
  if (!Array.isArray(deps) || deps.some((d) => typeof d !== 'string' || d.length === 0)) {
    throw new InvalidJobError('dependsOn', spec.dependsOn, 'an array of job ids');
  }
  if (deps.includes(id)) throw new DependencyCycleError([id, id]);
  const policy = spec.dependencyPolicy ?? 'afterok';
  if (policy !== 'afterok' && policy !== 'afterany') {
    throw new InvalidJobError('dependencyPolicy', spec.dependencyPolicy, "'afterok' or 'afterany'");
  }
  return {
    id,
    type,
    payload: spec.payload,
    priority,
    level,
    timeoutMs,
    stopTimeoutMs,
    maxAttempts,
    backoff,
    group: spec.group,
    dependsOn: deps.length === 0 ? NO_DEPENDENCIES : [...new Set(deps)],
    dependencyPolicy: policy,
  };
}

/**
 * A cycle among jobs submitted together (each id → the ids it depends on), or undefined.
 * Ids outside the batch are ignored here: they are existing jobs and cannot depend on new ones.
 * Depth-first with a stack of its own, not recursion: a chain of 100,000 jobs listed
 * dependents-first is as deep as it is long, and would overflow the call stack.
 */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 1 | 2>(); // 1: on the current path, 2: done
  // The current path, and for each of its jobs the index of the next dependency to look at.
  const path: string[] = [];
  const next: number[] = [];
  for (const root of graph.keys()) {
    if (state.has(root)) continue;
    state.set(root, 1);
    path.push(root);
    next.push(0);
    while (path.length > 0) {
      const top = path.length - 1;
      const id = path[top] as string;
      const deps = graph.get(id) ?? [];
      const i = next[top] as number;
      if (i === deps.length) {
        path.pop();
        next.pop();
        state.set(id, 2);
        continue;
      }
      next[top] = i + 1;
      const dep = deps[i] as string;
      if (!graph.has(dep)) continue;
      const s = state.get(dep);
      if (s === 1) return [...path.slice(path.lastIndexOf(dep)), dep];
      if (s === undefined) {
        state.set(dep, 1);
        path.push(dep);
        next.push(0);
      }
    }
  }
  return undefined;
}
