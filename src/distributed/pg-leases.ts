/**
 * `PgLeaseStore`: the lease and fencing protocol (see ./leases.ts) on the version-1 tables of
 * docs/distributed.md — `hosts`, `attempts` and the sequence `fence` in one schema, made by
 * `migrate`. Every operation is one statement, or one transaction on one pooled connection, and is
 * safe under concurrent callers on other connections (other leaders, agents, a late report):
 *
 * - a write that depends on an attempt's state names that state in its `WHERE` clause
 *   (`token = $1 AND state IN ('assigned', 'running')`), and the row count decides the answer —
 *   of a report racing `expire`, exactly one takes effect;
 * - a write that depends on a host's row locks it first (`assign` takes it `FOR SHARE`, so a
 *   concurrent `register` or `expire` waits for the new attempt, then sees and expires it; `leave`
 *   and `expire` take it `FOR UPDATE`, `expire` in id order so two of them never deadlock), and
 *   the attempts are read or written in a later statement of the same transaction, which sees
 *   every attempt committed meanwhile;
 * - two leaders assigning one job at once: the partial unique index (one live attempt per job)
 *   refuses the second insert; that is answered `liveAttempt` (its sequence number is lost, which
 *   is allowed: tokens rise and are never reused, they need not be dense).
 *
 * Times are the database's `clock_timestamp()` (read once per transaction), or the injected
 * `now()` (ms) when one is given — then the SQL takes the time as a parameter, and tests run in
 * virtual time. Times come back as ms since the epoch.
 *
 * Notifications (sent at commit): `assign` and `requestCancel` notify the host channel with the
 * host id; an accepted `report`, and a `register` that expired earlier attempts, notify the reports
 * channel with the token(s).
 */
import type { ClientBase, Pool, PoolClient } from 'pg';
import { InvalidOptionError } from '../core/errors.js';
import { channelNames, DEFAULT_POSTGRES_SCHEMA, quoteIdent, validateSchemaName } from '../pg/target.js';
import {
  checkAssign,
  checkHost,
  checkOutcome,
  checkRegistration,
  checkToken,
  storedOutcome,
  type AssignRequest,
  type AssignResult,
  type AttemptOutcome,
  type AttemptRecord,
  type AttemptState,
  type ExpireResult,
  type HeartbeatResult,
  type HostRecord,
  type HostRegistration,
  type HostState,
  type LeaseStore,
  type LeaseToken,
  type LeaveResult,
  type RegisterResult,
  type ReportedOutcome,
  type SettleResult,
  type TokenResult,
} from './leases.js';
import type { Allocation } from '../core/types.js';
import type { JsonValue } from '../store/store.js';

export type PgLeaseStoreOptions = {
  /** Connections to the database (each transaction takes one for its length). */
  pool: Pool;
  /** The schema `migrate` made (an unquoted identifier). @default 'ai_batch' */
  schema?: string;
  /**
   * The store's clock (ms since the epoch), for tests in virtual time. Without it every time is the
   * database's `clock_timestamp()`, so no host's clock matters.
   */
  now?: () => number;
};

const LIVE = `('assigned', 'running')`;
const UNIQUE_VIOLATION = '23505';
/** Deadlock detected, serialization failure: the transaction is run again. */
const RETRYABLE = new Set(['40P01', '40001']);
const TRIES = 3;

type AttemptRow = {
  token: string;
  job_id: string;
  attempt: number;
  host_id: string;
  host_epoch: string;
  allocation: Allocation;
  state: AttemptState;
  lease_until: number;
  cancel_requested: boolean;
  outcome: AttemptOutcome | null;
  settled: boolean;
  created_at: number;
  ended_at: number | null;
};

type HostRow = {
  id: string;
  epoch: string;
  pool: JsonValue;
  types: string[];
  lease_ms: number;
  heartbeat_at: number;
  state: HostState;
};

function ms(column: string): string {
  return `(extract(epoch from ${column}) * 1000)::float8`;
}

