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
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a group has after SIGTERM before SIGKILL. @default 2_000 */
export const DEFAULT_KILL_GRACE_MS = 2_000;
const POLL_MS = 50;

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

/** Sends a signal to every process of a group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    // EPERM: a member changed identity; it exists, but it is not ours to signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function procEntries(): string[] | undefined {
  try {
    return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry));
  } catch {
    return undefined; // No /proc (macOS).
  }
}

const alive = (stat: { state: string } | undefined) =>
  stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';

/**
 * True while a process of the group is alive. Zombies do not count: where the init process does
 * not reap orphans (as in some containers), a killed grandchild stays a zombie, and `kill(-pgid,
 * 0)` alone would still see it.
 */
export function groupAlive(pgid: number): boolean {
  return treeMembers({ pgid }).groupAlive;
}

/** True when the process's environment holds `AI_BATCH_JOB_TOKEN=<token>`. */
function carriesToken(pid: string, needle: Buffer): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`).includes(needle);
  } catch {
    return false; // Gone, or not ours to read (another user's process is not a job's).
  }
}

/**
 * What is alive of a tree now: whether any process of its group is (and which, where `/proc`
 * tells), and the live processes that carry its token outside the group (one pass over `/proc`).
 */
export function treeMembers(tree: ProcessTree): { groupAlive: boolean; group: number[]; escaped: number[] } {
  if (!signalGroup(tree.pgid, 0) && tree.token === undefined)
    return { groupAlive: false, group: [], escaped: [] };
  const entries = procEntries();
  if (entries === undefined) return { groupAlive: signalGroup(tree.pgid, 0), group: [], escaped: [] };
  const needle = tree.token === undefined ? undefined : Buffer.from(`${JOB_TOKEN_ENV}=${tree.token}\0`);
  const group: number[] = [];
  const escaped: number[] = [];
  for (const entry of entries) {
    const stat = readStat(entry);
    if (!alive(stat)) continue;
    if (stat?.pgrp === tree.pgid) group.push(Number(entry));
    else if (
      needle !== undefined &&
      Number(entry) !== process.pid &&
      (tree.since === undefined || (stat?.starttime ?? Infinity) >= tree.since) &&
      carriesToken(entry, needle)
    ) {
      escaped.push(Number(entry));
    }
  }
  return { groupAlive: group.length > 0, group, escaped };
}

/** True while any process of the tree is alive. */
export function treeAlive(tree: ProcessTree): boolean {
  const { groupAlive: inGroup, escaped } = treeMembers(tree);
  return inGroup || escaped.length > 0;
}

/** Sends a signal to the group and to every live process that left it carrying the token. */
export function signalTree(tree: ProcessTree, signal: NodeJS.Signals): void {
  signalGroup(tree.pgid, signal);
  if (tree.token === undefined) return;
  for (const pid of treeMembers(tree).escaped) {
    try {
      process.kill(pid, signal);
    } catch {
      // Gone meanwhile.
    }
  }
}

/**
 * State, process group and start time (clock ticks since boot) of one process from
 * `/proc/<pid>/stat`, or undefined if it is gone.
 */
export function readStat(
  pid: number | string,
): { state: string; pgrp: number; starttime: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 3 (state), 5 (pgrp) and 22 (starttime) of proc(5), counted from 1.
  const [state, , pgrp] = fields;
  if (state === undefined || pgrp === undefined) return undefined;
  return { state, pgrp: Number(pgrp), starttime: Number(fields[19]) };
}

/** Options of {@link terminateTree}. */
export type TerminateOptions = {
  /**
   * Called once if processes of the tree are still alive a second after SIGKILL (stuck in an
   * uninterruptible sleep, or no longer ours to signal — a setuid program), with their pids.
   */
  onLingering?: (pids: number[]) => void;
};

/**
 * Ends a process tree: SIGTERM, then SIGKILL if anything of it is still alive after `graceMs`.
 * Resolves once the tree is gone — and not before: what holds a job's resources may still use
 * them, so a process that outlives SIGKILL is waited for (told through `onLingering`), checked
 * less and less often, up to once a second.
 */
export async function terminateTree(
  tree: ProcessTree,
  graceMs: number = DEFAULT_KILL_GRACE_MS,
  options: TerminateOptions = {},
): Promise<void> {
  if (!treeAlive(tree)) return;
  signalTree(tree, 'SIGTERM');
  for (let waited = 0; waited < graceMs; waited += POLL_MS) {
    await sleep(POLL_MS);
    if (!treeAlive(tree)) return;
  }
  signalTree(tree, 'SIGKILL');
  let told = false;
  for (let waited = 0, poll = POLL_MS; ; waited += poll, poll = Math.min(1_000, poll * 2)) {
    await sleep(poll);
    const { group, escaped, groupAlive: inGroup } = treeMembers(tree);
    if (!inGroup && escaped.length === 0) return;
    // What started since (or went unseen) is killed too.
    signalTree(tree, 'SIGKILL');
    if (!told && waited >= 1_000) {
      told = true;
      options.onLingering?.([...group, ...escaped]);
    }
  }
}

/** {@link terminateTree} of a process group alone. */
export function terminateGroup(pgid: number, graceMs: number = DEFAULT_KILL_GRACE_MS): Promise<void> {
  return terminateTree({ pgid }, graceMs);
}
