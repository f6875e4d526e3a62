/**
 * An agent (issue 17; docs/distributed.md, "Agents and clients"): one per host. It registers the
 * host's pool and the job types it serves, heartbeats, runs the attempts the leader assigned to
 * it, and reports how each ended — never taking work by itself (the leader places every attempt,
 * so priorities and large jobs stay global).
 *
 * Resource truth on the host: an attempt is reported ended only once its handler has settled (its
 * work really stopped). When the agent finds itself fenced (its heartbeats stopped reaching the
 * database for longer than its lease, so the leader has interrupted its attempts and may place
 * them elsewhere), it aborts everything it runs, waits until all of it has stopped, and only then
 * registers again (a new epoch): work of the old epoch never overlaps work placed on the new one.
 * Its late reports are refused by their tokens and change nothing.
 */
import { hostname } from 'node:os';
import pg from 'pg';
import { Subject, type Observable } from 'rxjs';
import type { Handlers } from '../actors/handler.js';
import { InvalidOptionError } from '../core/errors.js';
import type { Allocation, JobError } from '../core/types.js';
import { createRealClock, type SchedulerClock, type TimerId } from '../runtime/clock.js';
import { isJson } from '../runtime/journal.js';
import type { JsonValue } from '../store/store.js';
import { resolvePool, type PoolOption } from '../runtime/pool.js';
import { checkPostgresSchema } from '../pg/migrations.js';
import { channelNames, DEFAULT_POSTGRES_SCHEMA, postgresTarget, quoteIdent } from '../pg/target.js';
import type { LeaseStore, LeaseToken, ReportedOutcome } from './leases.js';
import { PgLeaseStore } from './pg-leases.js';

/** What an agent needs to know of a job to run an attempt of it. */
export type AgentJob = { type: string; payload?: unknown };

/** Where an agent reads the jobs it was assigned (on PostgreSQL: the `jobs` table). */
export interface AgentJobSource {
  job(jobId: string): Promise<AgentJob | undefined>;
}

/** `createAgent`'s options: a database (`db`), or a lease store and a job source of one's own. */
export type AgentOptions = {
  /** The PostgreSQL database of the global scheduler (`postgres://…`). */
  db?: string;
  /** Its schema. @default 'ai_batch' */
  schema?: string;
  /** Instead of `db`: where leases are kept (e.g. `MemoryLeaseStore` in tests). */
  leases?: LeaseStore;
  /** Instead of `db`: where assigned jobs are read. */
  jobs?: AgentJobSource;
  /**
   * This host's resources: `'detect'` (the default: CPU cores, memory, GPUs and VRAM read from
   * the host), a declared node, or detection with overrides.
   */
  resources?: PoolOption;
  /** This host: its id (unique among hosts; default the host name), its lease. */
  host?: {
    id?: string;
    /** The job types it serves. @default the handlers' types */
    types?: string[];
    /** How long its attempts stay its own without a heartbeat. @default 15_000 */
    leaseMs?: number;
  };
  handlers: Handlers;
  /** @default the real clock */
  clock?: SchedulerClock;
  /** How often it heartbeats (and looks for new assignments). @default leaseMs / 3 */
  heartbeatMs?: number;
};

/** What an agent tells of itself. */
export type AgentEvent =
  | { type: 'agent.registered'; at: number; epoch: number }
  /** A heartbeat renewed its lease (`live`: the attempts it holds). */
  | { type: 'agent.heartbeat'; at: number; epoch: number; live: number }
  | { type: 'agent.fenced'; at: number; epoch: number; stopping: number }
  | { type: 'attempt.started'; at: number; token: LeaseToken; jobId: string; attempt: number }
  | {
      type: 'attempt.reported';
      at: number;
      token: LeaseToken;
      jobId: string;
      outcome: ReportedOutcome['kind'];
    }
  | { type: 'attempt.refused'; at: number; token: LeaseToken; jobId: string; reason: string }
  | { type: 'agent.error'; at: number; message: string };

type Run = {
  token: LeaseToken;
  jobId: string;
  attempt: number;
  epoch: number;
  controller: AbortController;
  /** Settles when its handler has: the work stopped. */
  done: Promise<void>;
  /** How it ended, once its handler settled; kept until the database took the report. */
  outcome?: ReportedOutcome;
  /** Why it was told to stop, if it was. */
  stopReason?: 'cancelled' | 'fenced' | 'lost' | 'stopped';
};

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** An agent: see `createAgent`. */
export class Agent {
  private readonly clock: SchedulerClock;
  private readonly leaseMs: number;
  private readonly heartbeatMs: number;
  private readonly types: string[];
  private epoch: number | undefined;
  private readonly runs = new Map<LeaseToken, Run>();
  private timer: TimerId | undefined;
  private ticking: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly events = new Subject<AgentEvent>();
  readonly events$: Observable<AgentEvent> = this.events.asObservable();

