/**
 * An agent on the real PostgreSQL server (issue 17): it registers its declared pool, is woken by
 * NOTIFY when the leader (played by the test, through a PgLeaseStore) assigns or cancels, runs the
 * job a client wrote, and reports through the database. Waits are on the agent's own events,
 * never on a clock; the heartbeat timer runs on a virtual clock that the test never advances.
 */
import pg from 'pg';
import { filter, firstValueFrom } from 'rxjs';
import { expect, it } from 'vitest';
import { createClient, migratePostgres, type HandlerContext } from '../../src/index.js';
import { createAgent, type AgentEvent } from '../../src/distributed/agent.js';
import { PgLeaseStore } from '../../src/distributed/pg-leases.js';
import { createVirtualClock } from '../../src/runtime/clock.js';
import { describePg } from '../helpers/pg.js';

const POOL = { cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }] };
const allocation = (id: string) => ({
  id,
  nodeId: 'gpu-box-1',
  cpu: 1,
  memoryMb: 512,
  gpus: [{ index: 0, share: 1, vramMb: 16_000 }],
  custom: {},
});

describePg('an agent on PostgreSQL', (db) => {
  it('registers, is woken by NOTIFY for an assignment and a cancel, runs the job a client wrote, reports; leaves on stop', async () => {
    await migratePostgres(db.client, db.schema);
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const leader = new PgLeaseStore({ pool, schema: db.schema });
    const client = await createClient({ db: db.url, schema: db.schema });
    const seen: Array<{ id: string; payload: unknown; gpus: unknown }> = [];
    const agent = createAgent({
      db: db.url,
      schema: db.schema,
      host: { id: 'gpu-box-1', leaseMs: 60_000 },
      resources: POOL,
      clock: createVirtualClock(),
      handlers: {
        embed: async ({ id, payload, allocation: granted }: HandlerContext<{ text: string }>) => {
          seen.push({ id, payload, gpus: granted.gpus });
          return { vector: [payload.text.length] };
        },
        train: async ({ signal }: HandlerContext) =>
          new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped')))),
      },
    });
    const next = (predicate: (e: AgentEvent) => boolean) =>
      firstValueFrom(agent.events$.pipe(filter(predicate)));
    try {
      await agent.start();
      const epoch = agent.currentEpoch;
      if (epoch === undefined) throw new Error('not registered');
      expect(await leader.hosts()).toMatchObject([
        { id: 'gpu-box-1', epoch, state: 'alive', types: ['embed', 'train'], pool: POOL, leaseMs: 60_000 },
      ]);

      await client.submitAll([
        { id: 'e1', type: 'embed', payload: { text: 'hello' } },
        { id: 't1', type: 'train' },
      ]);
      const reported = next((e) => e.type === 'attempt.reported' && e.jobId === 'e1');
      const assigned = await leader.assign({
        jobId: 'e1',
        attempt: 1,
        hostId: 'gpu-box-1',
        epoch,
        allocation: allocation('a1'),
      });
      if (!assigned.ok) throw new Error(`assign refused: ${assigned.reason}`);
      await reported;
      expect(seen).toEqual([{ id: 'e1', payload: { text: 'hello' }, gpus: allocation('a1').gpus }]);
      expect(await leader.attempt(assigned.token)).toMatchObject({
        state: 'ended',
        outcome: { kind: 'completed', output: { vector: [5] } },
      });

      const started = next((e) => e.type === 'attempt.started' && e.jobId === 't1');
      const training = await leader.assign({
        jobId: 't1',
        attempt: 1,
        hostId: 'gpu-box-1',
        epoch,
        allocation: allocation('a2'),
      });
      if (!training.ok) throw new Error(`assign refused: ${training.reason}`);
      await started;
      expect((await leader.attempt(training.token))?.state).toBe('running');
      const cancelled = next((e) => e.type === 'attempt.reported' && e.jobId === 't1');
      await leader.requestCancel(training.token);
      expect(await cancelled).toMatchObject({ outcome: 'cancelled' });
      expect(await leader.attempt(training.token)).toMatchObject({
        state: 'ended',
        outcome: { kind: 'cancelled' },
      });

      await agent.stop();
      expect((await leader.hosts())[0]).toMatchObject({ state: 'left' });
    } finally {
      await agent.stop();
      await client.close();
      await pool.end();
    }
  });

  it('refuses a database whose schema is not migrated, naming the command', async () => {
    const agent = createAgent({
      db: db.url,
      schema: db.newSchema(),
      host: { id: 'h' },
      resources: POOL,
      clock: createVirtualClock(),
      handlers: { embed: async () => 1 },
    });
    await expect(agent.start()).rejects.toMatchObject({ name: 'SchemaNotMigratedError' });
    await agent.stop();
  });
});
