/**
 * The SQLite adapter of the store port: one file on the local disk, no server
 * (`createScheduler({ store: sqliteStore('state.db') })`).
 *
 * - Every operation is appended to the store's operation log (`<path>-oplog`) before it returns:
 *   one write, no SQLite work on the scheduler's thread. A worker thread owns the database and
 *   applies the log to it in batched transactions (WAL journal); the log is cut once applied,
 *   and whatever a crash left in it is applied when the store opens again.
 * - `synchronous` NORMAL by default: an acknowledged operation survives a crash or a kill of the
 *   process (it is in the operating system's cache), not a power loss or an OS crash. FULL: each
 *   append waits for the disk (fdatasync), and so does each SQLite commit; it survives those too.
 * - One scheduler at a time: the worker takes an exclusive lock on the database when the store
 *   opens and holds it until it closes; the operating system lets it go when the process dies
 *   (even by `kill -9`).
 * - The native driver (better-sqlite3) is loaded by the worker when a store opens, never when
 *   the package is imported: a scheduler without a store never loads it.
 */
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import nodePath from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { InvalidOptionError } from '../core/errors.js';
import { RECORD, RecordWriter } from './oplog.js';
import { checkKeys, isObject } from '../core/job-spec.js';
import { RenewingMap } from '../core/renewing-map.js';
import { JOB_STATES, type JobState } from '../core/types.js';
import {
  StoreClosedError,
  StoreCorruptError,
  StoreLockedError,
  StoreVersionError,
  StoreWriteError,
  type StoreOperation,
} from './errors.js';
import {
  SLOT,
  sqliteWorkerSource,
  type WorkerAnswer,
  type WorkerData,
  type WorkerFailure,
  type WorkerRequest,
} from './sqlite-worker.js';
import type { JobStore, JsonValue, StoreContents, StoredJob, StoredStatus } from './store.js';

/** How a SQLite store is kept. */
export type SqliteStoreOptions = {
  /**
   * How hard each commit waits for the disk. `'normal'`: a committed write survives a crash or a
   * kill of the process, but the last commits may be lost to a power loss or an OS crash (the
   * store itself stays consistent). `'full'`: a committed write survives those too; each commit
   * waits for the disk (fsync), so writes are slower. @default 'normal'
   */
  synchronous?: 'normal' | 'full';
};

/** The newest schema version this package reads and writes (the file's `PRAGMA user_version`). */
export const SQLITE_SCHEMA_VERSION = 2;

/** What to do about a duplicate id or seq (the engine gives each accepted job its own). */
const UNIQUE =
  'a store holds one job per id, and accepts jobs in submission order (rising seqs); accept each job once';

const OPTION_KEYS: ReadonlySet<string> = new Set(['synchronous']);
const SYNCHRONOUS = ['normal', 'full'] as const;

/**
 * The operation log beside the database (`<path>-oplog`): what the scheduler was told is durable
 * is here first, one framed record per operation, so that an operation costs one append (a
 * `write`, and with `synchronous: 'full'` an fdatasync) and never waits on SQLite. A worker
 * thread applies the records to the database in batched transactions; the log is cut back to
 * its header once all of it is applied, and a store opening replays what a crash left in it.
 *
 * Header: 8 bytes `AIBSOPL2`, then the store's 16-character log id (from its `meta` table: a log
 * left beside another store is not applied), then the file's segment number. Records: see
 * oplog.ts (framed, CRC-32, numbered). A torn last record (a crash in the middle of an append,
 * which was never acknowledged) ends the log.
 */
const LOG_MAGIC = 'AIBSOPL2';
/** Magic, log id, segment number (8 hex digits). */
const LOG_HEADER_BYTES = 8 + 16 + 8;
/**
 * The log is two files (`-oplog-0`, `-oplog-1`): when the one written grows past this, writing
 * goes on in the other (cut back to its header — the worker has applied all of it by then, else
 * this waits for it), and the full one is cut once the worker has applied it.
 */
const LOG_LIMIT_BYTES = 16 * 1024 * 1024;
/**
 * While the worker cannot apply the log (its database refuses writes), the log file written now
 * grows; past this, writes are refused (`StoreWriteError`) until it can again.
 */