  private readonly hostId: string;
  /** With `db`: the schema, checked. */
  private readonly schema: string | undefined;
  private leases: LeaseStore | undefined;
  private jobs: AgentJobSource | undefined;
  /** The node it registers (resolved at start). */
  private pool: JsonValue | undefined;
  /** What `db` opened (closed by `stop`). */
  private database: { pool: pg.Pool; listener: pg.Client | undefined } | undefined;

  constructor(private readonly options: AgentOptions) {
    const { host = {}, handlers } = options;
    if (typeof handlers !== 'object' || handlers === null || Object.keys(handlers).length === 0)
      throw new InvalidOptionError('handlers', handlers, 'an object of job handlers by type (at least one)');
    if ((options.db === undefined) === (options.leases === undefined || options.jobs === undefined))
      throw new InvalidOptionError(
        options.db === undefined ? 'db' : 'leases',
        options.db ?? options.leases,
        'either db (a postgres:// URL) or both leases and jobs',
      );
    this.schema =
      options.db === undefined
        ? undefined
        : postgresTarget(
            options.schema === undefined ? { db: options.db } : { db: options.db, schema: options.schema },
          ).schema;
    this.hostId = host.id ?? hostname();
    if (typeof this.hostId !== 'string' || this.hostId.length === 0 || this.hostId.length > 256)
      throw new InvalidOptionError('host.id', host.id, 'a string of 1 to 256 characters');
    this.leaseMs = host.leaseMs ?? 15_000;
    if (!Number.isInteger(this.leaseMs) || this.leaseMs < 100 || this.leaseMs > 3_600_000)
      throw new InvalidOptionError('host.leaseMs', host.leaseMs, 'a whole number of ms in [100, 3600000]');
    this.heartbeatMs = options.heartbeatMs ?? Math.floor(this.leaseMs / 3);
    if (!Number.isInteger(this.heartbeatMs) || this.heartbeatMs < 10 || this.heartbeatMs >= this.leaseMs)
      throw new InvalidOptionError(
        'heartbeatMs',
        options.heartbeatMs,
        `a whole number of ms in [10, ${this.leaseMs - 1}] (below the lease)`,
      );
    this.types = host.types ?? Object.keys(handlers);
    for (const type of this.types)
      if (typeof handlers[type] !== 'function')
        throw new InvalidOptionError(
          'host.types',
          type,
          `a type it has a handler for (${Object.keys(handlers).join(', ')})`,
        );
    this.clock = options.clock ?? createRealClock();
    this.leases = options.leases;
    this.jobs = options.jobs;
  }

  /**
   * Resolves the host's resources, connects (with `db`: checks the schema version, LISTENs on the
   * host channel so an assignment or a cancel is seen at once), registers the host and starts
   * heartbeating; resolves once it is registered (rejects if it could not).
   */
  async start(): Promise<void> {
    if (this.pool === undefined) {
      const { pool } = await resolvePool(this.options.resources ?? 'detect');
      if ('nodes' in pool) {
        if (pool.nodes.length !== 1)
          throw new InvalidOptionError('resources', pool, 'one node: an agent speaks for its own host');
        this.pool = pool.nodes[0] as unknown as JsonValue;
      } else this.pool = pool as unknown as JsonValue;
    }
    if (this.options.db !== undefined && this.database === undefined) await this.connect(this.options.db);
    await this.poke();
    if (this.epoch === undefined)
      throw new Error(`agent ${this.hostId} could not register (see its events$)`);
  }

  private async connect(db: string): Promise<void> {
    const schema = this.schema ?? DEFAULT_POSTGRES_SCHEMA;
    const pool = new pg.Pool({ connectionString: db, max: 4 });
    // A dropped idle connection must not crash the process: the next query reconnects.
    pool.on('error', () => undefined);
    this.database = { pool, listener: undefined };
    const client = await pool.connect();
    try {
      await checkPostgresSchema(client, schema);
    } finally {
      client.release();
    }
    this.leases = new PgLeaseStore({ pool, schema });
    const jobs = `${quoteIdent(schema)}.jobs`;
    this.jobs = {
      job: async (id) => {
        const { rows } = await pool.query<{ spec: { type: string; payload?: unknown } }>(
          `SELECT spec FROM ${jobs} WHERE id = $1`,
          [id],
        );
        const spec = rows[0]?.spec;
        return spec && { type: spec.type, payload: spec.payload };
      },
    };
    await this.listen(db, channelNames(schema).host);
  }

