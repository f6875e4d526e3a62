/**
 * Ending a job's whole process tree. Each job's process is started `detached`, so it leads a
 * process group of its own that its children and grandchildren inherit; signalling the group
 * (`kill(-pgid)`) reaches all of them, where killing the pid alone would orphan a shell's
 * background work. It also keeps the terminal's Ctrl-C away from jobs: the CLI decides.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a group has after SIGTERM before SIGKILL. @default 2_000 */
export const DEFAULT_KILL_GRACE_MS = 2_000;
const POLL_MS = 50;

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

/**
 * True while a process of the group is alive. Zombies do not count: where the init process does
 * not reap orphans (as in some containers), a killed grandchild stays a zombie, and `kill(-pgid,
 * 0)` alone would still see it.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true; // No /proc (macOS): trust kill(0).
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(entry);
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true;
  }
  return false;
}

/** State and process group of one process from `/proc/<pid>/stat`, or undefined if it is gone. */
export function readStat(pid: number | string): { state: string; pgrp: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses; the fields after its last ')' are fixed.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [state, , pgrp] = fields;
  if (state === undefined || pgrp === undefined) return undefined;
  return { state, pgrp: Number(pgrp) };
}

/**
 * Ends a process group: SIGTERM, then SIGKILL if anything is still alive after `graceMs`.
 * Resolves once the group is gone (or SIGKILL was sent and had time to land).
 */
export async function terminateGroup(pgid: number, graceMs: number = DEFAULT_KILL_GRACE_MS): Promise<void> {
  if (!groupAlive(pgid)) return;
  signalGroup(pgid, 'SIGTERM');
  for (let waited = 0; waited < graceMs; waited += POLL_MS) {
    await sleep(POLL_MS);
    if (!groupAlive(pgid)) return;
  }
  signalGroup(pgid, 'SIGKILL');
  // SIGKILL cannot be caught; give the kernel a moment to tear the processes down.
  for (let tries = 0; tries < 20 && groupAlive(pgid); tries++) await sleep(POLL_MS);
}
