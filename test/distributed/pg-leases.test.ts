/**
 * `PgLeaseStore` on a real PostgreSQL (test/helpers/pg.ts: a fresh schema made by
 * `migratePostgres`, dropped after; skipped with a notice without a server, failing under CI=true).
 *
 * - Conformance: the model-based test's command sequences (lease-commands.ts) run on
 *   `PgLeaseStore` and `MemoryLeaseStore` side by side, in virtual time (both take the same injected
 *   clock): every answer of the PostgreSQL store must equal the fake's (and the model's), and the
 *   invariants are checked on both after every command.
 * - Races on real connections, made to collide by a third transaction that holds the contested
 *   lock until every racer waits on it: two leaders assigning one job (one wins, the other is told
 *   `liveAttempt`), a report racing `expire` (exactly one takes effect), heartbeats racing `expire`.
 * - The database's own clock when no `now` is given; notifications; `settle` inside the leader's
 *   transaction (rolled back with it).
 */
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  InvalidOptionError,
  MemoryLeaseStore,
  migratePostgres,
  PgLeaseStore,
  type AssignResult,
  type LeaseStore,
} from '../../src/index.js';
import { numRuns } from '../helpers/num-runs.js';
import { describePg, type PgTestDb } from '../helpers/pg.js';
import {
  commandArbitraries,
  InvariantTracker,
  LeaseModel,
  START_MS,
  type LeaseSystem,
} from './lease-commands.js';

const POOL = { id: 'h', cpu: 4 };
const ALLOCATION = { id: 'x', nodeId: 'h', cpu: 1, memoryMb: 1, gpus: [], custom: {} };

/**
 * Waits (yielding turns of the event loop, never sleeping) until `count` backends wait on a lock
 * in a statement on `schema` (other test files' waits are not counted), or `until.done`.
 */
