/**
 * End to end: `ai-batch run --json` as a real process on job files of real (fast) processes.
 * Each test waits for lines and exits, never for a fixed time.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonLines, processGone, runCli, type JsonLine } from './helpers/cli-process.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-e2e-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A job that writes what it was given to `<id>.env.json` (for checking its environment). */
const RECORD_ENV =
  "node -e \"require('fs').writeFileSync(process.env.AI_BATCH_JOB_ID + '.env.json', JSON.stringify(process.env))\"";

describe('ai-batch run: a batch that succeeds', () => {
  let dir: string;
  let result: Awaited<ReturnType<typeof runCli>>;
  let events: JsonLine[];

  beforeAll(async () => {
    dir = tempDir();
    writeFileSync(
      nodePath.join(dir, 'jobs.yaml'),
      [
        'resources: { cpu: 4, memoryMb: 4096, gpus: [{ vramMb: 16000 }, { vramMb: 16000 }] }',
        'jobs:',
        '  - id: fetch',
        `    command: ${JSON.stringify(`${RECORD_ENV} && echo 'progress: 0.5 halfway' && echo 'progress: 1 done'`)}`,
        '    resources: { cpu: 1 }',
        '  - id: gpu-whole',
        `    command: ${JSON.stringify(RECORD_ENV)}`,
        '    resources: { gpu: 1, vramMb: 8000 }',
        '    dependsOn: fetch',
        '  - id: gpu-share',
        `    command: ${JSON.stringify(RECORD_ENV)}`,
        '    resources: { gpu: 0.5, vramMb: 4000 }',
        '    dependsOn: [fetch]',
        '    env: { EXTRA: 42 }',
        '  - id: flaky',
        // Fails on its first attempt, succeeds on the retry.
        '    command: [node, -e, "process.exit(process.env.AI_BATCH_ATTEMPT === \'1\' ? 3 : 0)"]',
        '    retries: 1',
        '    retryDelay: 10ms',
        '  - id: merge',
        '    command: [node, -e, "console.log(\'merged\')"]',
        '    dependsOn: [gpu-whole, gpu-share, flaky]',
      ].join('\n'),
    );
    result = await runCli([
      'run',
      nodePath.join(dir, 'jobs.yaml'),
      '--json',
      '--logs',
      nodePath.join(dir, 'logs'),
    ]);
    events = parseJsonLines(result.stdout);
  });

  it('exits 0 and writes one JSON object per line, from run.started to run.summary', () => {
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(events[0]?.type).toBe('run.started');
    expect(events.at(-1)).toMatchObject({ type: 'run.summary', exitCode: 0, total: 5, completed: 5 });
    expect(events.at(-2)?.type).toBe('scheduler.shutdown');
  });

  it('reports each job submitted → queued → started → completed, in that order', () => {
    for (const id of ['fetch', 'gpu-whole', 'gpu-share', 'merge']) {
      const types = events.filter((e) => e.job?.id === id && e.type !== 'job.progress').map((e) => e.type);
      expect(types, id).toEqual(['job.submitted', 'job.queued', 'job.started', 'job.completed']);
    }
  });

  it('starts a job only after its dependencies completed', () => {
    const index = (type: string, id: string) => events.findIndex((e) => e.type === type && e.job?.id === id);
    for (const dep of ['gpu-whole', 'gpu-share', 'flaky']) {
      expect(index('job.completed', dep)).toBeLessThan(index('job.started', 'merge'));
    }
    expect(index('job.completed', 'fetch')).toBeLessThan(index('job.started', 'gpu-whole'));
    expect(index('job.completed', 'fetch')).toBeLessThan(index('job.started', 'gpu-share'));
  });

  it('retries a failed attempt and completes on the next one', () => {
    const flaky = events.filter((e) => e.job?.id === 'flaky').map((e) => e.type);
    expect(flaky).toEqual([
      'job.submitted',
      'job.queued',
      'job.started',
      'job.retrying',
      'job.queued',
      'job.started',
      'job.completed',
    ]);
    const retrying = events.find((e) => e.type === 'job.retrying');
    expect(retrying?.job?.error?.message).toMatch(/exited with code 3/);
    expect(events.find((e) => e.type === 'job.completed' && e.job?.id === 'flaky')?.job?.attempt).toBe(2);
  });

  it('turns progress lines into job.progress events', () => {
    const progress = events.filter((e) => e.type === 'job.progress' && e.job?.id === 'fetch');
    expect(progress.map((e) => e.job?.progress)).toEqual([
      { fraction: 0.5, note: 'halfway' },
      { fraction: 1, note: 'done' },
    ]);
  });

  it('gives each process CUDA_VISIBLE_DEVICES and AI_BATCH_ALLOCATION matching its allocation', () => {
    for (const id of ['fetch', 'gpu-whole', 'gpu-share']) {
      const env = JSON.parse(readFileSync(nodePath.join(dir, `${id}.env.json`), 'utf8')) as Record<
        string,
        string
      >;
      const started = events.find((e) => e.type === 'job.started' && e.job?.id === id);
      const allocation = started?.job?.allocation;
      expect(allocation, id).toBeDefined();
      expect(env['CUDA_VISIBLE_DEVICES'], id).toBe(allocation?.gpus.map((g) => g.index).join(','));
      expect(JSON.parse(env['AI_BATCH_ALLOCATION'] ?? 'null'), id).toEqual(allocation);
      expect(env['AI_BATCH_JOB_ID'], id).toBe(id);
      expect(env['AI_BATCH_ATTEMPT'], id).toBe('1');
    }
    const gpuEnv = (id: string) =>
      (JSON.parse(readFileSync(nodePath.join(dir, `${id}.env.json`), 'utf8')) as Record<string, string>)[
        'CUDA_VISIBLE_DEVICES'
      ];
    expect(gpuEnv('fetch')).toBe('');
    expect(gpuEnv('gpu-whole')).toMatch(/^[01]$/);
    expect(gpuEnv('gpu-share')).toMatch(/^[01]$/);
    expect(JSON.parse(readFileSync(nodePath.join(dir, 'gpu-share.env.json'), 'utf8'))).toMatchObject({
      EXTRA: '42',
    });
  });

  it('writes each job’s output to <logs>/<id>.log, attempt by attempt', () => {
    expect(readFileSync(nodePath.join(dir, 'logs', 'merge.log'), 'utf8')).toMatch(/^merged$/m);
    const flaky = readFileSync(nodePath.join(dir, 'logs', 'flaky.log'), 'utf8');
    expect(flaky).toMatch(/attempt 1[\s\S]*exit code 3[\s\S]*attempt 2[\s\S]*exit code 0/);
  });
});

