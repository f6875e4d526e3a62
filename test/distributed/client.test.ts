/**
 * The client of a global scheduler (issue 17), on the real PostgreSQL server: it writes jobs all
 * or none with what a scheduler would check without its handlers and pool, reads them back in
 * submission order, cancels, and settles `result` when whoever leads writes a job's end.
 * No scheduler runs here: the test plays its part by writing rows and notifying as it would.
 */
import { firstValueFrom, filter, take, toArray } from 'rxjs';
import { expect, it } from 'vitest';
import {
  createClient,
  DependencyCycleError,
  DuplicateJobError,
  InvalidJobError,
  InvalidOptionError,
  JobFailedError,
  migratePostgres,
  SchemaNotMigratedError,
  UnknownDependencyError,
  type Client,
} from '../../src/index.js';
import { channelNames } from '../../src/pg/target.js';
import { describePg } from '../helpers/pg.js';

describePg('createClient', (db) => {
  let client: Client;
  const count = async (): Promise<number> =>
    (await db.client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.jobs`)).rows[0]?.n ??
    -1;
  /** Writes a job's status as a scheduler would, and tells the events channel. */
  const lead = async (id: string, state: string, status: Record<string, unknown>): Promise<void> => {
    await db.client.query(`UPDATE ${db.schema}.jobs SET state = $2, status = $3 WHERE id = $1`, [
      id,
      state,
      JSON.stringify({ state, ...status }),
    ]);
    await db.client.query('SELECT pg_notify($1, $2)', [
      channelNames(db.schema).events,
      JSON.stringify({ type: 'job.state', id, state, at: 1 }),
    ]);
  };

  it('refuses a schema not migrated yet, and a bad schema name, before writing anything', async () => {
    await expect(createClient({ db: db.url, schema: db.schema })).rejects.toBeInstanceOf(
      SchemaNotMigratedError,
    );
    await expect(createClient({ db: db.url, schema: 'Bad-Name' })).rejects.toMatchObject({
      name: 'InvalidOptionError',
      field: 'schema',
    });
    await expect(createClient({ db: db.url, schema: db.schema, poolSize: 0 })).rejects.toMatchObject({
      field: 'poolSize',
    });
    await migratePostgres(db.client, db.schema);
    client = await createClient({ db: db.url, schema: db.schema });
  });

  it('submits: the job is on the database, state submitted, with its spec as given (no defaults of its own)', async () => {
    const handle = await client.submit({
      id: 'a',
      type: 'embed',
      payload: { file: 'x.txt' },
      resources: { gpu: 0.5, vramMb: 8_000 },
      priority: 'high',
      group: 'g1',
    });
    expect(handle.id).toBe('a');
    const { rows } = await db.client.query(
      `SELECT id, state, spec, status FROM ${db.schema}.jobs WHERE id = 'a'`,
    );
    expect(rows[0]).toMatchObject({
      id: 'a',
      state: 'submitted',
      spec: {
        type: 'embed',
        priority: 'high',
        group: 'g1',
        payload: { file: 'x.txt' },
        resources: { gpu: 0.5, vramMb: 8_000 },
        dependsOn: [],
      },
      status: { state: 'submitted', attempt: 0 },
    });
    expect(rows[0].spec).not.toHaveProperty('retry');
    expect(await client.get('a')).toMatchObject({ id: 'a', type: 'embed', state: 'submitted', group: 'g1' });
    expect(await client.get('nope')).toBeUndefined();
  });

  it('submits all or none: a bad field, a duplicate, an unknown dependency or a cycle writes nothing', async () => {
    const before = await count();
    const bad = client.submitAll([
      { id: 'ok1', type: 'embed' },
      { id: 'bad', type: 'embed', priority: 'urgent' as never },
    ]);
    await expect(bad).rejects.toBeInstanceOf(InvalidJobError);
    await expect(bad).rejects.toMatchObject({ field: 'priority' });
    await expect(client.submitAll([{ type: 'embed', resources: { gpu: -1 } }])).rejects.toMatchObject({
      name: 'InvalidJobError',
    });
    await expect(client.submitAll([{ type: 'embed', payload: { f: () => 1 } }])).rejects.toMatchObject({
      field: 'payload',
    });
    await expect(
      client.submitAll([
        { id: 'ok2', type: 'embed' },
        { id: 'a', type: 'embed' },
      ]),
    ).rejects.toEqual(new DuplicateJobError('a'));
    await expect(
      client.submitAll([
        { id: 'x', type: 'e' },
        { id: 'x', type: 'e' },
      ]),
    ).rejects.toBeInstanceOf(DuplicateJobError);
    await expect(client.submitAll([{ id: 'd1', type: 'e', dependsOn: ['ghost'] }])).rejects.toEqual(
      new UnknownDependencyError('d1', 'ghost'),
    );
    await expect(
      client.submitAll([
        { id: 'c1', type: 'e', dependsOn: ['c2'] },
        { id: 'c2', type: 'e', dependsOn: ['c1'] },
      ]),
    ).rejects.toBeInstanceOf(DependencyCycleError);
    expect(await count()).toBe(before);
    // Dependencies on a job already held, and within the batch, are fine.
    const handles = await client.submitAll([
      { id: 'd2', type: 'e', dependsOn: ['a', 'd3'] },
      { id: 'd3', type: 'e' },
    ]);
    expect(handles.map((h) => h.id)).toEqual(['d2', 'd3']);
    expect(await count()).toBe(before + 2);
  });

  it('numbers jobs in one submission order across clients, and lists them filtered, in that order', async () => {
    const other = await createClient({ db: db.url, schema: db.schema });
    try {
      await Promise.all([
        client.submitAll([
          { id: 'p1', type: 'e', group: 'p' },
          { id: 'p2', type: 'e', group: 'p' },
        ]),
        other.submitAll([
          { id: 'q1', type: 'e', group: 'q' },
          { id: 'q2', type: 'e', group: 'q' },
        ]),
      ]);
      const all = await other.list();
      const seqs = all.map((j) => j.seq);
      expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
      expect(new Set(seqs).size).toBe(seqs.length);
      // A batch is one transaction: its jobs are adjacent and in the order given.
      const ids = all.map((j) => j.id);
      expect(ids.indexOf('p2') - ids.indexOf('p1')).toBe(1);
      expect(ids.indexOf('q2') - ids.indexOf('q1')).toBe(1);
      expect((await client.list({ group: 'q' })).map((j) => j.id)).toEqual(['q1', 'q2']);
      const [first] = await client.list({ limit: 1 });
      expect((await client.list({ afterSeq: first?.seq ?? 0, limit: 2 })).map((j) => j.seq)).toEqual(
        seqs.slice(1, 3),
      );
      expect(await client.list({ state: 'completed' })).toEqual([]);
      await expect(client.list({ state: 'done' as never })).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(client.list({ limit: 0 })).rejects.toMatchObject({ field: 'limit' });
    } finally {
      await other.close();
    }
  });

  it('result settles when the job ends on the database: output, or JobFailedError', async () => {
    const done = await client.submit({ id: 'r1', type: 'e' });
    const broken = await client.submit({ id: 'r2', type: 'e' });
    const result = done.result;
    const failure = broken.result;
    await lead('r1', 'running', { attempt: 1 });
    await lead('r1', 'completed', { attempt: 1, output: { answer: 42 } });
    await lead('r2', 'failed', { attempt: 3, error: { kind: 'error', message: 'CUDA out of memory' } });
    await expect(result).resolves.toEqual({ answer: 42 });
    await expect(failure).rejects.toBeInstanceOf(JobFailedError);
    await expect(failure).rejects.toMatchObject({ jobId: 'r2', state: 'failed', kind: 'error' });
    // A handle of a job that ended before anyone asked settles at once.
    await expect((await client.handle('r1'))?.result).resolves.toEqual({ answer: 42 });
    expect(await client.handle('ghost')).toBeUndefined();
  });

  it('cancels: a job not taken yet at once (event and result), a taken one by request, an ended one not', async () => {
    const events = firstValueFrom(
      client.events$.pipe(
        filter((e) => e.id === 'k1'),
        take(1),
        toArray(),
      ),
    );
    const waiting = await client.submit({ id: 'k1', type: 'e' });
    const result = waiting.result;
    expect(await waiting.cancel()).toBe(true);
    await expect(result).rejects.toMatchObject({ name: 'JobFailedError', state: 'cancelled' });
    expect(await client.get('k1')).toMatchObject({ state: 'cancelled', error: { kind: 'cancelled' } });
    expect((await events)[0]).toMatchObject({ type: 'job.state', id: 'k1', state: 'cancelled' });

    await client.submit({ id: 'k2', type: 'e' });
    await lead('k2', 'running', { attempt: 1 });
    expect(await client.cancel('k2')).toBe(true);
    // Running: the scheduler carries the request out; the job is as it was until then.
    expect(await client.get('k2')).toMatchObject({ state: 'running' });
    const { rows } = await db.client.query(`SELECT kind, body FROM ${db.schema}.requests ORDER BY id`);
    expect(rows).toEqual([{ kind: 'cancel', body: { id: 'k2' } }]);

    expect(await client.cancel('k1')).toBe(false);
    expect(await client.cancel('ghost')).toBe(false);
  });

  it('closes: a closed client refuses calls with a typed error', async () => {
    await client.close();
    await client.close();
    await expect(client.get('a')).rejects.toBeInstanceOf(InvalidOptionError);
  });
});
