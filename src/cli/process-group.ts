/**
 * Ending a job's whole process tree. Each job's process is started `detached`, so it leads a
 * process group of its own that its children and grandchildren inherit; signalling the group
 * (`kill(-pgid)`) reaches all of them, where killing the pid alone would orphan a shell's
 * background work. It also keeps the terminal's Ctrl-C away from jobs: the CLI decides.
 *
 * A descendant can leave the group (`setsid`, `setpgid`, a daemon's double fork). Every process
 * of a job also carries the job's token in its environment (`AI_BATCH_JOB_TOKEN`, inherited by
 * whatever it starts), and on Linux the tree is the group plus every live process whose
 * `/proc/<pid>/environ` holds the token — whatever group, session or parent it has now. Where
 * there is no `/proc` (macOS), or a process cleared its environment (`env -i`), only the group
 * is reached.
 *
 * Reading `/proc` means reading every process of the host (about 25 ms with 1,100 of them), so it
 * is done only where it must be: when a tree is told to end (to find what left the group), when
 * its grace is over (SIGKILL), and for the final check that nothing of it is left. Between those,
 * a poll reads only the processes already known to be the tree's. Trees ended at the same time
 * share one pass ({@link createProcScanner}), and a pass yields to the event loop as it goes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';

/** How long a group has after SIGTERM before SIGKILL. @default 2_000 */
export const DEFAULT_KILL_GRACE_MS = 2_000;
const POLL_MS = 50;
/** Processes read in one go before a pass over `/proc` lets the event loop run. */
const READS_PER_TURN = 128;

/** The environment variable that marks every process of one attempt of a job. */
export const JOB_TOKEN_ENV = 'AI_BATCH_JOB_TOKEN';

/** The processes of one attempt: its process group, and the processes carrying its token. */
export type ProcessTree = {
  /** The process group (the pid of the job's first process, which leads it). */
  pgid: number;
  /** The value of `AI_BATCH_JOB_TOKEN` the attempt was started with. */
  token?: string;
  /**
   * When the job's first process started (`starttime` of `/proc/<pid>/stat`, clock ticks since
   * boot): its descendants started no earlier, so older processes need not be read for the token.
   */
  since?: number;
};

/** What `/proc/<pid>/stat` says of a process that the tree kill needs. */
export type ProcStat = { state: string; pgrp: number; starttime: number };

/** Reads `/proc`, one file at a time (injected by tests to count and fake what is read). */
export type ProcReader = {
  /** The pids listed in `/proc`, or undefined where there is no `/proc` (macOS). */
  pids(): number[] | undefined;
  /** A process's state, group and start time, or undefined if it is gone. */
  stat(pid: number): ProcStat | undefined;
  /** A process's environment as `/proc/<pid>/environ` holds it, or undefined (gone, not ours). */
  environ(pid: number): Buffer | undefined;
};

/** One pass over `/proc`: the live (not zombie) processes, and their environments read on demand. */
export type ProcSnapshot = {
  processes: ReadonlyArray<{ pid: number; stat: ProcStat }>;
  /** A process's environment, read once per pass whatever the number of trees that ask. */
  environ(pid: number): Buffer | undefined;
};

/** Hands out passes over `/proc`, one for all who ask in the same turn of the event loop. */
export type ProcScanner = {
  readonly reader: ProcReader;
  /** A pass started after this call; undefined where there is no `/proc`. */
  scan(): Promise<ProcSnapshot | undefined>;
  /** Passes made so far. */
  readonly passes: number;
};

/** The parsed fields of a `/proc/<pid>/stat` text. */
function parseStat(text: string): ProcStat | undefined {
  // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 3 (state), 5 (pgrp) and 22 (starttime) of proc(5), counted from 1.
  const [state, , pgrp] = fields;
  if (state === undefined || pgrp === undefined) return undefined;
  return { state, pgrp: Number(pgrp), starttime: Number(fields[19]) };
}

/** The host's `/proc`. */
export const procReader: ProcReader = {
  pids() {
    try {
      return readdirSync('/proc')
        .filter((entry) => /^\d+$/.test(entry))
        .map(Number);
    } catch {
      return undefined; // No /proc (macOS).
    }
  },
  stat(pid) {
    try {
      return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return undefined;
    }
  },
  environ(pid) {
    try {
      return readFileSync(`/proc/${pid}/environ`);
    } catch {
      return undefined; // Gone, or not ours to read (another user's process is not a job's).
    }
  },
};

/**
 * State, process group and start time (clock ticks since boot) of one process from
 * `/proc/<pid>/stat`, or undefined if it is gone.
 */
export function readStat(pid: number | string): ProcStat | undefined {
  return procReader.stat(Number(pid));
}

const alive = (stat: ProcStat | undefined): stat is ProcStat =>
  stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';

