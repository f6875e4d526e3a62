/**
 * The SQLite side of `sqliteStore`: a worker thread that owns the database connection (and so the
 * store's lock) and applies, in batched transactions, what the scheduler's thread has already made
 * durable in the store's operation log (see sqlite.ts). The scheduler's thread never waits on
 * SQLite in its hot path; it waits only to open, to read a pragma, to cut the log and to close.
 *
 * `sqliteWorkerMain` runs in the worker from its source text (`new Worker(source, { eval: true })`),
 * so that the package needs no second file and survives bundlers: it must use nothing from this
 * module or any other but what it is given — its `require`, and the worker's `workerData`.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type * as WorkerThreads from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type * as Zlib from 'node:zlib';

/** A job row as the worker writes it: id, seq, submitted at, spec JSON, state, status JSON. */
export type WorkerRow = [
  id: string,
  seq: number,
  submittedAt: number,
  spec: string,
  state: string,
  status: string,
];

/** One journaled operation, in the order the scheduler's thread logged it. */
export type WorkerOp =
  | ['A', WorkerRow[]]
  | ['U', id: string, state: string, status: string]
  | ['P', ids: string[]]
  | ['Z', paused: boolean];

/** What the worker is started with. */
export type WorkerData = {
  driverPath: string;
  path: string;
  /** Every job state (JOB_STATES): a stored row with another is damaged. */
  states: readonly string[];
  synchronous: 'normal' | 'full';
  /** Int32 slots: see `SLOT`. */
  shared: SharedArrayBuffer;
  /** Requests and their answers (the scheduler's thread waits for each answer). */
  control: MessagePort;
  /**
   * Batches of log records as written, `{ n, bytes }`, numbered 1, 2, 3, … (wrapping as Int32),
   * applied in order.
   */
  batches: MessagePort;
  /** `drained` notices: every batch so far is applied (the log may be cut). */
  notices: MessagePort;
};

/** The shared Int32 slots: answers given, last batch applied (Int32, wrapping), failed attempts to apply so far. */
export const SLOT = { answers: 0, applied: 1, failures: 2 } as const;

/** A request on the control port. */
export type WorkerRequest =
  | { type: 'open' }
  /** Applies what a crash left in the log files (each file's bytes after its header), then reads the jobs. */
  | { type: 'load'; logs: Uint8Array[] }
  | { type: 'pragma'; text: string }
  | { type: 'close' };

/** What went wrong in the worker, for the scheduler's thread to raise as a typed error. */
export type WorkerFailure =
  | { kind: 'locked'; message: string; code: string }
  | { kind: 'corrupt'; detail: string; message: string; code: string }
  | { kind: 'version'; found: number }
  | { kind: 'write'; message: string; code: string };

/** The answer to a request. */
export type WorkerAnswer =
  | {
      ok: true;
      fresh?: boolean;
      logId?: string;
      /** The number of the last log record applied to the database (`open`, `load`). */
      appliedOp?: number;
      /**
       * The jobs, in seq order, in one buffer (a copy's worth of strings, not an object per row
       * each way): per job seq (f64), submittedAt (f64), then id, spec JSON and status JSON, each
       * its UTF-8 byte length (u32 LE) and bytes.
       */
      jobs?: Uint8Array<ArrayBuffer>;
      paused?: boolean;
      value?: unknown;
    }
  | { ok: false; failure: WorkerFailure };

/**
 * The worker's whole program. Runs from its source text: no references outside its own body, and
 * nothing a bundler compiling for an older target would turn into a helper of its own module (no
 * class fields, no object or array spread).
 * @internal
 */
