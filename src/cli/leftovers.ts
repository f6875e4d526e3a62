/**
 * The job processes a killed run left behind. Job processes are detached (each leads its own
 * process group), so a CLI killed with SIGKILL leaves its running jobs running. A run that
 * resumes holds the state file's lock, so the run before is gone; before it starts a job again,
 * it ends the processes of that run's unfinished jobs — found on Linux through `/proc`, by the
 * `AI_BATCH_LOG_DIR` and `AI_BATCH_JOB_ID` they were started with (and their
 * `AI_BATCH_JOB_TOKEN`) — so that a job never runs twice at once, nor on a GPU its old attempt
 * still uses. Without `/proc` (macOS) nothing is found.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { JOB_TOKEN_ENV, readStat, terminateTree } from './process-group.js';

/** One attempt's processes, left by a run that is gone. */
export type Leftover = { jobId: string; pgid: number; token: string; pids: number[] };

/** The variables of an environment (`/proc/<pid>/environ`: NUL-separated `NAME=value`). */
function variables(environ: Buffer, names: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of environ.toString('utf8').split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const name = entry.slice(0, eq);
    if (names.includes(name)) found.set(name, entry.slice(eq + 1));
  }
  return found;
}

/** The live pids of the host (none without `/proc`). */
function livePids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map(Number);
  } catch {
    return []; // No /proc (macOS).
  }
}

function environOf(pid: number): Buffer | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`);
  } catch {
    return undefined; // Gone, or not ours to read (another user's process is not a job's).
  }
}

/**
 * The live processes started (by a run or an agent logging to `logDir`) for one of `jobIds` (or
 * any job), by attempt (token). Skips this process. One pass over `/proc`, at the start of a resumed run.
 */
export function findLeftovers(logDir: string, jobIds: ReadonlySet<string> | 'any'): Leftover[] {
  if (jobIds !== 'any' && jobIds.size === 0) return [];
  const byToken = new Map<string, Leftover>();
  for (const pid of livePids()) {
    if (pid === process.pid) continue;
    const environ = environOf(pid);
    if (environ === undefined) continue;
    const vars = variables(environ, ['AI_BATCH_LOG_DIR', 'AI_BATCH_JOB_ID', JOB_TOKEN_ENV]);
    const jobId = vars.get('AI_BATCH_JOB_ID');
    const token = vars.get(JOB_TOKEN_ENV);
    if (vars.get('AI_BATCH_LOG_DIR') !== logDir || jobId === undefined || token === undefined) continue;
    if (jobIds !== 'any' && !jobIds.has(jobId)) continue;
    const stat = readStat(pid);
    if (stat === undefined || stat.state === 'Z' || stat.state === 'X') continue;
    const leftover = byToken.get(token) ?? { jobId, pgid: stat.pgrp, token, pids: [] };
    leftover.pids.push(pid);
    byToken.set(token, leftover);
  }
  return [...byToken.values()];
}

/** Ends every leftover (its group and every process with its token); resolves when they are gone. */
export async function endLeftovers(leftovers: readonly Leftover[], graceMs?: number): Promise<void> {
  await Promise.all(leftovers.map((l) => terminateTree({ pgid: l.pgid, token: l.token }, graceMs)));
}
