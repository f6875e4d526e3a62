/**
 * `ai-batch migrate --db URL [--schema NAME] [--json]`: brings the distributed mode's PostgreSQL
 * schema to this package's version (`migratePostgres`), and says what it did. Exit 0 when migrated
 * or already current; 1 when refused (a newer schema, tables that are not ours, a database error)
 * or the database cannot be reached; bad usage (no URL, a bad schema name) is a `UsageError` (2).
 */
import { describeError } from '../core/errors.js';
import { migratePostgres } from '../pg/migrations.js';
import { redactUrl } from '../pg/target.js';
import { StoreCorruptError, StoreVersionError } from '../store/errors.js';
import { databaseUrl, type MigrateArgs } from './args.js';
import type { Writers } from './reporter.js';

/** How long a connection attempt may take before the command gives up (the driver's own timer). */
const CONNECT_TIMEOUT_MS = 30_000;

/** Runs `ai-batch migrate`; returns the exit code. `env` supplies `DATABASE_URL` when `--db` is absent. */
export async function migrateCommand(
  args: MigrateArgs,
  write: Writers,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const db = databaseUrl(args.db, 'migrate', env);

  // Loaded here, so that the other commands do not load the driver.
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: db, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  // A connection that drops is reported by the query that fails; this only keeps it from crashing.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    write.err(`ai-batch: could not connect to ${redactUrl(db)}: ${reasonOf(error)}\n`);
    return 1;
  }
  try {
    const { schema, from, to } = await migratePostgres(client, args.schema);
    if (args.json) {
      write.out(`${JSON.stringify({ schema, from, to, migrated: to !== from })}\n`);
    } else if (to === from) {
      write.out(`schema ${schema} is at version ${to}: nothing to do\n`);
    } else {
      write.out(`migrated schema ${schema} from version ${from} to ${to}\n`);
    }
    return 0;
  } catch (error) {
    if (error instanceof StoreVersionError || error instanceof StoreCorruptError) {
      write.err(`ai-batch: ${error.message}\n`);
    } else {
      // The database refused (no right to create the schema, a dropped connection…): the
      // transaction was rolled back.
      write.err(
        `ai-batch: migrating postgres schema ${JSON.stringify(args.schema)} failed: ${reasonOf(error)}; ` +
          `nothing was written\n`,
      );
    }
    return 1;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A driver error in a few words: its code (ECONNREFUSED, 42501…) and message. */
function reasonOf(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return reasonOf(error.errors[0]);
  const code = (error as { code?: unknown } | null)?.code;
  const message = describeError(error);
  return typeof code === 'string' && !message.includes(code) ? `${message} (${code})` : message;
}