/** The attempt columns, as `toAttempt` reads them, of the table alias `a`. */
const ATTEMPT_COLUMNS = [
  'a.token::text AS token',
  'a.job_id',
  'a.attempt',
  'a.host_id',
  'a.host_epoch::text AS host_epoch',
  'a.allocation',
  'a.state',
  `${ms('a.lease_until')} AS lease_until`,
  'a.cancel_requested',
  'a.outcome',
  'a.settled',
  `${ms('a.created_at')} AS created_at`,
  `${ms('a.ended_at')} AS ended_at`,
].join(', ');

function toAttempt(row: AttemptRow): AttemptRecord {
  return {
    token: Number(row.token),
    jobId: row.job_id,
    attempt: row.attempt,
    hostId: row.host_id,
    hostEpoch: Number(row.host_epoch),
    allocation: row.allocation,
    state: row.state,
    leaseUntil: row.lease_until,
    cancelRequested: row.cancel_requested,
    outcome: row.outcome,
    settled: row.settled,
    createdAt: row.created_at,
    endedAt: row.ended_at,
  };
}

function toHost(row: HostRow): HostRecord {
  return {
    id: row.id,
    epoch: Number(row.epoch),
    pool: row.pool,
    types: row.types,
    leaseMs: row.lease_ms,
    heartbeatAt: row.heartbeat_at,
    state: row.state,
  };
}