function snapshotOf(reader: ProcReader, processes: Array<{ pid: number; stat: ProcStat }>): ProcSnapshot {
  const environs = new Map<number, Buffer | undefined>();
  return {
    processes,
    environ(pid) {
      if (!environs.has(pid)) environs.set(pid, reader.environ(pid));
      return environs.get(pid);
    },
  };
}

/**
 * A scanner of `/proc`. Every caller of `scan()` in one turn of the event loop gets the same
 * pass, started after the turn (so after every call: it never answers with what it read
 * before); one who asks while a pass runs gets the next. A pass reads {@link READS_PER_TURN}
 * processes at a time and lets the event loop run in between.
 */
export function createProcScanner(reader: ProcReader = procReader): ProcScanner {
  let next: Promise<ProcSnapshot | undefined> | undefined;
  let passes = 0;
  const pass = async (): Promise<ProcSnapshot | undefined> => {
    await nextTurn();
    next = undefined;
    passes++;
    const pids = reader.pids();
    if (pids === undefined) return undefined;
    const processes: Array<{ pid: number; stat: ProcStat }> = [];
    for (let i = 0; i < pids.length; i++) {
      if (i > 0 && i % READS_PER_TURN === 0) await nextTurn();
      const pid = pids[i] as number;
      const stat = reader.stat(pid);
      if (alive(stat)) processes.push({ pid, stat });
    }
    return snapshotOf(reader, processes);
  };
  return {
    reader,
    scan: () => (next ??= pass()),
    get passes() {
      return passes;
    },
  };
}

/** What the tree kill does to the host; injected by tests. */
export type ProcessHost = {
  scanner: ProcScanner;
  /** As `process.kill`: throws ESRCH when there is no such process (group), EPERM when not ours. */
  kill(pid: number, signal: NodeJS.Signals | 0): void;
  /** Milliseconds on a monotonic clock. */
  now(): number;
  sleep(ms: number): Promise<void>;
};

/** The host this process runs on: its `/proc`, its signals and the real clock. */
export const realHost: ProcessHost = {
  scanner: createProcScanner(),
  kill: (pid, signal) => void process.kill(pid, signal),
  now: () => performance.now(),
  sleep: (ms) => sleep(ms),
};

/** Sends a signal to every process of a group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0, host: ProcessHost = realHost): boolean {
  try {
    host.kill(-pgid, signal);
    return true;
  } catch (error) {
    // EPERM: a member changed identity; it exists, but it is not ours to signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The live processes of a tree a pass found: its group's, and those that carry its token
 * outside the group — by pid, with the start time that tells the process from a later one that
 * got the same pid.
 */
export type TreeMembers = {
  group: Map<number, number>;
  escaped: Map<number, number>;
};

/** The members of a tree in one pass over `/proc`. */
export function membersIn(snapshot: ProcSnapshot, tree: ProcessTree): TreeMembers {
  const needle = tree.token === undefined ? undefined : Buffer.from(`${JOB_TOKEN_ENV}=${tree.token}\0`);
  const group = new Map<number, number>();
  const escaped = new Map<number, number>();
  for (const { pid, stat } of snapshot.processes) {
    if (stat.pgrp === tree.pgid) group.set(pid, stat.starttime);
    else if (
      needle !== undefined &&
      pid !== process.pid &&
      (tree.since === undefined || stat.starttime >= tree.since) &&
      snapshot.environ(pid)?.includes(needle) === true
    ) {
      escaped.set(pid, stat.starttime);
    }
  }
  return { group, escaped };
}

/** What the tree kill knows of a tree: from the last pass, or (no `/proc`) only its group. */
type Known = TreeMembers & { procless: boolean };

/** A pass over `/proc` for a tree (where there is none, whether its group answers a signal). */
async function scanTree(tree: ProcessTree, host: ProcessHost): Promise<Known | undefined> {
  if (tree.token === undefined && !signalGroup(tree.pgid, 0, host)) return undefined;
  const snapshot = await host.scanner.scan();
  if (snapshot === undefined) {
    return signalGroup(tree.pgid, 0, host)
      ? { group: new Map(), escaped: new Map(), procless: true }
      : undefined;
  }
  const members = membersIn(snapshot, tree);
  return members.group.size + members.escaped.size > 0 ? { ...members, procless: false } : undefined;
}

/**
 * The cheap check between passes: is a process the last pass found still alive (the same
 * process: its start time too)? It reads only the tree's own processes, and stops at the first
 * one alive. Without `/proc`, whether the group answers a signal.
 */
