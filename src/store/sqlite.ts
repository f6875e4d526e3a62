/**
 * The SQLite adapter of the store port: one file on the local disk, no server
 * (`createScheduler({ store: sqliteStore('state.db') })`).
 *
 * - WAL journal; `synchronous` NORMAL by default (a committed write survives a crash of the
 *   process, not a power loss or an OS crash), FULL on request (it survives those too: each
 *   commit waits for the disk).
 * - One scheduler at a time: the store takes an exclusive lock on the file when it opens and
 *   holds it until it closes; the operating system lets it go when the process dies (even by
 *   `kill -9`), and the next opener replays what was committed.
 * - The native driver (better-sqlite3) is loaded when a store opens, not when the package is
 *   imported: a scheduler without a store never loads it.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';
import { InvalidOptionError } from '../core/errors.js';
import { checkKeys, isObject } from '../core/job-spec.js';
import { JOB_STATES, type JobState } from '../core/types.js';
import {
  StoreClosedError,
  StoreCorruptError,
  StoreLockedError,
  StoreVersionError,
  StoreWriteError,
  type StoreOperation,
} from './errors.js';
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
export const SQLITE_SCHEMA_VERSION = 1;

/** Marks a file as this package's store (`PRAGMA application_id`; "AiBS"). */
const APPLICATION_ID = 0x41694253;

/**
 * `jobs`: one row per job kept, its spec and its last status as JSON (`state` repeats the
 * status's state for whoever reads the file with sqlite3). `seq` is the row id — rows are kept in
 * submission order, and a write touches the table and the index of ids only. `meta`: `paused`.
 */
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
  PRAGMA user_version = ${SQLITE_SCHEMA_VERSION};
