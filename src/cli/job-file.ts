/**
 * The job file of `ai-batch run`, checked as a whole before anything runs. Every problem becomes
 * one `JobFileError` naming the file, the job and the field. Pure: no file system access (the
 * loader reads the file and checks working directories).
 */
import nodePath from 'node:path';
import { InvalidJobError } from '../core/errors.js';
import { findCycle, MAX_TIMEOUT_MS } from '../core/job-spec.js';
import { toUnits } from '../core/pool.js';
import { PRIORITY_NAMES, type PriorityName } from '../core/priority.js';
import type { ResourcePool, ResourceRequest } from '../core/resources.js';
import { bareNumberAdvice, DURATION_FORMS, parseDuration } from './duration.js';
import { JobFileError, showValue } from './job-file-error.js';
import { checkPool } from './pool-file.js';

/** One job of a job file, checked, with every default applied. */
export type CommandJob = {
  id: string;
  /** Its position in the file's `jobs` array, for messages. */
  index: number;
  /** An argv array (run directly) or a shell string (run with `/bin/sh -c`). */
  command: string | string[];
  resources: ResourceRequest;
  priority: PriorityName;
  timeoutMs: number | undefined;
  /**
   * How long an attempt told to stop keeps its resources while its processes have not ended;
   * then they are force-released. Undefined: `--stop-timeout`, else held until they are gone.
   */
  stopTimeoutMs: number | undefined;
  /** Extra tries after the first: `retries: 2` means at most 3 attempts. */
  retries: number;
  /** A fixed delay between tries; the scheduler's exponential backoff when absent. */
  retryDelayMs: number | undefined;
  dependsOn: string[];
  dependencyPolicy: 'afterok' | 'afterany';
  group: string | undefined;
  env: Record<string, string>;
  /** Absolute; relative paths in the file are resolved against the file's folder. */
  cwd: string;
};

/** A checked job file. */
export type JobFile = {
  /** The file as the user named it. */
  file: string;
  /** The pool the file declares, if any. */
  resources: ResourcePool | undefined;
  jobs: CommandJob[];
};

/** Where the file came from: its name for messages and its folder for relative `cwd`s. */
export type JobFileSource = { file: string; dir: string };

/** Job ids become log file names, so they are kept to characters that are safe in one. */
export const JOB_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const TOP_LEVEL_FIELDS = ['resources', 'jobs'];
const JOB_FIELDS = [
  'id',
  'command',
  'resources',
  'priority',
  'timeout',
  'timeoutMs',
  'stopTimeout',
  'retries',
  'retryDelay',
  'dependsOn',
  'dependencyPolicy',
  'group',
  'env',
  'cwd',
];
const MAX_RETRIES = 999;

/**
 * Extra tries of a job whose file does not say: none, so a command runs once. The library's
 * default is 3 tries in all (`retry.attempts`); a shell command is not known to be safe to run
 * twice, and its failures mostly repeat (README, "The `ai-batch` CLI", says why at length).
 */
export const DEFAULT_RETRIES = 0;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a parsed job file (YAML or JSON) and returns its jobs, or throws the first problem
 * found as a `JobFileError`. Checks shapes and ranges, unique ids, that `dependsOn` names jobs of
 * the file, and that there is no dependency cycle; whether requests fit the pool is checked
 * later, once the pool is known (`checkJobsFitPool`).
 */
