/**
 * Where the distributed mode's state lives (docs/distributed.md): a PostgreSQL database, named by
 * a connection URL, and one schema in it (default `ai_batch`). Everything here is pure: parsing
 * and validating a target, quoting identifiers, naming the schema's NOTIFY channels and its
 * advisory-lock keys.
 */
import { InvalidOptionError } from '../core/errors.js';

/** The schema used when none is given. */
export const DEFAULT_POSTGRES_SCHEMA = 'ai_batch';

/** A schema name this package accepts: one that needs no quoting (lower case), at most 63 bytes. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** What the `schema` option allows, in words (errors say it). */
export const SCHEMA_NAME_ALLOWED =
  'a lower-case identifier: a letter or _, then letters, digits or _, at most 63 characters ' +
  '(/^[a-z_][a-z0-9_]{0,62}$/), not starting with pg_';

/** What the `db` option allows, in words. */
export const DB_URL_ALLOWED = 'a PostgreSQL connection URL, postgres://user[:password]@host[:port]/database';

/** A database target as given: a connection URL and, optionally, a schema. */
export type PostgresTargetOptions = {
  /** The connection URL (`postgres://` or `postgresql://`). */
  db: string;
  /** The schema that holds the tables. @default 'ai_batch' */
  schema?: string;
};

/** A validated database target. */
export type PostgresTarget = { db: string; schema: string };

/**
 * Validates a target: `db` a `postgres://` (or `postgresql://`) URL, `schema` an unquoted-safe
 * identifier (default `ai_batch`). Throws `InvalidOptionError` naming the field and what it allows.
 */
export function postgresTarget(options: PostgresTargetOptions): PostgresTarget {
  return {
    db: validateDbUrl(options.db),
    schema: validateSchemaName(options.schema ?? DEFAULT_POSTGRES_SCHEMA),
  };
}

/** `schema` when it is one this package accepts; else `InvalidOptionError` (field `schema`). */
export function validateSchemaName(schema: unknown, field = 'schema'): string {
  // pg_ names are reserved by PostgreSQL for its own schemas (CREATE SCHEMA refuses them).
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    throw new InvalidOptionError(field, schema, SCHEMA_NAME_ALLOWED);
  }
  return schema;
}

/** `db` when it is a PostgreSQL URL with a host; else `InvalidOptionError` (field `db`). */
export function validateDbUrl(db: unknown, field = 'db'): string {
  if (typeof db !== 'string') throw new InvalidOptionError(field, db, DB_URL_ALLOWED);
  let url: URL;
  try {
    url = new URL(db);
  } catch {
    throw new InvalidOptionError(field, redactUrl(db), DB_URL_ALLOWED);
  }
  if ((url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') || url.hostname === '') {
    throw new InvalidOptionError(field, redactUrl(db), DB_URL_ALLOWED);
  }
  return db;
}

/** A URL as it may be printed: its password replaced by `***` (errors and logs never show it). */
export function redactUrl(db: string): string {
  try {
    const url = new URL(db);
    if (url.password === '') return db;
    url.password = '***';
    return url.toString();
  } catch {
    // Not a URL: print nothing after a scheme's `user:` part that might be a password.
    return db.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
  }
}

/** An identifier quoted for SQL (`"name"`, inner quotes doubled): safe for any string. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** How a schema is named in errors: `postgres schema "ai_batch"`. */
export function describeSchema(schema: string): string {
  return `postgres schema ${JSON.stringify(schema)}`;
}

/** The NOTIFY channels of a schema (docs/distributed.md, "Schema"). */
export type PostgresChannels = {
  /** A client wrote jobs: wakes the leader. */
  jobs: string;
  /** Payload: a host id; it has a new assignment or a cancel. */
  host: string;
  /** An agent reported: wakes the leader. */
  reports: string;
  /** Job events, for clients' `events$`. */
  events: string;
};

/** The longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer channel names fail. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * The NOTIFY channel names of a schema: `ai_batch_jobs`, `ai_batch_host`, `ai_batch_reports`,
 * `ai_batch_events` for the default schema; prefixed with the schema otherwise
 * (`tenant_ai_batch_jobs`). A channel name is an identifier of at most 63 bytes: a schema too long
 * for that is shortened in the prefix to its first 37 characters and a hash of the whole name, so
 * two schemas never share channels unless their hashes collide (1 in 2^32).
 */
export function channelNames(schema: string): PostgresChannels {
  const suffixes = { jobs: 'jobs', host: 'host', reports: 'reports', events: 'events' } as const;
  const longest = 'ai_batch_reports'.length;
  let prefix = schema === DEFAULT_POSTGRES_SCHEMA ? '' : `${schema}_`;
  if (prefix.length + longest > MAX_IDENTIFIER_BYTES) {
    const hash = (fnv1a(schema) >>> 0).toString(16).padStart(8, '0');
    prefix = `${schema.slice(0, MAX_IDENTIFIER_BYTES - longest - hash.length - 2)}_${hash}_`;
  }
  return {
    jobs: `${prefix}ai_batch_${suffixes.jobs}`,
    host: `${prefix}ai_batch_${suffixes.host}`,
    reports: `${prefix}ai_batch_${suffixes.reports}`,
    events: `${prefix}ai_batch_${suffixes.events}`,
  };
}

/** What an advisory lock of a schema guards. Each has its own key, so they never block each other. */
export type AdvisoryLockPurpose = 'migrate' | 'leader';

/** The first half of each purpose's key: "aib" and a number, so other programs' keys are unlikely. */
const LOCK_CLASS: Record<AdvisoryLockPurpose, number> = {
  migrate: 0x61696201,
  leader: 0x61696202,
};

/**
 * The two-int key of a schema's advisory lock for `purpose`, for `pg_advisory_lock(int, int)` /
 * `pg_advisory_xact_lock(int, int)`: the purpose's class and a 32-bit hash of the schema name.
 * The migration lock and the leader's lock differ, so a migration never waits for a leader.
 */
export function advisoryLockKey(schema: string, purpose: AdvisoryLockPurpose): [number, number] {
  return [LOCK_CLASS[purpose], fnv1a(schema)];
}

/** FNV-1a over the UTF-8 bytes of `text`, as a signed 32-bit integer (PostgreSQL's int4). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}
