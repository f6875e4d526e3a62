/**
 * The PostgreSQL schema (docs/distributed.md, "Schema") on a real server: what version 1 holds,
 * that migrating is idempotent and serialized, and that every refusal writes nothing.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import { SchemaNotMigratedError } from '../../src/pg/errors.js';
import {
  checkPostgresSchema,
  checkSchema,
  migratePostgres,
  MIGRATIONS,
  POSTGRES_SCHEMA_VERSION,
  runMigrations,
  type Migration,
} from '../../src/pg/migrations.js';
import { advisoryLockKey } from '../../src/pg/target.js';
import { StoreCorruptError, StoreVersionError } from '../../src/store/errors.js';
import { describePg } from '../helpers/pg.js';

/** Each table's columns as docs/distributed.md lists them: name, type, nullable, default. */
const COLUMNS: Record<string, Array<[string, string, 'NO' | 'YES', string | null]>> = {
  meta: [
    ['key', 'text', 'NO', null],
    ['value', 'text', 'NO', null],
  ],
  jobs: [
    ['seq', 'bigint', 'NO', null],
    ['id', 'text', 'NO', null],
    ['spec', 'jsonb', 'NO', null],
    ['state', 'text', 'NO', null],
    ['status', 'jsonb', 'NO', null],
    ['submitted_at', 'double precision', 'NO', null],
    ['updated_at', 'timestamp with time zone', 'NO', 'now()'],
  ],
  hosts: [
    ['id', 'text', 'NO', null],
    ['epoch', 'bigint', 'NO', null],
    ['pool', 'jsonb', 'NO', null],
    ['types', 'text[]', 'NO', null],
    ['lease_ms', 'integer', 'NO', null],
    ['heartbeat_at', 'timestamp with time zone', 'NO', null],
    ['state', 'text', 'NO', null],
  ],
  attempts: [
    ['token', 'bigint', 'NO', null],
    ['job_id', 'text', 'NO', null],
    ['attempt', 'integer', 'NO', null],
    ['host_id', 'text', 'NO', null],
    ['host_epoch', 'bigint', 'NO', null],
    ['allocation', 'jsonb', 'NO', null],
    ['state', 'text', 'NO', null],
    ['lease_until', 'timestamp with time zone', 'NO', null],
    ['cancel_requested', 'boolean', 'NO', 'false'],
    ['outcome', 'jsonb', 'YES', null],
    ['settled', 'boolean', 'NO', 'false'],
    ['created_at', 'timestamp with time zone', 'NO', 'now()'],
    ['ended_at', 'timestamp with time zone', 'YES', null],
  ],
  requests: [
    ['id', 'bigint', 'NO', null],
    ['kind', 'text', 'NO', null],
    ['body', 'jsonb', 'NO', null],
    ['created_at', 'timestamp with time zone', 'NO', 'now()'],
    ['done_at', 'timestamp with time zone', 'YES', null],
    ['answer', 'jsonb', 'YES', null],
  ],
};

