/**
 * End to end: Ctrl-C during `ai-batch run`. The test sends SIGINT when the --json stream says a
 * job runs, and lets the running job finish by creating the file it waits for — no sleeps.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonEvent, parseJsonLines, processGone, startCli } from './helpers/cli-process.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-sigint-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A job that runs until a file named `go` appears in its folder. */
const WAIT_FOR_GO =
  "node -e \"const fs = require('fs'); const t = setInterval(() => { if (fs.existsSync('go')) clearInterval(t); }, 20)\"";

function writeJobs(dir: string, first: string): void {
  writeFileSync(
    nodePath.join(dir, 'jobs.yaml'),
    [
      'resources: { cpu: 1, memoryMb: 512 }',
      'jobs:',
      '  - id: first',
      `    command: ${JSON.stringify(first)}`,
      '    resources: { cpu: 1 }',
      '  - id: queued',
      '    command: touch queued.ran',
      '    resources: { cpu: 1 }',
      '  - id: dependent',
      '    command: touch dependent.ran',
      '    dependsOn: first',
    ].join('\n'),
  );
}

describe('ai-batch run: Ctrl-C', () => {
  it('drains on the first SIGINT: the running job completes, the others are cancelled, exit 1', async () => {
    const dir = tempDir();
    writeJobs(dir, WAIT_FOR_GO);
    const cli = startCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });
    await cli.waitForLine(jsonEvent('job.started', 'first'));
    cli.child.kill('SIGINT');
    await cli.waitForLine(jsonEvent('run.interrupted'));
    await cli.waitForLine(jsonEvent('job.cancelled', 'queued'));
    writeFileSync(nodePath.join(dir, 'go'), '');
    const result = await cli.exited;

    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/draining/);
    const events = parseJsonLines(result.stdout);
    const final = (id: string) =>
      events.find((e) => e.job?.id === id && /completed|failed|cancelled/.test(e.type));
    expect(final('first')?.type).toBe('job.completed');
    expect(final('queued')).toMatchObject({ type: 'job.cancelled', job: { error: { kind: 'shutdown' } } });
    expect(final('dependent')?.type).toBe('job.cancelled');
    expect(events.find((e) => e.type === 'run.interrupted')).toMatchObject({ action: 'drain' });
    expect(events.at(-1)).toMatchObject({ type: 'run.summary', exitCode: 1, completed: 1, cancelled: 2 });
    expect(existsSync(nodePath.join(dir, 'queued.ran'))).toBe(false);
    expect(existsSync(nodePath.join(dir, 'dependent.ran'))).toBe(false);
  });

  it('cancels on the second SIGINT, killing the running job’s whole process tree', async () => {
    const dir = tempDir();
    // A shell with a background grandchild; the progress line says both pids are on disk.
    writeJobs(
      dir,
      "sleep 600 & echo $! > grandchild.pid; echo $$ > leader.pid; echo 'progress: 0.1 waiting'; wait",
    );
    const cli = startCli(['run', 'jobs.yaml', '--json', '--logs', 'logs', '--drain-timeout', '10m'], {
      cwd: dir,
    });
    await cli.waitForLine(jsonEvent('job.progress', 'first'));
    cli.child.kill('SIGINT');
    await cli.waitForLine(jsonEvent('run.interrupted'));
    cli.child.kill('SIGINT');
    const result = await cli.exited;

    expect(result.code).toBe(1);
    const events = parseJsonLines(result.stdout);
    expect(events.filter((e) => e.type === 'run.interrupted').map((e) => e['action'])).toEqual([
      'drain',
      'cancel',
    ]);
    expect(events.find((e) => e.type === 'job.cancelled' && e.job?.id === 'first')).toBeDefined();
    expect(events.at(-1)).toMatchObject({ type: 'run.summary', exitCode: 1, completed: 0, cancelled: 3 });
    for (const file of ['grandchild.pid', 'leader.pid']) {
      const pid = Number(readFileSync(nodePath.join(dir, file), 'utf8'));
      expect(processGone(pid), file).toBe(true);
    }
  });
});
