/**
 * The global scheduler on the real PostgreSQL server (issue 17): a leader, agents and a client in
 * one process, each with its own connections, talking only through the database. Timers run on
 * virtual clocks the tests never advance (leases on the database's clock are a minute long and run
 * out only where a test says so); every wait is on a result, an event or a NOTIFY-driven pass.
 */
import pg from 'pg';
import { filter, firstValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { createClient, migratePostgres, type HandlerContext } from '../../src/index.js';
import { createAgent, type Agent } from '../../src/distributed/agent.js';
import { createLeader, type Leader, type LeaderEvent } from '../../src/distributed/leader.js';
import type { LeaseStore } from '../../src/distributed/leases.js';
import { PgLeaseStore } from '../../src/distributed/pg-leases.js';
import { createVirtualClock, type VirtualClock } from '../../src/runtime/clock.js';
import { describePg, type PgTestDb } from '../helpers/pg.js';

type Work = { n: number; failUntil?: number; hold?: boolean };

/** What ran where: each attempt's host, and the most GPUs a host ran at once. */
type Ledger = {
  ran: Array<{ id: string; attempt: number; host: string }>;
  busyGpus: Map<string, number>;
  peakGpus: Map<string, number>;
  /** Attempts held open (`hold`): released by the test. */
  held: Map<string, () => void>;
  /** A held attempt told to stop stops once this settles (a process taking its time to exit). */
  stopGate: Promise<void>;
};

function newLedger(): Ledger {
  return { ran: [], busyGpus: new Map(), peakGpus: new Map(), held: new Map(), stopGate: Promise.resolve() };
}

function agentOn(
  db: PgTestDb,
  schema: string,
  host: string,
  gpus: number,
  types: string[],
  ledger: Ledger,
): Agent {
  const work = async ({ id, attempt, payload, allocation, signal }: HandlerContext<Work>) => {
    ledger.ran.push({ id, attempt, host });
    const used = allocation.gpus.length;
    const busy = (ledger.busyGpus.get(host) ?? 0) + used;
    ledger.busyGpus.set(host, busy);
    ledger.peakGpus.set(host, Math.max(ledger.peakGpus.get(host) ?? 0, busy));
    try {
      if (payload.hold)
        await new Promise<void>((resolve, reject) => {
          ledger.held.set(id, resolve);
          signal.addEventListener(
            'abort',
            () => void ledger.stopGate.then(() => reject(new Error('stopped'))),
          );
        });
      if (attempt <= (payload.failUntil ?? 0)) throw new Error(`attempt ${attempt} failed on ${host}`);
      return { n: payload.n, host };
    } finally {
      ledger.busyGpus.set(host, (ledger.busyGpus.get(host) ?? 0) - used);
    }
  };
  const handlers: Record<string, typeof work> = {};
  for (const type of types) handlers[type] = work;
  return createAgent({
    db: db.url,
    schema,
    host: { id: host, leaseMs: 60_000 },
    resources: { cpu: 8, memoryMb: 16_384, gpus: Array.from({ length: gpus }, () => ({ vramMb: 24_000 })) },
    clock: createVirtualClock(),
    handlers,
  });
}

/**
 * Moves a leader's virtual clock on while a test waits for something else (a result, an event):
 * its engine's scheduling ticks and its own checks run, 50 virtual ms per turn of the event loop.
 * No real time is waited for. Returns the stop function.
 */
function pump(clock: VirtualClock): () => void {
  let on = true;
  void (async () => {
    while (on) {
      await clock.advanceBy(50);
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return () => {
    on = false;
  };
}

const next = (leader: Leader, predicate: (e: LeaderEvent) => boolean) =>
  firstValueFrom(leader.events$.pipe(filter(predicate)));

describePg('the leader', (db) => {
  it('places jobs by resources and by the types each host serves, runs them on agents, and clients get their results', async () => {
    const schema = db.newSchema();
    await migratePostgres(db.client, schema);
    const ledger = newLedger();
    const clock = createVirtualClock();
    const leader = createLeader({ db: db.url, schema, clock, engine: { retry: { attempts: 3 } } });
    let stopPump = (): void => undefined;
    const client = await createClient({ db: db.url, schema });
    const small = agentOn(db, schema, 'small', 1, ['embed'], ledger);
    const big = agentOn(db, schema, 'big', 2, ['embed', 'render'], ledger);
    try {
      await leader.start();
      expect(leader.state).toBe('leader');
      const handles = await client.submitAll([
        { id: 'two-gpus', type: 'embed', payload: { n: 1 }, resources: { gpu: 2 } },
        { id: 'render', type: 'render', payload: { n: 2 }, resources: { gpu: 1 } },
        { id: 'flaky', type: 'embed', payload: { n: 3, failUntil: 1 } as Work, resources: { gpu: 1 } },
        ...Array.from({ length: 6 }, (_, i) => ({
          id: `e${i}`,
          type: 'embed',
          payload: { n: 10 + i },
          resources: { gpu: 1 },
          ...(i > 0 ? { dependsOn: [`e${i - 1}`] } : {}),
        })),
      ]);
      // No host yet: the jobs wait (taken by the leader, nowhere to go).
      await leader.check();
      expect((await client.get('two-gpus'))?.state).toBe('queued');
      await small.start();
      await big.start();
      stopPump = pump(clock);
      const results = await Promise.all(handles.map((h) => h.result));
      expect(results.map((r) => (r as { n: number }).n)).toEqual([1, 2, 3, 10, 11, 12, 13, 14, 15]);
      // Only the big host has two GPUs, and only it serves render.
      expect(ledger.ran.filter((r) => r.id === 'two-gpus' || r.id === 'render').map((r) => r.host)).toEqual([
        'big',
        'big',
      ]);
      expect(ledger.ran.filter((r) => r.id === 'flaky').map((r) => r.attempt)).toEqual([1, 2]);
      // The chain ran in order; no host ran more GPUs than it has.
      const chain = ledger.ran.filter((r) => r.id.startsWith('e')).map((r) => r.id);
      expect(chain).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5']);
      expect(ledger.peakGpus.get('small') ?? 0).toBeLessThanOrEqual(1);
      expect(ledger.peakGpus.get('big') ?? 0).toBeLessThanOrEqual(2);
      expect(await client.get('flaky')).toMatchObject({ state: 'completed', attempt: 2 });
      // Each attempt once on the database, every end applied.
      const { rows } = await db.client.query(
        `SELECT job_id, attempt, state, settled FROM "${schema}".attempts ORDER BY token`,
      );
      expect(rows.filter((r: { job_id: string }) => r.job_id === 'flaky')).toEqual([
        { job_id: 'flaky', attempt: 1, state: 'ended', settled: true },
        { job_id: 'flaky', attempt: 2, state: 'ended', settled: true },
      ]);
      expect(rows).toHaveLength(10);
    } finally {
      stopPump();
      await Promise.all([small.stop({ mode: 'cancel' }), big.stop({ mode: 'cancel' })]);
      await leader.stop();
      await client.close();
    }
  });

  it('a client boost and cancel: the boosted job goes first; a cancel stops a running job on its host, ended once the host says it stopped', async () => {
    const schema = db.newSchema();
    await migratePostgres(db.client, schema);
    const ledger = newLedger();
    const clock = createVirtualClock();
    const leader = createLeader({ db: db.url, schema, clock });
    const client = await createClient({ db: db.url, schema });
    const agent = agentOn(db, schema, 'h1', 1, ['embed'], ledger);
    let stopPump = (): void => undefined;
    try {
      await leader.start();
      await agent.start();
      stopPump = pump(clock);
      const started = firstValueFrom(agent.events$.pipe(filter((e) => e.type === 'attempt.started')));
      const [job] = await client.submitAll([
        { id: 'long', type: 'embed', payload: { n: 1, hold: true }, resources: { gpu: 1 } },
      ]);
      await leader.check();
      await started;
      expect((await client.get('long'))?.state).toBe('running');
      const result = job?.result;
      // Two jobs wait behind it; the later, lower one is boosted by a client: it goes first.
      const waiting = await client.submitAll([
        { id: 'normal', type: 'embed', payload: { n: 2 }, resources: { gpu: 1 } },
        { id: 'low', type: 'embed', payload: { n: 3 }, resources: { gpu: 1 }, priority: 'low' },
      ]);
      await expect(client.boost({ ids: ['low'] }, { to: 'urgent' as never, forMs: 1 })).rejects.toMatchObject(
        {
          field: 'boost.to',
        },
      );
      await client.boost({ ids: ['low'] }, { to: 'critical', forMs: 3_600_000 });
      expect(await client.cancel('long')).toBe(true);
      await expect(result).rejects.toMatchObject({ name: 'JobFailedError', state: 'cancelled' });
      expect(ledger.held.has('long')).toBe(true);
      await Promise.all(waiting.map((h) => h.result));
      expect(ledger.ran.map((r) => r.id)).toEqual(['long', 'low', 'normal']);
      const { rows } = await db.client.query(
        `SELECT state, outcome FROM "${schema}".attempts ORDER BY token`,
      );
      expect(rows[0]).toEqual({ state: 'ended', outcome: { kind: 'cancelled' } });
      const answered = await db.client.query(
        `SELECT kind, done_at IS NOT NULL AS done, answer->'boosted' AS boosted FROM "${schema}".requests ORDER BY id`,
      );
      expect(answered.rows).toEqual([
        { kind: 'boost', done: true, boosted: ['low'] },
        { kind: 'cancel', done: true, boosted: null },
      ]);
    } finally {
      stopPump();
      await agent.stop({ mode: 'cancel' });
      await leader.stop();
      await client.close();
    }
  });

  it('a host whose lease ran out: its attempt is interrupted and retried on another host; its late report is refused', async () => {
    const schema = db.newSchema();
    await migratePostgres(db.client, schema);
    const ledger = newLedger();
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const now = new PgLeaseStore({ pool, schema });
    // The leader's expire runs far in the future when the test says: every lease has run out.
    const future = new PgLeaseStore({ pool, schema, now: () => Date.UTC(2100, 0, 1) });
    let lapse = false;
    const leases: LeaseStore = new Proxy(now, {
      get: (target, key, receiver) =>
        key === 'expire' ? () => (lapse ? future : target).expire() : Reflect.get(target, key, receiver),
    });
    const clock = createVirtualClock();
    const leader = createLeader({ db: db.url, schema, clock, leases, engine: { retry: { attempts: 2 } } });
    let stopPump = (): void => undefined;
    const client = await createClient({ db: db.url, schema });
    const first = agentOn(db, schema, 'first', 1, ['embed'], ledger);
    const second = agentOn(db, schema, 'second', 1, ['embed'], ledger);
    try {
      await leader.start();
      await first.start();
      stopPump = pump(clock);
      const started = firstValueFrom(first.events$.pipe(filter((e) => e.type === 'attempt.started')));
      const [job] = await client.submitAll([
        { id: 'j', type: 'embed', payload: { n: 7, hold: true }, resources: { gpu: 1 } },
      ]);
      await leader.check();
      await started;
      // `first` goes silent (a partition): its lease runs out.
      lapse = true;
      const lost = next(leader, (e) => e.type === 'host.lost');
      await leader.check();
      expect(await lost).toMatchObject({ hostId: 'first', interrupted: 1 });
      lapse = false;
      // The retry needs a host: `second` joins and runs attempt 2 to the end.
      ledger.held.clear();
      const started2 = firstValueFrom(second.events$.pipe(filter((e) => e.type === 'attempt.started')));
      await second.start();
      const attempt2 = await started2;
      expect(attempt2).toMatchObject({ jobId: 'j', attempt: 2 });
      ledger.held.get('j')?.();
      await expect(job?.result).resolves.toEqual({ n: 7, host: 'second' });
      expect(await client.get('j')).toMatchObject({ state: 'completed', attempt: 2 });
      // `first` wakes up: fenced; its attempt's late report is refused.
      const refused = firstValueFrom(first.events$.pipe(filter((e) => e.type === 'attempt.refused')));
      await first.poke();
      expect(await refused).toMatchObject({ jobId: 'j', reason: 'expired' });
      const { rows } = await db.client.query(
        `SELECT attempt, host_id, state, outcome->>'kind' AS kind FROM "${schema}".attempts ORDER BY token`,
      );
      expect(rows).toEqual([
        { attempt: 1, host_id: 'first', state: 'expired', kind: 'interrupted' },
        { attempt: 2, host_id: 'second', state: 'ended', kind: 'completed' },
      ]);
    } finally {
      stopPump();
      await Promise.all([first.stop({ mode: 'cancel' }), second.stop({ mode: 'cancel' })]);
      await leader.stop();
      await client.close();
      await pool.end();
    }
  });

  it('failover: a standby takes over when the leader goes; what ran under the old leader is stopped before its host is used again, and nothing completes twice', async () => {
    const schema = db.newSchema();
    await migratePostgres(db.client, schema);
    const ledger = newLedger();
    const [clock1, clock2] = [createVirtualClock(), createVirtualClock()];
    const first = createLeader({
      db: db.url,
      schema,
      clock: clock1,
      name: 'first',
      engine: { retry: { attempts: 3 } },
    });
    const second = createLeader({
      db: db.url,
      schema,
      clock: clock2,
      name: 'second',
      engine: { retry: { attempts: 3 } },
    });
    const client = await createClient({ db: db.url, schema });
    const a = agentOn(db, schema, 'a', 1, ['embed'], ledger);
    const b = agentOn(db, schema, 'b', 1, ['embed'], ledger);
    const pumps: Array<() => void> = [];
    try {
      await first.start();
      await Promise.all([a.start(), b.start()]);
      pumps.push(pump(clock1));
      const startedOn = (id: string, attempt: number) =>
        Promise.race(
          [a, b].map((agent) =>
            firstValueFrom(
              agent.events$.pipe(
                filter((e) => e.type === 'attempt.started' && e.jobId === id && e.attempt === attempt),
              ),
            ),
          ),
        );
      const firstRuns = Promise.all([startedOn('held', 1), startedOn('held2', 1)]);
      const secondRuns = Promise.all([startedOn('held', 2), startedOn('held2', 2)]);
      // Both hosts busy with a held job each; `waiter` waits for a GPU (and goes first when one frees).
      const handles = await client.submitAll([
        { id: 'held', type: 'embed', payload: { n: 1, hold: true }, resources: { gpu: 1 } },
        { id: 'held2', type: 'embed', payload: { n: 2, hold: true }, resources: { gpu: 1 } },
        { id: 'waiter', type: 'embed', payload: { n: 3 }, resources: { gpu: 1 }, priority: 'critical' },
      ]);
      await firstRuns;
      // Told to stop, the held attempts take their time: until the test opens this gate.
      let openGate = (): void => undefined;
      ledger.stopGate = new Promise<void>((resolve) => {
        openGate = resolve;
      });

      const standby = second.start();
      await firstValueFrom(second.events$.pipe(filter((e) => e.type === 'leader.standby')));
      expect(second.state).toBe('standby');
      const elected = firstValueFrom(second.events$.pipe(filter((e) => e.type === 'leader.elected')));
      pumps.shift()?.();
      await first.stop();
      await standby;
      pumps.push(pump(clock2));
      expect(await elected).toMatchObject({ name: 'second', stopping: 2 });
      // While they stop, their hosts are not in the pool: `waiter` waits, nothing new is assigned.
      await second.check();
      await second.check();
      expect((await client.get('waiter'))?.state).toBe('queued');
      const during = await db.client.query(
        `SELECT count(*)::int AS n FROM "${schema}".attempts WHERE state IN ('assigned', 'running')`,
      );
      expect(during.rows[0]).toEqual({ n: 2 });
      openGate();
      // The attempts that ran under `first` were stopped on their hosts before the hosts took
      // anything new; the jobs run again (held again: released now) and complete once.
      await secondRuns;
      ledger.held.get('held')?.();
      ledger.held.get('held2')?.();
      const results = await Promise.all(handles.map((h) => h.result));
      expect(results.map((r) => (r as { n: number }).n)).toEqual([1, 2, 3]);
      // No host ever ran more than its one GPU.
      expect(ledger.peakGpus.get('a')).toBe(1);
      expect(ledger.peakGpus.get('b')).toBe(1);
      const { rows } = await db.client.query(
        `SELECT job_id, attempt, state, outcome->>'kind' AS kind FROM "${schema}".attempts ORDER BY token`,
      );
      const completions = rows.filter((r: { kind: string }) => r.kind === 'completed');
      expect(completions.map((r: { job_id: string }) => r.job_id).sort()).toEqual([
        'held',
        'held2',
        'waiter',
      ]);
      expect(rows.filter((r: { job_id: string }) => r.job_id === 'held')).toEqual([
        { job_id: 'held', attempt: 1, state: 'ended', kind: 'cancelled' },
        { job_id: 'held', attempt: 2, state: 'ended', kind: 'completed' },
      ]);
      expect(await client.get('held')).toMatchObject({ state: 'completed', attempt: 2 });
    } finally {
      for (const stop of pumps) stop();
      await Promise.all([a.stop({ mode: 'cancel' }), b.stop({ mode: 'cancel' })]);
      await first.stop();
      await second.stop();
      await client.close();
    }
  });
});

describe('createLeader', () => {
  it('refuses bad options with InvalidOptionError naming the field', () => {
    expect(() => createLeader({ db: 'mysql://x/y' })).toThrow(expect.objectContaining({ field: 'db' }));
    expect(() => createLeader({ db: 'postgres://h/d', schema: 'Bad' })).toThrow(
      expect.objectContaining({ field: 'schema' }),
    );
    expect(() => createLeader({ db: 'postgres://h/d', checkEveryMs: 1 })).toThrow(
      expect.objectContaining({ field: 'checkEveryMs' }),
    );
  });
});
