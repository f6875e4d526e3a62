/**
 * End to end: what `ai-batch run` refuses before anything runs. Exit code 2, one message naming
 * the file, the job and the field, and no job started: no marker file, no log folder.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli-process.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const POOL = 'resources: { cpu: 2, memoryMb: 2048, gpus: [{ vramMb: 8000 }] }';
const GOOD_JOB = ['  - id: good', '    command: touch good.ran'];

const cases: Array<{ name: string; jobs: string[]; message: RegExp; pool?: string }> = [
  {
    name: 'a job whose command is not a string or argv list',
    jobs: [...GOOD_JOB, '  - id: resize', '    command: 42'],
    message:
      /^ai-batch: jobs\.yaml: job "resize" \(jobs\[1\]\): command must be a non-empty string or argv array; got 42$/m,
  },
  {
    name: 'a request that can never fit the pool given by --resources',
    jobs: [...GOOD_JOB, '  - id: big', '    command: "true"', '    resources: { gpu: 2 }'],
    pool: 'cpu: 2\nmemoryMb: 2048\ngpus: 1\n',
    message:
      /^ai-batch: jobs\.yaml: job "big" \(jobs\[1\]\): resources\.gpu 2 can never fit: the largest node has 1 GPUs \(pool: --resources pool\.yaml\)$/m,
  },
  {
    name: 'a dependency cycle',
    jobs: [
      ...GOOD_JOB,
      '  - id: a',
      '    command: "true"',
      '    dependsOn: b',
      '  - id: b',
      '    command: "true"',
      '    dependsOn: a',
    ],
    message: /^ai-batch: jobs\.yaml: job "a" \(jobs\[1\]\): dependsOn forms a cycle: a → b → a$/m,
  },
];

describe('ai-batch run: a bad job file', () => {
  it.each(cases)('refuses $name, runs nothing, exits 2', async ({ jobs, message, pool }) => {
    const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-bad-'));
    dirs.push(dir);
    writeFileSync(
      nodePath.join(dir, 'jobs.yaml'),
      [pool === undefined ? POOL : '', 'jobs:', ...jobs].join('\n'),
    );
    if (pool !== undefined) writeFileSync(nodePath.join(dir, 'pool.yaml'), pool);
    const flags = pool === undefined ? [] : ['--resources', 'pool.yaml'];
    const result = await runCli(['run', 'jobs.yaml', '--logs', 'logs', ...flags], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/Nothing was run\./);
    expect(result.stdout).toBe('');
    expect(existsSync(nodePath.join(dir, 'good.ran'))).toBe(false);
    expect(existsSync(nodePath.join(dir, 'logs'))).toBe(false);
  });

  it('refuses a --logs path that cannot be a folder (a file of that name), runs nothing, exits 2', async () => {
    const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-bad-'));
    dirs.push(dir);
    writeFileSync(nodePath.join(dir, 'jobs.yaml'), [POOL, 'jobs:', ...GOOD_JOB].join('\n'));
    writeFileSync(nodePath.join(dir, 'logs'), 'a file, not a folder');
    const result = await runCli(['run', 'jobs.yaml', '--logs', 'logs'], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^ai-batch: --logs: cannot make the log folder .*logs \(EEXIST\); nothing was run$/m,
    );
    expect(existsSync(nodePath.join(dir, 'good.ran'))).toBe(false);
  });

  it('exits 2 on bad usage, naming the flag', async () => {
    const result = await runCli(['run', 'jobs.yaml', '--max-concurrent', 'lots']);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--max-concurrent must be a whole number ≥ 1; got "lots"/);
  });
});