export function sqliteWorkerMain(req: (id: string) => unknown): void {
  const threads = req('node:worker_threads') as typeof WorkerThreads;
  const data = threads.workerData as WorkerData;
  const slots = new Int32Array(data.shared);
  const ANSWERS = 0;
  const APPLIED = 1;
  const FAILURES = 2;
  /** Schema 2: a log's records are numbered, and `meta.applied_op` is the last one applied. */
  const VERSION = 2;
  const APPLICATION_ID = 0x41694253;
  const TABLES = ['jobs', 'meta'];
  const SCHEMA = `
    CREATE TABLE jobs (
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      submitted_at REAL NOT NULL,
      spec TEXT NOT NULL,
      state TEXT NOT NULL,
      status TEXT NOT NULL
    ) STRICT;
    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT;
    INSERT INTO meta (key, value) VALUES ('paused', 'false');
    PRAGMA application_id = ${APPLICATION_ID};
    PRAGMA user_version = ${VERSION};
  `;

  let db: BetterSqlite3.Database | undefined;
  let statements:
    | {
        insert: BetterSqlite3.Statement;
        update: BetterSqlite3.Statement;
        remove: BetterSqlite3.Statement;
        setMeta: BetterSqlite3.Statement;
      }
    | undefined;
  /** Operations received and not yet applied (kept across a failed attempt); the last batch's number. */
  type Decoded = { ops: WorkerOp[]; lastOp: number };
  let queue: Decoded[] = [];
  let lastN = 0;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const codeOf = (error: unknown): string => {
    const code = (error as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? code : '';
  };
  const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

  /** A refusal carries the failure the scheduler's thread raises as a typed error. */
  type Refusal = Error & { failure: WorkerFailure };
  const refusal = (failure: WorkerFailure): Refusal => Object.assign(new Error('refused'), { failure });
  const isRefusal = (error: unknown): error is Refusal =>
    error instanceof Error && typeof (error as { failure?: unknown }).failure === 'object';
  const corrupt = (detail: string): Refusal =>
    refusal({ kind: 'corrupt', detail, message: detail, code: '' });
  const failureOf = (error: unknown, opening: boolean): WorkerFailure => {
    if (isRefusal(error)) return error.failure;
    const code = codeOf(error);
    const message = messageOf(error);
    if (opening && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')))
      return { kind: 'locked', message, code };
    if (opening && code.startsWith('SQLITE_NOTADB'))
      return { kind: 'corrupt', detail: 'it is not a SQLite database', message, code };
    if (opening && code.startsWith('SQLITE_CORRUPT'))
      return { kind: 'corrupt', detail: `it is damaged (${message})`, message, code };
    return { kind: 'write', message, code };
  };

  type Batch = { n: number; bytes: Uint8Array };
  const STATES = new Set(data.states);

  /**
   * The records in log bytes (see oplog.ts: a frame — payload length u32 LE, CRC-32 u32 LE —
   * around a payload: kind u8, record number f64, operation), each with its number. `replay`
   * (what a crash left in a file): a record cut short, with a wrong checksum, too short to be one
   * (a tail of zeros: a file whose size reached the disk before its data), or that does not
   * decode ends that file — it was never acknowledged. Batches from the scheduler's thread are
   * records it has just written, whole.
   */
  const decode = (input: Uint8Array, replay: boolean): Array<{ n: number; op: WorkerOp }> => {
    const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const crc32 = replay ? (req('node:zlib') as typeof Zlib).crc32 : undefined;
    const records: Array<{ n: number; op: WorkerOp }> = [];
    let at = 0;
    let end = 0;
    const damaged = (): Refusal => corrupt(`record ${records.length + 1} of its operation log is damaged`);
    const need = (n: number): void => {
      if (at + n > end) throw damaged();
    };
    const u32 = (): number => {
      need(4);
      at += 4;
      return bytes.readUInt32LE(at - 4);
    };
    const f64 = (): number => {
      need(8);
      at += 8;
      return bytes.readDoubleLE(at - 8);
    };
    const str = (): string => {
      const n = u32();
      need(n);
      at += n;
      return bytes.toString('utf8', at - n, at);
    };
    const state = (): string => {
      const value = str();
      if (!STATES.has(value)) throw damaged();
      return value;
    };
    let next = 0;
    while (next + 8 <= bytes.length) {
      const length = bytes.readUInt32LE(next);
      at = next + 8;
      end = at + length;
      // A kind and a number at least.
      if (length < 9 || end > bytes.length) break;
      if (crc32 !== undefined && crc32(bytes.subarray(at, end)) !== bytes.readUInt32LE(next + 4)) break;
      try {
        const kind = bytes[at++];
        const n = f64();
        let op: WorkerOp;
        if (kind === 0x41) {
          const rows: WorkerRow[] = [];
          for (let count = u32(); count > 0; count--) {
            const seq = f64();
            const submittedAt = f64();
            rows.push([str(), seq, submittedAt, str(), state(), str()]);
          }
          op = ['A', rows];
        } else if (kind === 0x55) op = ['U', str(), state(), str()];
        else if (kind === 0x50) {
          const ids: string[] = [];
          for (let count = u32(); count > 0; count--) ids.push(str());
          op = ['P', ids];
        } else if (kind === 0x5a) {
          need(1);
          op = ['Z', bytes[at++] === 1];
        } else throw damaged();
        if (at !== end) throw damaged();
        records.push({ n, op });
      } catch (error) {
        if (replay) break;
        throw error;
      }
      next = end;
    }
    return records;
  };

  const receive = (batch: Batch): void => {
    const records = decode(batch.bytes, false);
    const last = records[records.length - 1];
    if (last !== undefined) queue.push({ ops: records.map((r) => r.op), lastOp: last.n });
    lastN = batch.n;
  };

  const answer = (message: WorkerAnswer): void => {
    data.control.postMessage(message);
    Atomics.add(slots, ANSWERS, 1);
    Atomics.notify(slots, ANSWERS);
  };

  /** Runs `body` in one transaction: all of it is kept, or none. */
  const transaction = (body: () => void): void => {
    const d = db as BetterSqlite3.Database;
    d.exec('BEGIN');
    try {
      body();
      d.exec('COMMIT');
    } catch (error) {
      if (d.inTransaction) d.exec('ROLLBACK');
      throw error;
    }
  };

  /**
   * Applies operations in one transaction, with the number of the last record applied (so that
   * a replay skips what is in already, whatever files are left). Within it a job's row is written
   * once: a job accepted and updated goes in with its last status, one updated twice is updated
   * once, one accepted and pruned is not written at all — the same end state as applying them one
   * by one.
   */
  const apply = (decoded: Decoded[]): void => {
    const { insert, update, remove, setMeta } = statements as NonNullable<typeof statements>;
    const last = decoded[decoded.length - 1];
    if (last === undefined) return;
    transaction(() => {
      const rows = new Map<string, WorkerRow>();
      const updates = new Map<string, [string, string]>();
      let paused: boolean | undefined;
      for (const { ops } of decoded)
        for (const op of ops) {
          if (op[0] === 'A') {
            for (const row of op[1]) {
              updates.delete(row[0]);
              rows.delete(row[0]);
              rows.set(row[0], row.slice() as WorkerRow);
            }
          } else if (op[0] === 'U') {
            const row = rows.get(op[1]);
            if (row !== undefined) {
              row[4] = op[2];
              row[5] = op[3];
            } else updates.set(op[1], [op[2], op[3]]);
          } else if (op[0] === 'P') {
            for (const id of op[1]) {
              rows.delete(id);
              updates.delete(id);
              remove.run(id);
            }
          } else paused = op[1];
        }
      for (const [id, seq, submittedAt, spec, state, status] of rows.values())
        insert.run(id, seq, submittedAt, spec, state, status);
      for (const [id, [state, status]] of updates) update.run(state, status, id);
      if (paused !== undefined) setMeta.run('paused', paused ? 'true' : 'false');
      setMeta.run('applied_op', String(last.lastOp));
    });
  };

  const appliedOp = (): number => {
    const value = (db as BetterSqlite3.Database)
      .prepare("SELECT value FROM meta WHERE key = 'applied_op'")
      .pluck()
      .get();
    const n = typeof value === 'string' ? Number(value) : 0;
    return Number.isSafeInteger(n) && n > 0 ? n : 0;
  };

  /** Applies what was received; on a failure keeps it and tries again a little later. */
  const drain = (): void => {
    if (retry !== undefined) {
      clearTimeout(retry);
      retry = undefined;
    }
    if (statements === undefined) return;
    for (;;) {
      const more = threads.receiveMessageOnPort(data.batches) as { message: Batch } | undefined;
      if (more === undefined) break;
      receive(more.message);
    }
    try {
      apply(queue);
    } catch {
      // Kept, and tried again a little later (or when more comes, or on request).
      Atomics.add(slots, FAILURES, 1);
      Atomics.notify(slots, APPLIED);
      retry = setTimeout(drain, 200);
      return;
    }
    queue = [];
    Atomics.store(slots, APPLIED, lastN);
    Atomics.notify(slots, APPLIED);
    data.notices.postMessage('drained');
  };

  data.batches.on('message', (message: Batch) => {
    receive(message);
    drain();
  });

  const open = (): { fresh: boolean; logId: string; appliedOp: number } => {
    let Driver: typeof BetterSqlite3;
    try {
      Driver = req(data.driverPath) as typeof BetterSqlite3;
    } catch (error) {
      throw refusal({
        kind: 'write',
        message:
          `the SQLite driver (better-sqlite3) could not be loaded: ${messageOf(error)}; ` +
          'reinstall ai-batch-scheduler so that its native module is built for this Node version',
        code: codeOf(error),
      });
    }
    // A lock held by another scheduler is an answer, not something to wait for.
    const d = new Driver(data.path, { timeout: 0 });
    db = d;
    // Take the lock (kept until the connection closes), then look before writing anything.
    d.pragma('locking_mode = EXCLUSIVE');
    d.exec('BEGIN EXCLUSIVE');
    let fresh: boolean;
    let version: number;
    try {
      const applicationId = d.pragma('application_id', { simple: true }) as number;
      version = d.pragma('user_version', { simple: true }) as number;
      const objects = d
        .prepare("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
        .all() as Array<{ type: string; name: string }>;
      fresh = applicationId === 0 && version === 0 && objects.length === 0;
      if (!fresh) {
        if (applicationId !== APPLICATION_ID)
          throw corrupt(
            objects.length > 0
              ? `it is another program's SQLite database (tables: ${objects.map((o) => o.name).join(', ')})`
              : "it is another program's SQLite database",
          );
        if (version > VERSION) throw refusal({ kind: 'version', found: version });
        // 1: the same tables, from before the log's records were numbered.
        if (version !== VERSION && version !== 1)
          throw corrupt(`its schema version ${version} is not one this package wrote`);
        const foreign = objects.filter((o) => o.type !== 'index' && !TABLES.includes(o.name));
        const missing = TABLES.filter((t) => !objects.some((o) => o.type === 'table' && o.name === t));
        if (foreign.length > 0 || missing.length > 0)
          throw corrupt(
            foreign.length > 0
              ? `it has ${foreign.map((o) => `${o.type} ${o.name}`).join(', ')}, which a store does not`
              : `its ${missing.join(' and ')} table is missing`,
          );
      }
    } finally {
      if (d.inTransaction) d.exec('ROLLBACK');
    }
    d.pragma('journal_mode = WAL');
    d.pragma(`synchronous = ${data.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    // After a checkpoint the WAL file is cut back to 64 MiB (it would stay at its largest).
    d.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
    if (fresh) transaction(() => d.exec(SCHEMA));
    // Upgraded in place (an older version of this package now refuses it, rather than ignoring its log).
    else if (version !== VERSION) d.pragma(`user_version = ${VERSION}`);
    let logId = d.prepare("SELECT value FROM meta WHERE key = 'log_id'").pluck().get() as string | undefined;
    if (logId === undefined) {
      // Names this store in its operation log's header: a log left by another store is not applied.
      logId = Array.from({ length: 16 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
      d.prepare("INSERT INTO meta (key, value) VALUES ('log_id', ?)").run(logId);
    }
    statements = {
      insert: d.prepare(
        'INSERT OR REPLACE INTO jobs (id, seq, submitted_at, spec, state, status) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      update: d.prepare('UPDATE jobs SET state = ?, status = ? WHERE id = ?'),
      remove: d.prepare('DELETE FROM jobs WHERE id = ?'),
      setMeta: d.prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
    };
    return { fresh, logId, appliedOp: appliedOp() };
  };

  /**
   * What a crash left in the log files, after what the database holds already: the records
   * numbered from `meta.applied_op` + 1 on, in order, up to the first one missing (a later one
   * cannot be applied without it).
   */
  const replay = (logs: Uint8Array[]): Decoded | undefined => {
    let next = appliedOp() + 1;
    const byNumber = new Map<number, WorkerOp>();
    for (const log of logs) for (const { n, op } of decode(log, true)) if (n >= next) byNumber.set(n, op);
    const ops: WorkerOp[] = [];
    for (let op = byNumber.get(next); op !== undefined; op = byNumber.get(next)) {
      ops.push(op);
      next++;
    }
    return ops.length === 0 ? undefined : { ops, lastOp: next - 1 };
  };

  /** The jobs, in seq order, in one buffer (see `WorkerAnswer.jobs`). */
  const readJobs = (): Uint8Array<ArrayBuffer> => {
    const select = (db as BetterSqlite3.Database)
      .prepare('SELECT id, seq, submitted_at, spec, status FROM jobs ORDER BY seq')
      .raw(true);
    let out = Buffer.allocUnsafeSlow(1024 * 1024);
    let used = 0;
    const room = (n: number): void => {
      if (used + n <= out.length) return;
      let size = out.length * 2;
      while (size < used + n) size *= 2;
      const bigger = Buffer.allocUnsafeSlow(size);
      out.copy(bigger, 0, 0, used);
      out = bigger;
    };
    const text = (value: string): void => {
      room(4 + value.length * 3);
      const n = out.write(value, used + 4, 'utf8');
      out.writeUInt32LE(n, used);
      used += 4 + n;
    };
    for (const [id, seq, submittedAt, spec, status] of select.iterate() as IterableIterator<
      [string, number, number, string, string]
    >) {
      room(16);
      out.writeDoubleLE(seq, used);
      out.writeDoubleLE(submittedAt, used + 8);
      used += 16;
      text(id);
      text(spec);
      text(status);
    }
    return new Uint8Array(out.buffer as ArrayBuffer, 0, used);
  };

  /** Closes the database (its lock goes with it); the ports close after the answer. */
  const close = (): void => {
    const d = db;
    db = undefined;
    statements = undefined;
    if (retry !== undefined) clearTimeout(retry);
    d?.close();
  };

  data.control.on('message', (request: WorkerRequest) => {
    if (request.type === 'open') {
      try {
        answer(Object.assign({ ok: true as const }, open()));
      } catch (error) {
        const failure = failureOf(error, true);
        try {
          db?.close();
        } catch {
          // Closing a connection that failed to open.
        }
        db = undefined;
        answer({ ok: false, failure });
      }
    } else if (request.type === 'load') {
      try {
        const left = replay(request.logs);
        if (left !== undefined) apply([left]);
        const paused =
          (db as BetterSqlite3.Database)
            .prepare("SELECT value FROM meta WHERE key = 'paused'")
            .pluck()
            .get() === 'true';
        const jobs = readJobs();
        // Handed over, not copied.
        data.control.postMessage({ ok: true, jobs, paused, appliedOp: appliedOp() } satisfies WorkerAnswer, [
          jobs.buffer,
        ]);
        Atomics.add(slots, ANSWERS, 1);
        Atomics.notify(slots, ANSWERS);
      } catch (error) {
        answer({ ok: false, failure: failureOf(error, false) });
      }
    } else if (request.type === 'pragma') {
      try {
        answer({ ok: true, value: (db as BetterSqlite3.Database).pragma(request.text) });
      } catch (error) {
        answer({ ok: false, failure: failureOf(error, false) });
      }
      // A pragma may have made room (max_page_count): try again at once what could not be applied.
      if (queue.length > 0) drain();
    } else {
      let failure: WorkerFailure | undefined;
      try {
        for (;;) {
          const more = threads.receiveMessageOnPort(data.batches) as { message: Batch } | undefined;
          if (more === undefined) break;
          receive(more.message);
        }
        if (statements !== undefined) apply(queue);
        queue = [];
        Atomics.store(slots, APPLIED, lastN);
      } catch (error) {
        failure = failureOf(error, false);
      }
      try {
        close();
      } catch (error) {
        failure ??= failureOf(error, false);
      }
      answer(failure === undefined ? { ok: true } : { ok: false, failure });
      data.batches.close();
      data.notices.close();
      data.control.close();
    }
  });
}

/** The worker's source text: its program, called with the worker's `require`. */
export function sqliteWorkerSource(): string {
  // Bundlers that keep function names wrap functions in a `__name` helper of their own module.
  return `"use strict";\nconst __name = (f) => f;\n(${sqliteWorkerMain.toString()})(require);\n`;
}
