/**
 * Checking a simulation's input before anything runs, and the order in which its jobs arrive.
 * A malformed job is a mistake in the input, not an outcome of the run, so it throws here
 * (naming `jobs[i].<field>`) rather than showing up as a rejected job in the report.
 */
import { DependencyCycleError, InvalidJobError, InvalidOptionError } from '../core/errors.js';
import { levelOf, PRIORITY_NAMES } from '../core/priority.js';
import { checkKeys, isObject } from '../core/job-spec.js';
import { toUnits } from '../core/pool.js';
import type { SimulationJob, SimulationOptions } from './simulation-types.js';

const JOB_KEYS: ReadonlySet<string> = new Set([
  'id',
  'submitAtMs',
  'durationMs',
  'resources',
  'priority',
  'dependsOn',
  'dependencyPolicy',
  'group',
  'fails',
]);

/**
 * The latest virtual time a simulation takes (2^50 ms, ~35,700 years): far beyond it, adding a
 * tick's milliseconds no longer changes a double, and virtual time would stop moving (1e300 ran
 * forever). Epoch-stamped traces (~1.8e12) are well within.
 */
export const MAX_SIMULATED_MS = 2 ** 50;

/** Checks one job's own fields (not its dependencies). */
function checkJob(job: unknown, at: string): asserts job is SimulationJob {
  if (!isObject(job)) throw new InvalidJobError(at, job, 'an object { id, submitAtMs, durationMs }');
  checkKeys(at, job, JOB_KEYS);
  const { id, submitAtMs, durationMs, fails, priority, resources, group, dependencyPolicy } = job;
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) {
    throw new InvalidJobError(`${at}.id`, id, 'a string of 1 to 256 characters');
  }
  if (typeof submitAtMs !== 'number' || !(submitAtMs >= 0 && submitAtMs <= MAX_SIMULATED_MS)) {
    throw new InvalidJobError(`${at}.submitAtMs`, submitAtMs, `a number of ms in [0, ${MAX_SIMULATED_MS}]`);
  }
  if (
    typeof durationMs !== 'number' ||
    !(durationMs === Number.POSITIVE_INFINITY || (durationMs >= 0 && durationMs <= MAX_SIMULATED_MS))
  ) {
    throw new InvalidJobError(
      `${at}.durationMs`,
      durationMs,
      `a number of ms in [0, ${MAX_SIMULATED_MS}], or Infinity`,
    );
  }
  if (
    fails !== undefined &&
    typeof fails !== 'boolean' &&
    !(typeof fails === 'number' && Number.isInteger(fails) && fails >= 0)
  ) {
    throw new InvalidJobError(`${at}.fails`, fails, 'true, false or a whole number of failing attempts');
  }
  if (priority !== undefined && levelOf(priority) < 0) {
    throw new InvalidJobError(`${at}.priority`, priority, `one of ${PRIORITY_NAMES.join(', ')}`);
  }
  if (resources !== undefined) toUnits(resources as never, `${at}.resources`);
  if (group !== undefined && (typeof group !== 'string' || group.length === 0)) {
    throw new InvalidJobError(`${at}.group`, group, 'a non-empty string');
  }
  if (dependencyPolicy !== undefined && dependencyPolicy !== 'afterok' && dependencyPolicy !== 'afterany') {
    throw new InvalidJobError(`${at}.dependencyPolicy`, dependencyPolicy, "'afterok' or 'afterany'");
  }
}

/**
 * Checks every job and returns the submission order: by `submitAtMs`, ties in input order,
 * except that a job submitted at the same instant as a dependency comes after it (the engine
 * only accepts dependencies on jobs it already knows).
 */
export function checkSimulationJobs(jobs: readonly SimulationJob[]): number[] {
  if (!Array.isArray(jobs)) throw new InvalidJobError('jobs', jobs, 'an array of jobs');
  const index = new Map<string, number>();
  // By index, not forEach: a hole in a sparse array is a job of `undefined`, refused as one.
  for (let i = 0; i < jobs.length; i++) {
    const job: unknown = jobs[i];
    checkJob(job, `jobs[${i}]`);
    if (index.has(job.id)) throw new InvalidJobError(`jobs[${i}].id`, job.id, 'unique within the input');
    index.set(job.id, i);
  }
  const deps: number[][] = jobs.map((job, i) => {
    const list: unknown = job.dependsOn ?? [];
    const field = `jobs[${i}].dependsOn`;
    if (!Array.isArray(list)) throw new InvalidJobError(field, list, 'an array of job ids');
    return list.map((dep: unknown) => {
      const d = typeof dep === 'string' ? index.get(dep) : undefined;
      if (d === undefined) throw new InvalidJobError(field, dep, 'the id of another job of the input');
      if (d === i) throw new DependencyCycleError([job.id, job.id]);
      if ((jobs[d] as SimulationJob).submitAtMs > job.submitAtMs) {
        throw new InvalidJobError(
          field,
          dep,
          `a job that arrives no later than ${job.id} (${job.submitAtMs} ms)`,
        );
      }
      return d;
    });
  });
  const sorted = jobs.map((_, i) => i);
  sorted.sort(
    (a, b) => (jobs[a] as SimulationJob).submitAtMs - (jobs[b] as SimulationJob).submitAtMs || a - b,
  );
  // Dependencies arrive no later, so only ties can be out of order: place them depth-first,
  // with an explicit stack so that a long chain of same-instant jobs cannot overflow the stack.
  const state = new Uint8Array(jobs.length); // 0 unseen, 1 on the path, 2 placed
  const order: number[] = [];
  const at = (i: number) => (jobs[i] as SimulationJob).submitAtMs;
  for (const root of sorted) {
    if (state[root] !== 0) continue;
    const path: Array<{ job: number; next: number }> = [{ job: root, next: 0 }];
    state[root] = 1;
    while (path.length > 0) {
      const top = path[path.length - 1] as { job: number; next: number };
      const d = (deps[top.job] as number[])[top.next++];
      if (d === undefined) {
        path.pop();
        state[top.job] = 2;
        order.push(top.job);
      } else if (state[d] === 1) {
        const from = path.findIndex((p) => p.job === d);
        const cycle = [...path.slice(from).map((p) => p.job), d].map((k) => (jobs[k] as SimulationJob).id);
        throw new DependencyCycleError(cycle);
      } else if (state[d] === 0 && at(d) === at(top.job)) {
        state[d] = 1;
        path.push({ job: d, next: 0 });
      }
    }
  }
  return order;
}

/** Checks the options that `simulate()` handles itself; the engine checks the rest. */
export function checkSimulationOptions(options: SimulationOptions): void {
  if (!isObject(options)) throw new InvalidOptionError('options', options, 'an object');
  const { untilMs, seed } = options;
  if (
    untilMs !== undefined &&
    (typeof untilMs !== 'number' || !(untilMs >= 0 && untilMs <= MAX_SIMULATED_MS))
  ) {
    throw new InvalidOptionError('untilMs', untilMs, `a number of ms in [0, ${MAX_SIMULATED_MS}]`);
  }
  if (seed !== undefined && (typeof seed !== 'number' || !Number.isInteger(seed))) {
    throw new InvalidOptionError('seed', seed, 'an integer');
  }
}
