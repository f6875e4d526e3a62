/**
 * The global scheduler on PostgreSQL (issue 17; docs/distributed.md, "The leader"): the existing
 * engine, run by whichever process holds the schema's leader advisory lock (the others wait on it
 * as standbys, and one of them takes over when the leader's session ends).
 *
 * - **Pool**: the hosts alive, a node each (`addNode` when one registers, `retireNode` when it is
 *   lost or leaves). A host serves only its job types: each node carries a custom resource per
 *   type it serves (`ai-batch.type:<type>`), and each job asks for one unit of its type's, so the
 *   ledger places a job only on a host that serves it, and a job of a type no host serves waits.
 * - **Jobs**: clients write them (`submitted`); the leader takes them in `seq` order into the
 *   engine (`submitAll`), which applies its defaults, priorities, aging, boosts, backfill,
 *   dependencies, retries and timeouts — globally.
 * - **Attempts**: every job type's handler is a remote one: it assigns the attempt to the host of
 *   the allocation's node (a fencing token, a lease), asks for a cancel when the engine aborts it,
 *   and settles with the end the agent reported (or `interrupted` when the host's lease ran out),
 *   so a unit stays held until the host says the work stopped.
 * - **Journal**: the engine's store port writes each job's transitions to the `jobs` table and
 *   tells clients on the events channel; an attempt's end is marked settled once its job's
 *   transition is written, so a new leader applies each end exactly once.
 *
 * Taking over: the new leader rebuilds the engine from the database (finished jobs stay finished,
 * waiting ones wait again with their waited time). Attempts still live from the leader before are
 * asked to stop, and their hosts join the pool only once those attempts have ended (their jobs
 * are retried by their policy): resources are never double-booked, at the price of rerunning
 * what was running at the takeover. (Adopting them instead is the next step.)
 */
import pg from 'pg';
import { Subject, type Observable, type Subscription } from 'rxjs';
import type { HandlerContext, Handlers } from '../actors/handler.js';
import { InvalidOptionError } from '../core/errors.js';
import type { NodeSpec } from '../core/resources.js';
import type { JobState } from '../core/types.js';
import { createRealClock, type SchedulerClock, type TimerId } from '../runtime/clock.js';
import type { SchedulerOptions } from '../runtime/options.js';
import { createScheduler, type Scheduler } from '../runtime/scheduler.js';
import type { JobStore, JsonValue, StoreContents, StoredJob, StoredStatus } from '../store/store.js';
import { specOf } from '../runtime/journal.js';
import type { JobSpec } from '../core/job-spec.js';
import { checkPostgresSchema } from '../pg/migrations.js';
import { advisoryLockKey, channelNames, postgresTarget, quoteIdent } from '../pg/target.js';
import type { AttemptOutcome, AttemptRecord, HostRecord, LeaseStore, LeaseToken } from './leases.js';
import { PgLeaseStore } from './pg-leases.js';

/** The custom resource a host has for each job type it serves (one unit per job). */
export const TYPE_RESOURCE_PREFIX = 'ai-batch.type:';
/** How much of its types' resources a host has: never what limits it. */
const TYPE_CAPACITY = 1_000_000;

/** Engine options the leader passes on (the pool, handlers, store and clock are its own). */
export type LeaderEngineOptions = Omit<
  SchedulerOptions,
  'handlers' | 'resources' | 'store' | 'clock' | 'unschedulable' | 'monitor'
>;

/** `createLeader`'s options. */
export type LeaderOptions = {
  /** The PostgreSQL database (`postgres://…`). */
  db: string;
  /** @default 'ai_batch' */
  schema?: string;
  /** @default the real clock */
  clock?: SchedulerClock;
  /** How often it looks for hosts whose lease ran out, and for new hosts. @default 1_000 */
  checkEveryMs?: number;
  /** The engine's options (retry, timeouts, aging, retention, …). */
  engine?: LeaderEngineOptions;
  /** The lease store (tests); by default a PgLeaseStore on the database's clock. */
  leases?: LeaseStore;
  /** A name for this process in events. @default the pid */
  name?: string;
};

/** What a leader tells of itself. */
export type LeaderEvent =
  | { type: 'leader.standby'; at: number; name: string }
  | { type: 'leader.elected'; at: number; name: string; jobs: number; hosts: number; stopping: number }
  | { type: 'leader.lost'; at: number; name: string; message: string }
  | { type: 'host.joined'; at: number; hostId: string; epoch: number }
  | { type: 'host.lost'; at: number; hostId: string; epoch: number; interrupted: number }
  | { type: 'host.left'; at: number; hostId: string }
  | { type: 'leader.error'; at: number; message: string };