export function validateJobFile(data: unknown, source: JobFileSource): JobFile {
  const { file } = source;
  if (!isObject(data)) {
    throw new JobFileError(file, '', `must be a mapping with a "jobs" list; got ${showValue(data)}`);
  }
  for (const key of Object.keys(data)) {
    if (!TOP_LEVEL_FIELDS.includes(key)) {
      throw new JobFileError(
        file,
        key,
        `unknown top-level field "${key}" (known: ${TOP_LEVEL_FIELDS.join(', ')})`,
      );
    }
  }
  const resources =
    data['resources'] === undefined ? undefined : checkPool(data['resources'], file, 'resources');
  const list = data['jobs'];
  if (!Array.isArray(list) || list.length === 0) {
    throw new JobFileError(file, 'jobs', `jobs must be a non-empty list of jobs; got ${showValue(list)}`);
  }
  const jobs: CommandJob[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw: unknown, index) => {
    const job = checkJob(raw, index, source);
    const first = seen.get(job.id);
    if (first !== undefined) {
      throw new JobFileError(file, 'id', `id is already used by jobs[${first}]`, { index, id: job.id });
    }
    seen.set(job.id, index);
    jobs.push(job);
  });
  for (const job of jobs) {
    for (const dep of job.dependsOn) {
      if (dep === job.id) throw jobError(source, job, 'dependsOn', 'dependsOn names the job itself');
      if (!seen.has(dep)) {
        throw jobError(
          source,
          job,
          'dependsOn',
          `dependsOn names ${JSON.stringify(dep)}, which is not a job of this file`,
        );
      }
    }
  }
  const cycle = findCycle(new Map(jobs.map((j) => [j.id, j.dependsOn])));
  if (cycle) {
    const job = jobs[seen.get(cycle[0] as string) as number] as CommandJob;
    throw jobError(source, job, 'dependsOn', `dependsOn forms a cycle: ${cycle.join(' → ')}`);
  }
  return { file, resources, jobs };
}

function jobError(source: JobFileSource, job: { index: number; id: string }, field: string, detail: string) {
  return new JobFileError(source.file, field, detail, { index: job.index, id: job.id });
}

function checkJob(raw: unknown, index: number, source: JobFileSource): CommandJob {
  const { file } = source;
  if (!isObject(raw)) {
    throw new JobFileError(file, '', `must be a mapping such as { id, command }; got ${showValue(raw)}`, {
      index,
    });
  }
  const id = raw['id'];
  if (typeof id !== 'string' || !JOB_ID_PATTERN.test(id)) {
    throw new JobFileError(
      file,
      'id',
      `id must be 1 to 128 letters, digits, ".", "_" or "-" (starting with a letter or digit); got ${showValue(id)}`,
      { index },
    );
  }
  const at = { index, id };
  const fail = (field: string, detail: string): never => {
    throw new JobFileError(file, field, detail, at);
  };
  const must = (field: string, allowed: string): never =>
    fail(field, `${field} must be ${allowed}; got ${showValue(raw[field])}`);
  const mustDuration = (field: string, allowed: string): never =>
    fail(field, `${field} must be ${allowed}; got ${showValue(raw[field])}${bareNumberAdvice(raw[field])}`);

  for (const key of Object.keys(raw)) {
    if (!JOB_FIELDS.includes(key)) fail(key, `unknown field "${key}" (known: ${JOB_FIELDS.join(', ')})`);
  }
  const command = checkCommand(raw['command']) ?? must('command', 'a non-empty string or argv array');

  const resources = raw['resources'] ?? {};
  if (!isObject(resources)) must('resources', 'a mapping such as { gpu: 1, vramMb: 8000, cpu: 2 }');
  for (const key of Object.keys(resources as object)) {
    if (!['cpu', 'memoryMb', 'gpu', 'vramMb', 'custom'].includes(key)) {
      fail(
        `resources.${key}`,
        `unknown field "resources.${key}" (known: cpu, memoryMb, gpu, vramMb, custom)`,
      );
    }
  }
  try {
    toUnits(resources as ResourceRequest, 'resources');
  } catch (error) {
    if (!(error instanceof InvalidJobError)) throw error;
    fail(error.field, error.message);
  }

  const priority = raw['priority'] ?? 'normal';
  if (!PRIORITY_NAMES.includes(priority as PriorityName))
    must('priority', `one of ${PRIORITY_NAMES.join(', ')}`);

  if (raw['timeout'] !== undefined && raw['timeoutMs'] !== undefined) {
    fail('timeout', 'give either timeout or timeoutMs, not both');
  }
  const timeoutField = raw['timeoutMs'] !== undefined ? 'timeoutMs' : 'timeout';
  const timeoutMs = optionalDuration(raw[timeoutField], timeoutField === 'timeoutMs', Number.MIN_VALUE);
  if (timeoutMs === false) mustDuration(timeoutField, timeoutForms(timeoutField));
  const stopTimeoutMs = optionalDuration(raw['stopTimeout'], false, 0);
  if (stopTimeoutMs === false) mustDuration('stopTimeout', `${DURATION_FORMS}, at most ${MAX_TIMEOUT_MS} ms`);
  const retryDelayMs = optionalDuration(raw['retryDelay'], false, 0);
  if (retryDelayMs === false) mustDuration('retryDelay', `${DURATION_FORMS}, at most ${MAX_TIMEOUT_MS} ms`);

  const retries = raw['retries'] ?? DEFAULT_RETRIES;
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
    must('retries', `a whole number of extra tries in [0, ${MAX_RETRIES}]`);
  }

  let dependsOn = raw['dependsOn'] ?? [];
  if (typeof dependsOn === 'string') dependsOn = [dependsOn];
  if (!Array.isArray(dependsOn) || dependsOn.some((d) => typeof d !== 'string' || d === '')) {
    must('dependsOn', 'a job id or a list of job ids');
  }
  const policy = raw['dependencyPolicy'] ?? 'afterok';
  if (policy !== 'afterok' && policy !== 'afterany') must('dependencyPolicy', '"afterok" or "afterany"');

  const group = raw['group'];
  if (group !== undefined && (typeof group !== 'string' || group === '')) must('group', 'a non-empty string');

  const env = checkEnv(raw['env'], fail);
  const cwd = raw['cwd'];
  if (cwd !== undefined && (typeof cwd !== 'string' || cwd === '')) must('cwd', 'a folder path');

  return {
    id,
    index,
    command,
    resources: resources as ResourceRequest,
    priority: priority as PriorityName,
    timeoutMs: timeoutMs as number | undefined,
    stopTimeoutMs: stopTimeoutMs as number | undefined,
    retries: retries as number,
    retryDelayMs: retryDelayMs as number | undefined,
    dependsOn: [...new Set(dependsOn as string[])],
    dependencyPolicy: policy as 'afterok' | 'afterany',
    group: group as string | undefined,
    env,
    cwd: nodePath.resolve(source.dir, (cwd as string | undefined) ?? '.'),
  };
}

