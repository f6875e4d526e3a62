/**
 * Throw an `UnrecoverableError` from a handler to fail the job at once, without retries.
 *
 * @example
 * ```ts
 * handlers: {
 *   upscale: async ({ payload }) => {
 *     if (!isImage(payload)) throw new UnrecoverableError('payload is not an image');
 *   },
 * }
 * ```
 */
export class UnrecoverableError extends Error {
  override readonly name = 'UnrecoverableError';
}

/**
 * True when an error must not be retried. Recognises the class and, for errors that crossed
 * a module boundary (two copies of this package), an error whose `name` says so.
 */
export function isUnrecoverable(error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  return (
    typeof error === 'object' && error !== null && (error as { name?: unknown }).name === 'UnrecoverableError'
  );
}

/** A readable message for anything a handler may throw or reject with, Error or not. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  if (error === undefined) return 'handler failed with undefined';
  try {
    return `handler failed with ${JSON.stringify(error)}`;
  } catch {
    return `handler failed with ${String(error)}`;
  }
}

/**
 * Bad input: a value out of its allowed range. `field` names it (e.g. `resources.gpu`),
 * `value` is what was given and `allowed` says what would be accepted. Nothing was changed.
 */
export class InvalidJobError extends Error {
  override readonly name = 'InvalidJobError';

  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`${field} must be ${allowed}; got ${formatValue(value)}`);
  }
}

/**
 * A request that can never fit the pool, however long it waits: `field` names the resource,
 * `value` what was asked and `max` the most any node (or GPU) of the pool has.
 */
export class UnschedulableError extends Error {
  override readonly name = 'UnschedulableError';

  constructor(
    readonly field: string,
    readonly value: number,
    readonly max: number,
    detail: string,
  ) {
    super(`${field} ${formatValue(value)} can never fit: ${detail}`);
  }
}

/** A resource pool that does not describe real machines (e.g. negative memory, duplicate ids). */
export class InvalidPoolError extends Error {
  override readonly name = 'InvalidPoolError';

  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
  ) {
    super(`pool ${field} must be ${allowed}; got ${formatValue(value)}`);
  }
}

function formatValue(value: unknown): string {
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
