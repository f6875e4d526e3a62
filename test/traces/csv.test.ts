import { describe, expect, it } from 'vitest';
import { TraceFormatError, numberField, parseCsv, parseCsvRows } from '../../src/traces/csv.js';

describe('CSV reader', () => {
  it('reads quoted fields with commas, doubled quotes and newlines, and CRLF line ends', () => {
    const text = 'a,b,c\r\n1,"x, y","say ""hi"""\r\n2,"two\nlines",\r\n';
    expect(parseCsvRows(text)).toEqual([
      { line: 1, fields: ['a', 'b', 'c'] },
      { line: 2, fields: ['1', 'x, y', 'say "hi"'] },
      { line: 3, fields: ['2', 'two\nlines', ''] },
    ]);
  });

  it('counts lines across quoted newlines, skips blank lines, and reads a last row without a newline', () => {
    const rows = parseCsvRows('h\n"a\nb"\n\nc');
    expect(rows).toEqual([
      { line: 1, fields: ['h'] },
      { line: 2, fields: ['a\nb'] },
      { line: 5, fields: ['c'] },
    ]);
  });

  it('maps rows to the header, ignoring a byte-order mark', () => {
    const records = parseCsv('\uFEFFname,n\nx,1\n', ['name', 'n']);
    expect(records).toEqual([{ line: 2, values: { name: 'x', n: '1' } }]);
  });

  it('names the source, line and column of what is wrong', () => {
    expect(() => parseCsv('name\nx\n', ['name', 'n'], 'f.csv')).toThrow(TraceFormatError);
    expect(() => parseCsv('name\nx\n', ['name', 'n'], 'f.csv')).toThrow(/f\.csv line 1, header/);
    expect(() => parseCsv('a,b\n1,2\n3\n', ['a'], 'f.csv')).toThrow(/f\.csv line 3, row: must be 2 fields/);
    expect(() => parseCsv('', ['a'])).toThrow(TraceFormatError);
    const [record] = parseCsv('n\n-1\n', ['n'], 'f.csv');
    expect(() => numberField(record as never, 'n', 'f.csv')).toThrow(
      /line 2, n: must be a number ≥ 0; got "-1"/,
    );
    const [blank] = parseCsv('n,m\n,1\n', ['n'], 'f.csv');
    expect(() => numberField(blank as never, 'n', 'f.csv')).toThrow(TraceFormatError);
    const [fraction] = parseCsv('n\n1.5\n', ['n']);
    expect(() => numberField(fraction as never, 'n', '<string>', { integer: true })).toThrow(/whole number/);
  });
});