  /** LISTENs on the host channel; a lost connection is made again at the next pass. */
  private async listen(db: string, channel: string): Promise<void> {
    const database = this.database;
    if (!database || database.listener || this.stopped) return;
    const listener = new pg.Client({ connectionString: db });
    listener.on('error', () => {
      if (database.listener === listener) database.listener = undefined;
      void listener.end().catch(() => undefined);
    });
    listener.on('notification', (message) => {
      if (message.payload === this.hostId) void this.poke();
    });
    await listener.connect();
    await listener.query(`LISTEN ${quoteIdent(channel)}`);
    database.listener = listener;
  }

  /** The epoch it is registered at (undefined before it registered, and while fenced). */
  get currentEpoch(): number | undefined {
    return this.epoch;
  }

  /** Attempts running here now. */
  running(): Array<{ token: LeaseToken; jobId: string; attempt: number }> {
    return [...this.runs.values()].map(({ token, jobId, attempt }) => ({ token, jobId, attempt }));
  }

  /**
   * Heartbeats and looks at its assignments now (a notification on its channel says there is
   * something new); resolves when that pass is done. Passes never overlap.
   */
  poke(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.ticking) {
      this.again = true;
      return this.ticking;
    }
    this.ticking = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again && !this.stopped);
      } catch (error) {
        this.emit({ type: 'agent.error', at: this.clock.now(), message: messageOf(error) });
      } finally {
        this.ticking = undefined;
        this.schedule();
      }
    })();
    return this.ticking;
  }

  /**
   * Stops: `drain` waits for what runs to end (and reports it), `cancel` aborts it first; then
   * the host leaves (its capacity leaves the pool). Idempotent.
   */
  async stop(options: { mode?: 'drain' | 'cancel' } = {}): Promise<void> {
    const first = !this.stopped;
    this.stopped = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.ticking;
    if (options.mode === 'cancel') for (const run of this.runs.values()) this.abort(run, 'stopped');
    await Promise.all([...this.runs.values()].map((run) => run.done));
    if (!first) return;
    if (this.epoch !== undefined && this.leases)
      await this.leases.leave(this.hostId, this.epoch).catch((error: unknown) => {
        this.emit({ type: 'agent.error', at: this.clock.now(), message: `leave: ${messageOf(error)}` });
      });
    const database = this.database;
    this.database = undefined;
    if (database) {
      await database.listener?.end().catch(() => undefined);
      await database.pool.end();
    }
    this.events.complete();
  }

  private schedule(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        void this.poke();
      },
      this.heartbeatMs,
      { background: true },
    );
  }

  private emit(event: AgentEvent): void {
    this.events.next(event);
  }

  /** One pass: register if need be, heartbeat, start what is new, stop what is not ours any more. */
  private async pass(): Promise<void> {
    const { leases } = this;
    if (!leases || this.pool === undefined) throw new Error('the agent is not started (call start())');
    if (this.database && !this.database.listener && this.options.db !== undefined) {
      await this.listen(this.options.db, channelNames(this.schema ?? DEFAULT_POSTGRES_SCHEMA).host).catch(
        (error: unknown) => {
          this.emit({ type: 'agent.error', at: this.clock.now(), message: `listen: ${messageOf(error)}` });
        },
      );
    }
    if (this.epoch === undefined) {
      // Work of an earlier epoch has stopped (see fenced below) before a new epoch may get work.
      await Promise.all([...this.runs.values()].map((run) => run.done));
      const { epoch } = await leases.register({
        id: this.hostId,
        pool: this.pool,
        types: this.types,
        leaseMs: this.leaseMs,
      });
      this.epoch = epoch;
      this.emit({ type: 'agent.registered', at: this.clock.now(), epoch });
    }
    // Ends the database could not take before: tried again first.
    for (const run of [...this.runs.values()]) if (run.outcome !== undefined) await this.deliver(run);
    const epoch = this.epoch;
    const beat = await leases.heartbeat(this.hostId, epoch);
    if (!beat.ok) {
      this.epoch = undefined;
      this.emit({ type: 'agent.fenced', at: this.clock.now(), epoch, stopping: this.runs.size });
      for (const run of this.runs.values()) this.abort(run, 'fenced');
      this.again = true;
      return;
    }
    this.emit({ type: 'agent.heartbeat', at: this.clock.now(), epoch, live: beat.live.length });
    const live = new Set(beat.live);
    for (const run of this.runs.values())
      if (!live.has(run.token) && run.outcome === undefined) this.abort(run, 'lost');
    for (const token of beat.cancels) {
      const run = this.runs.get(token);
      if (run) this.abort(run, 'cancelled');
    }
    const cancels = new Set(beat.cancels);
    for (const token of beat.live)
      if (!this.runs.has(token)) await this.begin(token, epoch, cancels.has(token));
  }

  private abort(run: Run, reason: NonNullable<Run['stopReason']>): void {
    if (run.stopReason !== undefined) return;
    run.stopReason = reason;
    run.controller.abort(new Error(`attempt ${run.attempt} of job ${run.jobId} stopped: ${reason}`));
  }

  /** Starts an attempt assigned to this host (or says it was cancelled before it started). */
  private async begin(token: LeaseToken, epoch: number, cancelled: boolean): Promise<void> {
    const { leases, jobs } = this;
    const { handlers } = this.options;
    if (!leases || !jobs) return;
    const record = await leases.attempt(token);
    if (!record || record.hostEpoch !== epoch || this.runs.has(token)) return;
    if (cancelled) {
      await this.report({ token, jobId: record.jobId }, { kind: 'cancelled' });
      return;
    }
    const job = await jobs.job(record.jobId);
    const handler = job && handlers[job.type];
    if (!job || typeof handler !== 'function') {
      // Not runnable here: said at once, so the leader retries or fails it by its policy.
      const error: JobError = {
        kind: 'error',
        message: job
          ? `host ${this.hostId} has no handler for job type ${JSON.stringify(job.type)}`
          : `host ${this.hostId} cannot read job ${JSON.stringify(record.jobId)}`,
      };
      await this.report({ token, jobId: record.jobId }, { kind: 'failed', error });
      return;
    }
    const started = await leases.start(token);
    if (!started.accepted) {
      this.emit({
        type: 'attempt.refused',
        at: this.clock.now(),
        token,
        jobId: record.jobId,
        reason: started.reason,
      });
      return;
    }
    const controller = new AbortController();
    const run: Run = {
      token,
      jobId: record.jobId,
      attempt: record.attempt,
      epoch,
      controller,
      done: Promise.resolve(),
    };
    this.runs.set(token, run);
    this.emit({
      type: 'attempt.started',
      at: this.clock.now(),
      token,
      jobId: record.jobId,
      attempt: record.attempt,
    });
    run.done = this.execute(run, handler, job.payload, record.allocation);
  }

  private async execute(
    run: Run,
    handler: Handlers[string],
    payload: unknown,
    allocation: Allocation,
  ): Promise<void> {
    let outcome: ReportedOutcome;
    try {
      const output: unknown = await handler({
        id: run.jobId,
        payload,
        attempt: run.attempt,
        allocation,
        signal: run.controller.signal,
        progress: () => undefined,
      });
      outcome =
        run.stopReason === 'cancelled'
          ? { kind: 'cancelled' }
          : output !== undefined && isJson(output)
            ? { kind: 'completed', output }
            : { kind: 'completed' };
    } catch (error) {
      outcome =
        run.stopReason === 'cancelled'
          ? { kind: 'cancelled' }
          : { kind: 'failed', error: { kind: 'error', message: messageOf(error) } };
    }
    // The work has stopped: now (and only now) the attempt may be reported, and its units freed.
    run.outcome = outcome;
    void this.deliver(run);
  }

  /** Reports a run that ended; one the database did not take (an error) is tried again each pass. */
  private async deliver(run: Run & { outcome?: ReportedOutcome }): Promise<void> {
    const outcome = run.outcome;
    if (outcome === undefined) return;
    if (await this.report(run, outcome)) this.runs.delete(run.token);
  }

  /** True once the database answered (taken or refused), false when it could not be asked. */
  private async report(
    run: { token: LeaseToken; jobId: string },
    outcome: ReportedOutcome,
  ): Promise<boolean> {
    try {
      if (!this.leases) return false;
      const answer = await this.leases.report(run.token, outcome);
      if (answer.accepted)
        this.emit({
          type: 'attempt.reported',
          at: this.clock.now(),
          token: run.token,
          jobId: run.jobId,
          outcome: outcome.kind,
        });
      else
        this.emit({
          type: 'attempt.refused',
          at: this.clock.now(),
          token: run.token,
          jobId: run.jobId,
          reason: answer.reason,
        });
      return true;
    } catch (error) {
      this.emit({ type: 'agent.error', at: this.clock.now(), message: `report: ${messageOf(error)}` });
      return false;
    }
  }
}

/** An agent for this host (not started: call `start()`). */
export function createAgent(options: AgentOptions): Agent {
  return new Agent(options);
}