function byToken(a: AttemptRecord, b: AttemptRecord): number {
  return a.token - b.token;
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

export class PgLeaseStore implements LeaseStore {
  private readonly pool: Pool;
  private readonly clock: (() => number) | undefined;
  private readonly hostsTable: string;
  private readonly attemptsTable: string;
  private readonly fence: string;
  private readonly hostChannel: string;
  private readonly reportsChannel: string;

  constructor(options: PgLeaseStoreOptions) {
    const schema = validateSchemaName(options.schema ?? DEFAULT_POSTGRES_SCHEMA);
    if (typeof options.pool?.connect !== 'function' || typeof options.pool?.query !== 'function') {
      throw new InvalidOptionError('pool', options.pool, 'a pg.Pool');
    }
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new InvalidOptionError('now', options.now, 'a function returning ms since the epoch');
    }
    this.pool = options.pool;
    this.clock = options.now;
    const s = quoteIdent(schema);
    this.hostsTable = `${s}.hosts`;
    this.attemptsTable = `${s}.attempts`;
    this.fence = quoteLiteral(`${s}.fence`);
    const channels = channelNames(schema);
    this.hostChannel = channels.host;
    this.reportsChannel = channels.reports;
  }

  async register(host: HostRegistration): Promise<RegisterResult> {
    checkRegistration(host);
    return this.transaction(async (client) => {
      const at = await this.timeOf(client);
      const params: unknown[] = [host.id, JSON.stringify(host.pool), host.types, host.leaseMs];
      const t = this.stamp(params, at);
      const { rows } = await client.query<{ epoch: string }>(
        `INSERT INTO ${this.hostsTable} AS h (id, epoch, pool, types, lease_ms, heartbeat_at, state)
         VALUES ($1, 1, $2::jsonb, $3::text[], $4, ${t}, 'alive')
         ON CONFLICT (id) DO UPDATE SET epoch = h.epoch + 1, pool = EXCLUDED.pool, types = EXCLUDED.types,
           lease_ms = EXCLUDED.lease_ms, heartbeat_at = EXCLUDED.heartbeat_at, state = 'alive'
         RETURNING epoch::text AS epoch`,
        params,
      );
      const epoch = Number(rows[0]?.epoch);
      const expired = await this.expireAttempts(
        client,
        `a.host_id = $1 AND a.host_epoch < $2`,
        [host.id, epoch],
        'reregistered',
        at,
      );
      if (expired.length > 0) await this.notifyReports(client, expired);
      return { epoch, expired };
    });
  }

  async heartbeat(hostId: string, epoch: number): Promise<HeartbeatResult> {
    checkHost(hostId, epoch);
    return this.transaction(async (client) => {
      const at = await this.timeOf(client);
      const hostParams: unknown[] = [hostId, epoch];
      const renewed = await client.query<{ lease_ms: number }>(
        `UPDATE ${this.hostsTable} SET heartbeat_at = ${this.stamp(hostParams, at)}
         WHERE id = $1 AND epoch = $2 AND state = 'alive' RETURNING lease_ms`,
        hostParams,
      );
      const leaseMs = renewed.rows[0]?.lease_ms;
      if (leaseMs === undefined) return { ok: false, reason: 'fenced' } as const;
      const params: unknown[] = [hostId, epoch, leaseMs];
      const { rows } = await client.query<{ token: string; cancel_requested: boolean }>(
        `UPDATE ${this.attemptsTable}
         SET lease_until = ${this.stamp(params, at)} + $3 * interval '1 millisecond'
         WHERE host_id = $1 AND host_epoch = $2 AND state IN ${LIVE}
         RETURNING token::text AS token, cancel_requested`,
        params,
      );
      const sorted = rows
        .map((r) => ({ token: Number(r.token), cancel: r.cancel_requested }))
        .sort((a, b) => a.token - b.token);
      return {
        ok: true,
        live: sorted.map((r) => r.token),
        cancels: sorted.filter((r) => r.cancel).map((r) => r.token),
      } as const;
    });
  }

  async assign(request: AssignRequest): Promise<AssignResult> {
    checkAssign(request);
    try {
      return await this.transaction(async (client): Promise<AssignResult> => {
        const at = await this.timeOf(client);
        const host = await client.query<{ lease_ms: number }>(
          `SELECT lease_ms FROM ${this.hostsTable} WHERE id = $1 AND epoch = $2 AND state = 'alive' FOR SHARE`,
          [request.hostId, request.epoch],
        );
        const leaseMs = host.rows[0]?.lease_ms;
        if (leaseMs === undefined) return { ok: false, reason: 'hostNotAlive' };
        const params: unknown[] = [
          request.jobId,
          request.attempt,
          request.hostId,
          request.epoch,
          JSON.stringify(request.allocation),
          leaseMs,
        ];
        const t = this.stamp(params, at);
        // nextval runs only when the row passes the WHERE: a refused assign takes no token.
        const { rows } = await client.query<{ token: string }>(
          `INSERT INTO ${this.attemptsTable}
             (token, job_id, attempt, host_id, host_epoch, allocation, state, lease_until, created_at)
           SELECT nextval(${this.fence}), $1::text, $2::integer, $3::text, $4::bigint, $5::jsonb, 'assigned',
             ${t} + $6 * interval '1 millisecond', ${t}
           WHERE NOT EXISTS (SELECT 1 FROM ${this.attemptsTable} WHERE job_id = $1::text AND state IN ${LIVE})
           RETURNING token::text AS token`,
          params,
        );
        const token = rows[0]?.token;
        if (token === undefined) return { ok: false, reason: 'liveAttempt' };
        await client.query(`SELECT pg_notify($1, $2)`, [this.hostChannel, request.hostId]);
        return { ok: true, token: Number(token) };
      });
    } catch (error) {
      // Another leader inserted a live attempt of this job meanwhile (the one-live-attempt index).
      if (errorCode(error) === UNIQUE_VIOLATION) return { ok: false, reason: 'liveAttempt' };
      throw error;
    }
  }

  async start(token: LeaseToken): Promise<TokenResult> {
    checkToken(token);
    return this.onLiveAttempt(token, `state = 'running'`, []);
  }

  async report(token: LeaseToken, outcome: ReportedOutcome): Promise<TokenResult> {
    checkToken(token);
    checkOutcome(outcome);
    const params: unknown[] = [token, JSON.stringify(storedOutcome(outcome))];
    const t = this.stamp(params, this.clock?.());
    params.push(this.reportsChannel);
    return this.onLiveAttempt(
      token,
      `state = 'ended', outcome = $2::jsonb, ended_at = ${t}`,
      params,
      `pg_notify($${params.length}, token::text)`,
    );
  }

  async requestCancel(token: LeaseToken): Promise<TokenResult> {
    checkToken(token);
    return this.onLiveAttempt(
      token,
      `cancel_requested = true`,
      [token, this.hostChannel],
      `pg_notify($2, host_id)`,
    );
  }

  async leave(hostId: string, epoch: number): Promise<LeaveResult> {
    checkHost(hostId, epoch);
    return this.transaction(async (client): Promise<LeaveResult> => {
      const host = await client.query(
        `SELECT 1 FROM ${this.hostsTable} WHERE id = $1 AND epoch = $2 AND state = 'alive' FOR UPDATE`,
        [hostId, epoch],
      );
      if (host.rowCount === 0) return { ok: false, reason: 'fenced' };
      const { rows } = await client.query<{ token: string }>(
        `SELECT token::text AS token FROM ${this.attemptsTable}
         WHERE host_id = $1 AND host_epoch = $2 AND state IN ${LIVE} ORDER BY token`,
        [hostId, epoch],
      );
      if (rows.length > 0)
        return { ok: false, reason: 'liveAttempts', live: rows.map((r) => Number(r.token)) };
      await client.query(`UPDATE ${this.hostsTable} SET state = 'left' WHERE id = $1 AND epoch = $2`, [
        hostId,
        epoch,
      ]);
      return { ok: true };
    });
  }

  async expire(): Promise<ExpireResult> {
    return this.transaction(async (client) => {
      const at = await this.timeOf(client);
      const params: unknown[] = [];
      // Locked in id order (two leaders' expire never deadlock); a row a heartbeat renewed
      // meanwhile is checked again on its new version, and left out.
      const { rows } = await client.query<{ id: string; epoch: string }>(
        `SELECT id, epoch::text AS epoch FROM ${this.hostsTable}
         WHERE state = 'alive' AND heartbeat_at + lease_ms * interval '1 millisecond' < ${this.stamp(params, at)}
         ORDER BY id COLLATE "C" FOR UPDATE`,
        params,
      );
      if (rows.length === 0) return { lostHosts: [], expired: [] };
      const ids = rows.map((r) => r.id);
      const epochs = rows.map((r) => r.epoch);
      await client.query(`UPDATE ${this.hostsTable} SET state = 'lost' WHERE id = ANY($1::text[])`, [ids]);
      const expired = await this.expireAttempts(
        client,
        `(a.host_id, a.host_epoch) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`,
        [ids, epochs],
        'lost',
        at,
      );
      return { lostHosts: rows.map((r) => ({ id: r.id, epoch: Number(r.epoch) })), expired };
    });
  }

  async ends(): Promise<AttemptRecord[]> {
    const { rows } = await this.pool.query<AttemptRow>(
      `SELECT ${ATTEMPT_COLUMNS} FROM ${this.attemptsTable} a
       WHERE a.state IN ('ended', 'expired') AND NOT a.settled ORDER BY a.ended_at, a.token`,
    );
    return rows.map(toAttempt);
  }

  /**
   * Marks an ended or expired attempt applied. Give `within` (a client in a transaction) to settle
   * it in the transaction that writes its job's transition, so the two commit together.
   */
  async settle(token: LeaseToken, within?: ClientBase): Promise<SettleResult> {
    checkToken(token);
    const db = within ?? this.pool;
    const done = await db.query(
      `UPDATE ${this.attemptsTable} SET settled = true
       WHERE token = $1 AND state IN ('ended', 'expired') AND NOT settled`,
      [token],
    );
    if (done.rowCount === 1) return { accepted: true };
    const { rows } = await db.query<{ state: AttemptState; settled: boolean }>(
      `SELECT state, settled FROM ${this.attemptsTable} WHERE token = $1`,
      [token],
    );
    const row = rows[0];
    if (!row) return { accepted: false, reason: 'unknown' };
    return { accepted: false, reason: row.settled ? 'settled' : 'live' };
  }

  async live(): Promise<AttemptRecord[]> {
    const { rows } = await this.pool.query<AttemptRow>(
      `SELECT ${ATTEMPT_COLUMNS} FROM ${this.attemptsTable} a WHERE a.state IN ${LIVE} ORDER BY a.token`,
    );
    return rows.map(toAttempt);
  }

  async attempt(token: LeaseToken): Promise<AttemptRecord | undefined> {
    checkToken(token);
    const { rows } = await this.pool.query<AttemptRow>(
      `SELECT ${ATTEMPT_COLUMNS} FROM ${this.attemptsTable} a WHERE a.token = $1`,
      [token],
    );
    return rows[0] && toAttempt(rows[0]);
  }

  async hosts(): Promise<HostRecord[]> {
    const { rows } = await this.pool.query<HostRow>(
      `SELECT id, epoch::text AS epoch, pool, types, lease_ms, ${ms('heartbeat_at')} AS heartbeat_at, state
       FROM ${this.hostsTable} ORDER BY id COLLATE "C"`,
    );
    return rows.map(toHost);
  }

  /**
   * One statement on a live attempt: `UPDATE … SET <set> WHERE token = $1 AND state IN (live)`,
   * then `select` (e.g. a notification) for the updated row. When no row was updated, a second
   * read says why: unknown, ended or expired.
   */
  private async onLiveAttempt(
    token: LeaseToken,
    set: string,
    params: unknown[],
    select = '1',
  ): Promise<TokenResult> {
    const all = params.length === 0 ? [token] : params;
    const done = await this.pool.query(
      `WITH u AS (UPDATE ${this.attemptsTable} SET ${set} WHERE token = $1 AND state IN ${LIVE}
                  RETURNING token, host_id)
       SELECT ${select} FROM u`,
      all,
    );
    if (done.rowCount === 1) return { accepted: true };
    const { rows } = await this.pool.query<{ state: AttemptState }>(
      `SELECT state FROM ${this.attemptsTable} WHERE token = $1`,
      [token],
    );
    const state = rows[0]?.state;
    if (state === 'ended' || state === 'expired') return { accepted: false, reason: state };
    return { accepted: false, reason: 'unknown' };
  }

  /** Expires the live attempts `where` picks (alias `a`; `params` from $1), by token. */
  private async expireAttempts(
    client: PoolClient,
    where: string,
    params: unknown[],
    reason: 'lost' | 'reregistered',
    at: number | undefined,
  ): Promise<AttemptRecord[]> {
    const all = [...params, JSON.stringify({ kind: 'interrupted', reason })];
    const outcome = `$${all.length}::jsonb`;
    const t = this.stamp(all, at);
    const { rows } = await client.query<AttemptRow>(
      `UPDATE ${this.attemptsTable} a SET state = 'expired', outcome = ${outcome}, ended_at = ${t}
       WHERE ${where} AND a.state IN ${LIVE}
       RETURNING ${ATTEMPT_COLUMNS}`,
      all,
    );
    return rows.map(toAttempt).sort(byToken);
  }

  private async notifyReports(client: PoolClient, attempts: AttemptRecord[]): Promise<void> {
    await client.query(`SELECT pg_notify($1, $2)`, [
      this.reportsChannel,
      attempts.map((a) => a.token).join(','),
    ]);
  }

  /** The time a transaction works at: the injected clock's, or the database's read once. */
  private async timeOf(client: PoolClient): Promise<number | undefined> {
    if (this.clock) return this.clock();
    const { rows } = await client.query<{ now: number }>(`SELECT ${ms('clock_timestamp()')} AS now`);
    return rows[0]?.now;
  }

  /** SQL for the time `at` (ms), as a parameter pushed onto `params`; the database's clock without one. */
  private stamp(params: unknown[], at: number | undefined): string {
    if (at === undefined) return 'clock_timestamp()';
    params.push(at);
    return `to_timestamp($${params.length}::float8 / 1000)`;
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      for (let tries = 1; ; tries++) {
        await client.query('BEGIN');
        try {
          const result = await work(client);
          await client.query('COMMIT');
          return result;
        } catch (error) {
          try {
            await client.query('ROLLBACK');
          } catch (rollbackError) {
            broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
            throw error;
          }
          if (tries < TRIES && RETRYABLE.has(errorCode(error) ?? '')) continue;
          throw error;
        }
      }
    } finally {
      client.release(broken);
    }
  }
}
