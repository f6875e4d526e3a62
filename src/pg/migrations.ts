/**
 * The PostgreSQL schema of the distributed mode (docs/distributed.md, "Schema"), as numbered
 * migrations, and the two ways to meet it: `migratePostgres` (what `ai-batch migrate` runs:
 * creates the schema and runs the missing migrations, all in one transaction under an advisory
 * lock) and `checkPostgresSchema` (what every process runs when it connects: the version, or a
 * typed refusal). A refusal writes nothing.
 *
 * The version lives in the schema's own `meta` table (`schema_version`). Which tables a version
 * has is known here, so a schema that holds anything else (another program's tables, a damaged
 * install) is refused as `StoreCorruptError` rather than written to.
 */
import { StoreCorruptError, StoreVersionError } from '../store/errors.js';
import { SchemaNotMigratedError } from './errors.js';
import { advisoryLockKey, describeSchema, quoteIdent, validateSchemaName } from './target.js';

/**
 * One connection to PostgreSQL: a `pg.Client`, or a client taken from a `pg.Pool` (`pool.connect()`),
 * connected and not inside a transaction. Not a pool itself: a migration's statements must share
 * one connection (its transaction and its lock are that connection's).
 */
export type PostgresConnection = {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
  /** Only a connection has it (a pool does not): it keeps a `pg.Pool` from being passed by mistake. */
  escapeIdentifier(value: string): string;
};

/** The schema version this package reads and writes. */
export const POSTGRES_SCHEMA_VERSION = 1;

/** One numbered step of the schema. */
export type Migration = {
  /** 1, 2, 3…: a migration runs once, in order, and its number is then `meta.schema_version`. */
  version: number;
  /**
   * The tables, views and sequences it creates (identity columns' own sequences aside), so that a
   * schema can be checked for tables that are not ours.
   */
  creates: readonly string[];
  /** Its statements, given the quoted schema name (`"ai_batch"`), run in order. */
  statements(schema: string): string[];
};

/** Every migration, in order. Version 1: the tables of docs/distributed.md. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    creates: ['meta', 'jobs', 'hosts', 'attempts', 'fence', 'requests'],
    statements: (s) => [
      `CREATE TABLE ${s}.meta (
        key text PRIMARY KEY,
        value text NOT NULL
      )`,
      `CREATE TABLE ${s}.jobs (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        spec jsonb NOT NULL,
        state text NOT NULL,
        status jsonb NOT NULL,
        submitted_at double precision NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`,
      // The leader reads jobs by state (the waiting ones, in submission order).
      `CREATE INDEX jobs_state ON ${s}.jobs (state, seq)`,
      `CREATE TABLE ${s}.hosts (
        id text PRIMARY KEY,
        epoch bigint NOT NULL,
        pool jsonb NOT NULL,
        types text[] NOT NULL,
        lease_ms integer NOT NULL,
        heartbeat_at timestamptz NOT NULL,
        state text NOT NULL
      )`,
      // The fencing tokens: never reused, strictly rising.
      `CREATE SEQUENCE ${s}.fence AS bigint`,
      `CREATE TABLE ${s}.attempts (
        token bigint PRIMARY KEY,
        job_id text NOT NULL,
        attempt integer NOT NULL,
        host_id text NOT NULL,
        host_epoch bigint NOT NULL,
        allocation jsonb NOT NULL,
        state text NOT NULL,
        lease_until timestamptz NOT NULL,
        cancel_requested boolean NOT NULL DEFAULT false,
        outcome jsonb,
        settled boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        ended_at timestamptz
      )`,
      // At most one live attempt of a job: a second assign of the same job fails here.
      `CREATE UNIQUE INDEX attempts_one_live ON ${s}.attempts (job_id) WHERE state IN ('assigned', 'running')`,
      // A host's attempts by state (heartbeat, register, expire); a job's attempts.
      `CREATE INDEX attempts_host_state ON ${s}.attempts (host_id, state)`,
      `CREATE INDEX attempts_job ON ${s}.attempts (job_id)`,
      // The ends the leader has not applied yet (ends(), oldest first).
      `CREATE INDEX attempts_unsettled ON ${s}.attempts (token) WHERE state IN ('ended', 'expired') AND NOT settled`,
      // What clients ask of the leader for jobs it has taken (cancel, boost), in order; done once carried out.
      `CREATE TABLE ${s}.requests (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        kind text NOT NULL,
        body jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        done_at timestamptz,
        answer jsonb
      )`,
      `CREATE INDEX requests_open ON ${s}.requests (id) WHERE done_at IS NULL`,
    ],
  },
];

/** What a migration did: the schema's version before and after (equal when there was nothing to do). */
export type PostgresMigrationResult = { schema: string; from: number; to: number };

/**
 * Brings `schema` to the current version: creates the schema when it is missing, then runs the
 * migrations it lacks, in one transaction under `pg_advisory_xact_lock` of a key of the schema's
 * name, so that concurrent migrators run one after the other (the second finds nothing to do).
 * A schema of a newer version is refused with `StoreVersionError`, one that holds tables that are
 * not ours (or a `meta` without `schema_version`) with `StoreCorruptError`; either way nothing is
 * written. `client` must be one connection (see `PostgresConnection`), not inside a transaction.
 *
 * @example
 * const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
 * await client.connect();
 * await migratePostgres(client, 'ai_batch'); // { schema: 'ai_batch', from: 0, to: 1 }
 */
export async function migratePostgres(
  client: PostgresConnection,
  schema: string,
): Promise<PostgresMigrationResult> {
  return runMigrations(client, validateSchemaName(schema), MIGRATIONS);
}

/**
 * `migratePostgres` with a given list of migrations (tests give a longer one to play a newer
 * package, or a failing one). Not part of the public API.
 */
