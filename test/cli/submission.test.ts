import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRIES, validateJobFile, type CommandJob, type JobFile } from '../../src/cli/job-file.js';
import { createScheduler, createVirtualClock } from '../../src/index.js';
import { submitErrorToJobFileError, toSubmission } from '../../src/cli/submission.js';
import {
  DependencyCycleError,
  DuplicateJobError,
  InvalidJobError,
  UnknownDependencyError,
} from '../../src/core/errors.js';

const base: CommandJob = {
  id: 'up',
  index: 2,
  command: ['python', 'up.py'],
  resources: { gpu: 1 },
  priority: 'high',
  timeoutMs: undefined,
  stopTimeoutMs: undefined,
  retries: 0,
  retryDelayMs: undefined,
  dependsOn: ['dl'],
  dependencyPolicy: 'afterok',
  group: undefined,
  env: { A: '1' },
  cwd: '/w',
};

describe('toSubmission', () => {
  it('makes a command job; retries are extra tries, a retry delay a fixed backoff', () => {
    expect(toSubmission(base)).toEqual({
      type: 'command',
      id: 'up',
      payload: { command: ['python', 'up.py'], env: { A: '1' }, cwd: '/w' },
      priority: 'high',
      resources: { gpu: 1 },
      dependsOn: ['dl'],
      dependencyPolicy: 'afterok',
      retry: { attempts: 1 },
    });
    expect(
      toSubmission({ ...base, retries: 2, retryDelayMs: 250, timeoutMs: 1_000, group: 'g' }),
    ).toMatchObject({
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 250, jitter: false } },
      timeoutMs: 1_000,
      group: 'g',
    });
  });

  it('passes a job’s stopTimeout on as its stopTimeoutMs, and nothing without one (held)', () => {
    expect(toSubmission({ ...base, stopTimeoutMs: 5_000 })).toMatchObject({ stopTimeoutMs: 5_000 });
    expect(toSubmission({ ...base, stopTimeoutMs: 0 })).toMatchObject({ stopTimeoutMs: 0 });
    expect('stopTimeoutMs' in toSubmission(base)).toBe(false);
  });
});

describe('submitErrorToJobFileError', () => {
  const file: JobFile = { file: 'jobs.yaml', resources: undefined, jobs: [base] };

  it('names the file, and the job when the error says which', () => {
    expect(submitErrorToJobFileError(new UnknownDependencyError('up', 'x'), file)?.message).toBe(
      'jobs.yaml: job "up" (jobs[2]): dependsOn: job "up" depends on unknown job "x"',
    );
    expect(submitErrorToJobFileError(new DependencyCycleError(['up', 'dl', 'up']), file)?.message).toBe(
      'jobs.yaml: job "up" (jobs[2]): dependsOn: dependencies form a cycle: up → dl → up',
    );
    expect(submitErrorToJobFileError(new DuplicateJobError('up'), file)?.field).toBe('id');
    expect(
      submitErrorToJobFileError(new InvalidJobError('resources.cpu', -1, 'a finite number ≥ 0'), file)
        ?.message,
    ).toBe('jobs.yaml: resources.cpu must be a finite number ≥ 0; got -1');
    expect(submitErrorToJobFileError(new Error('other'), file)).toBeUndefined();
  });
});

describe('the default number of tries, CLI and library', () => {
  it('runs a job file’s command once unless it says otherwise, where the library tries 3 times; README says both, and why', async () => {
    const file = validateJobFile({ jobs: [{ id: 'once', command: 'true' }] }, { file: 'j.yaml', dir: '/w' });
    const cliJob = file.jobs[0] as CommandJob;
    expect(cliJob.retries).toBe(DEFAULT_RETRIES);

    const scheduler = createScheduler({
      resources: { cpu: 1, memoryMb: 1 },
      clock: createVirtualClock(),
      handlers: { command: async () => ({ exitCode: 0 as const, log: '' }) },
    });
    try {
      const library = scheduler.submit({ type: 'command', id: 'lib', payload: {} });
      scheduler.submit({ ...toSubmission(cliJob), id: 'cli' });
      const libraryAttempts = scheduler.get(library.id)?.maxAttempts;
      const cliAttempts = scheduler.get('cli')?.maxAttempts;
      expect(cliAttempts).toBe(DEFAULT_RETRIES + 1);
      expect(cliAttempts).toBe(1);
      expect(libraryAttempts).toBe(3);

      const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
      const cli = /`retries` counts extra tries and defaults to (\d+)/.exec(readme);
      const lib = /`retry\.attempts` counts all tries and defaults to (\d+)/.exec(readme);
      expect(Number(cli?.[1]), 'README on retries').toBe(DEFAULT_RETRIES);
      expect(Number(lib?.[1]), 'README on retry.attempts').toBe(libraryAttempts);
      expect(readme).toMatch(/They differ on purpose: a shell command is not known to be safe to run twice/);
    } finally {
      await scheduler.shutdown({ mode: 'cancel' });
    }
  });
});