/** Everything a refusal must leave as it was: relations, columns, indexes, and meta's rows. */
async function fingerprint(client: pg.Client, schema: string): Promise<string> {
  const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  const relations = await client.query(
    `SELECT c.relname, c.relkind, c.xmin::text AS xmin FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 ORDER BY c.relname`,
    [schema],
  );
  const columns = await client.query(
    `SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns
     WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
    [schema],
  );
  const hasMeta = relations.rows.some((r: { relname: string }) => r.relname === 'meta');
  const meta = hasMeta
    ? (
        await client.query(
          `SELECT to_jsonb(m)::text AS row, xmin::text AS xmin FROM "${schema}".meta m ORDER BY 1`,
        )
      ).rows
    : [];
  return JSON.stringify({
    exists: exists.rows.length,
    relations: relations.rows,
    columns: columns.rows,
    meta,
  });
}

/** The columns of a table: [name, type, nullable, default], `text[]` for arrays. */
async function columnsOf(client: pg.Client, schema: string, table: string) {
  const { rows } = await client.query<{
    name: string;
    type: string;
    nullable: 'NO' | 'YES';
    def: string | null;
  }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS nullable,
            pg_get_expr(d.adbin, d.adrelid) AS def
     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [`"${schema}".${table}`],
  );
  return rows.map((r) => [r.name, r.type, r.nullable, r.def]);
}

/** A version 2 that a newer package would have: one more table. */
const V2: Migration = {
  version: 2,
  creates: ['widgets'],
  statements: (s) => [`CREATE TABLE ${s}.widgets (id text PRIMARY KEY)`],
};

/** The error a promise rejects with. */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('the list of migrations', () => {
  it('is numbered 1, 2, 3… without gaps, ends at POSTGRES_SCHEMA_VERSION, and names each table once', () => {
    expect(MIGRATIONS.map((m) => m.version)).toEqual(MIGRATIONS.map((_, i) => i + 1));
    expect(MIGRATIONS.at(-1)?.version).toBe(POSTGRES_SCHEMA_VERSION);
    const created = MIGRATIONS.flatMap((m) => m.creates);
    expect(new Set(created).size).toBe(created.length);
  });
});

describePg('PostgreSQL schema migrations', (db) => {
  it('migrates a missing schema to version 1: every table, column, sequence and index of the doc', async () => {
    const { client, schema } = db;
    expect(POSTGRES_SCHEMA_VERSION).toBe(1);
    expect(await migratePostgres(client, schema)).toEqual({ schema, from: 0, to: 1 });
    expect(await checkPostgresSchema(client, schema)).toBe(1);
    const meta = await client.query(`SELECT key, value FROM "${schema}".meta ORDER BY key`);
    expect(meta.rows).toEqual([{ key: 'schema_version', value: '1' }]);

    for (const [table, columns] of Object.entries(COLUMNS)) {
      expect(await columnsOf(client, schema, table), table).toEqual(columns);
    }
    const tables = await client.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
      [schema],
    );
    expect(tables.rows.map((r: { table_name: string }) => r.table_name)).toEqual([
      'attempts',
      'hosts',
      'jobs',
      'meta',
      'requests',
    ]);
    // jobs.seq is an identity column (generated always); the keys are as the doc says.
    const identity = await client.query(
      `SELECT is_identity, identity_generation FROM information_schema.columns
       WHERE table_schema = $1 AND table_name = 'jobs' AND column_name = 'seq'`,
      [schema],
    );
    expect(identity.rows).toEqual([{ is_identity: 'YES', identity_generation: 'ALWAYS' }]);
    const sequence = await client.query(
      `SELECT data_type, increment FROM information_schema.sequences
       WHERE sequence_schema = $1 AND sequence_name = 'fence'`,
      [schema],
    );
    expect(sequence.rows).toEqual([{ data_type: 'bigint', increment: '1' }]);

    const indexes = await client.query<{ indexname: string; indexdef: string }>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`,
      [schema],
    );
    const defs = Object.fromEntries(
      indexes.rows.map((r) => [
        r.indexname,
        r.indexdef.replaceAll(`"${schema}".`, '').replaceAll(`${schema}.`, ''),
      ]),
    );
    expect(defs).toEqual({
      attempts_pkey: 'CREATE UNIQUE INDEX attempts_pkey ON attempts USING btree (token)',
      attempts_one_live:
        "CREATE UNIQUE INDEX attempts_one_live ON attempts USING btree (job_id) WHERE (state = ANY (ARRAY['assigned'::text, 'running'::text]))",
      attempts_host_state: 'CREATE INDEX attempts_host_state ON attempts USING btree (host_id, state)',
      attempts_job: 'CREATE INDEX attempts_job ON attempts USING btree (job_id)',
      attempts_unsettled:
        "CREATE INDEX attempts_unsettled ON attempts USING btree (token) WHERE ((state = ANY (ARRAY['ended'::text, 'expired'::text])) AND (NOT settled))",
      hosts_pkey: 'CREATE UNIQUE INDEX hosts_pkey ON hosts USING btree (id)',
      jobs_pkey: 'CREATE UNIQUE INDEX jobs_pkey ON jobs USING btree (seq)',
      jobs_id_key: 'CREATE UNIQUE INDEX jobs_id_key ON jobs USING btree (id)',
      jobs_state: 'CREATE INDEX jobs_state ON jobs USING btree (state, seq)',
      meta_pkey: 'CREATE UNIQUE INDEX meta_pkey ON meta USING btree (key)',
      requests_pkey: 'CREATE UNIQUE INDEX requests_pkey ON requests USING btree (id)',
      requests_open: 'CREATE INDEX requests_open ON requests USING btree (id) WHERE (done_at IS NULL)',
    });
  });

  it('a second migrate finds nothing to do and writes nothing', async () => {
    const { client, schema } = db;
    await migratePostgres(client, schema);
    const before = await fingerprint(client, schema);
    expect(await migratePostgres(client, schema)).toEqual({ schema, from: 1, to: 1 });
    expect(await fingerprint(client, schema)).toBe(before);
  });

  it('two migrators at once on two connections: both succeed, one after the other, and the schema is migrated once', async () => {
    const schema = db.newSchema();
    const [holder, a, b] = [await db.connect(), await db.connect(), await db.connect()];
    // A third connection holds the migration lock, so both migrators are surely waiting on it
    // when it is let go: they run at the same time, and only the lock orders them.
    const [classKey, schemaKey] = advisoryLockKey(schema, 'migrate');
    await holder.query('BEGIN');
    await holder.query('SELECT pg_advisory_xact_lock($1, $2)', [classKey, schemaKey]);
    const pids = [
      (await a.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid,
      (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid,
    ];
    const results = Promise.all([migratePostgres(a, schema), migratePostgres(b, schema)]);
    let waiting = 0;
    for (let polls = 0; waiting < 2 && polls < 10_000; polls++) {
      const { rows } = await holder.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid = ANY($1)`,
        [pids],
      );
      waiting = rows[0]?.n ?? 0;
    }
    expect(waiting).toBe(2);
    await holder.query('COMMIT');
    const done = await results;
    expect(done.map((r) => [r.from, r.to]).sort()).toEqual([
      [0, 1],
      [1, 1],
    ]);
    expect(await checkPostgresSchema(holder, schema)).toBe(1);
    const tables = await holder.query(
      `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = $1`,
      [schema],
    );
    expect(tables.rows[0]).toEqual({ n: 5 });
  });

  it('a newer schema is refused by checkPostgresSchema and by migratePostgres, and nothing is written', async () => {
    const { client } = db;
    const schema = db.newSchema();
    // A newer package migrated it to version 2.
    expect(await runMigrations(client, schema, [...MIGRATIONS, V2])).toEqual({ schema, from: 0, to: 2 });
    const before = await fingerprint(client, schema);
    for (const attempt of [
      () => checkPostgresSchema(client, schema),
      () => migratePostgres(client, schema),
    ]) {
      const error = await rejection(attempt());
      expect(error).toBeInstanceOf(StoreVersionError);
      expect(error).toMatchObject({ path: `postgres schema "${schema}"`, found: 2, supported: 1 });
      expect(error.message).toContain(`postgres schema "${schema}" has schema version 2`);
      expect(error.message).toContain('upgrade ai-batch-scheduler');
    }
    expect(await fingerprint(client, schema)).toBe(before);
    // The newer package itself reads it.
    expect(await checkSchema(client, schema, [...MIGRATIONS, V2])).toBe(2);
  });

  it('an unmigrated schema (missing, empty, or older) is refused by checkPostgresSchema, naming the command', async () => {
    const { client } = db;
    const missing = db.newSchema();
    const error = await rejection(checkPostgresSchema(client, missing));
    expect(error).toBeInstanceOf(SchemaNotMigratedError);
    expect(error).toMatchObject({ schema: missing, found: 0, required: 1, exists: false });
    expect(error.message).toContain(`ai-batch migrate --db URL --schema ${missing}`);
    expect(error.message).toContain('does not exist');
    expect(await fingerprint(client, missing)).toBe(await fingerprint(client, db.newSchema()));

    const empty = db.newSchema();
    await client.query(`CREATE SCHEMA "${empty}"`);
    const before = await fingerprint(client, empty);
    const emptyError = await rejection(checkPostgresSchema(client, empty));
    expect(emptyError).toMatchObject({ found: 0, exists: true });
    expect(emptyError.message).toContain(`ai-batch migrate --db URL --schema ${empty}`);
    expect(await fingerprint(client, empty)).toBe(before);
    // An empty schema (made by an administrator, say) is migrated in place.
    expect(await migratePostgres(client, empty)).toEqual({ schema: empty, from: 0, to: 1 });

    // At version 1 when the package needs 2: refused until migrated, then migrated from 1.
    const older = db.newSchema();
    await migratePostgres(client, older);
    const olderError = await rejection(checkSchema(client, older, [...MIGRATIONS, V2]));
    expect(olderError).toBeInstanceOf(SchemaNotMigratedError);
    expect(olderError).toMatchObject({ found: 1, required: 2, exists: true });
    expect(olderError.message).toContain('is at version 1');
    expect(await runMigrations(client, older, [...MIGRATIONS, V2])).toEqual({
      schema: older,
      from: 1,
      to: 2,
    });
    expect(await checkSchema(client, older, [...MIGRATIONS, V2])).toBe(2);
  });

  it('a schema that holds tables that are not ours, or a meta without schema_version, is refused as corrupt, nothing written', async () => {
    const { client } = db;
    // Another program's schema.
    const foreign = db.newSchema();
    await client.query(`CREATE SCHEMA "${foreign}"`);
    await client.query(`CREATE TABLE "${foreign}".customers (id int)`);
    let before = await fingerprint(client, foreign);
    for (const attempt of [
      () => migratePostgres(client, foreign),
      () => checkPostgresSchema(client, foreign),
    ]) {
      const error = await rejection(attempt());
      expect(error).toBeInstanceOf(StoreCorruptError);
      expect(error.message).toContain(
        `postgres schema "${foreign}" is not a usable ai-batch-scheduler store`,
      );
      expect(error.message).toContain('customers');
      expect(error.message).toContain('nothing was written');
    }
    expect(await fingerprint(client, foreign)).toBe(before);

    // Ours, with one table more.
    const extra = db.newSchema();
    await migratePostgres(client, extra);
    await client.query(`CREATE TABLE "${extra}".extra (id int)`);
    before = await fingerprint(client, extra);
    for (const attempt of [() => migratePostgres(client, extra), () => checkPostgresSchema(client, extra)]) {
      const error = await rejection(attempt());
      expect(error).toBeInstanceOf(StoreCorruptError);
      expect(error.message).toMatch(
        /says version 1 but holds tables that are not ai-batch-scheduler's \(extra\)/,
      );
    }
    expect(await fingerprint(client, extra)).toBe(before);

    // Ours, with a table gone.
    const partial = db.newSchema();
    await migratePostgres(client, partial);
    await client.query(`DROP TABLE "${partial}".hosts`);
    expect((await rejection(checkPostgresSchema(client, partial))).message).toMatch(/holds no hosts/);

    // A meta table without schema_version.
    const noVersion = db.newSchema();
    await migratePostgres(client, noVersion);
    await client.query(`DELETE FROM "${noVersion}".meta WHERE key = 'schema_version'`);
    before = await fingerprint(client, noVersion);
    for (const attempt of [
      () => migratePostgres(client, noVersion),
      () => checkPostgresSchema(client, noVersion),
    ]) {
      const error = await rejection(attempt());
      expect(error).toBeInstanceOf(StoreCorruptError);
      expect(error.message).toContain('its meta table has no schema_version');
    }
    expect(await fingerprint(client, noVersion)).toBe(before);

    // Another program's meta table (other columns).
    const otherMeta = db.newSchema();
    await client.query(`CREATE SCHEMA "${otherMeta}"`);
    await client.query(`CREATE TABLE "${otherMeta}".meta (name text)`);
    before = await fingerprint(client, otherMeta);
    const error = await rejection(migratePostgres(client, otherMeta));
    expect(error).toBeInstanceOf(StoreCorruptError);
    expect(error.message).toContain("its meta table is not ai-batch-scheduler's");
    expect(await fingerprint(client, otherMeta)).toBe(before);
  });

  it('a migration that fails leaves nothing of itself: the schema stays at its version', async () => {
    const { client } = db;
    const broken: Migration = {
      version: 2,
      creates: ['widgets'],
      statements: (s) => [`CREATE TABLE ${s}.widgets (id text)`, 'SELECT no_such_function()'],
    };
    const schema = db.newSchema();
    const error = await rejection(runMigrations(client, schema, [...MIGRATIONS, broken]));
    expect(error.message).toMatch(/no_such_function/);
    // From nothing: not even the schema was created.
    expect(await rejection(checkPostgresSchema(client, schema))).toMatchObject({ exists: false });
    await migratePostgres(client, schema);
    const before = await fingerprint(client, schema);
    await rejection(runMigrations(client, schema, [...MIGRATIONS, broken]));
    expect(await fingerprint(client, schema)).toBe(before);
    // The connection is usable after (the transaction was ended).
    expect(await checkPostgresSchema(client, schema)).toBe(1);
  });

  it('the one-live-attempt index refuses a second live attempt of a job', async () => {
    const { client } = db;
    const schema = db.newSchema();
    await migratePostgres(client, schema);
    const insert = (job: string, state: string) =>
      client.query(
        `INSERT INTO "${schema}".attempts (token, job_id, attempt, host_id, host_epoch, allocation, state, lease_until)
         VALUES (nextval('"${schema}".fence'), $1, 1, 'h1', 1, '{}', $2, now())`,
        [job, state],
      );
    await insert('a', 'assigned');
    for (const state of ['assigned', 'running']) {
      const error = await rejection(insert('a', state));
      expect(error).toMatchObject({ code: '23505', constraint: 'attempts_one_live' });
    }
    await insert('b', 'running'); // another job
    await client.query(`UPDATE "${schema}".attempts SET state = 'ended' WHERE job_id = 'a'`);
    await insert('a', 'running'); // the first ended: a new live one is allowed
    await client.query(
      `UPDATE "${schema}".attempts SET state = 'expired' WHERE job_id = 'a' AND state = 'running'`,
    );
    await insert('a', 'assigned');
    const { rows } = await client.query(`SELECT job_id, state FROM "${schema}".attempts ORDER BY token`);
    expect(rows).toEqual([
      { job_id: 'a', state: 'ended' },
      { job_id: 'b', state: 'running' },
      { job_id: 'a', state: 'expired' },
      { job_id: 'a', state: 'assigned' },
    ]);
  });

  it('takes one connection, never a pool (a type error: a pool would run BEGIN and the lock on different connections)', () => {
    const passPool = (pool: pg.Pool) => {
      // @ts-expect-error a pg.Pool is not one connection
      void migratePostgres(pool, 'x');
      // @ts-expect-error a pg.Pool is not one connection
      void checkPostgresSchema(pool, 'x');
    };
    expect(typeof passPool).toBe('function');
  });

  it('refuses a bad schema name before touching the database', async () => {
    for (const attempt of [
      () => migratePostgres(db.client, 'Bad-Name'),
      () => checkPostgresSchema(db.client, 'pg_catalog'),
    ]) {
      const error = await rejection(attempt());
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect(error).toMatchObject({ field: 'schema' });
    }
  });
});
