/**
 * The PostgreSQL test helper (test/helpers/pg.ts) itself: a fixture suite run by a vitest of its
 * own is skipped with a notice when there is no server, fails under CI=true, and with a server
 * runs and leaves no schema behind.
 */
import { spawn } from 'node:child_process';
import nodePath from 'node:path';
import { describe, expect, it } from 'vitest';
import { describePg } from '../helpers/pg.js';

const ROOT = nodePath.join(import.meta.dirname, '../..');
const VITEST = nodePath.join(ROOT, 'node_modules/vitest/vitest.mjs');
const CONFIG = nodePath.join(import.meta.dirname, 'fixtures/vitest.config.ts');
/** Nothing listens on port 1. */
const NO_SERVER = 'postgres://postgres@127.0.0.1:1/test';

/** Runs the fixture in a vitest of its own with `env` on top of this one's (less vitest's and CI's). */
function runFixture(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(
      ([key]) => !key.startsWith('VITEST') && key !== 'CI' && key !== 'NODE_OPTIONS',
    ),
  );
  const child = spawn(process.execPath, [VITEST, 'run', '--config', CONFIG], {
    cwd: ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

describe('the PostgreSQL test helper without a server', () => {
  it('skips the suite with a notice naming the URL and why', async () => {
    const { code, output } = await runFixture({ AI_BATCH_TEST_DB: NO_SERVER });
    expect(output).toContain(`[pg] skipping "a suite that needs PostgreSQL": no PostgreSQL at ${NO_SERVER}`);
    expect(output).toContain('ECONNREFUSED');
    expect(output).toMatch(/1 skipped/);
    expect(code).toBe(0);
  });

  it('fails the file under CI=true', async () => {
    const { code, output } = await runFixture({ AI_BATCH_TEST_DB: NO_SERVER, CI: 'true' });
    expect(output).toContain(`PostgreSQL is required under CI=true, but ${NO_SERVER} did not answer`);
    expect(code).not.toBe(0);
  });
});

describePg('the PostgreSQL test helper with a server', (db) => {
  it('runs the suite, and drops its schema after', async () => {
    const { code, output } = await runFixture({ AI_BATCH_TEST_DB: db.url });
    expect(output).toMatch(/1 passed/);
    expect(code).toBe(0);
    const schema = /schema=(t_\d+_[0-9a-f]{8})/.exec(output)?.[1];
    expect(schema).toBeDefined();
    const { rows } = await db.client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    expect(rows).toEqual([]);
  });
});
