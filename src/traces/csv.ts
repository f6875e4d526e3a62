/**
 * A small CSV reader for the trace files (RFC 4180: comma-separated, fields optionally in
 * double quotes, `""` for a quote inside one, CRLF or LF line ends, newlines inside quotes).
 * The traces are plain, but a reader that breaks on the first quoted field is a trap.
 */

/** A trace file that does not have the expected shape: names the source, line and column. */
export class TraceFormatError extends Error {
  override readonly name = 'TraceFormatError';

  constructor(
    /** The file (or `<string>`). */
    readonly source: string,
    /** 1-based line of the file (the header is line 1). */
    readonly line: number,
    /** The column, or `header`. */
    readonly column: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`${source} line ${line}, ${column}: must be ${allowed}; got ${JSON.stringify(value) ?? 'nothing'}`);
  }
}

/** One data row: its values by column name, and the line of the file it starts on. */
export type CsvRecord = { line: number; values: Record<string, string> };

const COMMA = 44;
const QUOTE = 34;
const LF = 10;
const CR = 13;

/** The end of an unquoted stretch: the next comma or line end at or after `from`. */
function stretchEnd(text: string, from: number): number {
  let k = from;
  while (k < text.length) {
    const c = text.charCodeAt(k);
    if (c === COMMA || c === LF || c === CR) break;
    k++;
  }
  return k;
}

/**
 * Splits CSV text into rows of fields; each row with the 1-based line it starts on. Fields are
 * sliced, not built a character at a time: on the 82,247-row Philly file that garbage was
 * most of the cost.
 */
export function parseCsvRows(text: string): Array<{ line: number; fields: string[] }> {
  const rows: Array<{ line: number; fields: string[] }> = [];
  let i = 0;
  let line = 1;
  while (i < text.length) {
    const rowLine = line;
    const fields: string[] = [];
    let content = false;
    for (;;) {
      let field: string;
      if (text.charCodeAt(i) === QUOTE) {
        content = true;
        field = '';
        let j = i + 1;
        for (;;) {
          const q = text.indexOf('"', j);
          const part = text.slice(j, q < 0 ? text.length : q);
          field += part;
          for (let k = part.indexOf('\n'); k >= 0; k = part.indexOf('\n', k + 1)) line++;
          if (q >= 0 && text.charCodeAt(q + 1) === QUOTE) {
            field += '"';
            j = q + 2;
            continue;
          }
          i = q < 0 ? text.length : q + 1;
          break;
        }
        // Anything between the closing quote and the delimiter is kept, as a lenient reader would.
        const end = stretchEnd(text, i);
        field += text.slice(i, end);
        i = end;
      } else {
        const end = stretchEnd(text, i);
        field = text.slice(i, end);
        if (end > i) content = true;
        i = end;
      }
      fields.push(field);
      if (text.charCodeAt(i) === COMMA) {
        content = true;
        i++;
        continue;
      }
      if (text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF) i += 2;
      else if (i < text.length) i++;
      line++;
      break;
    }
    // A blank line (e.g. the one after a final newline) is not a row.
    if (content) rows.push({ line: rowLine, fields });
  }
  return rows;
}

/**
 * Parses CSV text with a header row into records, checking that the header has every column
 * in `required` and that each row has as many fields as the header.
 */
export function parseCsv(text: string, required: readonly string[], source = '<string>'): CsvRecord[] {
  const rows = parseCsvRows(text.startsWith('\uFEFF') ? text.slice(1) : text);
  const header = rows[0];
  if (!header) throw new TraceFormatError(source, 1, 'header', '', `a header with ${required.join(', ')}`);
  const columns = header.fields.map((name) => name.trim());
  for (const name of required) {
    if (!columns.includes(name)) {
      throw new TraceFormatError(
        source,
        1,
        'header',
        columns.join(','),
        `a header with ${required.join(', ')}`,
      );
    }
  }
  const records: CsvRecord[] = [];
  for (let r = 1; r < rows.length; r++) {
    const { line, fields } = rows[r] as { line: number; fields: string[] };
    if (fields.length !== columns.length) {
      throw new TraceFormatError(source, line, 'row', fields.join(','), `${columns.length} fields`);
    }
    const values: Record<string, string> = {};
    columns.forEach((name, i) => (values[name] = fields[i] as string));
    records.push({ line, values });
  }
  return records;
}

/** Reads a numeric field: a finite number ≥ `min`, or a `TraceFormatError` naming where. */
export function numberField(
  record: CsvRecord,
  column: string,
  source: string,
  options: { min?: number; integer?: boolean } = {},
): number {
  const raw = (record.values[column] ?? '').trim();
  const value = raw === '' ? Number.NaN : Number(raw);
  const min = options.min ?? 0;
  if (!Number.isFinite(value) || value < min || (options.integer === true && !Number.isInteger(value))) {
    throw new TraceFormatError(
      source,
      record.line,
      column,
      raw,
      `a ${options.integer ? 'whole ' : ''}number ≥ ${min}`,
    );
  }
  return value;
}
