/**
 * The tree kill on a fake host (a process table, signals and a clock in memory): how often it
 * reads the whole of `/proc`, and when it sends SIGKILL. On a host with 1,100 processes a pass
 * over `/proc` costs ~25 ms; it used to run at every 50 ms poll of a grace, for every tree
 * separately, and the grace was counted in polls rather than elapsed time.
 */
import { describe, expect, it } from 'vitest';
import {
  createProcScanner,
  JOB_TOKEN_ENV,
  signalTrees,
  terminateTree,
  type ProcessHost,
  type ProcessTree,
  type ProcReader,
  type ProcStat,
} from '../../src/cli/process-group.js';

type FakeProcess = {
  pgrp: number;
  starttime: number;
  state: 'S' | 'Z' | 'D';
  token?: string;
  /** What SIGTERM does: end it, or nothing (a trap). */
  onTerm: 'exit' | 'ignore';
  /** A zombie where nothing reaps orphans, rather than gone. */
  staysZombie?: boolean;
};

class FakeHost implements ProcessHost {
  readonly procs = new Map<number, FakeProcess>();
  readonly signals: Array<{ at: number; pid: number; signal: NodeJS.Signals }> = [];
  /** Full passes over /proc (`pids()` calls). */
  passes = 0;
  sleeps = 0;
  time = 0;
  /** Extra milliseconds every sleep takes (an event loop kept busy by other work). */
  lag = 0;
  /** Called after every sleep, with the time then. */
  onSleep: (now: number) => void = () => undefined;

  readonly reader: ProcReader = {
    pids: () => {
      this.passes++;
      return [...this.procs.keys()];
    },
    stat: (pid): ProcStat | undefined => {
      const proc = this.procs.get(pid);
      return proc && { state: proc.state, pgrp: proc.pgrp, starttime: proc.starttime };
    },
    environ: (pid) => {
      const proc = this.procs.get(pid);
      if (proc === undefined) return undefined;
      return Buffer.from(`PATH=/bin\0${proc.token ? `${JOB_TOKEN_ENV}=${proc.token}\0` : ''}`);
    },
  };
  readonly scanner = createProcScanner(this.reader);

  add(pid: number, fields: Partial<FakeProcess> & { pgrp: number }): void {
    this.procs.set(pid, { starttime: 1_000 + pid, state: 'S', onTerm: 'exit', ...fields });
  }

  kill(pid: number, signal: NodeJS.Signals | 0): void {
    const targets = pid < 0 ? [...this.procs].filter(([, p]) => p.pgrp === -pid) : [];
    const one = this.procs.get(pid);
    if (pid > 0 && one) targets.push([pid, one]);
    if (targets.length === 0) throw Object.assign(new Error('kill ESRCH'), { code: 'ESRCH' });
    if (signal === 0) return;
    this.signals.push({ at: this.time, pid, signal });
    for (const [target, proc] of targets) {
      if (proc.state === 'Z' || proc.state === 'D') continue;
      if (signal === 'SIGKILL' || (signal === 'SIGTERM' && proc.onTerm === 'exit')) {
        if (proc.staysZombie) proc.state = 'Z';
        else this.procs.delete(target);
      }
    }
  }

  now(): number {
    return this.time;
  }

  sleep(ms: number): Promise<void> {
    this.sleeps++;
    this.time += ms + this.lag;
    this.onSleep(this.time);
    return Promise.resolve();
  }

  /** The signals sent, as `SIGNAL pid@time`. */
  sent(signal: NodeJS.Signals): string[] {
    return this.signals.filter((s) => s.signal === signal).map((s) => `${s.pid}@${s.at}`);
  }
}

/** A host with 200 unrelated processes (one carrying another job's token) and a tree. */
function hostWithTree(onTerm: 'exit' | 'ignore'): { host: FakeHost; tree: ProcessTree } {
  const host = new FakeHost();
  for (let pid = 2; pid < 202; pid++) host.add(pid, { pgrp: pid, starttime: pid });
  host.add(150, { pgrp: 150, token: 'other-job' });
  // The job's leader has exited; its child is in the group, a daemon left it (setsid).
  host.add(1_001, { pgrp: 1_000, token: 'job', onTerm });
  host.add(1_002, { pgrp: 1_002, token: 'job', onTerm });
  return { host, tree: { pgid: 1_000, token: 'job', since: 2_000 } };
}

