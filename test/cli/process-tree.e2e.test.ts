/**
 * The tree kill on this host's real `/proc` and real signals: a job's tree that traps SIGTERM,
 * with a descendant that left its group (`setsid`), is SIGKILLed after its grace with three
 * passes over `/proc` — not one per 50 ms poll. Linux only (where there is no `/proc`, only the
 * group is reached, and the faults e2e test says so).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createProcScanner,
  JOB_TOKEN_ENV,
  procReader,
  readStat,
  realHost,
  terminateTree,
  type ProcReader,
} from '../../src/cli/process-group.js';

const started: number[] = [];

afterEach(() => {
  // Whatever a failed test left behind.
  for (const pid of started.splice(0)) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  }
});

/** The lines a process writes, as they come, until it has written `count`. */
function firstLines(child: ChildProcess, count: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const lines = text.split('\n');
      if (lines.length > count) resolve(lines.slice(0, count));
    });
    child.once('exit', () => reject(new Error(`exited before writing ${count} lines: ${text}`)));
  });
}

const gone = (pid: number) => {
  const stat = readStat(pid);
  return stat === undefined || stat.state === 'Z' || stat.state === 'X';
};

describe.runIf(existsSync('/proc/self/stat'))('terminateTree on real processes', () => {
  it('SIGKILLs a tree trapping SIGTERM, its setsid descendant too, with three passes over /proc', async () => {
    const token = randomUUID();
    const loop = `trap "" TERM; while :; do sleep 0.02; done`;
    const child = spawn(
      '/bin/sh',
      ['-c', `setsid /bin/sh -c 'echo $$; ${loop}' & ${loop.replace('while', 'echo ready; while')}`],
      {
        detached: true,
        stdio: ['ignore', 'pipe', 'ignore'],
        env: { ...process.env, [JOB_TOKEN_ENV]: token },
      },
    );
    const pgid = child.pid as number;
    started.push(pgid);
    const lines = await firstLines(child, 2);
    const escaped = Number(lines.find((line) => /^\d+$/.test(line)));
    started.push(escaped);
    expect(readStat(escaped)?.pgrp).not.toBe(pgid);

    let passes = 0;
    const reader: ProcReader = {
      ...procReader,
      pids: () => {
        passes++;
        return procReader.pids();
      },
    };
    const host = { ...realHost, scanner: createProcScanner(reader) };
    const since = readStat(pgid)?.starttime;
    await terminateTree({ pgid, token, ...(since === undefined ? {} : { since }) }, 300, { host });
    expect(gone(pgid)).toBe(true);
    expect(gone(escaped)).toBe(true);
    // At SIGTERM, at SIGKILL, and the final check: the polls of the grace read only the tree's.
    expect(passes).toBe(3);
  });
});
