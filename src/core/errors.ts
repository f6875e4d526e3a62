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