function knownAlive(tree: ProcessTree, known: Known, host: ProcessHost): number[] {
  if (known.procless) return signalGroup(tree.pgid, 0, host) ? [tree.pgid] : [];
  for (const members of [known.group, known.escaped]) {
    for (const [pid, starttime] of members) {
      const stat = host.scanner.reader.stat(pid);
      if (alive(stat) && stat.starttime === starttime) return [pid];
    }
  }
  return [];
}

/** The live pids of what is known of a tree (for a message). */
function livePids(known: Known, host: ProcessHost): number[] {
  return [...known.group, ...known.escaped]
    .filter(([pid, starttime]) => {
      const stat = host.scanner.reader.stat(pid);
      return alive(stat) && stat.starttime === starttime;
    })
    .map(([pid]) => pid);
}

/** Sends a signal to a tree's group and to the processes found to have left it. */
function signalKnown(tree: ProcessTree, known: Known, signal: NodeJS.Signals, host: ProcessHost): void {
  signalGroup(tree.pgid, signal, host);
  for (const pid of known.escaped.keys()) {
    try {
      host.kill(pid, signal);
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Options of {@link terminateTree}. */
export type TerminateOptions = {
  /**
   * Called once if processes of the tree are still alive a second after SIGKILL (stuck in an
   * uninterruptible sleep, or no longer ours to signal — a setuid program), with their pids.
   */
  onLingering?: (pids: number[]) => void;
  /** The host's processes, signals and clock. @default realHost */
  host?: ProcessHost;
};

/**
 * Ends a process tree: SIGTERM, then SIGKILL if anything of it is still alive `graceMs` later
 * (elapsed time, however busy the event loop was). Resolves once the tree is gone — and not
 * before: what holds a job's resources may still use them, so a process that outlives SIGKILL is
 * waited for (told through `onLingering`), checked less and less often, up to once a second.
 *
 * `/proc` is read in full three times at most for a tree that needs SIGKILL (at SIGTERM, at
 * SIGKILL, and to check that nothing is left), twice for one that ends on SIGTERM, once for one
 * already gone; every 50 ms in between, only the processes found before are read. What a tree
 * starts during its grace is found at the next pass.
 */
export async function terminateTree(
  tree: ProcessTree,
  graceMs: number = DEFAULT_KILL_GRACE_MS,
  options: TerminateOptions = {},
): Promise<void> {
  const host = options.host ?? realHost;
  let known = await scanTree(tree, host);
  if (known === undefined) return;
  signalKnown(tree, known, 'SIGTERM', host);
  const deadline = host.now() + graceMs;
  for (let left = graceMs; left > 0; left = deadline - host.now()) {
    await host.sleep(Math.min(POLL_MS, left));
    if (knownAlive(tree, known, host).length > 0) continue;
    // What was found is gone: the final check, which finds what started since, too.
    known = await scanTree(tree, host);
    if (known === undefined) return;
    signalKnown(tree, known, 'SIGTERM', host);
  }
  known = await scanTree(tree, host);
  if (known === undefined) return;
  signalKnown(tree, known, 'SIGKILL', host);
  const killedAt = host.now();
  let told = false;
  for (let poll = POLL_MS; ; poll = Math.min(1_000, poll * 2)) {
    await host.sleep(poll);
    if (knownAlive(tree, known, host).length === 0) {
      known = await scanTree(tree, host);
      if (known === undefined) return;
    }
    // What is left is killed again, and what started since (or went unseen) too.
    signalKnown(tree, known, 'SIGKILL', host);
    if (!told && host.now() - killedAt >= 1_000) {
      told = true;
      options.onLingering?.(livePids(known, host));
    }
  }
}

/** {@link terminateTree} of a process group alone. */
export function terminateGroup(pgid: number, graceMs: number = DEFAULT_KILL_GRACE_MS): Promise<void> {
  return terminateTree({ pgid }, graceMs);
}

/**
 * Sends a signal at once to every process of several trees — their groups, and what left them
 * carrying their tokens — with one synchronous pass over `/proc` for all of them (the last
 * resort of a third Ctrl-C, which cannot wait).
 */
export function signalTrees(
  trees: readonly ProcessTree[],
  signal: NodeJS.Signals,
  host: ProcessHost = realHost,
): void {
  for (const tree of trees) signalGroup(tree.pgid, signal, host);
  if (!trees.some((tree) => tree.token !== undefined)) return;
  const { reader } = host.scanner;
  const pids = reader.pids();
  if (pids === undefined) return;
  const processes = pids.flatMap((pid) => {
    const stat = reader.stat(pid);
    return alive(stat) ? [{ pid, stat }] : [];
  });
  const snapshot = snapshotOf(reader, processes);
  for (const tree of trees) {
    if (tree.token === undefined) continue;
    for (const pid of membersIn(snapshot, tree).escaped.keys()) {
      try {
        host.kill(pid, signal);
      } catch {
        // Gone meanwhile.
      }
    }
  }
}
