/**
 * End to end: `ai-batch run` resumes from its state file after a crash. The test SIGKILLs the CLI
 * while one job runs (a real process waiting for a file), kills what the CLI left running (its
 * job processes are detached: they outlive it) by their process group, then runs the same
 * command again — waiting on output lines and files, never on the clock.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { defaultStatePath } from '../../src/cli/resume.js';
import {
  jsonEvent,
  parseJsonLines,
  processGone,
  runCli,
  startCli,
  type JsonLine,
} from './helpers/cli-process.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-resume-'));
  dirs.push(dir);
  return dir;
}

/** Process groups the killed CLIs left behind. */
const groups: number[] = [];
function killGroups(): void {
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
afterEach(killGroups);
afterAll(() => {
  killGroups();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A job that notes it ran (a line in runs.txt), says its pid in a progress line, then waits (at
 * most 30 s) for a file named `release` in its folder.
 */
const SLOW =
  "node -e \"const fs = require('fs'); fs.appendFileSync('runs.txt', 'slow\\n'); console.log('progress: 0.5 pid ' + process.pid); " +
  "const end = Date.now() + 30000; const t = setInterval(() => { if (fs.existsSync('release') || Date.now() > end) clearInterval(t); }, 20)\"";

function jobsYaml(commands: Record<string, string> = {}): string {
  const command = (id: string) => JSON.stringify(commands[id] ?? `echo ${id} >> runs.txt`);
  return [
    'resources: { cpu: 4, memoryMb: 4096 }',
    'jobs:',
    '  - id: a',
    `    command: ${command('a')}`,
    '  - id: b',
    `    command: ${command('b')}`,
    '  - id: slow',
    `    command: ${JSON.stringify(commands['slow'] ?? SLOW)}`,
    '  - id: after',
    `    command: ${command('after')}`,
    '    dependsOn: [slow, a]',
  ].join('\n');
}

/** The process group of a pid (field 5 of /proc/<pid>/stat). */
function groupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** Resolves when `pid` is gone: a bounded loop of turns of the event loop, no timer. */
async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 200_000; i++) {
    if (processGone(pid)) return true;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return processGone(pid);
}

/**
 * Starts `ai-batch run jobs.yaml --json <flags>` in `dir`, waits until a and b completed and
 * slow runs, then SIGKILLs the CLI and the job process it left behind.
 */
async function crashMidRun(
  dir: string,
  flags: string[],
  { leave = false }: { leave?: boolean } = {},
): Promise<{ events: JsonLine[]; pid: number }> {
  const cli = startCli(['run', 'jobs.yaml', '--json', ...flags], { cwd: dir });
  await cli.waitForLine(jsonEvent('job.completed', 'a'));
  await cli.waitForLine(jsonEvent('job.completed', 'b'));
  const progress = JSON.parse(await cli.waitForLine(jsonEvent('job.progress', 'slow'))) as JsonLine;
  const pid = Number(/^pid (\d+)$/.exec(progress.job?.progress?.note ?? '')?.[1]);
  const pgid = groupOf(pid);
  groups.push(pgid);
  cli.child.kill('SIGKILL');
  const crashed = await cli.exited;
  expect(crashed.signal).toBe('SIGKILL');
  // The job process outlived its CLI (detached, its own group): the crash the test is about.
  expect(processGone(pid)).toBe(false);
  if (!leave) {
    process.kill(-pgid, 'SIGKILL');
    expect(await gone(pid)).toBe(true);
  }
  return { events: parseJsonLines(crashed.stdout), pid };
}

const runs = (dir: string) => readFileSync(nodePath.join(dir, 'runs.txt'), 'utf8').trim().split('\n').sort();
const headers = (log: string) => log.match(/^=== ai-batch: job /gm)?.length ?? 0;

describe('ai-batch run: resuming after a crash', () => {
  it('runs again only what had not completed; the interrupted job says so in its log; state at its default path', async () => {
    const dir = tempDir();
    writeFileSync(nodePath.join(dir, 'jobs.yaml'), jobsYaml());
    // No --logs, no --state: the defaults, found again by the same command.
    const { events: first } = await crashMidRun(dir, []);
    const started = first.find((e) => e.type === 'run.started') as JsonLine;
    const logDir = started['logDir'] as string;
    const statePath = nodePath.join(dir, defaultStatePath('jobs.yaml', dir));
    expect(started['state']).toBe(statePath);
    expect(statePath).toMatch(/ai-batch-logs\/jobs\.yaml-[0-9a-f]{8}\.state\.db$/);
    expect(existsSync(statePath)).toBe(true);
    expect(runs(dir)).toEqual(['a', 'b', 'slow']);

    writeFileSync(nodePath.join(dir, 'release'), '');
    const result = await runCli(['run', 'jobs.yaml', '--json'], { cwd: dir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const events = parseJsonLines(result.stdout);
    const again = events.find((e) => e.type === 'run.started') as JsonLine;
    // The same log folder as the run before: the interrupted job's log goes on.
    expect(again['logDir']).toBe(logDir);
    const resumed = { completedBefore: 2, interrupted: 1, failedBefore: 0, notStarted: 1, forgotten: 0 };
    expect(again['resumed']).toEqual(resumed);
    const summary = events.at(-1) as JsonLine;
    expect(summary).toMatchObject({ type: 'run.summary', exitCode: 0, total: 4, completed: 4, resumed });
    // Not one start of a or b in the second run.
    expect(events.filter((e) => e.type === 'job.started').map((e) => e.job?.id)).toEqual(['slow', 'after']);
    // a and b ran once, slow twice (the interrupted attempt, then again), after once.
    expect(runs(dir)).toEqual(['a', 'after', 'b', 'slow', 'slow']);
    const log = (id: string) => readFileSync(nodePath.join(logDir, `${id}.log`), 'utf8');
    expect(headers(log('a'))).toBe(1);
    expect(headers(log('b'))).toBe(1);
    expect(headers(log('after'))).toBe(1);
    const slow = log('slow');
    expect(headers(slow)).toBe(2);
    const marker = slow.indexOf('=== ai-batch: resumed after an interrupted attempt');
    expect(marker).toBeGreaterThan(0);
    expect(slow.indexOf('=== ai-batch: job slow, attempt 1', marker)).toBeGreaterThan(marker);
    // Everything completed: the state is gone, and the same command would start over.
    expect(existsSync(statePath)).toBe(false);
    expect(readdirSync(nodePath.dirname(statePath)).filter((f) => f.includes('.state.db'))).toEqual([]);
  });

  it('refuses a completed job whose command changed, naming it; reruns a changed job that had not completed', async () => {
    const dir = tempDir();
    writeFileSync(nodePath.join(dir, 'jobs.yaml'), jobsYaml());
    // The job process the killed CLI left is not killed here: the run that resumes ends it.
    const { pid } = await crashMidRun(dir, ['--logs', 'logs'], { leave: true });
    expect(existsSync(nodePath.join(dir, 'logs', 'ai-batch-state.db'))).toBe(true);

    writeFileSync(nodePath.join(dir, 'jobs.yaml'), jobsYaml({ a: 'echo a2 >> runs.txt' }));
    const refused = await runCli(['run', 'jobs.yaml', '--logs', 'logs'], { cwd: dir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /^ai-batch: jobs\.yaml: job "a" \(jobs\[0\]\): command changed since it completed .*"echo a >> runs\.txt" → "echo a2 >> runs\.txt".*--fresh/m,
    );
    expect(refused.stderr).toMatch(/Nothing was run\./);
    expect(runs(dir)).toEqual(['a', 'b', 'slow']);

    // The interrupted job's command may change: it runs again as the file says now.
    writeFileSync(nodePath.join(dir, 'jobs.yaml'), jobsYaml({ slow: 'echo slow2 >> runs.txt' }));
    expect(processGone(pid)).toBe(false);
    const result = await runCli(['run', 'jobs.yaml', '--logs', 'logs'], { cwd: dir });
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      new RegExp(
        `^ai-batch: ending what the run before left running: job slow \\(pids (\\d+, )*${pid}(, \\d+)*\\)$`,
        'm',
      ),
    );
    expect(processGone(pid)).toBe(true);
    // Ended before anything ran: it never appended to runs.txt after the new run's jobs.
    expect(result.stdout).toMatch(
      /^ai-batch: resumed: 2 completed before, 1 interrupted and rerun, 1 not started \(state .*ai-batch-state\.db\)$/m,
    );
    expect(result.stdout).toMatch(
      /^ {2}resumed: 2 completed before, 1 interrupted and rerun, 1 not started$/m,
    );
    expect(runs(dir)).toEqual(['a', 'after', 'b', 'slow', 'slow2']);
    expect(existsSync(nodePath.join(dir, 'logs', 'ai-batch-state.db'))).toBe(false);
    // Nothing of the state is left beside the logs (SQLite's files, the store's operation log).
    expect(readdirSync(nodePath.join(dir, 'logs')).filter((f) => f.includes('state'))).toEqual([]);
  });

  it('--fresh runs every job again; --state none keeps no state', async () => {
    const dir = tempDir();
    writeFileSync(nodePath.join(dir, 'jobs.yaml'), jobsYaml());
    await crashMidRun(dir, ['--state', 'run.db']);
    expect(existsSync(nodePath.join(dir, 'run.db'))).toBe(true);
    writeFileSync(nodePath.join(dir, 'release'), '');
    const fresh = await runCli(['run', 'jobs.yaml', '--json', '--state', 'run.db', '--fresh'], { cwd: dir });
    expect(fresh.code).toBe(0);
    const events = parseJsonLines(fresh.stdout);
    expect(events.find((e) => e.type === 'run.started')).not.toHaveProperty('resumed');
    expect(runs(dir)).toEqual(['a', 'a', 'after', 'b', 'b', 'slow', 'slow']);
    expect(existsSync(nodePath.join(dir, 'run.db'))).toBe(false);

    const none = await runCli(['run', 'jobs.yaml', '--json', '--state', 'none', '--logs', 'mem'], {
      cwd: dir,
    });
    expect(none.code).toBe(0);
    expect(parseJsonLines(none.stdout).find((e) => e.type === 'run.started')).not.toHaveProperty('state');
    expect(readdirSync(nodePath.join(dir, 'mem')).sort()).toEqual([
      'a.log',
      'after.log',
      'b.log',
      'slow.log',
    ]);
    expect(readdirSync(dir).filter((f) => f.endsWith('.db'))).toEqual([]);
  });

  it('refuses a second run on a state file in use, naming it, and runs nothing; the first goes on', async () => {
    const dir = tempDir();
    writeFileSync(nodePath.join(dir, 'jobs.yaml'), jobsYaml());
    const first = startCli(['run', 'jobs.yaml', '--json', '--state', 'run.db'], { cwd: dir });
    await first.waitForLine(jsonEvent('job.progress', 'slow'));
    const second = await runCli(['run', 'jobs.yaml', '--state', 'run.db', '--logs', 'other'], { cwd: dir });
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(
      /^ai-batch: --state: \S*run\.db is in use by another ai-batch run \(it holds the file's lock\); nothing was run/,
    );
    expect(existsSync(nodePath.join(dir, 'other', 'a.log'))).toBe(false);
    writeFileSync(nodePath.join(dir, 'release'), '');
    const result = await first.exited;
    expect(result.code).toBe(0);
    expect(runs(dir)).toEqual(['a', 'after', 'b', 'slow']);
  });
});
