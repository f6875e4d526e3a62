/**
 * A client of a global scheduler on PostgreSQL (issue 17; docs/distributed.md, "Agents and
 * clients"): submits jobs by writing them to the database, reads them, asks for cancels and
 * boosts, and follows what happens to them through LISTEN/NOTIFY. It needs no scheduler in its
 * process: whichever scheduler leads takes what it wrote (state `submitted`) in `seq` order.
 *
 * What a client checks before it writes is what a scheduler would check without knowing its
 * handlers or its pool: the spec's fields and ranges, JSON payloads, the resource request's
 * shape, dependencies (known to the database or in the same batch) and cycles among them. The
 * scheduler applies its own defaults (retry, timeouts) when it takes a job, and fails one it
 * cannot run (a type no agent serves, a request no host could hold) with an error saying why.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { Observable, share } from 'rxjs';
import {
  DependencyCycleError,
  DuplicateJobError,
  InvalidJobError,
  InvalidOptionError,
  JobFailedError,
  UnknownDependencyError,
} from '../core/errors.js';
import {
  findCycle,
  isObject,
  normaliseJobSpec,
  type JobSpec,
  type JobSpecContext,
} from '../core/job-spec.js';
import { toUnits } from '../core/pool.js';
import type { PriorityName } from '../core/priority.js';
import { JOB_STATES, type JobError, type JobState } from '../core/types.js';
import { checkBoost } from '../runtime/boosts.js';
import { assertJsonPayload } from '../runtime/journal.js';
import type { BoostSpec, BoostTarget } from '../runtime/types.js';
import type { JsonValue } from '../store/store.js';
import { checkPostgresSchema } from '../pg/migrations.js';
import { channelNames, postgresTarget, quoteIdent } from '../pg/target.js';

/** Where a job stands, as the database says: `submitted` until a scheduler has taken it. */
export type RemoteJobState = JobState | 'submitted';

/** A job as a client reads it from the database. */
export type RemoteJob = {
  id: string;
  /** Its place in submission order across every client. */
  seq: number;
  type: string;
  group?: string;
  priority: PriorityName;
  state: RemoteJobState;
  /** Attempts started so far. */
  attempt: number;
  error?: JobError;
  /** A completed job's output. */
  output?: JsonValue;
  /** Clock time (ms since the epoch) it was submitted. */
  submittedAt: number;
  startedAt?: number;
  endedAt?: number;
};

/** A submitted job's handle: `result` settles when the job ends, on whichever host ran it. */
export type RemoteJobHandle = {
  readonly id: string;
  /** The job's output once it completed; rejects with `JobFailedError` if it failed or was cancelled. */
  readonly result: Promise<JsonValue | undefined>;
  /** Asks for the job to be cancelled (see `Client.cancel`). */
  cancel(): Promise<boolean>;
};

/** What the scheduler publishes on the events channel: a job entered `state`. */
export type RemoteJobEvent = { type: 'job.state'; id: string; state: JobState; at: number };

/** `createClient`'s options. */
export type ClientOptions = {
  /** A PostgreSQL connection string (`postgres://user@host:5432/db`). */
  db: string;
  /** The schema that holds the scheduler's tables. @default 'ai_batch' */
  schema?: string;
  /** Connections the client may open at once (LISTEN takes one more). @default 4 */
  poolSize?: number;
};

/** `list()`'s filter. */
export type RemoteListFilter = { state?: RemoteJobState; group?: string; limit?: number; afterSeq?: number };

/** The database's clock, in ms since the epoch (clients' own clocks may differ). */
const DB_NOW_MS = '(extract(epoch FROM clock_timestamp()) * 1000)::float8';

const FINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);
const STATES: ReadonlySet<string> = new Set(['submitted', ...JOB_STATES]);

/**
 * Checks specs as a scheduler would without its handlers and pool (any non-empty type; the
 * defaults it fills in are not stored: the scheduler that takes the job applies its own).
 */
const CHECK: JobSpecContext = {
  isHandlerType: (type) => type.length > 0 && type.length <= 256,
  handlerTypes: () => [],
  defaultTimeoutMs: undefined,
  defaultStopTimeoutMs: undefined,
  retryAttempts: 1,
  backoff: { type: 'fixed', delayMs: 0, maxDelayMs: 0, jitter: false },
  newId: () => randomUUID(),
};

type Row = {
  seq: string;
  id: string;
  spec: { type: string; group?: string; priority?: PriorityName };
  state: string;
  status: {
    attempt?: number;
    error?: JobError;
    output?: JsonValue;
    startedAt?: number;
    endedAt?: number;
  };
  submitted_at: number;
};

