/**
 * PostgreSQL for tests. Every test file that needs a server uses this, so that each one behaves
 * the same way when there is none:
 *
 * - The server is `AI_BATCH_TEST_DB` (default `postgres://postgres@127.0.0.1:5432/test`). It is
 *   probed once, when this module loads (a connect and `SELECT 1`, 5 s at most).
 * - No server: under `CI=true` the importing test file FAILS (loading this module throws, saying
 *   why); elsewhere its `describePg` suites are skipped, with a warning on the console naming the
 *   URL and the reason, so a skip is never silent.
 * - Each `describePg` suite gets a fresh schema name (`t_<pid>_<random>`, not created: migrating
 *   creates it), more on demand (`db.newSchema()`), a connected `pg.Client` (`db.client`) and
 *   more on demand (`db.connect()`). After the suite its clients are closed and its schemas
 *   dropped (CASCADE).
 *
 * @example
 * import { describePg } from '../helpers/pg.js';
 *
 * describePg('the jobs table', (db) => {
 *   it('starts empty', async () => {
 *     await migratePostgres(db.client, db.schema);
 *     const { rows } = await db.client.query(`SELECT count(*)::int AS n FROM ${db.schema}.jobs`);
 *     expect(rows[0].n).toBe(0);
 *   });
 * });
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe } from 'vitest';

/** The server tests use. */
export const PG_TEST_URL = process.env['AI_BATCH_TEST_DB'] || 'postgres://postgres@127.0.0.1:5432/test';

/** Whether the server answered the probe, and if not, why. */
export type PgServer = { available: true } | { available: false; reason: string };

/** A suite's view of the server. */
export type PgTestDb = {
  /** The server's URL. */
  url: string;
  /** A fresh schema name for this suite (not created), dropped after it. */
  schema: string;
  /** A client connected before the suite's tests (in its beforeAll), closed after them. */
  readonly client: pg.Client;
  /** Another fresh schema name, dropped after the suite. */
  newSchema(): string;
  /** Another connected client, closed after the suite. */
  connect(): Promise<pg.Client>;
};

/** Why an error happened, in a few words (an AggregateError of ECONNREFUSEDs has no message). */
function reasonOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reasonOf(error.errors[0]);
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  return (
    [typeof code === 'string' ? code : '', message].filter((part) => part !== '').join(': ') || 'no answer'
  );
}

async function probe(): Promise<PgServer> {
  const client = new pg.Client({ connectionString: PG_TEST_URL, connectionTimeoutMillis: 5_000 });
  // A connection that breaks later must not crash the test process.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return { available: true };
  } catch (error) {
    return { available: false, reason: reasonOf(error) };
  } finally {
    await client.end().catch(() => {});
  }
}

/** The probe's answer, once per test file. */
export const pgServer: PgServer = await probe();

if (!pgServer.available && process.env['CI'] === 'true') {
  throw new Error(
    `PostgreSQL is required under CI=true, but ${PG_TEST_URL} did not answer (${pgServer.reason}); ` +
      'start the server, or set AI_BATCH_TEST_DB to one that runs',
  );
}

/** A schema name no other run uses. */
export function freshSchemaName(): string {
  return `t_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/**
 * `describe` for tests that need PostgreSQL: skipped (with a console warning) when there is no
 * server, failing the file under CI=true (see the top of this file).
 */
export function describePg(name: string, body: (db: PgTestDb) => void): void {
  if (!pgServer.available) {
    console.warn(
      `[pg] skipping "${name}": no PostgreSQL at ${PG_TEST_URL} (${pgServer.reason}). ` +
        'Start one or set AI_BATCH_TEST_DB; under CI=true this fails instead of skipping.',
    );
  }
  describe.skipIf(!pgServer.available)(name, () => {
    const schemas = [freshSchemaName()];
    const clients: pg.Client[] = [];
    let main: pg.Client | undefined;
    const connect = async (): Promise<pg.Client> => {
      const client = new pg.Client({ connectionString: PG_TEST_URL });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    };
    const db: PgTestDb = {
      url: PG_TEST_URL,
      schema: schemas[0] as string,
      get client(): pg.Client {
        if (main === undefined) throw new Error('db.client is connected in beforeAll: use it inside a test');
        return main;
      },
      newSchema() {
        const schema = freshSchemaName();
        schemas.push(schema);
        return schema;
      },
      connect,
    };
    beforeAll(async () => {
      main = await connect();
    });
    afterAll(async () => {
      // Every client first (an open transaction of one would block the drops, and one left in a
      // failed transaction could not drop), then the drops on a connection of their own.
      for (const client of clients) await client.end().catch(() => {});
      const cleaner = await connect();
      try {
        for (const schema of schemas) await cleaner.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await cleaner.end().catch(() => {});
      }
    });
    body(db);
  });
}
