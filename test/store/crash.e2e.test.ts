/**
 * End to end: a durable scheduler on a SQLite store, killed with SIGKILL at random moments (issue
 * 16's crash tests). A child process (helpers/crash-child.ts) runs a mixed batch — dependencies,
 * jobs that fail their first attempts and retry, whole and half GPUs on a pool of 1–2, jobs of
 * 2–40 real milliseconds — and writes a JSON line for every job accepted and every handler start
 * and end. The test kills it when it has written a seeded random number of lines (it never sleeps:
 * it counts lines), reads the store as the kill left it, starts the child again on the same store,
 * kills it again, …, then lets a last child run to the end, and checks:
 *
 * - no accepted job lost: every id a child said was accepted is in the store after each kill, and
 *   ends final;
 * - no completed job rerun: a job the store held as completed after a kill never starts again;
 * - every interrupted attempt accounted: an attempt started and not ended at a kill, that the store
 *   holds as running, is shown `interrupted` by the next scheduler, and the job's next attempt is
 *   the one after it — or, if it was its last, the job failed with kind `interrupted`; one the
 *   store does not hold yet (see STRICT: an engine finding) leaves the job as it was before it;
 * - no over-allocation, in any child, recovered or not: the GPU shares (and CPUs) of the handlers
 *   running at once, from the start and end lines, never exceed the pool;
 * - dependencies hold across crashes: a job starts only after each job it depends on has completed
 *   (in the store before its child began, or in that child);
 * - results intact: a completed job's output, in the store and as the last scheduler saw it
 *   (`get(id)`'s attempt, `job.completed`'s output), is what its handler returned.
 *
 * The child is bundled once (esbuild, which tsx brings) so that each of the many starts costs a
 * plain `node` start rather than compiling the sources again. Seeded: CRASH_SEED picks the seed
 * (printed in every failure), CRASH_POINTS the number of kills (default 50).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sqliteStore, type StoreContents } from '../../src/index.js';
import {
  makeBatch,
  random,
  type ChildLine,
  type CrashBatch,
  type CrashOutput,
  type JobSummary,
} from './helpers/crash-batch.js';

const REPO_ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../..');
const SEED = Number(process.env['CRASH_SEED'] ?? 20_261_204);
const POINTS = Number(process.env['CRASH_POINTS'] ?? 50);
/** Kills per batch before a last child runs it to the end. */
const KILLS_PER_BATCH = 4;
/** Jobs per batch. */
const BATCH_SIZE = 16;
/** Batches run side by side (their children mostly wait on their handlers' timers). */
const PARALLEL = 2;
/**
 * Require that an attempt whose handler has started is on disk (CRASH_STRICT_START=0 turns it
 * off). It failed before the engine journaled `running` ahead of the start: the snapshot came
 * after the actor had invoked the handler, so a kill in between — while a handler's synchronous
 * start runs, e.g. the CLI spawning its process — left the store holding the job as waiting, and
 * the recovered scheduler ran the same attempt number again instead of counting it `interrupted`
 * (a job of `retry: { attempts: 1 }` ran twice). Off, such an attempt is only counted, and the
 * store must hold the job as it was just before the start.
 */
const STRICT = process.env['CRASH_STRICT_START'] !== '0';

const dirs: string[] = [];
const children = new Set<ChildProcess>();
let bundle: string;

