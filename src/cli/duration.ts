/**
 * Durations as people write them in job files and flags: `500ms`, `30s`, `5m`, `1.5h` — always
 * with a unit. A bare number is refused: `timeout: 30` could mean 30 seconds or 30 ms, and it
 * used to mean 30 ms without a word. The `…Ms` fields of a job file (`timeoutMs`) take numbers,
 * since their name says the unit.
 */

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const BARE_NUMBER = /^\s*\d+(?:\.\d+)?\s*$/;

/** What a duration may look like, for error messages. */
export const DURATION_FORMS = 'a duration with a unit, such as 500ms, 30s, 5m or 1h';

/**
 * Milliseconds of a duration, or `undefined` when the value is not one (the caller names the
 * field). Only strings with a unit are durations: a number, or a string of digits alone, is not.
 *
 * @example
 * parseDuration('1.5s'); // 1500
 * parseDuration('250ms'); // 250
 * parseDuration(30);     // undefined: write '30s' or '30ms'
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined;
  const match = PATTERN.exec(value.trim());
  if (!match) return undefined;
  const [, amount, unit] = match;
  return Math.round(Number(amount) * (UNITS[unit as string] as number));
}

/**
 * When `value` is a bare number (`30`, `"30"`), what to write instead, to end an error message
 * with; otherwise the empty string.
 *
 * @example
 * bareNumberAdvice(30); // ' (a bare number has no unit: write "30s" for seconds or "30ms" for milliseconds)'
 */
export function bareNumberAdvice(value: unknown): string {
  const text = typeof value === 'number' && Number.isFinite(value) && value >= 0 ? String(value) : value;
  if (typeof text !== 'string' || !BARE_NUMBER.test(text)) return '';
  const n = text.trim();
  return ` (a bare number has no unit: write "${n}s" for seconds or "${n}ms" for milliseconds)`;
}
