/**
 * Durations as people write them in job files and flags: `500ms`, `30s`, `5m`, `1.5h`, or a
 * plain number of milliseconds.
 */

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;

/** What a duration may look like, for error messages. */
export const DURATION_FORMS = 'a duration such as 500ms, 30s, 5m, 1h, or a number of ms';

/**
 * Milliseconds of a duration, or `undefined` when the value is not one (the caller names the
 * field). Numbers are milliseconds; strings need a unit, so that `"30"` is not silently 30 ms.
 *
 * @example
 * parseDuration('1.5s'); // 1500
 * parseDuration(250);    // 250
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const match = PATTERN.exec(value.trim());
  if (!match) return undefined;
  const [, amount, unit] = match;
  return Math.round(Number(amount) * (UNITS[unit as string] as number));
}