type Waiter = { resolve: (outcome: AttemptOutcome) => void };

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A stored spec (the client's) as a job spec for `submit`, as recovery reads a journaled one,
 * asking for one unit of its type's resource (only hosts that serve the type have it).
 */
function specFrom(id: string, stored: { [key: string]: JsonValue }): JobSpec {
  const spec = specOf({ id, seq: 0, spec: stored, submittedAt: 0 }, () => true);
  const resources = { ...spec.resources };
  resources.custom = { ...resources.custom, [`${TYPE_RESOURCE_PREFIX}${spec.type}`]: 1 };
  spec.resources = resources;
  return spec;
}

/** A host's node: its pool, and a unit of capacity per type it serves. */
function nodeOf(host: HostRecord): NodeSpec & { id: string } {
  const pool = (host.pool ?? {}) as unknown as NodeSpec;
  const custom: Record<string, number> = { ...(pool.custom ?? {}) };
  for (const type of host.types) custom[`${TYPE_RESOURCE_PREFIX}${type}`] = TYPE_CAPACITY;
  return { ...pool, id: host.id, custom };
}

/**
 * The engine's journal on PostgreSQL: what it accepted and every transition, written in order by
 * one writer (grouped per turn), each transition told on the events channel.
 */
class LeaderJournal implements JobStore {
  private queue: Array<(client: pg.PoolClient) => Promise<void>> = [];
  private flushing: Promise<void> | undefined;
  private readonly waiters: Array<() => void> = [];
  failed: ((error: unknown) => void) | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly tables: { jobs: string; meta: string },
    private readonly eventsChannel: string,
    private readonly contents: StoreContents,
    private readonly now: () => number,
  ) {}

  open(): StoreContents {
    return this.contents;
  }

  accept(jobs: ReadonlyArray<{ job: StoredJob; status: StoredStatus }>): void {
    const rows = jobs.map(({ job, status }) => ({ id: job.id, spec: job.spec, status }));
    this.push(async (client) => {
      await client.query(
        `UPDATE ${this.tables.jobs} AS j SET spec = t.spec, state = t.status->>'state', status = t.status, updated_at = now()
         FROM unnest($1::text[], $2::jsonb[], $3::jsonb[]) AS t(id, spec, status) WHERE j.id = t.id`,
        [
          rows.map((r) => r.id),
          rows.map((r) => JSON.stringify(r.spec)),
          rows.map((r) => JSON.stringify(r.status)),
        ],
      );
      for (const row of rows) await this.tell(client, row.id, row.status.state);
    });
  }

  update(id: string, status: StoredStatus): void {
    const copy = JSON.stringify(status);
    this.push(async (client) => {
      await client.query(
        `UPDATE ${this.tables.jobs} SET state = $2, status = $3, updated_at = now() WHERE id = $1`,
        [id, status.state, copy],
      );
      await this.tell(client, id, status.state);
    });
  }

  prune(ids: readonly string[]): void {
    const copy = [...ids];
    this.push(async (client) => {
      await client.query(`DELETE FROM ${this.tables.jobs} WHERE id = ANY($1::text[])`, [copy]);
    });
  }

  setPaused(paused: boolean): void {
    this.push(async (client) => {
      await client.query(
        `INSERT INTO ${this.tables.meta} (key, value) VALUES ('paused', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [String(paused)],
      );
    });
  }

  close(): void {
    // The leader awaits `flushed()` before it lets go of the pool.
  }

  /** Resolves once everything written so far is on the database. */
  flushed(): Promise<void> {
    if (this.queue.length === 0 && !this.flushing) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private async tell(client: pg.PoolClient, id: string, state: JobState): Promise<void> {
    await client.query('SELECT pg_notify($1, $2)', [
      this.eventsChannel,
      JSON.stringify({ type: 'job.state', id, state, at: this.now() }),
    ]);
  }

  private push(op: (client: pg.PoolClient) => Promise<void>): void {
    this.queue.push(op);
    this.flushing ??= this.flush();
  }

  /** Writes what is queued, a batch per transaction, in order, until nothing is left. */
  private async flush(): Promise<void> {
    // Let the rest of this turn's writes join the batch.
    await Promise.resolve();
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const client = await this.pool.connect();
        try {
          await client.query('BEGIN');
          for (const op of batch) await op(client);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          this.failed?.(error);
          throw error;
        } finally {
          client.release();
        }
      }
    } catch {
      // Told through `failed`; the leader steps down (a new one rebuilds from the database).
      this.queue = [];
    } finally {
      this.flushing = undefined;
      for (const wake of this.waiters.splice(0)) wake();
    }
  }
}

/** A leader (or standby) of a global scheduler: see `createLeader`. */
export class Leader {
  private readonly clock: SchedulerClock;
  private readonly schema: string;
  private readonly name: string;
  private readonly checkEveryMs: number;
  private readonly events = new Subject<LeaderEvent>();
  readonly events$: Observable<LeaderEvent> = this.events.asObservable();
  private pool: pg.Pool | undefined;
  private lock: pg.Client | undefined;
  private listener: pg.Client | undefined;
  private leases: LeaseStore | undefined;
  private engine: Scheduler | undefined;
  private journal: LeaderJournal | undefined;
  private timer: TimerId | undefined;
  private role: 'idle' | 'standby' | 'leader' | 'stopped' = 'idle';
  /** Live attempts by token: their handler waits for their end. */
  private readonly waiters = new Map<LeaseToken, Waiter>();
  /** The hosts in the pool: id → epoch. */
  private readonly members = new Map<string, number>();
  /** Hosts waiting to join: their earlier attempts (tokens) have not all ended yet. */
  private readonly holding = new Map<string, Set<LeaseToken>>();
  /** Hosts retired whose node is still leaving (it holds allocations). */
  private readonly leaving = new Set<string>();
  private checking: Promise<void> | undefined;
  /** Woken after each pass that saw attempts end. */
  private endsSeen: Array<() => void> = [];
  private again = false;
  private engineEvents: Subscription | undefined;

  constructor(private readonly options: LeaderOptions) {
    this.schema = postgresTarget(
      options.schema === undefined ? { db: options.db } : { db: options.db, schema: options.schema },
    ).schema;
    this.checkEveryMs = options.checkEveryMs ?? 1_000;
    if (!Number.isInteger(this.checkEveryMs) || this.checkEveryMs < 10 || this.checkEveryMs > 600_000)
      throw new InvalidOptionError(
        'checkEveryMs',
        options.checkEveryMs,
        'a whole number of ms in [10, 600000]',
      );
    this.clock = options.clock ?? createRealClock();
    this.name = options.name ?? `pid ${process.pid}`;
  }

  /** `standby` while it waits for the lock, `leader` once it leads. */
  get state(): 'idle' | 'standby' | 'leader' | 'stopped' {
    return this.role;
  }

  /** The engine, while this process leads. */
  get scheduler(): Scheduler | undefined {
    return this.engine;
  }

  /**
   * Connects, waits for the leader lock (a standby until then), rebuilds the engine from the
   * database and leads. Resolves once it leads (or rejects if it cannot; `stop()` ends a wait).
   */
  async start(): Promise<void> {
    if (this.role !== 'idle') throw new InvalidOptionError('leader', this.role, 'a leader not started yet');
    const { db } = this.options;
    this.pool = new pg.Pool({ connectionString: db, max: 4 });
    this.pool.on('error', () => undefined);
    const client = await this.pool.connect();
    try {
      await checkPostgresSchema(client, this.schema);
    } finally {
      client.release();
    }
    this.leases = this.options.leases ?? new PgLeaseStore({ pool: this.pool, schema: this.schema });
    // The lock is held by this connection's session: if this process dies, PostgreSQL ends the
    // session and a standby's wait returns.
    const lock = new pg.Client({ connectionString: db });
    lock.on('error', (error) => this.lose(`the leader lock's connection failed: ${error.message}`));
    await lock.connect();
    this.lock = lock;
    this.role = 'standby';
    this.emit({ type: 'leader.standby', at: this.clock.now(), name: this.name });
    const [classId, objectId] = advisoryLockKey(this.schema, 'leader');
    await lock.query('SELECT pg_advisory_lock($1, $2)', [classId, objectId]);
    if (this.role !== 'standby') return;
    this.role = 'leader';
    await this.lead();
  }

  /** Stops leading (or waiting): the engine stops (its running attempts keep running on their hosts). */
  async stop(): Promise<void> {
    if (this.role === 'stopped') return;
    const was = this.role;
    this.role = 'stopped';
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    await this.checking;
    this.engineEvents?.unsubscribe();
    if (was === 'leader') await this.journal?.flushed();
    for (const client of [this.listener, this.lock]) await client?.end().catch(() => undefined);
    await this.pool?.end().catch(() => undefined);
    this.events.complete();
  }

  private emit(event: LeaderEvent): void {
    this.events.next(event);
  }

  private lose(message: string): void {
    if (this.role !== 'leader' && this.role !== 'standby') return;
    this.emit({ type: 'leader.lost', at: this.clock.now(), name: this.name, message });
    void this.stop();
  }

  private get tables() {
    const s = quoteIdent(this.schema);
    return { jobs: `${s}.jobs`, meta: `${s}.meta`, requests: `${s}.requests` };
  }

  /** Rebuilds the engine from the database, then leads. */
  private async lead(): Promise<void> {
    const pool = this.pool as pg.Pool;
    const leases = this.leases as LeaseStore;
    const channels = channelNames(this.schema);

    // Attempts still live from the leader before: asked to stop; their hosts wait to join.
    const live = await leases.live();
    for (const attempt of live) {
      await leases.requestCancel(attempt.token);
      const held = this.holding.get(attempt.hostId) ?? new Set<LeaseToken>();
      held.add(attempt.token);
      this.holding.set(attempt.hostId, held);
    }
    // Ends reported but not applied yet: their jobs' rows are brought up to date first.
    const unsettled = await leases.ends();
    const endByJob = new Map<string, AttemptRecord>();
    for (const end of unsettled) endByJob.set(end.jobId, end);

    const { rows } = await pool.query<{
      seq: string;
      id: string;
      spec: { [key: string]: JsonValue };
      state: string;
      status: StoredStatus;
      submitted_at: number;
    }>(
      `SELECT seq, id, spec, state, status, submitted_at FROM ${this.tables.jobs} WHERE state <> 'submitted' ORDER BY seq`,
    );
    const paused =
      (await pool.query<{ value: string }>(`SELECT value FROM ${this.tables.meta} WHERE key = 'paused'`))
        .rows[0]?.value === 'true';
    const contents: StoreContents = {
      paused,
      jobs: rows.map((row) => {
        let status = row.status;
        const end = endByJob.get(row.id);
        if (row.state === 'running' && end?.outcome?.kind === 'completed') {
          status = { ...status, state: 'completed', endedAt: this.clock.now() };
          if (end.outcome.output !== undefined) status.output = end.outcome.output;
        }
        return {
          job: { id: row.id, seq: Number(row.seq), spec: row.spec, submittedAt: row.submitted_at },
          status,
        };
      }),
    };
    const journal = new LeaderJournal(pool, this.tables, channels.events, contents, () => this.clock.now());
    journal.failed = (error) => this.lose(`writing the journal failed: ${messageOf(error)}`);
    this.journal = journal;
    const remote = (context: HandlerContext): Promise<unknown> => this.run(context);
    // Every type is served remotely; a type no host serves waits for one (its resource).
    const handlers = new Proxy({} as Handlers, {
      getOwnPropertyDescriptor: (_target, key) =>
        typeof key === 'string'
          ? { value: remote, writable: false, enumerable: true, configurable: true }
          : undefined,
      get: (_target, key) => (typeof key === 'string' ? remote : undefined),
      has: (_target, key) => typeof key === 'string',
    });
    const engine = createScheduler({
      maxConcurrentJobs: Number.POSITIVE_INFINITY,
      maxQueueSize: Number.POSITIVE_INFINITY,
      ...this.options.engine,
      handlers,
      resources: { nodes: [] },
      unschedulable: 'wait',
      monitor: false,
      clock: this.clock,
      store: journal,
    } as SchedulerOptions);
    this.engine = engine;
    for (const end of unsettled) await leases.settle(end.token);

    // Wake-ups: a client wrote jobs or a request, an agent reported.
    const listener = new pg.Client({ connectionString: this.options.db });
    listener.on('error', (error) => this.lose(`the notification connection failed: ${error.message}`));
    listener.on('notification', () => void this.check());
    await listener.connect();
    await listener.query(`LISTEN ${quoteIdent(channels.jobs)}`);
    await listener.query(`LISTEN ${quoteIdent(channels.reports)}`);
    this.listener = listener;

    await this.check();
    this.emit({
      type: 'leader.elected',
      at: this.clock.now(),
      name: this.name,
      jobs: contents.jobs.length,
      hosts: this.members.size,
      stopping: live.length,
    });
  }

  /** One pass (never two at once; one asked for during a pass runs after it). */
  check(): Promise<void> {
    if (this.role !== 'leader') return Promise.resolve();
    if (this.checking) {
      this.again = true;
      return this.checking;
    }
    this.checking = (async () => {
      try {
        do {
          this.again = false;
          await this.pass();
        } while (this.again && this.role === 'leader');
      } catch (error) {
        this.emit({ type: 'leader.error', at: this.clock.now(), message: messageOf(error) });
      } finally {
        this.checking = undefined;
        this.schedule();
      }
    })();
    return this.checking;
  }

  private schedule(): void {
    if (this.role !== 'leader' || this.timer !== undefined) return;
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        void this.check();
      },
      this.checkEveryMs,
      { background: true },
    );
  }

  private async pass(): Promise<void> {
    await this.expire();
    await this.hosts();
    await this.ends();
    await this.intake();
    await this.requests();
  }

  /** Hosts whose lease ran out: their attempts end as interrupted, their nodes retire. */
  private async expire(): Promise<void> {
    const leases = this.leases as LeaseStore;
    const { lostHosts, expired } = await leases.expire();
    for (const host of lostHosts) {
      this.retire(host.id);
      this.emit({
        type: 'host.lost',
        at: this.clock.now(),
        hostId: host.id,
        epoch: host.epoch,
        interrupted: expired.filter((a) => a.hostId === host.id).length,
      });
    }
  }

  private retire(hostId: string): void {
    const engine = this.engine as Scheduler;
    if (!this.members.has(hostId)) return;
    this.members.delete(hostId);
    if (!engine.retireNode(hostId).removed) this.leaving.add(hostId);
  }

  /** Hosts that registered (or again, at a new epoch) join; lost and gone ones leave. */
  private async hosts(): Promise<void> {
    const engine = this.engine as Scheduler;
    const hosts = await (this.leases as LeaseStore).hosts();
    const present = new Set(engine.nodes().map((n) => n.node.id));
    for (const id of [...this.leaving]) if (!present.has(id)) this.leaving.delete(id);
    for (const host of hosts) {
      const epoch = this.members.get(host.id);
      if (host.state !== 'alive') {
        if (epoch !== undefined) {
          this.retire(host.id);
          if (host.state === 'left') this.emit({ type: 'host.left', at: this.clock.now(), hostId: host.id });
        }
        continue;
      }
      if (epoch === host.epoch) continue;
      if (epoch !== undefined) this.retire(host.id);
      // Not while work placed by a leader before, or an earlier node of it, may still hold it.
      if (this.leaving.has(host.id) || (this.holding.get(host.id)?.size ?? 0) > 0) continue;
      // A member before it joins: a join dispatches at once, and the handlers look it up.
      this.members.set(host.id, host.epoch);
      try {
        engine.addNode(nodeOf(host));
      } catch (error) {
        this.members.delete(host.id);
        this.emit({
          type: 'leader.error',
          at: this.clock.now(),
          message: `host ${host.id} cannot join: ${messageOf(error)}`,
        });
        continue;
      }
      this.emit({ type: 'host.joined', at: this.clock.now(), hostId: host.id, epoch: host.epoch });
    }
  }

  /** Attempts that ended (reported, or expired): their handlers settle; then they are settled. */
  private async ends(): Promise<void> {
    const leases = this.leases as LeaseStore;
    const ends = await leases.ends();
    if (ends.length === 0) return;
    const settled: LeaseToken[] = [];
    for (const end of ends) {
      const waiter = this.waiters.get(end.token);
      this.waiters.delete(end.token);
      for (const [hostId, held] of this.holding) {
        held.delete(end.token);
        if (held.size === 0) this.holding.delete(hostId);
      }
      waiter?.resolve(end.outcome ?? { kind: 'interrupted', reason: 'lost' });
      settled.push(end.token);
    }
    // The transitions these ends cause are written before the ends are marked applied.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await this.journal?.flushed();
    for (const token of settled) await leases.settle(token);
    for (const wake of this.endsSeen.splice(0)) wake();
  }

  /** Jobs clients wrote, taken in submission order. */
  private async intake(): Promise<void> {
    const pool = this.pool as pg.Pool;
    const engine = this.engine as Scheduler;
    const { rows } = await pool.query<{ id: string; spec: { [key: string]: JsonValue } }>(
      `SELECT id, spec FROM ${this.tables.jobs} WHERE state = 'submitted' ORDER BY seq LIMIT 10000`,
    );
    if (rows.length === 0) return;
    const specs = rows.map((row) => specFrom(row.id, row.spec));
    try {
      engine.submitAll(specs);
    } catch {
      // One at a time: each job the engine refuses fails with its reason; the others go in.
      for (const spec of specs) {
        try {
          engine.submit(spec);
        } catch (error) {
          await this.refuse(spec.id ?? '', messageOf(error));
        }
      }
    }
    await this.journal?.flushed();
    if (rows.length === 10_000) this.again = true;
  }

  /** A job the engine refused at intake: failed, with why. */
  private async refuse(id: string, message: string): Promise<void> {
    const status: StoredStatus = {
      state: 'failed',
      attempt: 0,
      endedAt: this.clock.now(),
      error: { kind: 'error', message },
    };
    (this.journal as LeaderJournal).update(id, status);
    await (this.journal as LeaderJournal).flushed();
  }

  /** Cancels and boosts clients asked for, in order. */
  private async requests(): Promise<void> {
    const pool = this.pool as pg.Pool;
    const engine = this.engine as Scheduler;
    const { rows } = await pool.query<{
      id: string;
      kind: string;
      body: { id?: string; target?: unknown; spec?: unknown };
    }>(`SELECT id, kind, body FROM ${this.tables.requests} WHERE done_at IS NULL ORDER BY id LIMIT 1000`);
    // Jobs a client wrote before asking are taken first (they committed before the request did):
    // a boost or cancel of a job submitted a moment ago finds it in the engine.
    if (rows.length > 0) await this.intake();
    for (const row of rows) {
      let answer: JsonValue;
      try {
        if (row.kind === 'cancel' && typeof row.body.id === 'string')
          answer = { cancelled: engine.cancel(row.body.id) };
        else if (row.kind === 'boost')
          answer = engine.boost(row.body.target as never, row.body.spec as never) as unknown as JsonValue;
        else answer = { error: `unknown request ${row.kind}` };
      } catch (error) {
        answer = { error: messageOf(error) };
      }
      await this.journal?.flushed();
      await pool.query(`UPDATE ${this.tables.requests} SET done_at = now(), answer = $2 WHERE id = $1`, [
        row.id,
        JSON.stringify(answer),
      ]);
    }
  }

  /** The handler of every job: runs its attempt on the host the engine placed it on. */
  private async run(context: HandlerContext): Promise<unknown> {
    const leases = this.leases as LeaseStore;
    const { allocation } = context;
    const epoch = this.members.get(allocation.nodeId);
    if (epoch === undefined) throw new Error(`host ${allocation.nodeId} is not in the pool any more`);
    const custom: Record<string, number> = {};
    for (const [name, amount] of Object.entries(allocation.custom))
      if (!name.startsWith(TYPE_RESOURCE_PREFIX)) custom[name] = amount;
    const request = {
      jobId: context.id,
      attempt: context.attempt,
      hostId: allocation.nodeId,
      epoch,
      allocation: { ...allocation, custom },
    };
    let assigned = await leases.assign(request);
    // An attempt of this job placed by the leader before is still stopping: this one waits for
    // its end (its units here stay held meanwhile), then goes.
    while (
      !assigned.ok &&
      assigned.reason === 'liveAttempt' &&
      !context.signal.aborted &&
      this.role === 'leader'
    ) {
      await new Promise<void>((resolve) => this.endsSeen.push(resolve));
      assigned = await leases.assign(request);
    }
    if (!assigned.ok)
      throw new Error(
        `attempt ${context.attempt} could not be assigned to host ${allocation.nodeId}: ${assigned.reason}`,
      );
    const token = assigned.token;
    const outcome = await new Promise<AttemptOutcome>((resolve) => {
      this.waiters.set(token, { resolve });
      const cancel = (): void => {
        void leases.requestCancel(token).catch((error: unknown) => {
          this.emit({ type: 'leader.error', at: this.clock.now(), message: `cancel: ${messageOf(error)}` });
        });
      };
      if (context.signal.aborted) cancel();
      else context.signal.addEventListener('abort', cancel, { once: true });
    });
    switch (outcome.kind) {
      case 'completed':
        return outcome.output;
      case 'failed':
        throw new Error(outcome.error.message);
      case 'cancelled':
      case 'timedOut':
        throw new Error(`attempt ${context.attempt} stopped on host ${allocation.nodeId}`);
      case 'interrupted':
        throw new Error(
          `attempt ${context.attempt} interrupted: host ${allocation.nodeId} ${outcome.reason}`,
        );
    }
  }
}

/** A leader of a global scheduler (not started: `start()` waits for the lead, then leads). */
export function createLeader(options: LeaderOptions): Leader {
  return new Leader(options);
}