`;

/** The tables a store of this schema has, and nothing else (views and triggers neither). */
const TABLES = ['jobs', 'meta'];

/** After a checkpoint the WAL file is cut back to this size (it would stay at its largest). */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;

/** What to do about a duplicate id or seq (the engine gives each accepted job its own). */
const UNIQUE = 'a store holds one job per id and per seq; accept each job once';

const OPTION_KEYS: ReadonlySet<string> = new Set(['synchronous']);
const SYNCHRONOUS = ['normal', 'full'] as const;

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement;
type Row = [id: string, seq: number, submittedAt: number, spec: string, status: string];

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
  connections.set(store, () => store.connection());
  return store;
}

const connections = new WeakMap<JobStore, () => Database | undefined>();

/**
 * Runs a pragma on an open SQLite store's connection (tests use it to make the disk look full:
 * `max_page_count`). Not part of the package's API.
 */
export function sqlitePragmaForTests(store: JobStore, pragma: string): unknown {
  const db = connections.get(store)?.();
  if (db === undefined) throw new Error('not an open SQLite store');
  return db.pragma(pragma);
}

type Prepared = {
  insert: Statement;
  update: Statement;
  remove: Statement;
  setMeta: Statement;
};

class SqliteStore implements JobStore {
  private db: Database | undefined;
  private statements: Prepared | undefined;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly synchronous: 'normal' | 'full',
  ) {}

  connection(): Database | undefined {
    return this.db;
  }

  open(): StoreContents {
    if (this.closed) throw new StoreClosedError(this.path, 'open', true);
    if (this.db !== undefined) return this.read(this.db);
    const db = this.connect();
    try {
      // Take the lock, then look at the file before anything is written to it.
      const contents = this.check(db);
      this.prepare(db, contents === undefined);
      this.db = db;
      return contents ?? { jobs: [], paused: false };
    } catch (error) {
      db.close();
      throw error;
    }
  }

  accept(jobs: ReadonlyArray<{ job: StoredJob; status: StoredStatus }>): void {
    const { insert } = this.using('accept');
    let at = 0;
    const insertAll = (): void => {
      for (; at < jobs.length; at++) {
        const { job, status } = jobs[at] as { job: StoredJob; status: StoredStatus };
        insert.run(
          job.id,
          job.seq,
          job.submittedAt,
          JSON.stringify(job.spec),
          status.state,
          JSON.stringify(status),
        );
      }
    };
    try {
      // One statement commits on its own; a batch is one transaction.
      if (jobs.length === 1) insertAll();
      else if (jobs.length > 1) this.transaction(insertAll);
    } catch (error) {
      const id = jobs[at]?.job.id;
      const code = codeOf(error);
      if (id !== undefined && code === 'SQLITE_CONSTRAINT_UNIQUE')
        throw this.writeError(
          'accept',
          error,
          `a job with id ${JSON.stringify(id)} is already stored`,
          UNIQUE,
        );
      if (id !== undefined && code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
        throw this.writeError(
          'accept',
          error,
          `job ${JSON.stringify(id)}'s seq is another stored job's`,
          UNIQUE,
        );
      throw this.writeError('accept', error, id === undefined ? '' : `at job ${JSON.stringify(id)}`);
    }
  }

  update(id: string, status: StoredStatus): void {
    const { update } = this.using('update');
    let changes: number;
    try {
      changes = update.run(status.state, JSON.stringify(status), id).changes;
    } catch (error) {
      throw this.writeError('update', error, `job ${JSON.stringify(id)}`);
    }
    // Nothing was written: the store does not hold it (never accepted, or pruned).
    if (changes === 0)
      throw new StoreWriteError(this.path, 'update', `job ${JSON.stringify(id)} is not in the store`, {
        hint: 'a store is told only of jobs it accepted and has not pruned',
      });
  }

  prune(ids: readonly string[]): void {
    const { remove } = this.using('prune');
    if (ids.length === 0) return;
    try {
      this.transaction(() => {
        for (const id of ids) remove.run(id);
      });
    } catch (error) {
      throw this.writeError('prune', error);
    }
  }

  setPaused(paused: boolean): void {
    const { setMeta } = this.using('setPaused');
    try {
      setMeta.run('paused', paused ? 'true' : 'false');
    } catch (error) {
      throw this.writeError('setPaused', error);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const db = this.db;
    this.db = undefined;
    this.statements = undefined;
    if (db === undefined) return;
    try {
      db.close();
    } catch (error) {
      throw this.writeError('close', error);
    }
  }

  /** The prepared statements of an open store, or a `StoreClosedError`. */
  private using(operation: StoreOperation): Prepared {
    if (this.statements === undefined) throw new StoreClosedError(this.path, operation, this.closed);
    return this.statements;
  }

  /** Runs `body` in one transaction: all of it is kept, or (it threw) none. */
  private transaction(body: () => void): void {
    const db = this.db as Database;
    db.exec('BEGIN');
    try {
      body();
      db.exec('COMMIT');
    } catch (error) {
      // SQLite may have rolled back already (a full disk does); what is left goes now.
      if (db.inTransaction) db.exec('ROLLBACK');
      throw error;
    }
  }

  /** A failed write as a `StoreWriteError` (`about`: what it was writing), its transaction rolled back. */
  private writeError(operation: StoreOperation, error: unknown, about = '', hint?: string): StoreWriteError {
    const db = this.db;
    if (db?.inTransaction) {
      try {
        db.exec('ROLLBACK');
      } catch {
        // Rolled back already.
      }
    }
    const reason = about === '' ? messageOf(error) : `${about}: ${messageOf(error)}`;
    return new StoreWriteError(
      this.path,
      operation,
      reason,
      hint === undefined ? { cause: error } : { cause: error, hint },
    );
  }

  /** A connection to the file (created empty when it does not exist), or a typed error. */
  private connect(): Database {
    const Driver = loadDriver();
    try {
      // A lock held by another scheduler is an answer, not something to wait for.
      return new Driver(this.path, { timeout: 0 });
    } catch (error) {
      throw new StoreWriteError(this.path, 'open', messageOf(error), { cause: error });
    }
  }

  /**
   * Takes the file's exclusive lock (kept until the connection closes: `locking_mode=EXCLUSIVE`)
   * and reads it: what an existing store holds, `undefined` for a new (empty) file, or a typed
   * error for a file that is not a store. Nothing is written here.
   */
  private check(db: Database): StoreContents | undefined {
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (error) {
      throw this.openError(error);
    }
    try {
      const applicationId = db.pragma('application_id', { simple: true }) as number;
      const version = db.pragma('user_version', { simple: true }) as number;
      const objects = db
        .prepare("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
        .all() as Array<{ type: string; name: string }>;
      if (applicationId === 0 && version === 0 && objects.length === 0) return undefined;
      if (applicationId !== APPLICATION_ID)
        throw new StoreCorruptError(
          this.path,
          objects.length > 0
            ? `it is another program's SQLite database (tables: ${objects.map((o) => o.name).join(', ')})`
            : "it is another program's SQLite database",
        );
      if (version > SQLITE_SCHEMA_VERSION)
        throw new StoreVersionError(this.path, version, SQLITE_SCHEMA_VERSION);
      if (version !== SQLITE_SCHEMA_VERSION)
        throw new StoreCorruptError(this.path, `its schema version ${version} is not one this package wrote`);
      const foreign = objects.filter((o) => o.type !== 'index' && !TABLES.includes(o.name));
      const missing = TABLES.filter((t) => !objects.some((o) => o.type === 'table' && o.name === t));
      if (foreign.length > 0 || missing.length > 0)
        throw new StoreCorruptError(
          this.path,
          foreign.length > 0
            ? `it has ${foreign.map((o) => `${o.type} ${o.name}`).join(', ')}, which a store does not`
            : `its ${missing.join(' and ')} table is missing`,
        );
      return this.read(db);
    } catch (error) {
      throw this.openError(error);
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
    }
  }

  /** Switches a new file to WAL and makes its tables; sets how commits wait; prepares the statements. */
  private prepare(db: Database, fresh: boolean): void {
    try {
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      if (fresh) db.transaction(() => db.exec(SCHEMA))();
      this.statements = {
        insert: db.prepare(
          'INSERT INTO jobs (id, seq, submitted_at, spec, state, status) VALUES (?, ?, ?, ?, ?, ?)',
        ),
        update: db.prepare('UPDATE jobs SET state = ?, status = ? WHERE id = ?'),
        remove: db.prepare('DELETE FROM jobs WHERE id = ?'),
        setMeta: db.prepare(
          'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
        ),
      };
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw this.openError(error);
    }
  }

  /** Every job in submission order, and whether the scheduler was paused. */
  private read(db: Database): StoreContents {
    // Row by row: each row's text is garbage at once (all rows at once would outlive a young GC).
    const rows = db
      .prepare('SELECT id, seq, submitted_at, spec, status FROM jobs ORDER BY seq')
      .raw(true)
      .iterate() as IterableIterator<Row>;
    const jobs: StoreContents['jobs'] = [];
    for (const [id, seq, submittedAt, specText, statusText] of rows) {
      const spec = parseJson(specText);
      const status = parseJson(statusText) as Partial<StoredStatus> | undefined;
      if (!isObject(spec))
        throw new StoreCorruptError(this.path, `job ${JSON.stringify(id)} has a damaged spec`);
      if (!isObject(status) || !isState(status.state) || typeof status.attempt !== 'number')
        throw new StoreCorruptError(this.path, `job ${JSON.stringify(id)} has a damaged status`);
      jobs.push({
        job: { id, seq, spec: spec as { [key: string]: JsonValue }, submittedAt },
        status: status as StoredStatus,
      });
    }
    const paused = db.prepare("SELECT value FROM meta WHERE key = 'paused'").pluck().get();
    return { jobs, paused: paused === 'true' };
  }

  /** An error met while opening, as the typed error it means. */
  private openError(error: unknown): Error {
    if (
      error instanceof StoreCorruptError ||
      error instanceof StoreVersionError ||
      error instanceof StoreLockedError
    )
      return error;
    const code = codeOf(error);
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
      return new StoreLockedError(this.path, { cause: error });
    if (code.startsWith('SQLITE_NOTADB'))
      return new StoreCorruptError(this.path, 'it is not a SQLite database', { cause: error });
    if (code.startsWith('SQLITE_CORRUPT'))
      return new StoreCorruptError(this.path, `it is damaged (${messageOf(error)})`, { cause: error });
    return new StoreWriteError(this.path, 'open', messageOf(error), { cause: error });
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

let driver: typeof BetterSqlite3 | undefined;

/** better-sqlite3, loaded the first time a store opens. */
function loadDriver(): typeof BetterSqlite3 {
  if (driver === undefined) {
    try {
      driver = createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3;
    } catch (error) {
      throw new Error(
        `the SQLite driver (better-sqlite3) could not be loaded: ${messageOf(error)}; ` +
          'reinstall ai-batch-scheduler so that its native module is built for this Node version',
        { cause: error },
      );
    }
  }
  return driver;
}