const LOG_CAP_BYTES = 4 * LOG_LIMIT_BYTES;
/** Bytes of records handed to the worker at once, at the latest (earlier at the next turn of the event loop). */
const BATCH_BYTES = 256 * 1024;
/** How long the scheduler's thread waits for the worker before it says the store is not answering. */
const WORKER_WAIT_MS = 30_000;

type Contents = StoreContents;

/**
 * A store in the SQLite file at `path` (created when it does not exist). Bad options throw an
 * `InvalidOptionError` here; the file is touched only by `open()`.
 *
 * @example
 * ```ts
 * const scheduler = createScheduler({ handlers, store: sqliteStore('state.db') });
 * ```
 */
export function sqliteStore(path: string, options: SqliteStoreOptions = {}): JobStore {
  if (typeof path !== 'string' || path === '' || path.includes('\0'))
    throw new InvalidOptionError('path', path, 'the path of the store file, a non-empty string');
  if (!isObject(options))
    throw new InvalidOptionError('sqliteStore options', options, 'an object such as { synchronous }');
  checkKeys('', options, OPTION_KEYS, (field, value, allowed, unknown) => {
    return new InvalidOptionError(field, value, allowed, unknown);
  });
  const synchronous = options.synchronous ?? 'normal';
  if (!SYNCHRONOUS.includes(synchronous))
    throw new InvalidOptionError('synchronous', options.synchronous, `one of ${SYNCHRONOUS.join(', ')}`);
  const store = new SqliteStore(path, synchronous);
  internals.set(store, store);
  return store;
}

/** The files a SQLite store at `path` may keep: the database, SQLite's WAL and index, the operation log. */
export function sqliteStoreFiles(path: string): string[] {
  return [...['', '-wal', '-shm', '-journal'].map((suffix) => `${path}${suffix}`), ...logPaths(path)];
}

const internals = new WeakMap<JobStore, SqliteStore>();

function internal(store: JobStore): SqliteStore {
  const found = internals.get(store);
  if (found === undefined) throw new Error('not a SQLite store');
  return found;
}

/**
 * Runs a pragma on an open SQLite store's connection (in its worker) after applying everything
 * logged so far. Tests use it (`max_page_count` makes the database look full). Not part of the
 * package's API.
 */
export function sqlitePragmaForTests(store: JobStore, pragma: string): unknown {
  return internal(store).pragma(pragma);
}

/**
 * Test hooks, not part of the package's API: `logWrite` is asked before each append to the
 * operation log and may make it fail as a full disk would, after writing `written` of its bytes;
 * `applied()` waits until the worker has applied every operation logged so far and says whether
 * it could (`false`: it is failing, and keeps trying); `logBytes()` is the log's size now;
 * `batchCount(n)` sets the count of batches handed to the worker.
 */
export function sqliteHooksForTests(store: JobStore): {
  logWrite(fault: ((bytes: number) => { written: number; error: Error } | undefined) | undefined): void;
  applied(): boolean;
  logBytes(): number;
  /** Sets the count of batches handed to the worker (to test its wrapping past 2^31). */
  batchCount(n: number): void;
} {
  const s = internal(store);
  return {
    logWrite: (fault) => (s.fault = fault),
    applied: () => s.waitApplied(),
    logBytes: () => s.logSize,
    batchCount: (n) => s.setBatchCount(n),
  };
}