async function waitersOnLock(
  client: pg.Client,
  schema: string,
  count: number,
  until: { done: boolean } = { done: false },
): Promise<void> {
  while (!until.done) {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()
         AND position($1 in query) > 0`,
      [schema],
    );
    if ((rows[0]?.n ?? 0) >= count) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

async function assigned(store: LeaseStore, jobId: string, hostId: string, epoch: number): Promise<number> {
  const r = await store.assign({ jobId, attempt: 1, hostId, epoch, allocation: ALLOCATION });
  if (!r.ok) throw new Error(`assign refused: ${r.reason}`);
  return r.token;
}

describePg('PgLeaseStore', (db: PgTestDb) => {
  const clock = { t: START_MS };
  const pools: pg.Pool[] = [];
  let schema: string;

  function pool(max = 4): pg.Pool {
    const p = new pg.Pool({ connectionString: db.url, max });
    p.on('error', () => {});
    pools.push(p);
    return p;
  }

  function store(options: { max?: number; now?: boolean } = {}): PgLeaseStore {
    return new PgLeaseStore({
      pool: pool(options.max),
      schema,
      ...(options.now === false ? {} : { now: () => clock.t }),
    });
  }

  async function reset(): Promise<void> {
    await db.client.query(
      `TRUNCATE ${schema}.hosts, ${schema}.attempts; ALTER SEQUENCE ${schema}.fence RESTART`,
    );
    clock.t = START_MS;
  }

  beforeAll(async () => {
    schema = db.schema;
    await migratePostgres(db.client, schema);
  });

  afterAll(async () => {
    for (const p of pools) await p.end();
  });

  it('answers every command sequence exactly as MemoryLeaseStore (and the model) do, invariants kept', async () => {
    const pgStore = store();
    await fc.assert(
      fc.asyncProperty(
        fc.commands(commandArbitraries, { maxCommands: 30, size: 'max' }),
        async (commands) => {
          await reset();
          const memory = new MemoryLeaseStore({ now: () => clock.t });
          const system: LeaseSystem = {
            stores: [
              { name: 'memory', store: memory, tracker: new InvariantTracker() },
              { name: 'postgres', store: pgStore, tracker: new InvariantTracker() },
            ],
            clock,
          };
          await fc.asyncModelRun(() => ({ model: new LeaseModel(), real: system }), commands);
        },
      ),
      { numRuns: numRuns(30) },
    );
  }, 120_000);

  it('two leaders assign one job at once: exactly one gets a token, the other is told liveAttempt', async () => {
    await reset();
    const [a, b] = [store(), store()];
    const { epoch } = await a.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 1000 });
    // A third transaction holds an uncommitted live attempt of the job: both leaders pass their
    // NOT EXISTS check (it is not visible to them) and wait on the one-live-attempt index.
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query(
      `INSERT INTO ${schema}.attempts (token, job_id, attempt, host_id, host_epoch, allocation, state, lease_until)
       VALUES (nextval('${schema}.fence'), 'j', 1, 'h', $1, '{}', 'assigned', now())`,
      [epoch],
    );
    const racing = Promise.all([
      a.assign({ jobId: 'j', attempt: 1, hostId: 'h', epoch, allocation: ALLOCATION }),
      b.assign({ jobId: 'j', attempt: 1, hostId: 'h', epoch, allocation: ALLOCATION }),
    ]);
    await waitersOnLock(db.client, schema, 2);
    await blocker.query('ROLLBACK');
    const answers: AssignResult[] = await racing;
    const winners = answers.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    expect(answers.filter((r) => !r.ok)).toEqual([{ ok: false, reason: 'liveAttempt' }]);
    const live = await a.live();
    expect(live.map((x) => [x.jobId, x.token])).toEqual([['j', (winners[0] as { token: number }).token]]);
  });

  /** Runs `first`, and once it waits on a lock `second`, and once both wait, `release`s the lock. */
  async function queued<A, B>(
    first: () => Promise<A>,
    second: () => Promise<B>,
    release: () => Promise<void>,
  ): Promise<[A, B]> {
    const a = first();
    await waitersOnLock(db.client, schema, 1);
    const b = second();
    const both = Promise.all([a, b]);
    await waitersOnLock(db.client, schema, 2);
    await release();
    return both;
  }

  it('a report racing expire: exactly one of them takes effect, whichever reaches the attempt first', async () => {
    await reset();
    const [agent, leader] = [store(), store()];
    for (const first of ['report', 'expire', 'report', 'expire'] as const) {
      const hostId = `h${clock.t}`;
      const { epoch } = await agent.register({ id: hostId, pool: POOL, types: ['t'], leaseMs: 100 });
      const token = await assigned(leader, `j${clock.t}`, hostId, epoch);
      expect(await agent.start(token)).toEqual({ accepted: true });
      clock.t += 101; // its lease ran out: expire() takes the host and its attempt
      // A third transaction holds the attempt's row; the two racers queue on it in the order given.
      const blocker = await db.connect();
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM ${schema}.attempts WHERE token = $1 FOR UPDATE`, [token]);
      const report = () => agent.report(token, { kind: 'completed', output: token });
      const expire = () => leader.expire();
      const release = async () => void (await blocker.query('ROLLBACK'));
      const [r, e] =
        first === 'report'
          ? await queued(report, expire, release)
          : await queued(expire, report, release).then(([x, y]) => [y, x] as const);
      const attempt = await leader.attempt(token);
      expect(e.lostHosts).toEqual([{ id: hostId, epoch }]);
      if (first === 'report') {
        expect(r).toEqual({ accepted: true });
        expect(e.expired).toEqual([]);
        expect(attempt).toMatchObject({ state: 'ended', outcome: { kind: 'completed', output: token } });
      } else {
        expect(r).toEqual({ accepted: false, reason: 'expired' });
        expect(e.expired.map((x) => x.token)).toEqual([token]);
        expect(attempt).toMatchObject({ state: 'expired', outcome: { kind: 'interrupted', reason: 'lost' } });
      }
      // Ended once: one end to settle.
      expect((await leader.ends()).filter((x) => x.token === token)).toHaveLength(1);
    }
  });

  it('heartbeats racing expire on many connections: a host is renewed or lost, never both, its attempt with it', async () => {
    const agents = store({ max: 8 });
    const leader = store();
    for (let round = 0; round < 5; round++) {
      await reset();
      const hosts = Array.from({ length: 8 }, (_, i) => `r${round}h${i}`);
      const epochs = new Map<string, number>();
      const tokens = new Map<string, number>();
      for (const hostId of hosts) {
        const { epoch } = await agents.register({ id: hostId, pool: POOL, types: ['t'], leaseMs: 100 });
        epochs.set(hostId, epoch);
        tokens.set(hostId, await assigned(leader, `j-${hostId}`, hostId, epoch));
      }
      clock.t += 101; // every lease ran out; whichever of heartbeat and expire comes first decides
      const beats = hosts.map(async (hostId) => agents.heartbeat(hostId, epochs.get(hostId) ?? 0));
      const [expired, ...answers] = await Promise.all([leader.expire(), ...beats]);
      const lost = new Set(expired.lostHosts.map((h) => h.id));
      const records = new Map((await leader.hosts()).map((h) => [h.id, h]));
      for (const [i, hostId] of hosts.entries()) {
        const token = tokens.get(hostId) ?? 0;
        const attempt = await leader.attempt(token);
        if (answers[i]?.ok) {
          expect(answers[i]).toEqual({ ok: true, live: [token], cancels: [] });
          expect(lost.has(hostId)).toBe(false);
          expect(records.get(hostId)?.state).toBe('alive');
          expect(attempt?.state).toBe('assigned');
        } else {
          expect(answers[i]).toEqual({ ok: false, reason: 'fenced' });
          expect(lost.has(hostId)).toBe(true);
          expect(records.get(hostId)?.state).toBe('lost');
          expect(attempt?.state).toBe('expired');
        }
      }
      expect(expired.expired.map((a) => a.token).sort((x, y) => x - y)).toEqual(
        hosts.filter((h) => lost.has(h)).map((h) => tokens.get(h)),
      );
    }
  });

  it('a heartbeat that reaches the host row after expire took it is fenced, one before it renews', async () => {
    const [agent, leader] = [store(), store()];
    for (const first of ['heartbeat', 'expire'] as const) {
      await reset();
      const hostId = `h-${first}`;
      const { epoch } = await agent.register({ id: hostId, pool: POOL, types: ['t'], leaseMs: 100 });
      const token = await assigned(leader, `j-${hostId}`, hostId, epoch);
      clock.t += 101;
      const blocker = await db.connect();
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM ${schema}.hosts WHERE id = $1 FOR UPDATE`, [hostId]);
      const beat = () => agent.heartbeat(hostId, epoch);
      const expire = () => leader.expire();
      const release = async () => void (await blocker.query('ROLLBACK'));
      const [h, e] =
        first === 'heartbeat'
          ? await queued(beat, expire, release)
          : await queued(expire, beat, release).then(([x, y]) => [y, x] as const);
      if (first === 'heartbeat') {
        expect(h).toEqual({ ok: true, live: [token], cancels: [] });
        expect(e).toEqual({ lostHosts: [], expired: [] });
      } else {
        expect(h).toEqual({ ok: false, reason: 'fenced' });
        expect(e.lostHosts).toEqual([{ id: hostId, epoch }]);
        expect(e.expired.map((a) => a.token)).toEqual([token]);
      }
    }
  });

  it('two leaders expire at once: each lost host and each expired attempt is reported by exactly one', async () => {
    await reset();
    const [one, two, agents] = [store(), store(), store()];
    const tokens: number[] = [];
    for (let i = 0; i < 12; i++) {
      const { epoch } = await agents.register({ id: `h${i}`, pool: POOL, types: ['t'], leaseMs: 100 });
      tokens.push(await assigned(one, `j${i}`, `h${i}`, epoch));
    }
    clock.t += 101;
    // A third transaction holds the first host's row: both expires queue on it, then collide.
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM ${schema}.hosts WHERE id = 'h0' FOR UPDATE`);
    const [a, b] = await queued(
      () => one.expire(),
      () => two.expire(),
      async () => void (await blocker.query('ROLLBACK')),
    );
    const lost = [...a.lostHosts, ...b.lostHosts].map((h) => h.id).sort();
    expect(lost).toEqual(Array.from({ length: 12 }, (_, i) => `h${i}`).sort());
    const expired = [...a.expired, ...b.expired].map((x) => x.token).sort((x, y) => x - y);
    expect(expired).toEqual(tokens);
    expect((await one.ends()).map((x) => x.token)).toEqual(tokens);
  });

  it('the same report sent twice at once on two connections is accepted once', async () => {
    await reset();
    const [one, two] = [store(), store()];
    const { epoch } = await one.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 });
    for (let i = 0; i < 10; i++) {
      const token = await assigned(one, `j${i}`, 'h', epoch);
      const answers = await Promise.all([
        one.report(token, { kind: 'completed', output: 1 }),
        two.report(token, { kind: 'completed', output: 2 }),
      ]);
      expect(answers.filter((r) => r.accepted)).toHaveLength(1);
      expect(answers.filter((r) => !r.accepted)).toEqual([{ accepted: false, reason: 'ended' }]);
      const output = answers[0]?.accepted ? 1 : 2;
      expect((await one.attempt(token))?.outcome).toEqual({ kind: 'completed', output });
    }
  });

  it('assign racing register: an attempt assigned at the old epoch is expired by it, never left live', async () => {
    await reset();
    const [leader, agent] = [store(), store()];
    const { epoch } = await agent.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 });
    // The assign reads the host alive at epoch 1, then waits to insert (a third transaction holds
    // an uncommitted live attempt of the job); the agent registers again meanwhile.
    const blocker = await db.connect();
    await blocker.query('BEGIN');
    await blocker.query(
      `INSERT INTO ${schema}.attempts (token, job_id, attempt, host_id, host_epoch, allocation, state, lease_until)
       VALUES (nextval('${schema}.fence'), 'j', 1, 'h', $1, '{}', 'assigned', now())`,
      [epoch],
    );
    const assigning = leader.assign({ jobId: 'j', attempt: 1, hostId: 'h', epoch, allocation: ALLOCATION });
    await waitersOnLock(db.client, schema, 1);
    const registered = { done: false };
    const registering = agent.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 }).finally(() => {
      registered.done = true;
    });
    await waitersOnLock(db.client, schema, 2, registered); // the register waits on the assign's share lock
    await blocker.query('ROLLBACK');
    const [assigned, again] = await Promise.all([assigning, registering]);
    expect(assigned.ok).toBe(true);
    expect(again.epoch).toBe(2);
    expect(again.expired.map((a) => a.token)).toEqual([(assigned as { token: number }).token]);
    expect(await leader.live()).toEqual([]);
  });

  it('a host is lost only past its lease: not at exactly heartbeatAt + leaseMs', async () => {
    await reset();
    const leases = store();
    const { epoch } = await leases.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 });
    const token = await assigned(leases, 'j', 'h', epoch);
    clock.t += 100;
    expect(await leases.expire()).toEqual({ lostHosts: [], expired: [] });
    clock.t += 1;
    expect(await leases.expire()).toMatchObject({ lostHosts: [{ id: 'h', epoch }], expired: [{ token }] });
  });

  it('without now, times are the database clock’s', async () => {
    await reset();
    const real = store({ now: false });
    const { rows } = await db.client.query<{ now: number }>(
      `SELECT (extract(epoch from clock_timestamp()) * 1000)::float8 AS now`,
    );
    const before = rows[0]?.now ?? 0;
    const { epoch } = await real.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 60_000 });
    const token = await assigned(real, 'j', 'h', epoch);
    const [host] = await real.hosts();
    const attempt = await real.attempt(token);
    expect(host?.heartbeatAt).toBeGreaterThanOrEqual(before);
    expect(attempt?.createdAt).toBeGreaterThanOrEqual(host?.heartbeatAt ?? Infinity);
    expect(attempt?.leaseUntil).toBe((attempt?.createdAt ?? 0) + 60_000);
    expect(await real.expire()).toEqual({ lostHosts: [], expired: [] });
    expect(await real.heartbeat('h', epoch)).toEqual({ ok: true, live: [token], cancels: [] });
    expect(await real.report(token, { kind: 'completed' })).toEqual({ accepted: true });
    expect((await real.attempt(token))?.endedAt).toBeGreaterThanOrEqual(attempt?.createdAt ?? Infinity);
  });

  it('notifies the host of an assignment and a cancel, and the leader of a report', async () => {
    await reset();
    const leases = store();
    const listener = await db.connect();
    const heard: Array<[string, string | undefined]> = [];
    let wake: () => void = () => {};
    listener.on('notification', (n) => {
      heard.push([n.channel, n.payload]);
      wake();
    });
    const heardAt = async (count: number) => {
      while (heard.length < count) await new Promise<void>((resolve) => (wake = resolve));
    };
    await listener.query(`LISTEN "${schema}_ai_batch_host"; LISTEN "${schema}_ai_batch_reports"`);
    const { epoch } = await leases.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 });
    const token = await assigned(leases, 'j', 'h', epoch);
    await heardAt(1);
    await leases.requestCancel(token);
    await heardAt(2);
    await leases.report(token, { kind: 'cancelled' });
    await heardAt(3);
    expect(heard).toEqual([
      [`${schema}_ai_batch_host`, 'h'],
      [`${schema}_ai_batch_host`, 'h'],
      [`${schema}_ai_batch_reports`, String(token)],
    ]);
  });

  it('settle in the leader’s transaction commits and rolls back with it', async () => {
    await reset();
    const leases = store();
    const { epoch } = await leases.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 });
    const token = await assigned(leases, 'j', 'h', epoch);
    await leases.report(token, { kind: 'failed', error: { kind: 'error', message: 'boom' } });
    const tx = await db.connect();
    await tx.query('BEGIN');
    expect(await leases.settle(token, tx)).toEqual({ accepted: true });
    await tx.query('ROLLBACK');
    expect((await leases.ends()).map((a) => a.token)).toEqual([token]);
    await tx.query('BEGIN');
    expect(await leases.settle(token, tx)).toEqual({ accepted: true });
    await tx.query('COMMIT');
    expect(await leases.ends()).toEqual([]);
    expect(await leases.settle(token)).toEqual({ accepted: false, reason: 'settled' });
  });
});

it('PgLeaseStore refuses a bad schema name or a missing pool with InvalidOptionError', () => {
  expect(() => new PgLeaseStore({ pool: {} as pg.Pool, schema: 'Bad-Name' })).toThrow(InvalidOptionError);
  expect(() => new PgLeaseStore({ pool: undefined as unknown as pg.Pool })).toThrow(InvalidOptionError);
});
