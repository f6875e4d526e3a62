/**
 * The SQLite adapter of the store port, on real files: each test has a folder of its own under
 * the system's temporary folder, removed afterwards. The lock is checked with real processes
 * (started with tsx from the sources, bounded in time, killed at the end), a full disk with
 * SQLite's own SQLITE_FULL (`max_page_count`), not a mock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import { createScheduler, createVirtualClock, type HandlerContext } from '../../src/index.js';
import {
  StoreClosedError,
  StoreCorruptError,
  StoreLockedError,
  StoreVersionError,
  StoreWriteError,
} from '../../src/store/errors.js';
import {
  sqliteHooksForTests,
  sqlitePragmaForTests,
  sqliteStore,
  SQLITE_SCHEMA_VERSION,
} from '../../src/store/sqlite.js';
import type { JobStore, StoredJob, StoredStatus } from '../../src/store/store.js';

const REPO_ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '../..');
const requireHere = createRequire(import.meta.url);
const Sqlite = requireHere('better-sqlite3') as typeof BetterSqlite3;
const TSX = pathToFileURL(requireHere.resolve('tsx')).href;
const SQLITE_MODULE = pathToFileURL(nodePath.join(REPO_ROOT, 'src/store/sqlite.ts')).href;
const INDEX_MODULE = pathToFileURL(nodePath.join(REPO_ROOT, 'src/index.ts')).href;

const POOL = { cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }] };

type Entry = { job: StoredJob; status: StoredStatus };

function entry(id: string, seq: number, payload: unknown = { n: seq }): Entry {
  return {
    job: {
      id,
      seq,
      spec: {
        type: 'train',
        priority: 5,
        retry: { attempts: 3, backoff: { type: 'exponential', delayMs: 1000 } },
        dependsOn: [],
        stopTimeoutMs: null,
        payload: payload as StoredJob['spec'][string],
      },
      submittedAt: 1_000 + seq,
    },
    status: { state: 'queued', attempt: 0, queuedAt: 1_000 + seq },
  };
}

let dir: string;
let stores: JobStore[];
let children: ChildProcess[];

beforeEach(() => {
  dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-store-'));
  stores = [];
  children = [];
});

afterEach(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const store of stores) store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A store at `name` in this test's folder, closed after the test. */
function storeAt(name = 'state.db', options?: Parameters<typeof sqliteStore>[1]): JobStore {
  const store = sqliteStore(nodePath.join(dir, name), options);
  stores.push(store);
  return store;
}

/** What `fn` throws (the test fails if it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to throw');
}

/** The file's bytes and the folder's names: what a refused open must leave as it found. */
function snapshotOf(file: string): { bytes: Buffer; names: string[] } {
  return { bytes: readFileSync(file), names: readdirSync(nodePath.dirname(file)).sort() };
}

