/**
 * End to end: a GPU is never handed on while the process that held it still runs. One GPU, two
 * jobs that each need it; the first traps SIGTERM and takes a while to exit after its timeout.
 * The second must start only once the first one's process is gone — checked by the processes
 * themselves: the first writes `exited` as its last act, and the second, as its first, writes
 * whether the first one's pid is still alive. Real processes and signals; no test sleep.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { killLeftovers, parseJsonLines, processGone, runCli } from './helpers/cli-process.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) {
    killLeftovers([nodePath.join(dir, 'a.pid')]);
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Traps SIGTERM: notes it, takes a second to wind down (well inside the CLI's 2 s kill grace),
 * notes that it is leaving, and exits. Until then it loops.
 */
const TRAPS_TERM = [
  `trap 'echo "exiting a" >> trace; sleep 1; echo "exited a" >> trace; exit 0' TERM`,
  'echo $$ > a.pid',
  'echo "start a" >> trace',
  'while :; do sleep 0.05; done',
].join('; ');

/** Notes that it started, and whether the first job's process was still alive then. */
const CHECKS_A = `if kill -0 "$(cat a.pid)" 2>/dev/null; then echo "start b while a alive" >> trace; else echo "start b after a" >> trace; fi`;

/** Ignores SIGTERM altogether: only the SIGKILL at the end of the kill grace (2 s) ends it. */
const IGNORES_TERM = [
  `trap '' TERM`,
  'echo $$ > a.pid',
  'echo "start a" >> trace',
  'while :; do sleep 0.05; done',
].join('; ');

/** A folder with the two jobs: `a` (the command given, timing out after 1 s) and `b`. */
function twoGpuJobs(first: string): string {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-handoff-'));
  dirs.push(dir);
  writeFileSync(
    nodePath.join(dir, 'jobs.yaml'),
    [
      'resources: { cpu: 2, memoryMb: 1024, gpus: [{ vramMb: 8000 }] }',
      'jobs:',
      '  - id: a',
      `    command: ${JSON.stringify(first)}`,
      '    resources: { gpu: 1 }',
      '    timeout: 1s',
      '  - id: b',
      `    command: ${JSON.stringify(CHECKS_A)}`,
      '    resources: { gpu: 1 }',
    ].join('\n'),
  );
  return dir;
}

describe('ai-batch run: a GPU and a process that traps SIGTERM', () => {
  it('starts the next GPU job only after the timed-out job’s process has exited', async () => {
    const dir = twoGpuJobs(TRAPS_TERM);
    const result = await runCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });

    const trace = readFileSync(nodePath.join(dir, 'trace'), 'utf8').trim().split('\n');
    expect(trace).toEqual(['start a', 'exiting a', 'exited a', 'start b after a']);
    const events = parseJsonLines(result.stdout);
    const index = (type: string, id: string) => events.findIndex((e) => e.type === type && e.job?.id === id);
    expect(events[index('job.failed', 'a')]?.job?.error?.kind).toBe('timeout');
    expect(index('job.started', 'b')).toBeGreaterThan(index('job.failed', 'a'));
    expect(events[index('job.started', 'b')]?.job?.allocation?.gpus.map((g) => g.index)).toEqual([0]);
    // While its process wound down, the job was `stopping`, holding the GPU.
    expect(events[index('job.stopping', 'a')]).toMatchObject({ reason: 'timeout' });
    expect(index('job.stopping', 'a')).toBeLessThan(index('job.failed', 'a'));
    expect(events.some((e) => e.type === 'job.forceReleased')).toBe(false);
    expect(result.code).toBe(1);
  });

  it('with --stop-timeout, hands the GPU on after that long, warning that the process may still use it', async () => {
    const dir = twoGpuJobs(IGNORES_TERM);
    const result = await runCli(['run', 'jobs.yaml', '--json', '--logs', 'logs', '--stop-timeout', '300ms'], {
      cwd: dir,
    });

    const events = parseJsonLines(result.stdout);
    const index = (type: string, id: string) => events.findIndex((e) => e.type === type && e.job?.id === id);
    const forced = events[index('job.forceReleased', 'a')];
    expect(forced).toMatchObject({ reason: 'timeout', attempt: 1 });
    expect(forced?.['stoppingMs']).toBeGreaterThanOrEqual(300);
    expect(index('job.stopping', 'a')).toBeLessThan(index('job.forceReleased', 'a'));
    expect(index('job.forceReleased', 'a')).toBeLessThan(index('job.started', 'b'));
    expect(result.stderr).toMatch(
      /^ai-batch: \[ *[\d.]+m?s\] WARNING {4}a attempt 1: its resources were released/m,
    );
    // As asked: b got the GPU while a's process was still in its kill grace…
    const trace = readFileSync(nodePath.join(dir, 'trace'), 'utf8').trim().split('\n');
    expect(trace).toEqual(['start a', 'start b while a alive']);
    // …and the CLI still ended it before it exited.
    expect(processGone(Number(readFileSync(nodePath.join(dir, 'a.pid'), 'utf8')))).toBe(true);
    expect(result.code).toBe(1);
  });
});