describe('terminateTree', () => {
  it('SIGKILLs a tree that ignores SIGTERM when its grace is over, reading /proc three times, not at every poll', async () => {
    const { host, tree } = hostWithTree('ignore');
    await terminateTree(tree, 2_000, { host });
    expect(host.sent('SIGTERM')).toEqual(['-1000@0', '1002@0']);
    expect(host.sent('SIGKILL')).toEqual(['-1000@2000', '1002@2000']);
    // At SIGTERM, at SIGKILL, and the check that nothing is left; 40 polls read only the tree's.
    expect(host.passes).toBe(3);
    expect(host.sleeps).toBe(41);
    expect(host.procs.has(1_001) || host.procs.has(1_002)).toBe(false);
    expect(host.procs.size).toBe(200); // Nothing else was touched.
  });

  it('measures the grace in elapsed time: polls that take 500 ms instead of 50 do not stretch it', async () => {
    const { host, tree } = hostWithTree('ignore');
    host.lag = 450;
    await terminateTree(tree, 2_000, { host });
    // Counted in polls, SIGKILL came after 40 polls: 20 s.
    expect(host.sent('SIGKILL')).toEqual(['-1000@2000', '1002@2000']);
    expect(host.sleeps).toBe(5);
    expect(host.passes).toBe(3);
  });

  it('reads /proc twice for a tree that ends on SIGTERM, once for one already gone, never without a token', async () => {
    const ends = hostWithTree('exit');
    await terminateTree(ends.tree, 2_000, { host: ends.host });
    expect(ends.host.sent('SIGTERM')).toEqual(['-1000@0', '1002@0']);
    expect(ends.host.sent('SIGKILL')).toEqual([]);
    expect(ends.host.passes).toBe(2);

    const gone = hostWithTree('exit');
    gone.host.procs.delete(1_001);
    gone.host.procs.delete(1_002);
    await terminateTree(gone.tree, 2_000, { host: gone.host });
    expect(gone.host.signals).toEqual([]);
    expect(gone.host.passes).toBe(1);

    await terminateTree({ pgid: 1_000 }, 2_000, { host: gone.host });
    expect(gone.host.passes).toBe(1);
  });

  it('shares each pass over /proc between the trees being ended at the same time', async () => {
    const host = new FakeHost();
    for (let pid = 2; pid < 202; pid++) host.add(pid, { pgrp: pid });
    const trees: ProcessTree[] = [];
    for (let i = 0; i < 16; i++) {
      const pgid = 1_000 + 10 * i;
      host.add(pgid + 1, { pgrp: pgid, token: `job-${i}`, onTerm: 'ignore' });
      host.add(pgid + 2, { pgrp: pgid + 2, token: `job-${i}`, onTerm: 'ignore' });
      trees.push({ pgid, token: `job-${i}` });
    }
    await Promise.all(trees.map((tree) => terminateTree(tree, 2_000, { host })));
    expect(host.sent('SIGKILL')).toHaveLength(32);
    expect(host.procs.size).toBe(200);
    // Three passes for the 16 trees, not 3 × 16.
    expect(host.passes).toBe(3);
  });

  it('finds at the final check a process the tree started during its grace, and ends it too', async () => {
    const { host, tree } = hostWithTree('exit');
    host.onSleep = (now) => {
      // Before the leader's child went, it started a daemon of its own that ignores SIGTERM.
      if (now === 50) host.add(1_003, { pgrp: 1_003, token: 'job', onTerm: 'ignore' });
    };
    await terminateTree(tree, 2_000, { host });
    expect(host.sent('SIGTERM')).toEqual(['-1000@0', '1002@0', '1003@50']);
    expect(host.sent('SIGKILL')).toEqual(['1003@2000']);
    expect(host.procs.has(1_003)).toBe(false);
    expect(host.passes).toBe(4);
  });

  it('counts zombies as gone (where nothing reaps orphans) without waiting out the grace', async () => {
    const { host, tree } = hostWithTree('exit');
    for (const pid of [1_001, 1_002]) (host.procs.get(pid) as FakeProcess).staysZombie = true;
    await terminateTree(tree, 2_000, { host });
    expect(host.sent('SIGKILL')).toEqual([]);
    expect(host.time).toBe(50);
    expect(host.passes).toBe(2);
  });

  it('does not take a later process that got a known pid for the tree', async () => {
    const { host, tree } = hostWithTree('exit');
    host.onSleep = (now) => {
      if (now === 50) host.add(1_001, { pgrp: 1_001, starttime: 9_999, onTerm: 'ignore' });
    };
    await terminateTree(tree, 2_000, { host });
    expect(host.sent('SIGKILL')).toEqual([]);
    expect(host.procs.get(1_001)?.starttime).toBe(9_999);
  });

  it('waits for a process that outlives SIGKILL, says so once after a second, and reads only it meanwhile', async () => {
    const { host, tree } = hostWithTree('ignore');
    host.onSleep = (now) => {
      const child = host.procs.get(1_001);
      if (now >= 2_000 && child?.state === 'S') child.state = 'D'; // uninterruptible until 10 s
      if (now >= 10_000) host.procs.delete(1_001);
    };
    const lingering: number[][] = [];
    await terminateTree(tree, 2_000, { host, onLingering: (pids) => lingering.push(pids) });
    expect(lingering).toEqual([[1_001]]);
    expect(host.procs.has(1_001)).toBe(false);
    expect(host.time).toBeGreaterThanOrEqual(10_000);
    expect(host.time).toBeLessThan(11_000);
    expect(host.passes).toBe(3);
  });
});

describe('signalTrees', () => {
  it('signals several trees and what left them with one pass over /proc', () => {
    const host = new FakeHost();
    for (let pid = 2; pid < 202; pid++)
      host.add(pid, pid === 150 ? { pgrp: pid, token: 'other' } : { pgrp: pid });
    const trees: ProcessTree[] = [];
    for (let i = 0; i < 4; i++) {
      const pgid = 1_000 + 10 * i;
      host.add(pgid, { pgrp: pgid, token: `job-${i}` });
      host.add(pgid + 1, { pgrp: pgid + 1, token: `job-${i}` });
      trees.push({ pgid, token: `job-${i}` });
    }
    signalTrees(trees, 'SIGKILL', host);
    expect(host.passes).toBe(1);
    expect(host.procs.size).toBe(200);
    expect(host.procs.has(150)).toBe(true);
  });
});