/** An argv array or a shell string, or undefined when it is neither. */
function checkCommand(value: unknown): string | string[] | undefined {
  if (typeof value === 'string') return value.trim() === '' ? undefined : value;
  if (!Array.isArray(value) || value.length === 0) return undefined;
  if (!value.every((arg): arg is string => typeof arg === 'string')) return undefined;
  return value[0] === '' ? undefined : [...value];
}

function timeoutForms(field: string): string {
  return field === 'timeoutMs'
    ? `a number of ms in (0, ${MAX_TIMEOUT_MS}]`
    : `${DURATION_FORMS}, more than 0 and at most ${MAX_TIMEOUT_MS} ms`;
}

/**
 * `undefined` when absent, the milliseconds when valid, `false` when invalid (the caller names
 * the field). `numbersOnly` is for the `…Ms` fields, which take a number of ms and no units;
 * the others take a duration with a unit, never a bare number.
 */
function optionalDuration(value: unknown, numbersOnly: boolean, min: number): number | undefined | false {
  if (value === undefined) return undefined;
  if (numbersOnly && (typeof value !== 'number' || !Number.isFinite(value))) return false;
  const ms = numbersOnly ? (value as number) : parseDuration(value);
  if (ms === undefined || ms < min || ms > MAX_TIMEOUT_MS) return false;
  return ms;
}

function checkEnv(value: unknown, fail: (field: string, detail: string) => never): Record<string, string> {
  if (value === undefined) return {};
  if (!isObject(value)) return fail('env', `env must be a mapping of NAME: value; got ${showValue(value)}`);
  const env: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      fail(`env.${name}`, `env name ${JSON.stringify(name)} is not a valid variable name`);
    // YAML turns `PORT: 8080` into a number; a variable is text either way.
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      fail(`env.${name}`, `env.${name} must be a string, number or boolean; got ${showValue(v)}`);
    }
    env[name] = String(v);
  }
  return env;
}
