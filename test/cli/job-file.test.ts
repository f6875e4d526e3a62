import { describe, expect, it } from 'vitest';
import { JobFileError } from '../../src/cli/job-file-error.js';
import { validateJobFile } from '../../src/cli/job-file.js';

const source = { file: 'jobs.yaml', dir: '/work/batch' };
const ok = { id: 'ok', command: 'true' };

/** The JobFileError that validating `data` throws. */
function errorOf(data: unknown): JobFileError {
  try {
    validateJobFile(data, source);
  } catch (error) {
    if (error instanceof JobFileError) return error;
    throw error;
  }
  throw new Error('expected a JobFileError');
}

describe('validateJobFile', () => {
  it('applies the defaults and resolves cwd against the file’s folder', () => {
    const file = validateJobFile(
      {
        jobs: [
          { id: 'a', command: ['python', 'a.py'] },
          {
            id: 'b',
            command: 'make all',
            resources: { gpu: 0.5, vramMb: 4000 },
            priority: 'high',
            timeout: '2m',
            stopTimeout: '45s',
            retries: 2,
            retryDelay: '500ms',
            dependsOn: 'a',
            dependencyPolicy: 'afterany',
            group: 'g',
            env: { PORT: 8080, DEBUG: true, NAME: 'x' },
            cwd: 'sub',
          },
        ],
      },
      source,
    );
    expect(file.resources).toBeUndefined();
    expect(file.jobs[0]).toEqual({
      id: 'a',
      index: 0,
      command: ['python', 'a.py'],
      resources: {},
      priority: 'normal',
      timeoutMs: undefined,
      stopTimeoutMs: undefined,
      retries: 0,
      retryDelayMs: undefined,
      dependsOn: [],
      dependencyPolicy: 'afterok',
      group: undefined,
      env: {},
      cwd: '/work/batch',
    });
    expect(file.jobs[1]).toMatchObject({
      timeoutMs: 120_000,
      stopTimeoutMs: 45_000,
      retries: 2,
      retryDelayMs: 500,
      dependsOn: ['a'],
      dependencyPolicy: 'afterany',
      env: { PORT: '8080', DEBUG: 'true', NAME: 'x' },
      cwd: '/work/batch/sub',
    });
  });

  it('takes timeoutMs as a number of ms and keeps the pool it declares', () => {
    const file = validateJobFile(
      { resources: { cpu: 4, memoryMb: 1024 }, jobs: [{ ...ok, timeoutMs: 250 }] },
      source,
    );
    expect(file.jobs[0]?.timeoutMs).toBe(250);
    expect(file.resources).toEqual({ cpu: 4, memoryMb: 1024 });
  });

  const jobCases: Array<[string, Record<string, unknown>, string, RegExp]> = [
    [
      'a number as command',
      { command: 42 },
      'command',
      /command must be a non-empty string or argv array; got 42/,
    ],
    ['an empty command', { command: '  ' }, 'command', /command must be/],
    ['an argv with a non-string', { command: ['echo', 1] }, 'command', /command must be/],
    ['an empty argv', { command: [] }, 'command', /command must be/],
    [
      'an unknown field',
      { command: 'x', dependOn: ['a'] },
      'dependOn',
      /unknown field "dependOn" \(known: id, command/,
    ],
    [
      'a resource that is not a mapping',
      { command: 'x', resources: 2 },
      'resources',
      /resources must be a mapping/,
    ],
    [
      'an unknown resource',
      { command: 'x', resources: { gpus: 1 } },
      'resources.gpus',
      /unknown field "resources\.gpus"/,
    ],
    [
      'a negative cpu',
      { command: 'x', resources: { cpu: -1 } },
      'resources.cpu',
      /resources\.cpu must be a finite number ≥ 0; got -1/,
    ],
    [
      'a GPU count like 1.5',
      { command: 'x', resources: { gpu: 1.5 } },
      'resources.gpu',
      /resources\.gpu must be 0, a share/,
    ],
    [
      'VRAM without a GPU',
      { command: 'x', resources: { vramMb: 10 } },
      'resources.vramMb',
      /resources\.vramMb must be 0 unless/,
    ],
    [
      'an unknown priority',
      { command: 'x', priority: 'urgent' },
      'priority',
      /priority must be one of background, low, normal, high, critical; got "urgent"/,
    ],
    [
      'a timeout without a unit',
      { command: 'x', timeout: '30' },
      'timeout',
      /timeout must be a duration with a unit, such as 500ms, 30s, 5m or 1h, .*; got "30" \(a bare number has no unit: write "30s" for seconds or "30ms" for milliseconds\)$/,
    ],
    [
      // YAML's `timeout: 30` is a number; it used to mean 30 ms, without a word.
      'a timeout that is a bare number',
      { command: 'x', timeout: 30 },
      'timeout',
      /timeout must be a duration with a unit.*; got 30 \(a bare number has no unit: write "30s" for seconds or "30ms" for milliseconds\)$/,
    ],
    [
      'a stopTimeout that is a bare number',
      { command: 'x', stopTimeout: 30 },
      'stopTimeout',
      /^jobs\.yaml: job "resize" \(jobs\[1\]\): stopTimeout must be a duration with a unit, such as 500ms, 30s, 5m or 1h, at most 2147483647 ms; got 30 \(a bare number has no unit: write "30s" for seconds or "30ms" for milliseconds\)$/,
    ],
    [
      'a stopTimeout of no duration',
      { command: 'x', stopTimeout: 'never' },
      'stopTimeout',
      /stopTimeout must be/,
    ],
    [
      'a retryDelay that is a bare number',
      { command: 'x', retryDelay: 1.5 },
      'retryDelay',
      /retryDelay must be a duration with a unit.*; got 1\.5 \(a bare number has no unit: write "1\.5s" for seconds or "1\.5ms" for milliseconds\)$/,
    ],
    ['a zero timeout', { command: 'x', timeout: 0 }, 'timeout', /timeout must be/],
    [
      'timeoutMs as text',
      { command: 'x', timeoutMs: '30s' },
      'timeoutMs',
      /timeoutMs must be a number of ms/,
    ],
    [
      'timeout and timeoutMs',
      { command: 'x', timeout: '1s', timeoutMs: 1000 },
      'timeout',
      /either timeout or timeoutMs/,
    ],
    [
      'fractional retries',
      { command: 'x', retries: 1.5 },
      'retries',
      /retries must be a whole number of extra tries in \[0, 999\]/,
    ],
    ['negative retries', { command: 'x', retries: -1 }, 'retries', /retries must be/],
    ['a bad retryDelay', { command: 'x', retryDelay: 'soon' }, 'retryDelay', /retryDelay must be a duration/],
    [
      'dependsOn with a number',
      { command: 'x', dependsOn: [1] },
      'dependsOn',
      /dependsOn must be a job id or a list of job ids/,
    ],
    [
      'an unknown dependency policy',
      { command: 'x', dependencyPolicy: 'always' },
      'dependencyPolicy',
      /dependencyPolicy must be "afterok" or "afterany"/,
    ],
    ['an empty group', { command: 'x', group: '' }, 'group', /group must be a non-empty string/],
    ['env that is a list', { command: 'x', env: ['A=1'] }, 'env', /env must be a mapping of NAME: value/],
    [
      'env with an object value',
      { command: 'x', env: { A: { b: 1 } } },
      'env.A',
      /env\.A must be a string, number or boolean/,
    ],
    [
      'env with a bad name',
      { command: 'x', env: { 'A-B': '1' } },
      'env.A-B',
      /env name "A-B" is not a valid variable name/,
    ],
    ['an empty cwd', { command: 'x', cwd: '' }, 'cwd', /cwd must be a folder path/],
  ];

  it.each(jobCases)('names the file, the job and the field for %s', (_name, fields, field, message) => {
    const error = errorOf({ jobs: [ok, { id: 'resize', ...fields }] });
    expect(error.file).toBe('jobs.yaml');
    expect(error.job).toEqual({ index: 1, id: 'resize' });
    expect(error.field).toBe(field);
    expect(error.message).toMatch(/^jobs\.yaml: job "resize" \(jobs\[1\]\): /);
    expect(error.message).toMatch(message);
  });

  it('names the job by index when its id is missing or unusable', () => {
    for (const id of [undefined, '', 'has space', '../etc', 42]) {
      const error = errorOf({ jobs: [ok, { id, command: 'x' }] });
      expect(error.field).toBe('id');
      expect(error.message).toMatch(/^jobs\.yaml: jobs\[1\]: id must be 1 to 128 letters, digits/);
    }
    expect(errorOf({ jobs: [ok, 'echo hi'] }).message).toMatch(/^jobs\.yaml: jobs\[1\]: must be a mapping/);
  });

  it('refuses duplicate ids, unknown and self dependencies, and cycles', () => {
    expect(errorOf({ jobs: [ok, { id: 'ok', command: 'y' }] }).message).toBe(
      'jobs.yaml: job "ok" (jobs[1]): id is already used by jobs[0]',
    );
    expect(errorOf({ jobs: [ok, { id: 'b', command: 'x', dependsOn: ['nope'] }] }).message).toBe(
      'jobs.yaml: job "b" (jobs[1]): dependsOn names "nope", which is not a job of this file',
    );
    expect(errorOf({ jobs: [{ id: 'a', command: 'x', dependsOn: 'a' }] }).message).toBe(
      'jobs.yaml: job "a" (jobs[0]): dependsOn names the job itself',
    );
    const cycle = errorOf({
      jobs: [
        ok,
        { id: 'a', command: 'x', dependsOn: ['c'] },
        { id: 'b', command: 'x', dependsOn: ['a'] },
        { id: 'c', command: 'x', dependsOn: ['b'] },
      ],
    });
    expect(cycle.field).toBe('dependsOn');
    expect(cycle.message).toBe('jobs.yaml: job "a" (jobs[1]): dependsOn forms a cycle: a → c → b → a');
  });

  it('refuses a file without jobs or with unknown top-level fields', () => {
    expect(errorOf(null).message).toBe('jobs.yaml: must be a mapping with a "jobs" list; got null');
    expect(errorOf([ok]).message).toMatch(/^jobs\.yaml: must be a mapping/);
    expect(errorOf({ jobs: [] }).message).toBe('jobs.yaml: jobs must be a non-empty list of jobs; got []');
    expect(errorOf({}).field).toBe('jobs');
    expect(errorOf({ job: [ok] }).message).toBe(
      'jobs.yaml: unknown top-level field "job" (known: resources, jobs)',
    );
  });

  it('checks the pool the file declares, naming the field within the file', () => {
    // The allowed range is the engine's (normalisePool); the CLI's part is the field's place.
    expect(errorOf({ resources: { cpu: 4, memoryMb: -1 }, jobs: [ok] }).message).toMatch(
      /^jobs\.yaml: resources\.memoryMb must be a finite number .+; got -1$/,
    );
    expect(
      errorOf({ resources: { nodes: [{ cpu: 1, memoryMb: 1, gpus: [{ vramMb: 'lots' }] }] }, jobs: [ok] })
        .message,
    ).toMatch(
      /^jobs\.yaml: resources\.nodes\[0\]\.gpus\[0\]\.vramMb must be a finite number .+; got "lots"$/,
    );
  });
});