export async function runMigrations(
  client: PostgresConnection,
  schema: string,
  migrations: readonly Migration[],
): Promise<PostgresMigrationResult> {
  const latest = migrations.at(-1)?.version ?? 0;
  await client.query('BEGIN');
  try {
    const [classKey, schemaKey] = advisoryLockKey(schema, 'migrate');
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [classKey, schemaKey]);
    const { version: from } = await inspect(client, schema, migrations);
    if (from >= latest) {
      // Nothing to do: end the transaction (and the lock) having written nothing.
      await client.query('ROLLBACK');
      return { schema, from, to: from };
    }
    const quoted = quoteIdent(schema);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    for (const migration of migrations) {
      if (migration.version <= from) continue;
      for (const statement of migration.statements(quoted)) await client.query(statement);
    }
    await client.query(
      `INSERT INTO ${quoted}.meta (key, value) VALUES ('schema_version', $1)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [String(latest)],
    );
    await client.query('COMMIT');
    return { schema, from, to: latest };
  } catch (error) {
    await rollback(client);
    throw error;
  }
}

/**
 * The version of `schema`, when it is the one this package needs. Otherwise it throws, having
 * written nothing: `SchemaNotMigratedError` for a schema that is missing, empty or older (run
 * `ai-batch migrate`), `StoreVersionError` for a newer one, `StoreCorruptError` for one that holds
 * tables that are not ours. It reads in one read-only transaction (one consistent snapshot), so
 * `client` must not be inside a transaction.
 */
export async function checkPostgresSchema(client: PostgresConnection, schema: string): Promise<number> {
  return checkSchema(client, validateSchemaName(schema), MIGRATIONS);
}

/** `checkPostgresSchema` with a given list of migrations. Not part of the public API. */
export async function checkSchema(
  client: PostgresConnection,
  schema: string,
  migrations: readonly Migration[],
): Promise<number> {
  const latest = migrations.at(-1)?.version ?? 0;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const { exists, version } = await inspect(client, schema, migrations);
    if (version < latest) throw new SchemaNotMigratedError(schema, version, latest, exists);
    return version;
  } finally {
    await rollback(client);
  }
}

/** Ends the transaction, whatever state it (or the connection) is in. */
async function rollback(client: PostgresConnection): Promise<void> {
  try {
    await client.query('ROLLBACK');
  } catch {
    // The connection is gone: so is the transaction.
  }
}

const CORRUPT_HINT =
  'give another schema (--schema NAME), or drop this one if nothing else uses it, then run ai-batch migrate';
const NEWER_HINT =
  'upgrade ai-batch-scheduler (every process that uses this schema), or give another schema (--schema NAME)';

function corrupt(schema: string, detail: string, cause?: unknown): StoreCorruptError {
  return new StoreCorruptError(describeSchema(schema), detail, {
    hint: CORRUPT_HINT,
    ...(cause === undefined ? {} : { cause }),
  });
}

/**
 * Reads where `schema` stands, writing nothing: missing (version 0), empty (version 0), or ours
 * at a version. Throws `StoreVersionError` for a newer version than `migrations` know, and
 * `StoreCorruptError` when its tables are not exactly those of its version.
 */
async function inspect(
  client: PostgresConnection,
  schema: string,
  migrations: readonly Migration[],
): Promise<{ exists: boolean; version: number }> {
  const namespace = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  if (namespace.rows.length === 0) return { exists: false, version: 0 };
  // Its tables, views and sequences, less the sequences of identity (and serial) columns.
  const relations = await client.query(
    `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
       AND NOT EXISTS (
         SELECT 1 FROM pg_depend d
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))
     ORDER BY c.relname`,
    [schema],
  );
  const found = (relations.rows as Array<{ relname: string }>).map((row) => row.relname);
  if (found.length === 0) return { exists: true, version: 0 };
  if (!found.includes('meta')) {
    throw corrupt(
      schema,
      `it holds tables that are not ai-batch-scheduler's (${found.join(', ')}) and no meta table`,
    );
  }
  let value: unknown;
  try {
    const meta = await client.query(
      `SELECT value FROM ${quoteIdent(schema)}.meta WHERE key = 'schema_version'`,
    );
    if (meta.rows.length === 0) throw corrupt(schema, 'its meta table has no schema_version');
    value = (meta.rows[0] as { value: unknown }).value;
  } catch (error) {
    if (error instanceof StoreCorruptError) throw error;
    throw corrupt(
      schema,
      `its meta table is not ai-batch-scheduler's (${error instanceof Error ? error.message : String(error)})`,
      error,
    );
  }
  if (typeof value !== 'string' || !/^[1-9]\d{0,8}$/.test(value)) {
    throw corrupt(schema, `its schema_version is not a version number: ${JSON.stringify(value)}`);
  }
  const version = Number(value);
  const latest = migrations.at(-1)?.version ?? 0;
  if (version > latest) {
    throw new StoreVersionError(describeSchema(schema), version, latest, { hint: NEWER_HINT });
  }
  const expected = new Set(migrations.filter((m) => m.version <= version).flatMap((m) => m.creates));
  const foreign = found.filter((name) => !expected.has(name));
  const missing = [...expected].filter((name) => !found.includes(name));
  if (foreign.length > 0 || missing.length > 0) {
    const parts = [
      ...(foreign.length > 0 ? [`tables that are not ai-batch-scheduler's (${foreign.join(', ')})`] : []),
      ...(missing.length > 0 ? [`no ${missing.join(', ')}`] : []),
    ];
    throw corrupt(schema, `it says version ${version} but holds ${parts.join(' and ')}`);
  }
  return { exists: true, version };
}
