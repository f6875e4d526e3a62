/**
 * How `ai-batch run` resumes from its state file (a SQLite store of the engine): what of the
 * store is kept, what runs again, and what a changed job file means.
 *
 * - A job that **completed** before is kept and not rerun — unless its command, env, cwd,
 *   resources or dependencies changed in the file: then the run is refused, naming the job and
 *   the field (rerun everything with `--fresh`, or restore the field).
 * - A job that had **not completed** (interrupted while running, waiting, failed, cancelled) is
 *   forgotten by the store and submitted again as the file says now, with all its attempts.
 * - A job of the store that is **no longer in the file** is forgotten; a job **added** to the
 *   file is submitted like any other.
 */
import { createHash } from 'node:crypto';
import nodePath from 'node:path';
import type { JsonValue, StoreContents, StoredStatus } from '../store/store.js';
import type { JobFile } from './job-file.js';
import { JobFileError } from './job-file-error.js';

/** The state file of a job file when neither `--state` nor `--logs` says: `ai-batch-logs/<name>-<hash>.state.db`. */
export function defaultStatePath(jobFile: string, cwd = process.cwd()): string {
  const absolute = nodePath.resolve(cwd, jobFile);
  const hash = createHash('sha256').update(absolute).digest('hex').slice(0, 8);
  const name = nodePath.basename(absolute).replace(/[^A-Za-z0-9._-]/g, '_');
  return nodePath.join('ai-batch-logs', `${name}-${hash}.state.db`);
}

/** The state file beside a `--logs` folder. */
export function stateInLogDir(logDir: string): string {
  return nodePath.join(logDir, 'ai-batch-state.db');
}

/** What a resumed run found in its state, by job (counts for the summary). */
export type ResumeCounts = {
  /** Completed before: kept, not rerun. */
  completedBefore: number;
  /** Running when the run before stopped (a crash, a kill): run again. */
  interrupted: number;
  /** Failed or cancelled before (or waiting for a retry): run again. */
  failedBefore: number;
  /** Waiting before, or new in the file: run now for the first time. */
  notStarted: number;
  /** In the state but no longer in the file: forgotten. */
  forgotten: number;
};

/** What to do with a state, decided before anything runs. */
export type ResumePlan = {
  /** The jobs the scheduler recovers (completed ones). */
  kept: StoreContents['jobs'];
  /** Ids the store forgets before the scheduler opens it. */
  forget: string[];
  /** The ids of the file to submit (in file order). */
  submit: Set<string>;
  /** A line for the log of each job run again, by id. */
  notes: Map<string, string>;
  /** Undefined when the state held no job. */
  counts: ResumeCounts | undefined;
  /** The log folder of the run before, if its jobs say. */
  logDir: string | undefined;
};

/** The fields of a completed job that must not have changed for it to be kept. */
const COMPARED = ['command', 'env', 'cwd', 'resources', 'dependsOn'] as const;

/** JSON with object keys sorted: equal values give equal text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function record(value: JsonValue | undefined): { [key: string]: JsonValue } {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {};
}

/** The compared fields of a stored spec. */
function storedFields(spec: { [key: string]: JsonValue }): Record<(typeof COMPARED)[number], unknown> {
  const payload = record(spec['payload']);
  return {
    command: payload['command'],
    env: payload['env'] ?? {},
    cwd: payload['cwd'],
    resources: spec['resources'] ?? {},
    dependsOn: spec['dependsOn'] ?? [],
  };
}

function describe(status: StoredStatus): string {
  if (status.state === 'cancelled') return 'was cancelled';
  if (status.state === 'retrying') return 'was waiting for a retry';
  return `had ${status.state}`;
}

/**
 * Decides what a run does with what its state holds. Throws a `JobFileError` when a job that
 * completed before has changed in the file.
 */
export function planResume(contents: StoreContents, jobFile: JobFile): ResumePlan {
  const byId = new Map(jobFile.jobs.map((job) => [job.id, job]));
  const plan: ResumePlan = {
    kept: [],
    forget: [],
    submit: new Set(byId.keys()),
    notes: new Map(),
    counts: undefined,
    logDir: undefined,
  };
  if (contents.jobs.length === 0) return plan;
  const counts: ResumeCounts = {
    completedBefore: 0,
    interrupted: 0,
    failedBefore: 0,
    notStarted: 0,
    forgotten: 0,
  };
  for (const entry of contents.jobs) {
    const { job: stored, status } = entry;
    const logDir = record(stored.spec['payload'])['logDir'];
    if (plan.logDir === undefined && typeof logDir === 'string') plan.logDir = logDir;
    const job = byId.get(stored.id);
    if (job === undefined) {
      counts.forgotten++;
      plan.forget.push(stored.id);
      continue;
    }
    if (status.state === 'completed') {
      const before = storedFields(stored.spec);
      const current: Record<(typeof COMPARED)[number], unknown> = {
        command: job.command,
        env: job.env,
        cwd: job.cwd,
        resources: job.resources ?? {},
        dependsOn: job.dependsOn,
      };
      const field = COMPARED.find((f) => canonical(before[f]) !== canonical(current[f]));
      if (field !== undefined) {
        throw new JobFileError(
          jobFile.file,
          field,
          `${field} changed since it completed in the run this state holds (${showField(before[field])} → ` +
            `${showField(current[field])}); a completed job is not rerun — restore its ${field}, or start ` +
            `every job over with --fresh`,
          { index: job.index, id: job.id },
        );
      }
      counts.completedBefore++;
      plan.kept.push(entry);
      plan.submit.delete(stored.id);
      continue;
    }
    plan.forget.push(stored.id);
    if (status.state === 'running') {
      counts.interrupted++;
      plan.notes.set(
        stored.id,
        `=== ai-batch: resumed after an interrupted attempt (attempt ${status.attempt} was running when ai-batch stopped)\n`,
      );
    } else if (status.state === 'pending' || status.state === 'queued' || status.state === 'scheduled') {
      counts.notStarted++;
    } else {
      counts.failedBefore++;
      plan.notes.set(stored.id, `=== ai-batch: resumed; this job ${describe(status)} in the run before\n`);
    }
  }
  const stored = new Set(contents.jobs.map((e) => e.job.id));
  for (const id of byId.keys()) if (!stored.has(id)) counts.notStarted++;
  plan.counts = counts;
  return plan;
}

function showField(value: unknown): string {
  const text = JSON.stringify(value) ?? 'nothing';
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** `resumed: 3 completed before, 1 interrupted and rerun, 4 not started` */
export function renderResumed(counts: ResumeCounts): string {
  const parts = [`${counts.completedBefore} completed before`];
  if (counts.interrupted > 0) parts.push(`${counts.interrupted} interrupted and rerun`);
  if (counts.failedBefore > 0) parts.push(`${counts.failedBefore} failed or cancelled before and rerun`);
  parts.push(`${counts.notStarted} not started`);
  if (counts.forgotten > 0) parts.push(`${counts.forgotten} no longer in the file (forgotten)`);
  return `resumed: ${parts.join(', ')}`;
}
