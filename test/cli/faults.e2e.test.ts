/**
 * End to end: `ai-batch run` under faults — the terminal closing (SIGHUP), a standard output
 * closed early (`| head`), a symbolic link planted in the log folder, and a job process that
 * leaves its process group (`setsid`). Real processes and real signals; each test waits for
 * lines and exits, never for a fixed time, and kills whatever a failing run left behind.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  jsonEvent,
  killLeftovers,
  parseJsonLines,
  processGone,
  runCli,
  startCli,
} from './helpers/cli-process.js';

const dirs: string[] = [];
const pidFiles: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-faults-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  killLeftovers(pidFiles);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The pid a job wrote to `file` in `dir`. */
function pidIn(dir: string, file: string): number {
  return Number(readFileSync(nodePath.join(dir, file), 'utf8').trim());
}

function writeJobs(dir: string, lines: string[]): void {
  writeFileSync(
    nodePath.join(dir, 'jobs.yaml'),
    ['resources: { cpu: 2, memoryMb: 512 }', 'jobs:', ...lines].join('\n'),
  );
}

/** A job that runs until a file named `go` appears in its folder. */
/** Escaped processes are found through /proc (Linux); elsewhere README documents the limit. */
const HAS_PROC = existsSync('/proc/self/environ');

const WAIT_FOR_GO =
  "node -e \"const fs = require('fs'); const t = setInterval(() => { if (fs.existsSync('go')) clearInterval(t); }, 20)\"";

describe('ai-batch run: faults', () => {
  it('on SIGHUP (terminal closed) stops the running jobs, their whole trees, and exits', async () => {
    const dir = tempDir();
    pidFiles.push(...['hup.gc', 'hup.leader'].map((f) => nodePath.join(dir, f)));
    writeJobs(dir, [
      '  - id: long',
      `    command: "sleep 600 & echo $! > hup.gc; echo $$ > hup.leader; echo 'progress: 0.1 up'; wait"`,
      '  - id: later',
      '    command: touch later.ran',
      '    dependsOn: long',
    ]);
    const cli = startCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });
    await cli.waitForLine(jsonEvent('job.progress', 'long'));
    cli.child.kill('SIGHUP');
    const result = await cli.exited;

    expect(result.signal).toBeNull();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/SIGHUP: stopping 1 running job\(s\) \(long\)/);
    const events = parseJsonLines(result.stdout);
    expect(events.find((e) => e.type === 'run.interrupted')).toMatchObject({ action: 'cancel' });
    expect(events.at(-1)).toMatchObject({ type: 'run.summary', completed: 0, cancelled: 2 });
    expect(processGone(pidIn(dir, 'hup.gc')), 'grandchild').toBe(true);
    expect(processGone(pidIn(dir, 'hup.leader')), 'leader').toBe(true);
    expect(existsSync(nodePath.join(dir, 'later.ran'))).toBe(false);
  });

  it('goes on when its standard output is closed early (`| head`): no EPIPE crash, every job runs', async () => {
    const dir = tempDir();
    writeJobs(dir, [
      '  - id: first',
      `    command: ${JSON.stringify(WAIT_FOR_GO)}`,
      '  - id: second',
      '    command: touch second.ran',
      '    dependsOn: first',
    ]);
    const cli = startCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });
    await cli.waitForLine(jsonEvent('job.started', 'first'));
    cli.closeStdout();
    // Everything the CLI reports from here on is written to a closed pipe.
    writeFileSync(nodePath.join(dir, 'go'), '');
    const result = await cli.exited;

    expect(result.stderr).not.toMatch(/EPIPE|Error/);
    expect(result.code).toBe(0);
    expect(existsSync(nodePath.join(dir, 'second.ran'))).toBe(true);
    expect(readFileSync(nodePath.join(dir, 'logs', 'second.log'), 'utf8')).toMatch(/=== ended: exit code 0/);
  });

  it('never writes through a symbolic link planted in the log folder: the job fails, saying so', async () => {
    const dir = tempDir();
    const logs = nodePath.join(dir, 'logs');
    mkdirSync(logs);
    const target = nodePath.join(dir, 'precious.txt');
    writeFileSync(target, 'precious\n');
    symlinkSync(target, nodePath.join(logs, 'victim.log'));
    const dangling = nodePath.join(dir, 'created-through-link.txt');
    symlinkSync(dangling, nodePath.join(logs, 'dangling.log'));
    writeJobs(dir, [
      '  - id: victim',
      '    command: echo overwritten',
      '    retries: 2',
      '    retryDelay: 10ms',
      '  - id: dangling',
      '    command: echo created',
      '  - id: fine',
      '    command: echo fine',
    ]);
    const result = await runCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });

    expect(result.code).toBe(1);
    const events = parseJsonLines(result.stdout);
    for (const id of ['victim', 'dangling']) {
      const failed = events.find((e) => e.type === 'job.failed' && e.job?.id === id);
      expect(failed?.job?.error?.message, id).toMatch(
        new RegExp(`refusing the log .*${id}\\.log: it is a symbolic link`),
      );
      // Not retried: a link does not go away by trying again.
      expect(events.filter((e) => e.type === 'job.started' && e.job?.id === id)).toHaveLength(1);
    }
    expect(readFileSync(target, 'utf8')).toBe('precious\n');
    expect(existsSync(dangling)).toBe(false);
    expect(events.find((e) => e.type === 'job.completed' && e.job?.id === 'fine')).toBeDefined();
    expect(readFileSync(nodePath.join(logs, 'fine.log'), 'utf8')).toMatch(/^fine$/m);
  });

  it.runIf(HAS_PROC)(
    'kills a descendant that left the process group (setsid) when the job times out',
    async () => {
      const dir = tempDir();
      pidFiles.push(nodePath.join(dir, 'escaped.pid'));
      writeJobs(dir, [
        '  - id: escaper',
        // The escaped process is a new session (and group) of its own; the leader waits for it.
        `    command: "setsid sh -c 'echo $$ > escaped.pid; exec sleep 1000' & while [ ! -s escaped.pid ]; do sleep 0.05; done; wait"`,
        '    timeout: 2s',
      ]);
      const result = await runCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });

      expect(result.code).toBe(1);
      const failed = parseJsonLines(result.stdout).find((e) => e.type === 'job.failed');
      expect(failed?.job?.error?.kind).toBe('timeout');
      const escaped = pidIn(dir, 'escaped.pid');
      expect(processGone(escaped), `setsid'd process ${escaped}`).toBe(true);
    },
  );

  it.runIf(HAS_PROC)(
    'kills a descendant that left the process group when the job’s own process exits',
    async () => {
      const dir = tempDir();
      pidFiles.push(nodePath.join(dir, 'daemon.pid'));
      writeJobs(dir, [
        '  - id: daemoniser',
        // Starts a daemon in a session of its own and exits 0 at once, leaving it behind.
        `    command: "setsid sh -c 'echo $$ > daemon.pid; exec sleep 1000' & while [ ! -s daemon.pid ]; do sleep 0.05; done"`,
      ]);
      const result = await runCli(['run', 'jobs.yaml', '--json', '--logs', 'logs'], { cwd: dir });

      expect(result.code).toBe(0);
      const daemon = pidIn(dir, 'daemon.pid');
      expect(processGone(daemon), `setsid'd process ${daemon}`).toBe(true);
    },
  );
});
