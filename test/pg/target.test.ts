/** The database target of the distributed mode: validation, quoting, channel names, lock keys. */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../../src/core/errors.js';
import {
  advisoryLockKey,
  channelNames,
  postgresTarget,
  quoteIdent,
  redactUrl,
  validateSchemaName,
} from '../../src/pg/target.js';

describe('postgresTarget', () => {
  it('takes a postgres URL and a schema, ai_batch by default', () => {
    expect(postgresTarget({ db: 'postgres://u@h:5432/d' })).toEqual({
      db: 'postgres://u@h:5432/d',
      schema: 'ai_batch',
    });
    expect(postgresTarget({ db: 'postgresql://h/d', schema: 't_1' })).toEqual({
      db: 'postgresql://h/d',
      schema: 't_1',
    });
  });

  it('refuses a schema name that would need quoting, or is too long, or reserved, naming the field and the form', () => {
    for (const bad of ['', 'Ai', '1abc', 'a-b', 'a b', 'a"b', 'é', 'x'.repeat(64), 'pg_temp', 'pg_x']) {
      const error = catchError(() => postgresTarget({ db: 'postgres://h/d', schema: bad }));
      expect(error, bad).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).field).toBe('schema');
      expect((error as InvalidOptionError).message).toMatch(/^option schema must be a lower-case identifier/);
      expect((error as InvalidOptionError).message).toContain('/^[a-z_][a-z0-9_]{0,62}$/');
    }
    for (const good of ['a', '_', 'ai_batch', 'x'.repeat(63), 'a1_b2']) {
      expect(validateSchemaName(good)).toBe(good);
    }
    expect(() => validateSchemaName(42)).toThrow(InvalidOptionError);
  });

  it('refuses a db that is not a postgres URL, without printing its password', () => {
    for (const bad of ['', 'localhost', 'mysql://h/d', 'postgres://', 'host=x dbname=y']) {
      const error = catchError(() => postgresTarget({ db: bad }));
      expect(error, bad).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).field).toBe('db');
      expect((error as InvalidOptionError).message).toContain('a PostgreSQL connection URL');
    }
    const error = catchError(() => postgresTarget({ db: 'mysql://u:s3cret@h/d' }));
    expect((error as Error).message).not.toContain('s3cret');
    expect(redactUrl('postgres://u:s3cret@h/d')).toBe('postgres://u:***@h/d');
    expect(redactUrl('postgres://u@h/d')).toBe('postgres://u@h/d');
  });
});

describe('identifiers and channels', () => {
  it('quotes identifiers, doubling inner quotes', () => {
    expect(quoteIdent('ai_batch')).toBe('"ai_batch"');
    expect(quoteIdent('a"b')).toBe('"a""b"');
  });

  it("names the default schema's channels as the doc does, and prefixes another schema's", () => {
    expect(channelNames('ai_batch')).toEqual({
      jobs: 'ai_batch_jobs',
      host: 'ai_batch_host',
      reports: 'ai_batch_reports',
      events: 'ai_batch_events',
    });
    expect(channelNames('tenant')).toEqual({
      jobs: 'tenant_ai_batch_jobs',
      host: 'tenant_ai_batch_host',
      reports: 'tenant_ai_batch_reports',
      events: 'tenant_ai_batch_events',
    });
  });

  it('keeps every channel name within 63 bytes, distinct for long schemas that share a start', () => {
    const a = `${'x'.repeat(50)}_a`;
    const b = `${'x'.repeat(50)}_b`;
    for (const schema of [a, b, 'y'.repeat(63), 'y'.repeat(46), 'y'.repeat(47)]) {
      for (const name of Object.values(channelNames(schema))) {
        expect(Buffer.byteLength(name), name).toBeLessThanOrEqual(63);
        expect(name).toMatch(/^[a-z_][a-z0-9_]*$/);
      }
    }
    expect(channelNames(a).jobs).not.toBe(channelNames(b).jobs);
    // A schema short enough keeps its whole name.
    expect(channelNames('y'.repeat(46)).reports).toBe(`${'y'.repeat(46)}_ai_batch_reports`);
  });

  it('gives each schema and purpose its own advisory-lock key, in int4 range', () => {
    const keys = [
      advisoryLockKey('ai_batch', 'migrate'),
      advisoryLockKey('ai_batch', 'leader'),
      advisoryLockKey('other', 'migrate'),
    ];
    expect(new Set(keys.map((k) => k.join(','))).size).toBe(3);
    for (const key of keys.flat()) {
      expect(Number.isInteger(key)).toBe(true);
      expect(key).toBeGreaterThanOrEqual(-(2 ** 31));
      expect(key).toBeLessThan(2 ** 31);
    }
    expect(advisoryLockKey('ai_batch', 'migrate')).toEqual(advisoryLockKey('ai_batch', 'migrate'));
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}