class SqliteStore implements JobStore {
  private worker: Worker | undefined;
  private control: MessagePort | undefined;
  private batches: MessagePort | undefined;
  private notices: MessagePort | undefined;
  private slots: Int32Array | undefined;
  private closed = false;
  /** The log file written now, and the other (full, or empty: `lastBatch` 0). */
  private log: LogFile | undefined;
  private other: LogFile | undefined;
  /** Bytes of the log file written now known good: appends go here; a failed append is cut back to it. */
  get logSize(): number {
    return this.log?.size ?? 0;
  }
  /** The log could not be cut back after a failed append: the next append tries again first. */
  private torn = false;
  /** The log is cut when it passes this (raised while the worker cannot apply). */
  private limit = LOG_LIMIT_BYTES;
  /** Batches handed to the worker so far (an Int32 that wraps, as the worker's count does). */
  private posted = 0;
  /** The number of the next log record, and of the first not yet written. */
  private nextOp = 1;
  private syncedOp = 1;
  /** The worker thread stopped (it failed): nothing more can be applied. */
  private dead = false;
  private flushing: ReturnType<typeof setImmediate> | undefined;
  /**
   * The id of every job the store holds (a duplicate or an unknown id is refused before logging;
   * a Map that starts over, as the engine's churned maps do), and the highest seq accepted.
   */
  private ids = new RenewingMap<string, true>(1_024);
  private lastSeq = -1;
  fault: ((bytes: number) => { written: number; error: Error } | undefined) | undefined;

  constructor(
    private readonly path: string,
    private readonly synchronous: 'normal' | 'full',
  ) {}

  open(): Contents {
    if (this.closed) throw new StoreClosedError(this.path, 'open', true);
    if (this.worker !== undefined) {
      this.flush('open');
      if (!this.waitApplied())
        throw new StoreWriteError(
          this.path,
          'open',
          'its SQLite worker cannot apply the log now (see the earlier write errors)',
        );
      return { ...this.load([]), nextSeq: this.lastSeq + 1 };
    }
    this.start();
    try {
      const opened = this.request({ type: 'open' }, 'open');
      const logId = opened.logId as string;
      const contents = this.load(this.readLog(logId));
      this.startLog(logId);
      for (const { job } of contents.jobs) {
        this.ids.set(job.id, true);
        if (job.seq > this.lastSeq) this.lastSeq = job.seq;
      }
      return { ...contents, nextSeq: this.lastSeq + 1 };
    } catch (error) {
      this.stop();
      throw error;
    }
  }

  accept(jobs: ReadonlyArray<{ job: StoredJob; status: StoredStatus }>): void {
    this.using('accept');
    if (jobs.length === 0) return;
    // Within a batch too (a lone job needs no set).
    const seen = jobs.length > 1 ? new Set<string>() : undefined;
    let seq = this.lastSeq;
    for (const { job } of jobs) {
      if (this.ids.has(job.id) || seen?.has(job.id))
        throw new StoreWriteError(
          this.path,
          'accept',
          `a job with id ${JSON.stringify(job.id)} is already stored`,
          {
            hint: UNIQUE,
          },
        );
      if (!Number.isSafeInteger(job.seq) || job.seq <= seq)
        throw new StoreWriteError(
          this.path,
          'accept',
          `job ${JSON.stringify(job.id)}'s seq ${job.seq} does not follow the last one accepted (${seq})`,
          { hint: UNIQUE },
        );
      seen?.add(job.id);
      seq = job.seq;
    }
    const out = this.out;
    out.begin(RECORD.accept, this.nextOp++);
    try {
      out.u32(jobs.length);
      for (const { job, status } of jobs) {
        out.f64(job.seq);
        out.f64(job.submittedAt);
        out.str(job.id);
        out.str(JSON.stringify(job.spec));
        out.str(status.state);
        out.str(JSON.stringify(status));
      }
    } catch (error) {
      out.abandon();
      this.nextOp--;
      throw new StoreWriteError(this.path, 'accept', messageOf(error), { cause: error });
    }
    out.end();
    // With whatever is unsynced before it, in one write.
    this.flush('accept');
    for (const { job } of jobs) this.ids.set(job.id, true);
    this.lastSeq = seq;
  }

  update(id: string, status: StoredStatus): void {
    this.using('update');
    // Nothing is written for a job the store does not hold (never accepted, or pruned).
    if (!this.ids.has(id))
      throw new StoreWriteError(this.path, 'update', `job ${JSON.stringify(id)} is not in the store`, {
        hint: 'a store is told only of jobs it accepted and has not pruned',
      });
    const out = this.out;
    const text = JSON.stringify(status);
    out.begin(RECORD.update, this.nextOp++);
    out.str(id);
    out.str(status.state);
    out.str(text);
    out.end();
  }

