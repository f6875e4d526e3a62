/**
 * What `ai-batch run` does with its state file: the plan made from what the engine journaled
 * (a real scheduler on a journal kept in memory, in virtual time) and the job file as it is now.
 */
import { describe, expect, it } from 'vitest';
import { validateJobFile, type JobFile } from '../../src/cli/job-file.js';
import { JobFileError } from '../../src/cli/job-file-error.js';
import { defaultStatePath, planResume, renderResumed } from '../../src/cli/resume.js';
import { toSubmission, type CliHandlers } from '../../src/cli/submission.js';
import { createScheduler, createVirtualClock } from '../../src/index.js';
import type { StoreContents } from '../../src/store/store.js';
import { MemoryStore } from '../helpers/memory-store.js';

type RawJob = Record<string, unknown>;
const JOBS: RawJob[] = [
  { id: 'done', command: 'echo done', env: { A: '1' }, resources: { cpu: 1 } },
  { id: 'bad', command: 'exit 3' },
  { id: 'hang', command: 'sleep 100' },
  { id: 'waits', command: 'echo w', dependsOn: ['hang'] },
];

function fileOf(jobs: RawJob[]): JobFile {
  return validateJobFile({ jobs }, { file: 'jobs.yaml', dir: '/w' });
}

/** What the store held when the CLI died: `done` completed, `bad` failed, `hang` running, `waits` pending. */
async function crashedContents(): Promise<StoreContents> {
  const store = new MemoryStore();
  const clock = createVirtualClock();
  const scheduler = createScheduler<CliHandlers>({
    resources: { cpu: 8, memoryMb: 8192 },
    clock,
    store,
    handlers: {
      command: ({ id, signal }) => {
        if (id === 'bad') return Promise.reject(new Error('exit code 3'));
        if (id === 'hang') return new Promise((_, reject) => signal.addEventListener('abort', reject));
        return Promise.resolve({ exitCode: 0, log: `/logs/${id}.log` });
      },
    },
  });
  scheduler.submitAll(fileOf(JOBS).jobs.map((job) => toSubmission(job, '/logs/run-1')));
  await clock.advanceBy(1_000);
  expect(Object.fromEntries(scheduler.list().map((j) => [j.id, j.state]))).toEqual({
    done: 'completed',
    bad: 'failed',
    hang: 'running',
    waits: 'pending',
  });
  // The process dies here: what the store holds is all the next run has.
  return store.contentsAt();
}

describe('planResume', () => {
  it('keeps completed jobs, runs the others again, forgets removed ones, submits added ones', async () => {
    const contents = await crashedContents();
    const plan = planResume(contents, fileOf([...JOBS.slice(0, 3), { id: 'new', command: 'echo new' }]));
    expect(plan.kept.map((e) => e.job.id)).toEqual(['done']);
    expect(plan.forget.sort()).toEqual(['bad', 'hang', 'waits']);
    expect([...plan.submit].sort()).toEqual(['bad', 'hang', 'new']);
    expect(plan.counts).toEqual({
      completedBefore: 1,
      interrupted: 1,
      failedBefore: 1,
      notStarted: 1,
      forgotten: 1,
    });
    expect(plan.logDir).toBe('/logs/run-1');
    expect(plan.notes.get('hang')).toMatch(
      /^=== ai-batch: resumed after an interrupted attempt \(attempt 1 /,
    );
    expect(plan.notes.get('bad')).toBe('=== ai-batch: resumed; this job had failed in the run before\n');
    expect(plan.notes.has('done')).toBe(false);
    expect(plan.counts && renderResumed(plan.counts)).toBe(
      'resumed: 1 completed before, 1 interrupted and rerun, 1 failed or cancelled before and rerun, ' +
        '1 not started, 1 no longer in the file (forgotten)',
    );
  });

  it.each([
    ['command', { command: 'echo changed' }, /command changed .*"echo done" → "echo changed"/],
    ['env', { env: { A: '2' } }, /env changed .*\{"A":"1"\} → \{"A":"2"\}/],
    ['cwd', { cwd: 'sub' }, /cwd changed .*"\/w" → "\/w\/sub"/],
    ['resources', { resources: { cpu: 2 } }, /resources changed .*\{"cpu":1\} → \{"cpu":2\}/],
    ['dependsOn', { dependsOn: ['bad'] }, /dependsOn changed .*\[\] → \["bad"\]/],
  ])(
    'refuses a completed job whose %s changed, naming the job and the field',
    async (field, change, message) => {
      const contents = await crashedContents();
      const jobs = JOBS.map((job) => (job['id'] === 'done' ? { ...job, ...change } : job));
      let error: unknown;
      try {
        planResume(contents, fileOf(jobs));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(JobFileError);
      expect((error as JobFileError).field).toBe(field);
      expect((error as JobFileError).job).toEqual({ index: 0, id: 'done' });
      expect((error as Error).message).toMatch(/^jobs\.yaml: job "done" \(jobs\[0\]\): /);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).toMatch(/--fresh$/);
    },
  );

  it('lets other fields of a completed job change, and any field of a job that had not completed', async () => {
    const contents = await crashedContents();
    const jobs = JOBS.map((job) =>
      job['id'] === 'done'
        ? { ...job, priority: 'high', retries: 2, env: { A: 1 } }
        : { ...job, command: 'echo new' },
    );
    const plan = planResume(contents, fileOf(jobs));
    expect(plan.kept.map((e) => e.job.id)).toEqual(['done']);
    expect([...plan.submit].sort()).toEqual(['bad', 'hang', 'waits']);
  });

  it('an empty state: every job is submitted, nothing resumed', () => {
    const plan = planResume({ jobs: [], paused: false }, fileOf(JOBS));
    expect([...plan.submit]).toEqual(['done', 'bad', 'hang', 'waits']);
    expect(plan.counts).toBeUndefined();
    expect(plan.logDir).toBeUndefined();
  });
});

describe('defaultStatePath', () => {
  it('is one file per job file path under ./ai-batch-logs, the same from any spelling of the path', () => {
    const path = defaultStatePath('jobs.yaml', '/work/a');
    expect(path).toMatch(/^ai-batch-logs\/jobs\.yaml-[0-9a-f]{8}\.state\.db$/);
    expect(defaultStatePath('/work/a/jobs.yaml', '/tmp')).toBe(path);
    expect(defaultStatePath('jobs.yaml', '/work/b')).not.toBe(path);
    expect(defaultStatePath('my jobs.yaml', '/w')).toMatch(/^ai-batch-logs\/my_jobs\.yaml-/);
  });
});
