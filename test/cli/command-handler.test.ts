/**
 * The `command` handler on real (fast) processes, in this process: exit codes, progress lines,
 * logs, spawn failures, and ending whole process trees. Nothing waits on the wall clock.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  linkSync,
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
  createCommandHandler,
  logFileOf,
  openLog,
  type CommandPayload,
} from '../../src/cli/command-handler.js';
import { ProcessRegistry } from '../../src/cli/process-registry.js';
import { UnrecoverableError } from '../../src/core/errors.js';
import type { Allocation } from '../../src/core/types.js';
import { processGone } from './helpers/cli-process.js';

const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-handler-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const allocation: Allocation = {
  id: 'g1',
  nodeId: 'ws',
  cpu: 1,
  memoryMb: 0,
  gpus: [{ index: 1, share: 0.5, vramMb: 4_000 }],
  custom: {},
};

function run(
  id: string,
  command: CommandPayload['command'],
  options: { onProgress?: () => void; controller?: AbortController } = {},
) {
  const registry = new ProcessRegistry();
  const logDir = nodePath.join(dir, 'logs');
  const handler = createCommandHandler({ logDir, registry });
  const progress: Array<[number, string | undefined]> = [];
  const controller = options.controller ?? new AbortController();
  const result = handler({
    id,
    payload: { command, env: { GREETING: 'hi' }, cwd: dir },
    attempt: 1,
    allocation,
    signal: controller.signal,
    progress: (fraction, note) => {
      progress.push([fraction, note]);
      options.onProgress?.();
    },
  });
  return {
    result: Promise.resolve(result),
    progress,
    registry,
    log: () => readFileSync(logFileOf(logDir, id), 'utf8'),
  };
}

const pidIn = (file: string) => Number(readFileSync(nodePath.join(dir, file), 'utf8'));

describe('the command handler', () => {
  it('resolves on exit code 0, turns progress lines into progress, and logs both streams', async () => {
    const job = run('ok', [
      process.execPath,
      '-e',
      "console.log('progress: 0.5 half'); console.error('warn: ' + process.env.GREETING + ' ' + process.env.CUDA_VISIBLE_DEVICES); console.log('progress: 100%')",
    ]);
    await expect(job.result).resolves.toEqual({
      exitCode: 0,
      log: logFileOf(nodePath.join(dir, 'logs'), 'ok'),
    });
    expect(job.progress).toEqual([
      [0.5, 'half'],
      [1, undefined],
    ]);
    const log = job.log();
    expect(log).toMatch(/^=== ai-batch: job ok, attempt 1, .*CUDA_VISIBLE_DEVICES="1"$/m);
    expect(log).toMatch(/^warn: hi 1$/m);
    expect(log).toMatch(/^=== ended: exit code 0$/m);
  });

  it('rejects on a non-zero exit, naming the code and the last line of standard error', async () => {
    const job = run('bad', 'echo "loading"; echo "CUDA out of memory" >&2; exit 3');
    await expect(job.result).rejects.toThrow(/^exited with code 3: CUDA out of memory$/);
  });

  it('fails without retries when the program cannot be started', async () => {
    const job = run('missing', ['./no-such-program', '--flag']);
    const error = await job.result.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnrecoverableError);
    expect((error as Error).message).toBe('cannot start "./no-such-program": ENOENT');
    expect(job.log()).toMatch(/=== could not start: /);
  });

  it('ends the whole process tree when the attempt is aborted', async () => {
    const controller = new AbortController();
    const job = run(
      'tree',
      "sleep 600 & echo $! > tree.gc; echo $$ > tree.leader; echo 'progress: 0.1 ready'; wait",
      {
        controller,
        onProgress: () => controller.abort(),
      },
    );
    await expect(job.result).rejects.toThrow(/stopped by ai-batch/);
    await job.registry.settled();
    expect(job.registry.groups()).toEqual([]);
    expect(processGone(pidIn('tree.gc'))).toBe(true);
    expect(processGone(pidIn('tree.leader'))).toBe(true);
    expect(job.log()).toMatch(/=== stopped by ai-batch: signal SIGTERM/);
  });

  it('ends what a job left running in the background when it exits', async () => {
    const job = run('leftover', 'sleep 600 & echo $! > leftover.gc; exit 0');
    await expect(job.result).resolves.toMatchObject({ exitCode: 0 });
    expect(processGone(pidIn('leftover.gc'))).toBe(true);
  });
});

describe('openLog', () => {
  const logs = nodePath.join(dir, 'open-log');
  mkdirSync(logs, { recursive: true });

  it('appends to a regular log file, as a retry does', () => {
    const path = nodePath.join(logs, 'retry.log');
    writeFileSync(path, 'attempt 1\n');
    const fd = openLog(path);
    writeFileSync(fd, 'attempt 2\n');
    closeSync(fd);
    expect(readFileSync(path, 'utf8')).toBe('attempt 1\nattempt 2\n');
  });

  it('refuses a symbolic link, a hard link and a FIFO, naming the log and why, and writes nothing', () => {
    const target = nodePath.join(dir, 'target.txt');
    writeFileSync(target, 'keep\n');
    symlinkSync(target, nodePath.join(logs, 'sym.log'));
    linkSync(target, nodePath.join(logs, 'hard.log'));
    execFileSync('mkfifo', [nodePath.join(logs, 'fifo.log')]);
    const refusal = (name: string) => {
      try {
        closeSync(openLog(nodePath.join(logs, name)));
        return undefined;
      } catch (error) {
        expect(error).toBeInstanceOf(UnrecoverableError);
        return (error as Error).message;
      }
    };
    expect(refusal('sym.log')).toMatch(/^refusing the log .*sym\.log: it is a symbolic link/);
    expect(refusal('hard.log')).toMatch(/^refusing the log .*hard\.log: it is a hard link to another file$/);
    expect(refusal('fifo.log')).toMatch(/^refusing the log .*fifo\.log: it is not a regular file$/);
    expect(readFileSync(target, 'utf8')).toBe('keep\n');
  });
});

describe('a descendant that left the process group', () => {
  it.runIf(process.platform === 'linux')('is ended with the attempt when it is aborted', async () => {
    const controller = new AbortController();
    const job = run(
      'setsid',
      "setsid sh -c 'echo $$ > setsid.pid; exec sleep 600' & while [ ! -s setsid.pid ]; do sleep 0.05; done; echo 'progress: 0.1 ready'; wait",
      { controller, onProgress: () => controller.abort() },
    );
    try {
      await expect(job.result).rejects.toThrow(/stopped by ai-batch/);
      // The attempt settled only once the escaped process was gone.
      expect(processGone(pidIn('setsid.pid'))).toBe(true);
    } finally {
      if (!processGone(pidIn('setsid.pid'))) process.kill(pidIn('setsid.pid'), 'SIGKILL');
    }
  });
});
