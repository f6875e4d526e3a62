/**
 * `ai-batch migrate`: its command line (parsed), and end to end as a real process against the
 * PostgreSQL test server (skipped with a notice when there is none; failing under CI=true).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { parseCli } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { checkPostgresSchema, MIGRATIONS, runMigrations, type Migration } from '../../src/pg/migrations.js';
import { describePg } from '../helpers/pg.js';
import { runCli } from './helpers/cli-process.js';

const URL = 'postgres://postgres@127.0.0.1:5432/test';

describe('ai-batch migrate: the command line', () => {
  it('parses --db, --schema (default ai_batch) and --json; --db may be left to DATABASE_URL', () => {
    expect(parseCli(['migrate', '--db', URL])).toEqual({
      command: 'migrate',
      db: URL,
      schema: 'ai_batch',
      json: false,
    });
    expect(parseCli(['migrate', '--db', URL, '--schema', 't_1', '--json'])).toEqual({
      command: 'migrate',
      db: URL,
      schema: 't_1',
      json: true,
    });
    expect(parseCli(['migrate'])).toEqual({ command: 'migrate', schema: 'ai_batch', json: false });
    expect(parseCli(['migrate', '--help'])).toEqual({ command: 'help', topic: 'migrate' });
  });

  it('refuses a bad schema name, a URL that is not postgres://, and stray arguments (usage errors)', () => {
    const cases: Array<[string[], RegExp]> = [
      [['migrate', '--schema', 'Bad-Name'], /^--schema must be a lower-case identifier.*; got "Bad-Name"$/],
      [['migrate', '--schema', 'pg_x'], /^--schema must be .*not starting with pg_; got "pg_x"$/],
      [
        ['migrate', '--db', 'mysql://u:secret@h/d'],
        /^--db must be a PostgreSQL connection URL.*; got "mysql:\/\/u:\*\*\*@h\/d"$/,
      ],
      [['migrate', 'extra'], /unexpected argument "extra"/],
      [['migrate', '--frobnicate'], /Unknown option '--frobnicate'/],
    ];
    for (const [argv, message] of cases) {
      let error: unknown;
      try {
        parseCli(argv);
      } catch (e) {
        error = e;
      }
      expect(error, argv.join(' ')).toBeInstanceOf(UsageError);
      expect((error as UsageError).message, argv.join(' ')).toMatch(message);
      expect((error as UsageError).command).toBe('migrate');
    }
  });
});

describePg('ai-batch migrate, end to end', (db) => {
  const savedUrl = process.env['DATABASE_URL'];
  afterEach(() => {
    if (savedUrl === undefined) delete process.env['DATABASE_URL'];
    else process.env['DATABASE_URL'] = savedUrl;
  });

  it('migrates a fresh schema (exit 0), and a second run finds nothing to do', async () => {
    const schema = db.schema;
    const first = await runCli(['migrate', '--db', db.url, '--schema', schema]);
    expect(first).toMatchObject({
      code: 0,
      stdout: `migrated schema ${schema} from version 0 to 1`,
      stderr: '',
    });
    expect(await checkPostgresSchema(db.client, schema)).toBe(1);

    const second = await runCli(['migrate', '--db', db.url, '--schema', schema]);
    expect(second).toMatchObject({
      code: 0,
      stdout: `schema ${schema} is at version 1: nothing to do`,
      stderr: '',
    });
    const json = await runCli(['migrate', '--db', db.url, '--schema', schema, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ schema, from: 1, to: 1, migrated: false });
  });

  it('takes the URL from DATABASE_URL when --db is absent, and without either it is a usage error', async () => {
    const schema = db.newSchema();
    process.env['DATABASE_URL'] = db.url;
    const result = await runCli(['migrate', '--schema', schema, '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ schema, from: 0, to: 1, migrated: true });

    delete process.env['DATABASE_URL'];
    const missing = await runCli(['migrate', '--schema', db.newSchema()]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('missing --db <url> (or set DATABASE_URL)');
    expect(missing.stderr).toContain('See "ai-batch migrate --help".');
  });

  it('refuses a newer schema with its message and exit 1, changing nothing', async () => {
    const schema = db.newSchema();
    const v2: Migration = {
      version: 2,
      creates: ['widgets'],
      statements: (s) => [`CREATE TABLE ${s}.widgets (id text)`],
    };
    await runMigrations(db.client, schema, [...MIGRATIONS, v2]);
    const result = await runCli(['migrate', '--db', db.url, '--schema', schema]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`postgres schema "${schema}" has schema version 2`);
    expect(result.stderr).toContain('upgrade ai-batch-scheduler');
    expect(result.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    const meta = await db.client.query(`SELECT value FROM "${schema}".meta WHERE key = 'schema_version'`);
    expect(meta.rows).toEqual([{ value: '2' }]);
  });

  it('refuses a schema holding tables that are not ours (exit 1), and a bad schema name (exit 2)', async () => {
    const schema = db.newSchema();
    await db.client.query(`CREATE SCHEMA "${schema}"`);
    await db.client.query(`CREATE TABLE "${schema}".customers (id int)`);
    const corrupt = await runCli(['migrate', '--db', db.url, '--schema', schema]);
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toContain(`postgres schema "${schema}" is not a usable ai-batch-scheduler store`);

    const bad = await runCli(['migrate', '--db', db.url, '--schema', 'Bad-Name']);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^ai-batch: --schema must be a lower-case identifier/);
    expect(bad.stderr).toContain('See "ai-batch migrate --help".');
  });

  it('says so (exit 1) when the database cannot be reached, without printing a password', async () => {
    const result = await runCli(['migrate', '--db', 'postgres://postgres:s3cret@127.0.0.1:1/test']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^ai-batch: could not connect to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test: /,
    );
    expect(result.stderr).not.toContain('s3cret');
  });
});