  prune(ids: readonly string[]): void {
    this.using('prune');
    if (ids.length === 0) return;
    const out = this.out;
    out.begin(RECORD.prune, this.nextOp++);
    out.u32(ids.length);
    for (const id of ids) out.str(id);
    out.end();
    // Gone from here at once (a pruning lost to a failed write leaves a finished job in the
    // store); an id it does not hold costs the worker nothing (a delete of no row).
    for (const id of ids) this.ids.delete(id);
  }

  setPaused(paused: boolean): void {
    this.using('setPaused');
    this.out.begin(RECORD.paused, this.nextOp++);
    this.out.u8(paused ? 1 : 0);
    this.out.end();
  }

  sync(): void {
    this.using('sync');
    this.flush('sync');
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.worker === undefined) return;
    let failure: unknown;
    try {
      this.flush('close');
    } catch (error) {
      failure = error;
    }
    try {
      // All of it in the database: the log goes while the lock is still held (a scheduler that
      // takes the store once it is let go makes log files of its own, not to be removed).
      const applied = failure === undefined && this.waitApplied();
      this.closeLog(applied);
      this.request({ type: 'close' }, 'close');
    } catch (error) {
      failure ??= error;
      this.closeLog(false);
    }
    this.stop();
    if (failure !== undefined) throw failure;
  }

  setBatchCount(n: number): void {
    this.post();
    this.posted = n | 0;
  }

  /** A pragma's answer, after everything logged so far is applied. */
  pragma(text: string): unknown {
    this.using('open');
    this.post();
    this.waitApplied();
    return this.request({ type: 'pragma', text }, 'open').value;
  }

  /**
   * Waits until the worker has applied every operation logged so far (handing it what is still
   * here); `false` when it tried and could not (its writes fail — it keeps trying, every 200 ms)
   * or does not answer.
   */
  waitApplied(): boolean {
    const slots = this.slots;
    if (slots === undefined || this.dead) return false;
    this.post();
    const failures = Atomics.load(slots, SLOT.failures);
    const deadline = Date.now() + WORKER_WAIT_MS;
    for (;;) {
      const applied = Atomics.load(slots, SLOT.applied);
      if (applied === this.posted) return true;
      // It tried (again) since this call began, and could not.
      if (Atomics.load(slots, SLOT.failures) !== failures) return false;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      Atomics.wait(slots, SLOT.applied, applied, Math.min(left, 1_000));
    }
  }

  /** Throws `StoreClosedError` unless the store is open. */
  private using(operation: StoreOperation): void {
    if (this.log === undefined) throw new StoreClosedError(this.path, operation, this.closed);
  }

  /** Records not yet written (the next `flush` writes them), and those written but not yet handed to the worker. */
  private readonly out = new RecordWriter();
  private readonly written = new RecordWriter();

  /**
   * Appends what is buffered to the log in one write: when this returns it is durable (as
   * `synchronous` promises). On a failure none of it is kept: what part was written is cut off
   * (later records must follow good ones), and the error names how many operations were lost.
   */
  private flush(operation: StoreOperation): void {
    const out = this.out;
    if (out.used === 0) return;
    const log = this.log as LogFile;
    const fd = log.fd;
    const { bytes, used: length, records } = out;
    let written = 0;
    try {
      if (log.size > LOG_CAP_BYTES)
        throw new Error(
          `its database has taken no writes for ${Math.round(log.size / 1024 / 1024)} MiB of operation log ` +
            '(its disk is full, or its worker failed)',
        );
      if (this.torn) {
        ftruncateSync(fd, log.size);
        this.torn = false;
      }
      const fault = this.fault?.(length);
      const end = fault === undefined ? length : Math.min(fault.written, length);
      while (written < end) written += writeSync(fd, bytes, written, end - written, log.size + written);
      if (fault !== undefined) throw fault.error;
      if (this.synchronous === 'full') fdatasyncSync(fd);
    } catch (error) {
      out.reset();
      // Their numbers are given again: the log's records stay consecutive.
      this.nextOp = this.syncedOp;
      if (written > 0) {
        try {
          ftruncateSync(fd, log.size);
        } catch {
          this.torn = true;
        }
      }
      const lost = operation === 'accept' ? records - 1 : records;
      const also = lost > 0 && operation === 'accept' ? ` (and ${lost} earlier unsynced operations)` : '';
      const what = operation === 'sync' || operation === 'close' ? `${lost} operations not written: ` : '';
      throw new StoreWriteError(this.path, operation, `${what}${messageOf(error)}${also}`, { cause: error });
    }
    log.size += length;
    this.syncedOp = this.nextOp;
    this.written.append(out);
    out.reset();
    this.queue();
    if (log.size > this.limit) this.rotate();
  }

  /** Hands written records to the worker (at once past `BATCH_BYTES`, else at the next turn). */
  private queue(): void {
    if (this.written.used >= BATCH_BYTES) this.post();
    else if (this.flushing === undefined) {
      this.flushing = setImmediate(() => {
        this.flushing = undefined;
        this.post();
      });
      this.flushing.unref();
    }
  }

  private post(): void {
    if (this.written.used === 0 || this.batches === undefined) return;
    const bytes = this.written.copy();
    this.written.reset();
    this.posted = (this.posted + 1) | 0;
    this.batches.postMessage({ n: this.posted, bytes }, [bytes.buffer]);
  }

  /**
   * The log file written now passed its limit: writing goes on in the other one, once the worker
   * has applied that one (it has, unless it is a whole file behind: then this waits for it).
   */
  private rotate(): void {
    const log = this.log as LogFile;
    const other = this.other as LogFile;
    this.post();
    if (other.lastBatch !== undefined && !this.appliedThrough(other.lastBatch)) {
      // The worker cannot write now: this file goes on growing, and turns when it can again.
      this.limit = log.size + LOG_LIMIT_BYTES;
      return;
    }
    try {
      other.reset(log.segment + 1, this.synchronous);
    } catch {
      this.limit = log.size + LOG_LIMIT_BYTES;
      return;
    }
    log.lastBatch = this.posted;
    this.log = other;
    this.other = log;
    this.limit = LOG_LIMIT_BYTES;
  }

  /** Whether the worker has applied batch `n` (waiting for it if not yet). */
  private appliedThrough(n: number): boolean {
    const slots = this.slots;
    if (slots === undefined) return false;
    if (reached(Atomics.load(slots, SLOT.applied), n)) return true;
    return this.waitApplied() || reached(Atomics.load(slots, SLOT.applied), n);
  }

  /** The worker's notice that it applied every batch so far: applied log files are cut back. */
  private drained(): void {
    const slots = this.slots;
    const other = this.other;
    if (slots === undefined || other === undefined) return;
    const applied = Atomics.load(slots, SLOT.applied);
    if (other.lastBatch !== undefined && reached(applied, other.lastBatch)) other.cut();
    if (this.written.used === 0 && this.out.used === 0 && applied === this.posted) this.log?.cut();
  }

  /** Starts the worker thread that owns the database. */
  private start(): void {
    const driverPath = resolveDriver();
    const shared = new SharedArrayBuffer(4 * 4);
    const control = new MessageChannel();
    const batches = new MessageChannel();
    const notices = new MessageChannel();
    const workerData: WorkerData = {
      driverPath,
      path: this.path,
      states: JOB_STATES,
      synchronous: this.synchronous,
      shared,
      control: control.port2,
      batches: batches.port2,
      notices: notices.port2,
    };
    this.worker = new Worker(sqliteWorkerSource(), {
      eval: true,
      workerData,
      transferList: [control.port2, batches.port2, notices.port2],
    });
    this.worker.unref();
    // A worker that fails (out of memory, a crash of its own) applies nothing more: waits end.
    const died = (): void => {
      this.dead = true;
    };
    this.worker.on('error', died);
    this.worker.on('exit', died);
    this.slots = new Int32Array(shared);
    this.control = control.port1;
    this.batches = batches.port1;
    this.notices = notices.port1;
    this.notices.on('message', () => this.drained());
    this.notices.unref();
  }

  /** Lets the worker go (it has closed the database, or never opened it). */
  private stop(): void {
    if (this.flushing !== undefined) clearImmediate(this.flushing);
    this.flushing = undefined;
    this.control?.close();
    this.batches?.close();
    this.notices?.close();
    void this.worker?.terminate();
    this.worker = undefined;
    this.control = undefined;
    this.batches = undefined;
    this.notices = undefined;
    this.slots = undefined;
    this.written.reset();
    this.out.reset();
  }

  /** Asks the worker and waits for its answer; a refusal becomes the typed error it stands for. */
  private request(request: WorkerRequest, operation: StoreOperation): Extract<WorkerAnswer, { ok: true }> {
    const slots = this.slots as Int32Array;
    const port = this.control as MessagePort;
    if (this.dead) throw new StoreWriteError(this.path, operation, 'its SQLite worker thread has stopped');
    const seen = Atomics.load(slots, SLOT.answers);
    port.postMessage(request);
    const deadline = Date.now() + WORKER_WAIT_MS;
    for (;;) {
      const got = receiveMessageOnPort(port) as { message: WorkerAnswer } | undefined;
      if (got !== undefined) {
        if (got.message.ok) return got.message;
        throw this.failure(got.message.failure, operation);
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new StoreWriteError(
          this.path,
          operation,
          `its SQLite worker did not answer in ${WORKER_WAIT_MS / 1_000} s`,
        );
      Atomics.wait(slots, SLOT.answers, seen, Math.min(left, 1_000));
    }
  }

  private failure(failure: WorkerFailure, operation: StoreOperation): Error {
    if (failure.kind === 'version')
      return new StoreVersionError(this.path, failure.found, SQLITE_SCHEMA_VERSION);
    const cause = Object.assign(new Error(failure.message), { code: failure.code });
    if (failure.kind === 'locked') return new StoreLockedError(this.path, { cause });
    if (failure.kind === 'corrupt')
      return new StoreCorruptError(this.path, failure.detail, failure.code === '' ? undefined : { cause });
    return new StoreWriteError(this.path, operation, failure.message, { cause });
  }

  /** Applies what a crash left in the log, and reads what the store holds. */
  private load(logs: Buffer[]): Contents {
    const answer = this.request({ type: 'load', logs }, 'open');
    this.nextOp = (answer.appliedOp ?? 0) + 1;
    this.syncedOp = this.nextOp;
    const jobs: Contents['jobs'] = [];
    const got = answer.jobs;
    const bytes =
      got === undefined ? Buffer.alloc(0) : Buffer.from(got.buffer, got.byteOffset, got.byteLength);
    let at = 0;
    const text = (): string => {
      const n = bytes.readUInt32LE(at);
      at += 4 + n;
      return bytes.toString('utf8', at - n, at);
    };
    while (at < bytes.length) {
      const seq = bytes.readDoubleLE(at);
      const submittedAt = bytes.readDoubleLE(at + 8);
      at += 16;
      const id = text();
      const spec = parseJson(text());
      const status = parseJson(text()) as Partial<StoredStatus> | undefined;
      if (!isObject(spec))
        throw new StoreCorruptError(this.path, `job ${JSON.stringify(id)} has a damaged spec`);
      if (!isObject(status) || !isState(status.state) || typeof status.attempt !== 'number')
        throw new StoreCorruptError(this.path, `job ${JSON.stringify(id)} has a damaged status`);
      jobs.push({
        job: { id, seq, spec: spec as { [key: string]: JsonValue }, submittedAt },
        status: status as StoredStatus,
      });
    }
    return { jobs, paused: answer.paused === true };
  }

  /**
   * The records a crash left in this store's log files, each file's on its own (none when there
   * are none, or they are another store's). Their records are numbered: the worker applies those
   * the database lacks, in order, whatever files are left.
   */
  private readLog(logId: string): Buffer[] {
    const found: Buffer[] = [];
    for (const path of logPaths(this.path)) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch (error) {
        if (codeOf(error) === 'ENOENT') continue;
        throw new StoreWriteError(this.path, 'open', `its operation log ${path}: ${messageOf(error)}`, {
          cause: error,
        });
      }
      if (
        bytes.length >= LOG_HEADER_BYTES &&
        bytes.toString('latin1', 0, LOG_MAGIC.length + 16) === LOG_MAGIC + logId
      )
        found.push(bytes.subarray(LOG_HEADER_BYTES));
    }
    return found;
  }

  /** Fresh log files for this store (what the old ones held is applied now). */
  private startLog(logId: string): void {
    const [first, second] = logPaths(this.path) as [string, string];
    let opened: LogFile[] = [];
    try {
      opened = [
        LogFile.create(first, logId, 0, this.synchronous),
        LogFile.create(second, logId, 0, this.synchronous),
      ];
      if (this.synchronous === 'full') fsyncFolder(this.path);
    } catch (error) {
      for (const log of opened) log.close(false);
      throw new StoreWriteError(this.path, 'open', `its operation log: ${messageOf(error)}`, {
        cause: error,
      });
    }
    this.log = opened[0];
    this.other = opened[1];
  }

  /** Closes the log files; `applied`: everything in them is in the database, so they go. */
  private closeLog(applied: boolean): void {
    this.log?.close(applied);
    this.other?.close(applied);
    this.log = undefined;
    this.other = undefined;
  }
}