/** A child running `script` (ES module text, with tsx), its stdout lines, bounded to 30 s. */
function startNode(script: string, args: string[] = []) {
  const file = nodePath.join(dir, `child-${children.length}.mts`);
  writeFileSync(file, script);
  const child = spawn(process.execPath, ['--import', TSX, file, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    timeout: 30_000,
    killSignal: 'SIGKILL',
  });
  children.push(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const reader = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const firstLine = new Promise<string>((resolve, reject) => {
    reader.on('line', (line) => {
      lines.push(line);
      if (lines.length === 1) resolve(line);
    });
    void exited.then(() => reject(new Error(`the child exited before a line; stderr:\n${stderr}`)));
  });
  return { child, firstLine, exited };
}

describe('sqliteStore', () => {
  it('keeps what it was told across a close and a reopen, in submission order', () => {
    const store = storeAt();
    expect(store.open()).toEqual({ jobs: [], paused: false, nextSeq: 0 });
    const a = entry('a', 0, { prompt: 'résumé ✓ 学习', nested: [1, 2.5, null, true, { x: 'y' }] });
    const b = entry('b', 1);
    const c = entry('c', 2);
    const d = entry('d', 3);
    // A batch, then one by one: read back in seq order.
    store.accept([a, b]);
    store.accept([c]);
    store.accept([d]);
    store.update('a', { state: 'running', attempt: 1, startedAt: 2_000 });
    store.update('a', {
      state: 'completed',
      attempt: 1,
      startedAt: 2_000,
      endedAt: 3_000,
      output: { loss: 0.25 },
    });
    const failed: StoredStatus = {
      state: 'failed',
      attempt: 3,
      startedAt: 2_100,
      endedAt: 4_000,
      error: { kind: 'error', message: 'CUDA out of memory' },
    };
    store.update('b', failed);
    store.prune(['d']);
    store.setPaused(true);
    store.close();

    const again = storeAt();
    const contents = again.open();
    expect(contents.paused).toBe(true);
    expect(contents.jobs.map((j) => j.job.id)).toEqual(['a', 'b', 'c']);
    expect(contents.jobs).toEqual([
      {
        job: a.job,
        status: { state: 'completed', attempt: 1, startedAt: 2_000, endedAt: 3_000, output: { loss: 0.25 } },
      },
      { job: b.job, status: failed },
      c,
    ]);
    again.setPaused(false);
    again.close();
    expect(storeAt().open().paused).toBe(false);
  });

  it('opens in WAL mode with synchronous NORMAL by default, FULL when asked, and works either way', () => {
    const normal = storeAt('normal.db');
    normal.open();
    expect(sqlitePragmaForTests(normal, 'journal_mode')).toEqual([{ journal_mode: 'wal' }]);
    expect(sqlitePragmaForTests(normal, 'synchronous')).toEqual([{ synchronous: 1 }]);
    expect(sqlitePragmaForTests(normal, 'locking_mode')).toEqual([{ locking_mode: 'exclusive' }]);

    const full = storeAt('full.db', { synchronous: 'full' });
    full.open();
    expect(sqlitePragmaForTests(full, 'synchronous')).toEqual([{ synchronous: 2 }]);
    full.accept([entry('x', 0), entry('y', 1)]);
    full.update('x', {
      state: 'cancelled',
      attempt: 0,
      error: { kind: 'cancelled', message: 'job x cancelled' },
    });
    full.close();
    const reopened = storeAt('full.db', { synchronous: 'full' }).open();
    expect(reopened.jobs.map((j) => [j.job.id, j.status.state])).toEqual([
      ['x', 'cancelled'],
      ['y', 'queued'],
    ]);
  });

  it('accepts a batch all or none: a duplicate id keeps nothing of it, and the store goes on', () => {
    const store = storeAt();
    store.open();
    store.accept([entry('a', 0)]);
    const error = thrown(() => store.accept([entry('b', 1), entry('c', 2), entry('a', 3)]));
    expect(error).toBeInstanceOf(StoreWriteError);
    expect(error).toMatchObject({
      name: 'StoreWriteError',
      operation: 'accept',
      path: nodePath.join(dir, 'state.db'),
    });
    expect((error as Error).message).toContain('a job with id "a" is already stored');
    // A duplicate inside the batch itself, and a lone duplicate.
    expect(() => store.accept([entry('e', 4), entry('e', 5)])).toThrow(StoreWriteError);
    expect(() => store.accept([entry('a', 6)])).toThrow(StoreWriteError);
    // Jobs come in submission order: a seq that does not follow the last one is refused.
    const order = thrown(() => store.accept([entry('f', 0)]));
    expect(order).toMatchObject({ name: 'StoreWriteError', operation: 'accept' });
    expect((order as Error).message).toContain('seq 0 does not follow the last one accepted (0)');
    // Still usable: the batch goes in whole once it is right.
    store.accept([entry('b', 1), entry('c', 2)]);
    const hint = thrown(() => store.accept([entry('a', 7)]));
    expect((hint as Error).message).toContain('accept each job once');
    store.close();
    expect(
      storeAt()
        .open()
        .jobs.map((j) => j.job.id),
    ).toEqual(['a', 'b', 'c']);
  });

  it('refuses an update of a job it does not hold (never accepted, or pruned), and changes nothing', () => {
    const store = storeAt();
    store.open();
    store.accept([entry('a', 0), entry('b', 1)]);
    store.prune(['b']);
    for (const id of ['b', 'never']) {
      const error = thrown(() => store.update(id, { state: 'running', attempt: 1 }));
      expect(error).toBeInstanceOf(StoreWriteError);
      expect(error).toMatchObject({ operation: 'update', reason: `job "${id}" is not in the store` });
    }
    store.close();
    expect(storeAt().open().jobs).toEqual([entry('a', 0)]);
  });

  it('is one scheduler’s at a time: a second opener in this process gets StoreLockedError', () => {
    const first = storeAt();
    first.open();
    first.accept([entry('a', 0)]);
    const second = storeAt();
    const error = thrown(() => second.open());
    expect(error).toBeInstanceOf(StoreLockedError);
    expect((error as Error).message).toContain(nodePath.join(dir, 'state.db'));
    expect((error as Error).cause).toMatchObject({ code: 'SQLITE_BUSY' });
    // A refused open changes nothing, and may be tried again once the holder closes.
    first.close();
    expect(second.open().jobs.map((j) => j.job.id)).toEqual(['a']);
  });

  it('is locked against another process, and the lock goes when its holder is killed (SIGKILL)', async () => {
    const path = nodePath.join(dir, 'state.db');
    const holder = startNode(
      `import { sqliteStore } from ${JSON.stringify(SQLITE_MODULE)};
       const store = sqliteStore(process.argv[2]);
       store.open();
       store.accept([{ job: { id: 'held', seq: 0, spec: { type: 'train' }, submittedAt: 1 }, status: { state: 'queued', attempt: 0 } }]);
       store.update('held', { state: 'running', attempt: 1, startedAt: 2 });
       store.sync();
       process.stdout.write('open\\n');
       process.stdin.resume(); // holds the store until it is killed
      `,
      [path],
    );
    expect(await holder.firstLine).toBe('open');

    // This process cannot have it…
    expect(() => storeAt().open()).toThrow(StoreLockedError);
    // …nor a third one.
    const other = startNode(
      `import { sqliteStore } from ${JSON.stringify(SQLITE_MODULE)};
       try { sqliteStore(process.argv[2]).open(); console.log('opened'); }
       catch (error) { console.log(error.name); }
      `,
      [path],
    );
    expect(await other.firstLine).toBe('StoreLockedError');
    expect((await other.exited).code).toBe(0);

    holder.child.kill('SIGKILL');
    expect(await holder.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // What it committed before it died is there.
    const after = storeAt().open();
    expect(after.jobs).toEqual([
      {
        job: { id: 'held', seq: 0, spec: { type: 'train' }, submittedAt: 1 },
        status: { state: 'running', attempt: 1, startedAt: 2 },
      },
    ]);
  });

  it('under a real scheduler: killed mid-run (SIGKILL), the next scheduler recovers from the file', async () => {
    const path = nodePath.join(dir, 'state.db');
    // A scheduler in another process, on the real clock: one job done, one running for ever, one waiting.
    const first = startNode(
      `import { createScheduler, sqliteStore } from ${JSON.stringify(INDEX_MODULE)};
       const scheduler = createScheduler({
         monitor: false,
         resources: ${JSON.stringify(POOL)},
         store: sqliteStore(process.argv[2]),
         handlers: { work: async ({ payload }) => (payload.hang ? new Promise(() => {}) : { n: payload.n }) },
       });
       const done = scheduler.submit({ type: 'work', id: 'done', payload: { n: 1 } });
       scheduler.submit({ type: 'work', id: 'stuck', payload: { n: 2, hang: true }, resources: { gpu: 1 } });
       scheduler.submit({ type: 'work', id: 'waits', payload: { n: 3 }, resources: { gpu: 1 } });
       await done.result;
       console.log(JSON.stringify(scheduler.list().map((job) => [job.id, job.state])));
       process.stdin.resume();
      `,
      [path],
    );
    expect(JSON.parse(await first.firstLine)).toEqual([
      ['done', 'completed'],
      ['stuck', 'running'],
      ['waits', 'queued'],
    ]);
    first.child.kill('SIGKILL');
    await first.exited;

    const clock = createVirtualClock();
    const calls: string[] = [];
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: POOL,
      store: sqliteStore(path),
      retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } },
      handlers: {
        work: async ({ id, payload }: HandlerContext<{ n: number }>) => {
          calls.push(id);
          return { n: payload.n };
        },
      },
    });
    expect(scheduler.get('done')).toMatchObject({ state: 'completed', attempt: 1 });
    expect(scheduler.get('stuck')).toMatchObject({ attempt: 2, error: { kind: 'interrupted' } });
    await clock.advanceBy(1_000);
    // The completed job is not run again; the interrupted one and the waiting one are.
    expect(calls.sort()).toEqual(['stuck', 'waits']);
    expect(scheduler.list().map((job) => job.state)).toEqual(['completed', 'completed', 'completed']);
    await scheduler.shutdown();

    // Shutdown closed the store (its lock is free), and the file says how each job ended.
    const contents = storeAt().open();
    expect(contents.jobs.map((j) => [j.job.id, j.status.state, j.status.attempt, j.status.output])).toEqual([
      ['done', 'completed', 1, { n: 1 }],
      ['stuck', 'completed', 2, { n: 2 }],
      ['waits', 'completed', 1, { n: 3 }],
    ]);
  });

  it('refuses a store of a newer schema version, naming both versions, and writes nothing to it', () => {
    const path = nodePath.join(dir, 'state.db');
    const store = storeAt();
    store.open();
    store.accept([entry('a', 0)]);
    store.close();
    const raw = new Sqlite(path);
    raw.pragma(`user_version = ${SQLITE_SCHEMA_VERSION + 1}`);
    raw.close();
    const before = snapshotOf(path);

    const error = thrown(() => storeAt().open());
    expect(error).toBeInstanceOf(StoreVersionError);
    expect(error).toMatchObject({ found: SQLITE_SCHEMA_VERSION + 1, supported: SQLITE_SCHEMA_VERSION, path });
    expect((error as Error).message).toContain(`schema version ${SQLITE_SCHEMA_VERSION + 1}`);
    expect((error as Error).message).toContain(`up to ${SQLITE_SCHEMA_VERSION}`);
    expect(snapshotOf(path)).toEqual(before);
  });

  it('upgrades a store of schema 1 (before the numbered log) in place, keeping all it holds', () => {
    const path = nodePath.join(dir, 'state.db');
    const store = storeAt();
    store.open();
    store.accept([entry('a', 0), entry('b', 1)]);
    store.update('a', { state: 'completed', attempt: 1, output: { ok: true } });
    store.close();
    const raw = new Sqlite(path);
    raw.pragma('user_version = 1');
    raw.prepare("DELETE FROM meta WHERE key = 'applied_op'").run();
    raw.close();

    const reopened = storeAt();
    const contents = reopened.open();
    expect(contents.jobs.map((j) => [j.job.id, j.status.state])).toEqual([
      ['a', 'completed'],
      ['b', 'queued'],
    ]);
    reopened.update('b', { state: 'completed', attempt: 1 });
    reopened.close();
    const check = new Sqlite(path, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SQLITE_SCHEMA_VERSION);
    check.close();
    const again = storeAt();
    expect(again.open().jobs.map((j) => [j.job.id, j.status.state])).toEqual([
      ['a', 'completed'],
      ['b', 'completed'],
    ]);
    again.close();
  });

  it('refuses a file that is not SQLite (random bytes), naming the path, and writes nothing to it', () => {
    const path = nodePath.join(dir, 'state.db');
    // Deterministic noise, never SQLite's header.
    let x = 2_463_534_242;
    const bytes = Buffer.alloc(16_384, 0);
    for (let i = 0; i < bytes.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      bytes[i] = x & 0xff;
    }
    writeFileSync(path, bytes);
    const before = snapshotOf(path);

    const error = thrown(() => storeAt().open());
    expect(error).toBeInstanceOf(StoreCorruptError);
    expect(error).toMatchObject({ name: 'StoreCorruptError', path });
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toContain('not a SQLite database');
    expect((error as Error).cause).toMatchObject({ code: 'SQLITE_NOTADB' });
    expect(snapshotOf(path)).toEqual(before);
  });

  it("refuses another program's SQLite database, and a store with tables it did not make", () => {
    const foreignPath = nodePath.join(dir, 'foreign.db');
    const foreign = new Sqlite(foreignPath);
    foreign.exec("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada')");
    foreign.close();
    const before = snapshotOf(foreignPath);
    const error = thrown(() => storeAt('foreign.db').open());
    expect(error).toBeInstanceOf(StoreCorruptError);
    expect((error as Error).message).toContain(foreignPath);
    expect((error as Error).message).toContain('users');
    expect(snapshotOf(foreignPath)).toEqual(before);

    const oursPath = nodePath.join(dir, 'state.db');
    const ours = storeAt();
    ours.open();
    ours.close();
    const raw = new Sqlite(oursPath);
    raw.exec('CREATE TABLE extra (x)');
    raw.close();
    const extra = thrown(() => storeAt().open());
    expect(extra).toBeInstanceOf(StoreCorruptError);
    expect((extra as Error).message).toContain('table extra');
  });

  it('a failed log write (a full disk) throws StoreWriteError, keeps nothing of it, and the store goes on', () => {
    const path = nodePath.join(dir, 'state.db');
    const store = storeAt();
    store.open();
    const hooks = sqliteHooksForTests(store);
    store.accept([entry('a', 0), entry('b', 1)]);
    const before = hooks.logBytes();
    // The disk fills in the middle of the write: half of it lands, then ENOSPC.
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    hooks.logWrite((bytes) => ({ written: Math.floor(bytes / 2), error: full }));
    const error = thrown(() => store.accept([entry('c', 2), entry('d', 3)]));
    expect(error).toBeInstanceOf(StoreWriteError);
    expect(error).toMatchObject({ name: 'StoreWriteError', operation: 'accept', path, cause: full });
    expect((error as Error).message).toContain(path);
    expect((error as Error).message).toContain('free disk space');
    // What part of it was written is gone again: later records follow good ones.
    expect(hooks.logBytes()).toBe(before);
    // Updates wait for sync (a group commit): it fails whole, naming how many it lost.
    store.update('a', { state: 'running', attempt: 1, startedAt: 5 });
    store.update('b', { state: 'running', attempt: 1, startedAt: 6 });
    const sync = thrown(() => store.sync?.());
    expect(sync).toMatchObject({ name: 'StoreWriteError', operation: 'sync', cause: full });
    expect((sync as Error).message).toContain('2 operations not written');
    expect(hooks.logBytes()).toBe(before);

    // Room again: the same writes go through.
    hooks.logWrite(undefined);
    store.accept([entry('c', 2)]);
    store.update('b', { state: 'running', attempt: 1, startedAt: 6 });
    store.sync?.();
    store.close();
    const contents = storeAt().open();
    expect(contents.jobs.map((j) => [j.job.id, j.status.state])).toEqual([
      ['a', 'queued'],
      ['b', 'running'],
      ['c', 'queued'],
    ]);
  });

  it('a database that cannot grow (SQLITE_FULL) loses nothing: the log keeps it until it can, or until the next open', () => {
    const store = storeAt();
    store.open();
    const hooks = sqliteHooksForTests(store);
    store.accept([entry('a', 0)]);
    expect(hooks.applied()).toBe(true);
    // The file may not grow past the pages it has: SQLite answers SQLITE_FULL, as on a full disk.
    const [{ page_count }] = sqlitePragmaForTests(store, 'page_count') as [{ page_count: number }];
    sqlitePragmaForTests(store, `max_page_count = ${page_count}`);
    const big = 'x'.repeat(4_000);
    const batch = Array.from({ length: 40 }, (_, i) => entry(`big-${i}`, 10 + i, big));
    // Acknowledged: it is in the log, whatever the database says.
    store.accept(batch);
    expect(hooks.applied()).toBe(false);
    store.update('a', { state: 'completed', attempt: 1, output: big });
    store.sync?.();
    // Room again: the worker, trying again, gets it all in.
    sqlitePragmaForTests(store, 'max_page_count = 1000000');
    expect(hooks.applied()).toBe(true);
    store.close();
    const first = storeAt().open();
    expect(first.jobs).toHaveLength(41);
    expect(first.jobs[0]?.status).toEqual({ state: 'completed', attempt: 1, output: big });

    // Still full at close: close says so, and the next open applies the log.
    const again = storeAt('again.db');
    again.open();
    again.accept([entry('a', 0)]);
    const [{ page_count: pages }] = sqlitePragmaForTests(again, 'page_count') as [{ page_count: number }];
    sqlitePragmaForTests(again, `max_page_count = ${pages}`);
    again.accept(batch);
    const closing = thrown(() => again.close());
    expect(closing).toMatchObject({ name: 'StoreWriteError', operation: 'close' });
    expect((closing as Error).cause).toMatchObject({ code: 'SQLITE_FULL' });
    const reopened = storeAt('again.db').open();
    expect(reopened.jobs.map((j) => j.job.id)).toEqual(['a', ...batch.map((e) => e.job.id)]);
  });

  it('a replay applies only what the database lacks: a stale log file left behind changes nothing', () => {
    const path = nodePath.join(dir, 'state.db');
    const store = storeAt();
    store.open();
    store.accept([entry('x', 0)]);
    store.update('x', { state: 'running', attempt: 1, startedAt: 5 });
    store.sync?.();
    // The log as it was then: records 1 and 2 (accepted, running).
    const stale = readFileSync(`${path}-oplog-0`);
    store.update('x', { state: 'completed', attempt: 1, startedAt: 5, endedAt: 6, output: 'done' });
    store.close();
    // Left behind by a crash at the wrong moment (or a lost unlink), in either file.
    for (const name of [`${path}-oplog-0`, `${path}-oplog-1`]) {
      writeFileSync(name, stale);
      const contents = storeAt().open();
      expect(contents.jobs.map((j) => [j.job.id, j.status.state])).toEqual([['x', 'completed']]);
      stores.pop()?.close();
    }
  });

  it('a torn tail of the log (a record cut short, zeros) ends it: the store opens with all it acknowledged', async () => {
    const path = nodePath.join(dir, 'state.db');
    // A process that acknowledges writes and dies without closing: they are in its log only.
    const child = startNode(
      `import { sqliteStore } from ${JSON.stringify(SQLITE_MODULE)};
       const store = sqliteStore(process.argv[2]);
       store.open();
       store.accept([{ job: { id: 'a', seq: 0, spec: { type: 'train' }, submittedAt: 1 }, status: { state: 'queued', attempt: 0 } }]);
       store.update('a', { state: 'running', attempt: 1, startedAt: 2 });
       store.sync();
       console.log('written');
       process.exit(0);
      `,
      [path],
    );
    expect(await child.firstLine).toBe('written');
    expect((await child.exited).code).toBe(0);
    const log = readFileSync(`${path}-oplog-0`);
    // A power loss can leave the size of an append that never finished, with zeros (or the start
    // of a record) in it.
    writeFileSync(`${path}-oplog-0`, Buffer.concat([log, Buffer.alloc(64)]));
    writeFileSync(`${path}-oplog-1`, Buffer.concat([log.subarray(0, 32), log.subarray(32, 45)]));
    const contents = storeAt().open();
    expect(contents.jobs).toEqual([
      {
        job: { id: 'a', seq: 0, spec: { type: 'train' }, submittedAt: 1 },
        status: { state: 'running', attempt: 1, startedAt: 2 },
      },
    ]);
  });

  it('counts the batches it hands its worker past 2^31 (an Int32 that wraps) without losing track', () => {
    const store = storeAt();
    store.open();
    const hooks = sqliteHooksForTests(store);
    hooks.batchCount(2 ** 31 - 3);
    const answers: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      store.accept([entry(`w${i}`, i)]);
      // Waits for the worker; a count that lost track would wait its 30 s and say false.
      answers.push(hooks.applied());
    }
    expect(answers).toEqual([true, true, true, true, true, true]);
    store.close();
    expect(storeAt().open().jobs).toHaveLength(6);
  });

  it('close is idempotent; a closed store, or one not yet open, refuses every call with StoreClosedError', () => {
    const unopened = storeAt();
    const early = thrown(() => unopened.accept([entry('a', 0)]));
    expect(early).toBeInstanceOf(StoreClosedError);
    expect(early).toMatchObject({ operation: 'accept', closed: false });
    expect((early as Error).message).toContain('call open()');

    const store = storeAt();
    store.open();
    store.close();
    store.close();
    const calls: Array<[string, () => unknown]> = [
      ['open', () => store.open()],
      ['accept', () => store.accept([entry('a', 0)])],
      ['update', () => store.update('a', { state: 'queued', attempt: 0 })],
      ['prune', () => store.prune(['a'])],
      ['setPaused', () => store.setPaused(true)],
    ];
    for (const [operation, call] of calls) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(StoreClosedError);
      expect(error).toMatchObject({ name: 'StoreClosedError', operation, closed: true });
      expect((error as Error).message).toContain(nodePath.join(dir, 'state.db'));
    }
    // Closing let go of the lock.
    expect(storeAt().open().jobs).toEqual([]);
  });

  it('refuses bad options with InvalidOptionError naming the field, and touches no file', () => {
    const path = nodePath.join(dir, 'state.db');
    expect(thrown(() => sqliteStore(''))).toMatchObject({ name: 'InvalidOptionError', field: 'path' });
    const sync = thrown(() => sqliteStore(path, { synchronous: 'fast' as 'full' }));
    expect(sync).toBeInstanceOf(InvalidOptionError);
    expect(sync).toMatchObject({ field: 'synchronous', allowed: 'one of normal, full' });
    const misspelt = thrown(() => sqliteStore(path, { sync: 'full' } as never));
    expect(misspelt).toMatchObject({ field: 'sync', unknownField: { suggestion: 'synchronous' } });
    expect(existsSync(path)).toBe(false);
  });

  it('a folder that does not exist fails the open with StoreWriteError', () => {
    const error = thrown(() => storeAt('missing/state.db').open());
    expect(error).toBeInstanceOf(StoreWriteError);
    expect(error).toMatchObject({ operation: 'open' });
    expect((error as Error).message).toContain(nodePath.join(dir, 'missing/state.db'));
  });

  it('never loads the native driver on the importing thread: a worker thread loads it when a store opens', async () => {
    const path = nodePath.join(dir, 'state.db');
    const child = startNode(
      `import { createRequire } from 'node:module';
       import { threadId } from 'node:worker_threads';
       const { sqliteStore } = await import(${JSON.stringify(INDEX_MODULE)});
       const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('better-sqlite3'));
       const store = sqliteStore(process.argv[2]);
       const before = loaded();
       store.open();
       store.accept([{ job: { id: 'a', seq: 0, spec: { type: 'train' }, submittedAt: 1 }, status: { state: 'queued', attempt: 0 } }]);
       const after = loaded();
       store.close();
       const reopened = sqliteStore(process.argv[2]);
       const ids = reopened.open().jobs.map((j) => j.job.id);
       reopened.close();
       console.log(JSON.stringify({ before, after, ids, threadId }));
      `,
      [path],
    );
    expect(JSON.parse(await child.firstLine)).toEqual({
      before: false,
      after: false,
      ids: ['a'],
      threadId: 0,
    });
    expect((await child.exited).code).toBe(0);
  });
});