function jobOf(row: Row): RemoteJob {
  const job: RemoteJob = {
    id: row.id,
    seq: Number(row.seq),
    type: row.spec.type,
    priority: row.spec.priority ?? 'normal',
    state: row.state as RemoteJobState,
    attempt: row.status.attempt ?? 0,
    submittedAt: row.submitted_at,
  };
  if (row.spec.group !== undefined) job.group = row.spec.group;
  if (row.status.error !== undefined) job.error = row.status.error;
  if (row.status.output !== undefined) job.output = row.status.output;
  if (row.status.startedAt !== undefined) job.startedAt = row.status.startedAt;
  if (row.status.endedAt !== undefined) job.endedAt = row.status.endedAt;
  return job;
}

/** A client of a global scheduler: see `createClient`. */
export class Client {
  private readonly pool: pg.Pool;
  private readonly tables: { jobs: string; requests: string };
  private readonly channels: { jobs: string; events: string };
  private listener: pg.Client | undefined;
  private listening: Promise<pg.Client> | undefined;
  /** Handles waiting for their job's end, by job id. */
  private readonly waiting = new Map<string, Array<() => void>>();
  private closed = false;
  readonly events$: Observable<RemoteJobEvent>;

  /** @internal Use `createClient`. */
  constructor(
    private readonly options: { db: string; schema: string; poolSize: number },
    pool: pg.Pool,
  ) {
    this.pool = pool;
    const schema = quoteIdent(options.schema);
    this.tables = { jobs: `${schema}.jobs`, requests: `${schema}.requests` };
    this.channels = channelNames(options.schema);
    this.events$ = new Observable<RemoteJobEvent>((subscriber) => {
      const forward = (event: RemoteJobEvent): void => subscriber.next(event);
      this.eventListeners.add(forward);
      this.listen().catch((error: unknown) => subscriber.error(error));
      return () => {
        this.eventListeners.delete(forward);
      };
    }).pipe(share());
  }

  private readonly eventListeners = new Set<(event: RemoteJobEvent) => void>();

  /** Submits one job: on the database (and so accepted) when the promise resolves. */
  async submit<T>(spec: JobSpec<T>): Promise<RemoteJobHandle> {
    const [handle] = await this.submitAll([spec]);
    return handle as RemoteJobHandle;
  }

  /**
   * Submits jobs all or none, in one transaction, in the order given. Throws `InvalidJobError`
   * (naming the field), `DuplicateJobError`, `UnknownDependencyError` or `DependencyCycleError`
   * having written nothing.
   */
  async submitAll<T>(specs: ReadonlyArray<JobSpec<T>>): Promise<RemoteJobHandle[]> {
    this.assertOpen();
    if (!Array.isArray(specs)) throw new InvalidJobError('jobs', specs, 'an array of job specs');
    const rows: Array<{ id: string; spec: { [key: string]: JsonValue }; dependsOn: readonly string[] }> = [];
    const ids = new Set<string>();
    for (const [i, spec] of specs.entries()) {
      const job = normaliseJobSpec(spec, CHECK);
      if (spec.resources !== undefined) toUnits(spec.resources, `jobs[${i}].resources`);
      assertJsonPayload(spec.payload);
      if (ids.has(job.id)) throw new DuplicateJobError(job.id);
      ids.add(job.id);
      const stored: { [key: string]: JsonValue } = { type: job.type, priority: job.priority };
      for (const key of ['payload', 'resources', 'timeoutMs', 'stopTimeoutMs', 'retry', 'group'] as const)
        if (spec[key] !== undefined) stored[key] = spec[key] as unknown as JsonValue;
      if (spec.stopTimeoutMs === Number.POSITIVE_INFINITY) stored['stopTimeoutMs'] = null;
      stored['dependsOn'] = [...job.dependsOn];
      stored['dependencyPolicy'] = job.dependencyPolicy;
      rows.push({ id: job.id, spec: stored, dependsOn: job.dependsOn });
    }
    const cycle = findCycle(new Map(rows.map((r) => [r.id, r.dependsOn])));
    if (cycle) throw new DependencyCycleError(cycle);
    const outside = [...new Set(rows.flatMap((r) => r.dependsOn.filter((d) => !ids.has(d))))];

    try {
      await this.transaction(async (client) => {
        if (outside.length > 0) {
          const known = await client.query<{ id: string }>(
            `SELECT id FROM ${this.tables.jobs} WHERE id = ANY($1::text[])`,
            [outside],
          );
          const found = new Set(known.rows.map((r) => r.id));
          for (const row of rows)
            for (const dep of row.dependsOn)
              if (!ids.has(dep) && !found.has(dep)) throw new UnknownDependencyError(row.id, dep);
        }
        // Submission time from the database's clock (every client shares it).
        await client.query(
          `INSERT INTO ${this.tables.jobs} (id, spec, state, status, submitted_at)
           SELECT id, spec, 'submitted', jsonb_build_object('state', 'submitted', 'attempt', 0), ${DB_NOW_MS}
           FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS t(id, spec, n) ORDER BY n`,
          [rows.map((r) => r.id), rows.map((r) => JSON.stringify(r.spec))],
        );
        await client.query('SELECT pg_notify($1, $2)', [this.channels.jobs, 'submitted']);
      });
    } catch (error) {
      // A unique violation: the first id of the batch the database already holds.
      if ((error as { code?: string }).code !== '23505') throw error;
      const held = await this.pool.query<{ id: string }>(
        `SELECT id FROM ${this.tables.jobs} WHERE id = ANY($1::text[])`,
        [rows.map((r) => r.id)],
      );
      const found = new Set(held.rows.map((r) => r.id));
      throw new DuplicateJobError(rows.find((r) => found.has(r.id))?.id ?? rows[0]?.id ?? '');
    }
    return rows.map((r) => this.handleOf(r.id));
  }