/** Whether batch count `applied` has reached `n` (Int32 counts that wrap: compared by their difference). */
function reached(applied: number, n: number): boolean {
  return ((applied - n) | 0) >= 0;
}

/** The two files of a store's operation log. */
function logPaths(path: string): string[] {
  return [`${path}-oplog-0`, `${path}-oplog-1`];
}

/** A store's folder, synced: a file just made in it survives a power loss. */
function fsyncFolder(path: string): void {
  const fd = openSync(nodePath.dirname(path), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** One file of the operation log: its header, then records. */
class LogFile {
  /** The last batch handed to the worker with records of this file (none since it was cut). */
  lastBatch: number | undefined;

  private constructor(
    readonly path: string,
    readonly fd: number,
    private readonly header: string,
    public segment: number,
    public size: number,
  ) {}

  static create(path: string, logId: string, segment: number, synchronous: 'normal' | 'full'): LogFile {
    const fd = openSync(path, 'w');
    const log = new LogFile(path, fd, LOG_MAGIC + logId, segment, 0);
    try {
      log.reset(segment, synchronous);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    return log;
  }

  /** Empties the file and starts it again as segment `segment`. */
  reset(segment: number, synchronous: 'normal' | 'full'): void {
    const header = Buffer.from(this.header + segment.toString(16).padStart(8, '0'), 'latin1');
    ftruncateSync(this.fd, 0);
    writeSync(this.fd, header, 0, header.length, 0);
    if (synchronous === 'full') fdatasyncSync(this.fd);
    this.segment = segment;
    this.size = header.length;
    this.lastBatch = undefined;
  }

  /** Cuts it back to its header: all of it is applied. */
  cut(): void {
    if (this.size <= LOG_HEADER_BYTES) return;
    try {
      ftruncateSync(this.fd, LOG_HEADER_BYTES);
      this.size = LOG_HEADER_BYTES;
      this.lastBatch = undefined;
    } catch {
      // Left as it is: applying it again changes nothing.
    }
  }

  close(remove: boolean): void {
    try {
      closeSync(this.fd);
      if (remove) rmSync(this.path, { force: true });
    } catch {
      // Left behind: applying it again on the next open changes nothing.
    }
  }
}

const STATES: ReadonlySet<string> = new Set(JOB_STATES);
const isState = (value: unknown): value is JobState => typeof value === 'string' && STATES.has(value);

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let driverPath: string | undefined;

/** Where better-sqlite3 is (the worker loads it when a store opens; this thread never does). */
function resolveDriver(): string {
  if (driverPath === undefined) {
    try {
      driverPath = createRequire(import.meta.url).resolve('better-sqlite3');
    } catch (error) {
      throw new Error(
        `the SQLite driver (better-sqlite3) could not be found: ${messageOf(error)}; ` +
          'reinstall ai-batch-scheduler so that its native module is built for this Node version',
        { cause: error },
      );
    }
  }
  return driverPath;
}