describe('ai-batch run: failures', () => {
  it('exits 1 when a job fails, and cancels what depended on it', async () => {
    const dir = tempDir();
    writeFileSync(
      nodePath.join(dir, 'jobs.json'),
      JSON.stringify({
        resources: { cpu: 2, memoryMb: 1024 },
        jobs: [
          { id: 'broken', command: 'echo "no model weights" >&2; exit 4' },
          { id: 'after', command: 'touch after.ran', dependsOn: ['broken'] },
          { id: 'other', command: ['node', '-e', ''] },
          { id: 'missing', command: ['./no-such-program'] },
        ],
      }),
    );
    const result = await runCli(['run', 'jobs.json', '--json', '--logs', 'logs'], { cwd: dir });
    expect(result.code).toBe(1);
    const events = parseJsonLines(result.stdout);
    const final = (id: string) =>
      events.find((e) => e.job?.id === id && /completed|failed|cancelled/.test(e.type));
    expect(final('broken')).toMatchObject({
      type: 'job.failed',
      job: { error: { message: 'exited with code 4: no model weights' } },
    });
    expect(final('after')).toMatchObject({ type: 'job.cancelled', job: { error: { kind: 'dependency' } } });
    expect(final('other')?.type).toBe('job.completed');
    expect(final('missing')?.type).toBe('job.failed');
    expect(final('missing')?.job?.error?.message).toMatch(/cannot start "\.\/no-such-program": ENOENT/);
    expect(existsSync(nodePath.join(dir, 'after.ran'))).toBe(false);
    expect(events.at(-1)).toMatchObject({
      type: 'run.summary',
      exitCode: 1,
      completed: 1,
      failed: 2,
      cancelled: 1,
    });
  });

  it('kills the whole process tree of a job that times out', async () => {
    const dir = tempDir();
    writeFileSync(
      nodePath.join(dir, 'jobs.yaml'),
      [
        'resources: { cpu: 1, memoryMb: 256 }',
        'jobs:',
        '  - id: stuck',
        // A shell that starts a background grandchild, records its pid, and waits for it.
        `    command: "sleep 600 & echo $! > grandchild.pid; echo $$ > leader.pid; wait"`,
        '    timeout: 1500ms',
      ].join('\n'),
    );
    const result = await runCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });
    expect(result.code).toBe(1);
    const failed = parseJsonLines(result.stdout).find((e) => e.type === 'job.failed');
    expect(failed?.job?.error?.kind).toBe('timeout');
    for (const file of ['grandchild.pid', 'leader.pid']) {
      const pid = Number(readFileSync(nodePath.join(dir, file), 'utf8'));
      expect(processGone(pid), file).toBe(true);
    }
  });
});
