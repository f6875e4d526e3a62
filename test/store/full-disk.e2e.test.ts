/**
 * End to end: a durable scheduler whose disk fills in the middle of a running batch (issue 16).
 * A child process runs a scheduler on a SQLite store under a real file-size limit (`ulimit -f`,
 * with SIGXFSZ ignored, so a write past it fails with EFBIG after writing what fits: a torn write,
 * as on a full disk). It submits jobs one by one while earlier ones run; once the limit is met,
 * submits are refused with StoreWriteError and transitions cannot be journaled (`store.writeFailed`),
 * while the scheduler goes on serving. Then the store is opened again without the limit and checked:
 * it opens (nothing half-written), holds every job whose submit returned and none that was refused,
 * and a new scheduler runs them all to the end without running a job the store held as completed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRealClock, createScheduler, sqliteStore, type HandlerContext } from '../../src/index.js';

const REPO_ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../..');
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const INDEX_MODULE = pathToFileURL(nodePath.join(REPO_ROOT, 'src/index.ts')).href;
/** The file-size limit, in KiB: the log and SQLite's files hit it after a few hundred jobs. */
const LIMIT_KB = 384;
const JOBS = 1_500;

type Report = {
  accepted: string[];
  refused: string[];
  refusals: string[];
  writeFailed: number;
  completed: string[];
};

const CHILD = `
import { createScheduler, sqliteStore } from ${JSON.stringify(INDEX_MODULE)};
const scheduler = createScheduler({
  monitor: false,
  resources: { cpu: 4, memoryMb: 4096 },
  retainFinished: 100000,
  maxQueueSize: 100000,
  store: sqliteStore(process.argv[2]),
  handlers: { work: async ({ payload }) => { await new Promise((r) => setImmediate(r)); return { n: payload.n }; } },
});
let writeFailed = 0;
scheduler.events$.subscribe((e) => { if (e.type === 'store.writeFailed') writeFailed++; });
const accepted = [], refused = [], refusals = [];
for (let n = 0; n < ${JOBS}; n++) {
  const id = 'j' + n;
  try {
    scheduler.submit({ id, type: 'work', payload: { n, pad: 'x'.repeat(600) }, resources: { cpu: 1 } });
    accepted.push(id);
  } catch (error) {
    if (error?.name !== 'StoreWriteError') throw error;
    refused.push(id);
    if (refusals.length < 3) refusals.push(error.message);
  }
  if (n % 25 === 0) await new Promise((r) => setImmediate(r));
}
await scheduler.onIdle();
const completed = scheduler.list({ state: 'completed' }).map((j) => j.id);
process.stdout.write(JSON.stringify({ accepted, refused, refusals, writeFailed, completed }) + '\\n');
process.exit(0);
`;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-full-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child under the file-size limit; its report. Bounded to 60 s, killed after. */
function runLimited(path: string): Promise<Report> {
  const file = nodePath.join(dir, 'child.mts');
  writeFileSync(file, CHILD);
  const command = `trap '' XFSZ; ulimit -f ${LIMIT_KB}; exec "${process.execPath}" --import "${TSX}" "${file}" "${path}"`;
  const child = spawn('bash', ['-c', command], {
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 60_000,
    killSignal: 'SIGKILL',
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return new Promise((resolve, reject) =>
    child.on('exit', (code, signal) => {
      if (code !== 0) reject(new Error(`the child exited with ${code ?? signal}; stderr:\n${err}`));
      else resolve(JSON.parse(out) as Report);
    }),
  );
}

describe('a full disk in the middle of a running batch', () => {
  it('refuses submits with StoreWriteError, keeps serving, and leaves a store that opens and loses no accepted job', async () => {
    const path = nodePath.join(dir, 'state.db');
    const report = await runLimited(path);
    // The disk did fill, part-way: some jobs were accepted, the later ones refused, transitions failed.
    expect(report.accepted.length).toBeGreaterThan(50);
    expect(report.refused.length).toBeGreaterThan(50);
    expect(report.writeFailed).toBeGreaterThan(0);
    expect(report.refusals[0]).toMatch(
      /could not write to the store .*state\.db \(accept\): .*(EFBIG|too large)/,
    );
    // It kept serving: every accepted job ran to the end in that process.
    expect(report.completed.sort()).toEqual([...report.accepted].sort());

    // Without the limit, the store opens: every accepted job is there, no refused one.
    const store = sqliteStore(path);
    const contents = store.open();
    store.close();
    const held = new Map(contents.jobs.map((j) => [j.job.id, j.status] as const));
    expect([...held.keys()].sort()).toEqual([...report.accepted].sort());
    const doneBefore = new Set([...held].filter(([, s]) => s.state === 'completed').map(([id]) => id));
    for (const id of doneBefore) expect(held.get(id)?.output).toEqual({ n: Number(id.slice(1)) });

    // A new scheduler finishes what the store did not hold as completed, and nothing else.
    const ran: string[] = [];
    const scheduler = createScheduler({
      clock: createRealClock(),
      monitor: false,
      resources: { cpu: 4, memoryMb: 4_096 },
      retainFinished: 100_000,
      maxQueueSize: 100_000,
      store: sqliteStore(path),
      handlers: {
        work: async ({ id, payload }: HandlerContext<{ n: number }>) => {
          ran.push(id);
          return { n: payload.n };
        },
      },
    });
    await scheduler.onIdle();
    for (const id of ran) expect(doneBefore.has(id)).toBe(false);
    expect(ran.length).toBe(report.accepted.length - doneBefore.size);
    const final = scheduler.list();
    expect(final.map((j) => j.id).sort()).toEqual([...report.accepted].sort());
    expect(final.every((j) => j.state === 'completed')).toBe(true);
    await scheduler.shutdown();
  }, 90_000);
});