beforeAll(async () => {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-crash-bundle-'));
  dirs.push(dir);
  bundle = nodePath.join(dir, 'crash-child.mjs');
  await build({
    entryPoints: [nodePath.join(REPO_ROOT, 'test/store/helpers/crash-child.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // No keepNames: the job logic must not depend on its guards' function names (a bundler
    // renames `and` to `and2` when two functions of that name meet in one scope).
    keepNames: false,
    // The native driver stays outside, found through NODE_PATH (the adapter requires it at open).
    external: ['better-sqlite3'],
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
    logLevel: 'error',
  });
});

afterEach(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

type Run = {
  lines: ChildLine[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** Whether the test killed it (it had not ended by itself). */
  killed: boolean;
};

/**
 * Runs the child on `batchFile` and `store`; SIGKILLs it as soon as it has written `killAfter`
 * lines (never, if undefined), and resolves when it has exited with every line it wrote. Bounded:
 * a child that runs for 30 s is killed (and the test fails on what it finds).
 */
function runChild(batchFile: string, store: string, killAfter: number | undefined): Promise<Run> {
  const child = spawn(process.execPath, [bundle, batchFile, store], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_PATH: nodePath.join(REPO_ROOT, 'node_modules') },
    timeout: 30_000,
    killSignal: 'SIGKILL',
  });
  children.add(child);
  const lines: ChildLine[] = [];
  let stderr = '';
  let killed = false;
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const reader = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  reader.on('line', (line) => {
    lines.push(JSON.parse(line) as ChildLine);
    if (!killed && killAfter !== undefined && lines.length >= killAfter) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  const closed = new Promise<void>((resolve) => reader.on('close', resolve));
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  ).then(async ({ code, signal }) => {
    await closed;
    children.delete(child);
    return { lines, code, signal, stderr, killed: killed && signal === 'SIGKILL' };
  });
}

/** What the store holds now (the child is gone, and so is its lock). */
function readStore(path: string): Map<string, StoreContents['jobs'][number]> {
  const store = sqliteStore(path);
  try {
    return new Map(store.open().jobs.map((entry) => [entry.job.id, entry] as const));
  } finally {
    store.close();
  }
}

const FINAL = new Set(['completed', 'failed', 'cancelled']);
const WAITING = new Set(['pending', 'queued', 'retrying']);
const key = (id: string, attempt: number) => `${id}#${attempt}`;

/** What one batch went through: its kills, and every way it broke a promise (none, we hope). */
type BatchReport = {
  kills: number;
  /** Attempts running at a kill, as the store held them. */
  interrupted: number;
  /** Attempts whose handler had started at a kill, and which the store did not hold yet. */
  unjournaled: number;
  completedBeforeKill: number;
  violations: string[];
};

/** Runs one batch through kills and a last run to the end, checking as it goes. */
async function crashBatch(index: number, rand: () => number): Promise<BatchReport> {
  const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-crash-'));
  dirs.push(dir);
  const batch: CrashBatch = makeBatch(rand, BATCH_SIZE);
  const batchFile = nodePath.join(dir, 'batch.json');
  writeFileSync(batchFile, JSON.stringify(batch));
  const storePath = nodePath.join(dir, 'state.db');
  const jobs = new Map(batch.jobs.map((job) => [job.id, job] as const));
  const violations: string[] = [];
  const report: BatchReport = {
    kills: 0,
    interrupted: 0,
    unjournaled: 0,
    completedBeforeKill: 0,
    violations,
  };

  const acked = new Set<string>();
  /** Jobs the store held as completed after a kill, with their outputs. */
  const committed = new Map<string, unknown>();
  /** The last output each job's handler returned (any child), by job. */
  const returned = new Map<string, CrashOutput>();
  /** Attempts started and not ended when their child was killed: what became of them is checked. */
  const cut: Array<{ id: string; attempt: number; cycle: number }> = [];
  /** Every start, by cycle, in order. */
  const starts: Array<{ id: string; attempt: number; cycle: number }> = [];
  /** Attempts a reopened scheduler showed interrupted, by the cycle that reopened it. */
  const reopenedCut: Array<{ id: string; attempt: number; cycle: number }> = [];

  for (let cycle = 0; ; cycle++) {
    const last = report.kills >= KILLS_PER_BATCH;
    const where = `seed ${SEED}, batch ${index}, cycle ${cycle}`;
    const run = await runChild(batchFile, storePath, last ? undefined : 1 + Math.floor(rand() * 14));

    // As the child saw it, line by line: allocations, dependencies, reruns.
    const live = new Map<string, { cpu: number; gpus: Array<{ index: number; share: number }> }>();
    // Done for this child: completed in the store before it began, or ended well in it.
    const done = new Set(committed.keys());
    for (const line of run.lines) {
      if (line.type === 'opened') {
        const byId = new Map(line.jobs.map((j) => [j.id, j] as const));
        for (const j of line.jobs) {
          // The message names the attempt cut ("attempt 2 was interrupted: …").
          const cutAttempt = /^attempt (\d+) was interrupted/.exec(j.error?.message ?? '')?.[1];
          if (j.error?.kind === 'interrupted' && cutAttempt !== undefined)
            reopenedCut.push({ id: j.id, attempt: Number(cutAttempt), cycle });
        }
        for (const c of cut.filter((c) => c.cycle === cycle - 1)) {
          const seen = byId.get(c.id);
          if (
            seen?.error?.kind !== 'interrupted' ||
            (seen.attempt !== c.attempt && seen.attempt !== c.attempt + 1)
          )
            violations.push(
              `${where}: ${c.id}'s attempt ${c.attempt} was cut by the kill; reopened, the scheduler shows ${JSON.stringify(seen)}`,
            );
        }
      } else if (line.type === 'accepted') {
        for (const id of line.ids) acked.add(id);
      } else if (line.type === 'start') {
        starts.push({ id: line.id, attempt: line.attempt, cycle });
        if (committed.has(line.id))
          violations.push(
            `${where}: ${line.id} started again (attempt ${line.attempt}) though the store held it completed`,
          );
        for (const dep of jobs.get(line.id)?.dependsOn ?? [])
          if (!done.has(dep))
            violations.push(`${where}: ${line.id} started before its dependency ${dep} completed`);
        const job = jobs.get(line.id);
        const wanted = job?.resources.gpu ?? 0;
        const got = line.gpus.reduce((sum, g) => sum + g.share, 0);
        if (got !== wanted || line.cpu !== 1)
          violations.push(`${where}: ${line.id} asked for gpu ${wanted}, cpu 1, got ${JSON.stringify(line)}`);
        live.set(key(line.id, line.attempt), { cpu: line.cpu, gpus: line.gpus });
        const shares = new Map<number, number>();
        let cpu = 0;
        for (const held of live.values()) {
          cpu += held.cpu;
          for (const g of held.gpus) shares.set(g.index, (shares.get(g.index) ?? 0) + g.share);
        }
        for (const [gpu, share] of shares)
          if (share > 1 + 1e-9 || gpu < 0 || gpu >= batch.gpus)
            violations.push(
              `${where}: over-allocated GPU ${gpu} (${share} of it held at once) when ${line.id} started`,
            );
        if (cpu > batch.cpu) violations.push(`${where}: ${cpu} CPUs held at once when ${line.id} started`);
      } else if (line.type === 'end') {
        live.delete(key(line.id, line.attempt));
        if (line.ok) {
          done.add(line.id);
          returned.set(line.id, line.output);
        }
      }
    }

    if (!run.killed) {
      // It ran to the end (a last run, or a kill point it never reached).
      if (run.code !== 0)
        violations.push(`${where}: the child ended with ${run.code ?? run.signal}; stderr:\n${run.stderr}`);
      const idle = run.lines.find((l) => l.type === 'idle');
      checkEnd(where, idle, readStore(storePath));
      return report;
    }

    // Killed: the store as the kill left it.
    report.kills++;
    const stored = readStore(storePath);
    for (const id of acked)
      if (!stored.has(id))
        violations.push(`${where}: ${id} was accepted, and is not in the store after the kill`);
    for (const k of live.keys()) {
      const [id = '', n = '0'] = k.split('#');
      const attempt = Number(n);
      const status = stored.get(id)?.status;
      if (status?.state === 'running' && status.attempt === attempt) {
        cut.push({ id, attempt, cycle });
        report.interrupted++;
        continue;
      }
      // Its handler began before its start reached the store (see STRICT): the store must hold
      // the job as it was just before, waiting for that attempt.
      report.unjournaled++;
      const before = status !== undefined && WAITING.has(status.state) && status.attempt === attempt - 1;
      if (STRICT || !before)
        violations.push(
          `${where}: ${id}'s attempt ${attempt} was running at the kill (its handler had started); the store holds ${JSON.stringify(status)}`,
        );
    }
    for (const [id, { status }] of stored) {
      if (status.state !== 'completed' || committed.has(id)) continue;
      report.completedBeforeKill++;
      committed.set(id, status.output);
      if (JSON.stringify(status.output) !== JSON.stringify(returned.get(id)))
        violations.push(
          `${where}: ${id}'s stored output ${JSON.stringify(status.output)} is not what its handler returned, ${JSON.stringify(returned.get(id))}`,
        );
    }
  }

  /** The last child ran the batch to the end: every job final, as it should be. */
  function checkEnd(
    where: string,
    idle: Extract<ChildLine, { type: 'idle' }> | undefined,
    stored: Map<string, StoreContents['jobs'][number]>,
  ): void {
    if (!idle) {
      violations.push(`${where}: the last child never went idle`);
      return;
    }
    const seen = new Map<string, JobSummary>(idle.jobs.map((j) => [j.id, j] as const));
    // The last child submitted whatever was missing: every job is accepted by now.
    for (const id of jobs.keys()) {
      const job = seen.get(id);
      const status = stored.get(id)?.status;
      if (!job || !FINAL.has(job.state) || !status || status.state !== job.state)
        violations.push(
          `${where}: ${id} ended as ${JSON.stringify(job)} (store: ${JSON.stringify(status)}), not final in both`,
        );
      if (job?.state === 'completed') {
        const output = returned.get(id);
        if (output?.attempt !== job.attempt || status?.attempt !== job.attempt)
          violations.push(
            `${where}: ${id} completed at attempt ${job.attempt} (store: ${status?.attempt}); its handler last returned ${JSON.stringify(output)}`,
          );
        if (JSON.stringify(status?.output) !== JSON.stringify(output))
          violations.push(
            `${where}: ${id}'s stored output ${JSON.stringify(status?.output)} is not what its handler returned, ${JSON.stringify(output)}`,
          );
        const now = idle.outputs[id];
        if (now !== undefined && JSON.stringify(now) !== JSON.stringify(output))
          violations.push(
            `${where}: ${id}'s job.completed output ${JSON.stringify(now)} is not ${JSON.stringify(output)}`,
          );
        if (committed.has(id) && JSON.stringify(committed.get(id)) !== JSON.stringify(status?.output))
          violations.push(`${where}: ${id}'s output changed after it was committed`);
      }
    }
    for (const c of cut) {
      const next = starts.find((s) => s.id === c.id && s.cycle > c.cycle);
      // The next attempt may itself have been cut before its handler wrote its start line: the
      // store held it running (it is journaled before the handler is called), so it is a cut too.
      // Or killed after its start was journaled and before its handler wrote that line: a later
      // scheduler reopened it interrupted at that attempt.
      const nextCut =
        cut.find((d) => d.id === c.id && d.cycle > c.cycle && d.attempt === c.attempt + 1) ??
        reopenedCut.find((d) => d.id === c.id && d.cycle > c.cycle && d.attempt === c.attempt + 1);
      const job = seen.get(c.id);
      const max = jobs.get(c.id)?.attempts ?? 0;
      const accounted = nextCut
        ? true
        : next
          ? next.attempt === c.attempt + 1
          : c.attempt >= max &&
            job?.state === 'failed' &&
            job.error?.kind === 'interrupted' &&
            job.attempt === c.attempt;
      if (!accounted)
        violations.push(
          `seed ${SEED}, batch ${index}: ${c.id}'s attempt ${c.attempt}, cut by the kill of cycle ${c.cycle}, is not accounted: next start ${JSON.stringify(next)}, at the end ${JSON.stringify(job)} (attempts ${max})`,
        );
    }
  }
}

describe('a durable scheduler on SQLite, killed with SIGKILL at random moments', () => {
  it(
    `loses no accepted job, reruns no completed one, accounts every cut attempt, never over-allocates, keeps results (seed ${SEED}, ${POINTS} kills)`,
    async () => {
      const reports: BatchReport[] = [];
      let kills = 0;
      let next = 0;
      // Batches side by side, until enough kills have landed (bounded: a batch that ran through
      // without its kills still counts toward the bound).
      const worker = async () => {
        while (kills < POINTS && next < POINTS * 2) {
          const index = next++;
          // Each batch's own generator, from the seed and its index: the same batch and kill points
          // whichever worker runs it.
          const report = await crashBatch(index, random((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0));
          kills += report.kills;
          reports.push(report);
        }
      };
      await Promise.all(Array.from({ length: PARALLEL }, worker));

      const violations = reports.flatMap((r) => r.violations);
      expect(violations).toEqual([]);
      expect(kills).toBeGreaterThanOrEqual(POINTS);
      // The kills landed where they matter: on running attempts, and after completions.
      expect(reports.reduce((n, r) => n + r.interrupted, 0)).toBeGreaterThan(0);
      expect(reports.reduce((n, r) => n + r.completedBeforeKill, 0)).toBeGreaterThan(0);
      const sum = (k: 'kills' | 'interrupted' | 'unjournaled' | 'completedBeforeKill') =>
        reports.reduce((n, r) => n + r[k], 0);
      console.warn(
        `crash test (seed ${SEED}): ${reports.length} batches, ${sum('kills')} kills, ${sum('interrupted')} running attempts interrupted, ${sum('unjournaled')} started but not yet journaled, ${sum('completedBeforeKill')} completions kept`,
      );
    },
    60_000 + POINTS * 2_000,
  );
});