  /** Runs `work` in one transaction on a connection of the pool (rolled back if it throws). */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** Writes a request the leader carries out in order (`cancel`, `boost`), and wakes it. */
  private async request(client: pg.PoolClient, kind: 'cancel' | 'boost', body: JsonValue): Promise<void> {
    await client.query(`INSERT INTO ${this.tables.requests} (kind, body) VALUES ($1, $2)`, [
      kind,
      JSON.stringify(body),
    ]);
    await client.query('SELECT pg_notify($1, $2)', [this.channels.jobs, 'request']);
  }

  /** A job as the database holds it now. */
  async get(id: string): Promise<RemoteJob | undefined> {
    this.assertOpen();
    const { rows } = await this.pool.query<Row>(
      `SELECT seq, id, spec, state, status, submitted_at FROM ${this.tables.jobs} WHERE id = $1`,
      [id],
    );
    return rows[0] && jobOf(rows[0]);
  }

  /** Jobs in submission order, filtered (at most `limit`, default 1,000, after `afterSeq`). */
  async list(filter: RemoteListFilter = {}): Promise<RemoteJob[]> {
    this.assertOpen();
    const { state, group, limit = 1_000, afterSeq = 0 } = filter;
    if (state !== undefined && !STATES.has(state))
      throw new InvalidOptionError('state', state, `one of ${[...STATES].join(', ')}`);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000)
      throw new InvalidOptionError('limit', limit, 'a whole number in [1, 100000]');
    if (!Number.isInteger(afterSeq) || afterSeq < 0)
      throw new InvalidOptionError('afterSeq', afterSeq, 'a whole number ≥ 0');
    const { rows } = await this.pool.query<Row>(
      `SELECT seq, id, spec, state, status, submitted_at FROM ${this.tables.jobs}
       WHERE seq > $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR spec->>'group' = $3)
       ORDER BY seq LIMIT $4`,
      [afterSeq, state ?? null, group ?? null, limit],
    );
    return rows.map(jobOf);
  }

  /**
   * Asks for a job to be cancelled. A job no scheduler has taken yet is cancelled at once; any
   * other job not ended gets a request the scheduler carries out (a running one is stopped on its
   * host, and its resources are freed when the host says it stopped). False for a job that is
   * unknown or has ended.
   */
  async cancel(id: string): Promise<boolean> {
    this.assertOpen();
    return this.transaction(async (client) => {
      const { rows } = await client.query<{ state: string }>(
        `SELECT state FROM ${this.tables.jobs} WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const state = rows[0]?.state;
      if (state === undefined || FINAL.has(state)) return false;
      if (state === 'submitted') {
        const error: JobError = { kind: 'cancelled', message: 'cancelled before a scheduler took it' };
        await client.query(
          `UPDATE ${this.tables.jobs} SET state = 'cancelled', updated_at = now(),
             status = jsonb_build_object('state', 'cancelled', 'attempt', 0, 'endedAt', ${DB_NOW_MS}, 'error', $2::jsonb)
           WHERE id = $1`,
          [id, JSON.stringify(error)],
        );
        await client.query(
          `SELECT pg_notify($1, json_build_object('type', 'job.state', 'id', $2::text, 'state', 'cancelled', 'at', ${DB_NOW_MS})::text)`,
          [this.channels.events, id],
        );
      } else await this.request(client, 'cancel', { id });
      return true;
    });
  }

  /**
   * Asks the scheduler to raise waiting jobs (a group's, or those named) `to` a priority or `by`
   * levels, for `forMs` — carried out in order with other requests. Throws `InvalidJobError`
   * (naming the field) for a bad target or spec, writing nothing.
   */
  async boost(target: BoostTarget, spec: BoostSpec): Promise<void> {
    this.assertOpen();
    checkBoost(spec);
    const given: unknown = target;
    const byGroup = isObject(given) && typeof given['group'] === 'string' && given['group'] !== '';
    const byIds =
      isObject(given) &&
      Array.isArray(given['ids']) &&
      (given['ids'] as unknown[]).every((id) => typeof id === 'string' && id !== '');
    if (byGroup === byIds) throw new InvalidJobError('target', target, '{ group } or { ids } (one of them)');
    await this.transaction((client) =>
      this.request(client, 'boost', { target, spec } as unknown as JsonValue),
    );
  }

  /** A handle of a job the database holds (submitted by anyone), or undefined. */
  async handle(id: string): Promise<RemoteJobHandle | undefined> {
    return (await this.get(id)) === undefined ? undefined : this.handleOf(id);
  }

  /** Closes the client's connections; pending `result`s reject. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wakes of this.waiting.values()) for (const wake of wakes) wake();
    this.waiting.clear();
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.pool.end();
  }

  private assertOpen(): void {
    if (this.closed) throw new InvalidOptionError('client', 'closed', 'an open client (this one was closed)');
  }

  private handleOf(id: string): RemoteJobHandle {
    let result: Promise<JsonValue | undefined> | undefined;
    const resultOf = (): Promise<JsonValue | undefined> => this.resultOf(id);
    return {
      id,
      get result() {
        return (result ??= resultOf());
      },
      cancel: () => this.cancel(id),
    };
  }

  /** Resolves once job `id` is final (woken by its events; read again on each). */
  private async resultOf(id: string): Promise<JsonValue | undefined> {
    await this.listen();
    for (;;) {
      // Listening before the read: an end between the two still wakes us.
      const woken = new Promise<void>((resolve) => {
        const list = this.waiting.get(id) ?? [];
        list.push(resolve);
        this.waiting.set(id, list);
      });
      const job = await this.get(id);
      if (job === undefined) throw new InvalidOptionError('id', id, 'the id of a job the database holds');
      if (job.state === 'completed') return job.output;
      if (job.state === 'failed' || job.state === 'cancelled')
        throw new JobFailedError(id, job.state, job.error?.kind ?? job.state, job.error?.message ?? '');
      await woken;
      if (this.closed)
        throw new InvalidOptionError('client', 'closed', 'an open client (closed while waiting)');
    }
  }

  /** The LISTEN connection (one per client, made on first need). */
  private listen(): Promise<pg.Client> {
    return (this.listening ??= (async () => {
      const client = new pg.Client({ connectionString: this.options.db });
      await client.connect();
      client.on('notification', (message) => {
        if (message.channel !== this.channels.events || message.payload === undefined) return;
        let event: RemoteJobEvent;
        try {
          event = JSON.parse(message.payload) as RemoteJobEvent;
        } catch {
          return;
        }
        for (const forward of this.eventListeners) forward(event);
        if (FINAL.has(event.state)) {
          const wakes = this.waiting.get(event.id);
          this.waiting.delete(event.id);
          for (const wake of wakes ?? []) wake();
        }
      });
      await client.query(`LISTEN ${quoteIdent(this.channels.events)}`);
      this.listener = client;
      return client;
    })());
  }
}

/**
 * Connects a client to a global scheduler's database (checking its schema version: a database
 * of a newer version is refused with `StoreVersionError`, one not migrated yet with the command
 * to run).
 */
export async function createClient(options: ClientOptions): Promise<Client> {
  const target = postgresTarget(options);
  const poolSize = options.poolSize ?? 4;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 100)
    throw new InvalidOptionError('poolSize', poolSize, 'a whole number in [1, 100]');
  const pool = new pg.Pool({ connectionString: target.db, max: poolSize });
  try {
    const client = await pool.connect();
    try {
      await checkPostgresSchema(client, target.schema);
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end();
    throw error;
  }
  return new Client({ db: target.db, schema: target.schema, poolSize }, pool);
}
