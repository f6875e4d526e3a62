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

/**
 * A readable message for anything a handler may throw or reject with, Error or not: a symbol, a
 * number (NaN too), a function, an object with or without a message, one whose `toJSON`,
 * `toString` or getters throw, a revoked Proxy. It never throws.
 */
export function describeError(error: unknown): string {
  try {
    return describe(error);
  } catch {
    // Whatever a value's traps or getters do, a failure is still reported.
    return 'handler failed with a value that cannot be described';
  }
}

function describe(error: unknown): string {
  switch (typeof error) {
    case 'string':
      return error === '' ? 'handler failed with an empty string' : error;
    case 'undefined':
      return 'handler failed with undefined';
    case 'symbol':
      return `handler failed with ${error.toString()}`;
    case 'bigint':
      return `handler failed with ${error.toString()}n`;
    case 'number':
    case 'boolean':
      return `handler failed with ${String(error)}`;
    case 'function':
      return `handler failed with function ${error.name || '(anonymous)'}`;
  }
  if (error === null) return 'handler failed with null';
  // An object: an Error (or a look-alike) says its message, or its name when it has none.
  const { message, name } = readFields(error as object);
  if (message) return message;
  if (error instanceof Error) return name || 'Error';
  return `handler failed with ${printed(error as object, name)}`;
}

/** An object's own `message` and `name`, when they are non-empty strings (a getter may throw). */
function readFields(error: object): { message: string | undefined; name: string | undefined } {
  const read = (key: 'message' | 'name'): string | undefined => {
    try {
      const value = (error as Record<string, unknown>)[key];
      return typeof value === 'string' && value !== '' ? value : undefined;
    } catch {
      return undefined;
    }
  };
  return { message: read('message'), name: read('name') };
}

/** An object as JSON, else as its string, else as its kind (each of them may throw). */
function printed(error: object, name: string | undefined): string {
  try {
    const json = JSON.stringify(error);
    if (json !== undefined) return json;
  } catch {
    // A cycle, a throwing toJSON or getter: try its string.
  }
  try {
    return String(error);
  } catch {
    // No toString (Object.create(null)) or a throwing one.
  }
  return name ? `an object named ${name}` : 'an object that cannot be printed';
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
    /** Set when `field` is not a known field at all (a misspelt one): the fields it could be. */
    readonly unknownField?: UnknownField,
  ) {
    super(
      unknownField
        ? unknownFieldSentence(field, unknownField)
        : `${field} must be ${allowed}; got ${formatValue(value)}`,
    );
  }
}

/** What an error about a field that is not a known one says: the known fields, the nearest. */
export type UnknownField = {
  /** The fields of the object the unknown one was found in. */
  known: readonly string[];
  /** The known field nearest to the unknown one, when one is close ("did you mean …"). */
  suggestion: string | undefined;
};

/**
 * The sentence for a field that is not a known one, e.g. `resources.gpus is not a known field;
 * did you mean gpu? (known: cpu, memoryMb, gpu, vramMb, custom)`.
 */
export function unknownFieldSentence(field: string, { known, suggestion }: UnknownField): string {
  const guess = suggestion === undefined ? '' : `; did you mean ${suggestion}?`;
  return `${field} is not a known field${guess} (known: ${known.join(', ')})`;
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
    /** Set when `field` is not a known field at all (a misspelt one): the fields it could be. */
    readonly unknownField?: UnknownField,
  ) {
    super(
      `pool ${unknownField ? unknownFieldSentence(field, unknownField) : `${field} must be ${allowed}; got ${formatValue(value)}`}`,
    );
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

/** The queue (pending + queued + retrying jobs) is at `maxQueueSize`; nothing was enqueued. */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';

  constructor(readonly max: number) {
    super(`the queue is full (maxQueueSize ${max}); wait for jobs to finish or raise maxQueueSize`);
  }
}

/** A job with this id was already submitted (and is still known); nothing was enqueued. */
export class DuplicateJobError extends Error {
  override readonly name = 'DuplicateJobError';
  readonly field = 'id';

  constructor(readonly id: string) {
    super(`a job with id ${JSON.stringify(id)} already exists`);
  }
}

/**
 * `dependsOn` names a job that is not known; nothing was enqueued. The scheduler keeps only the
 * newest `retainFinished` finished jobs: once it has let one go, an unknown id may be one of
 * them, and `retainFinished` (the limit then) says so — the message too.
 */
export class UnknownDependencyError extends Error {
  override readonly name = 'UnknownDependencyError';
  readonly field = 'dependsOn';

  constructor(
    readonly jobId: string,
    readonly dependencyId: string,
    /** Set when finished jobs have been let go, so the dependency may be one of them. */
    readonly retainFinished?: number,
  ) {
    super(
      `job ${JSON.stringify(jobId)} depends on unknown job ${JSON.stringify(dependencyId)}` +
        (retainFinished === undefined
          ? ''
          : ` (never submitted, or finished and no longer kept: the scheduler keeps the newest ` +
            `${retainFinished} finished jobs, option retainFinished)`),
    );
  }
}

/** `dependsOn` would make a cycle; nothing was enqueued. */
export class DependencyCycleError extends Error {
  override readonly name = 'DependencyCycleError';
  readonly field = 'dependsOn';

  constructor(readonly cycle: readonly string[]) {
    super(`dependencies form a cycle: ${cycle.join(' → ')}`);
  }
}

/** The scheduler is shutting down or shut down and accepts no more work. */
export class SchedulerClosedError extends Error {
  override readonly name = 'SchedulerClosedError';

  constructor() {
    super('the scheduler is shutting down and accepts no more jobs');
  }
}

/** What `job.result` rejects with when the job failed or was cancelled. */
export class JobFailedError extends Error {
  override readonly name = 'JobFailedError';

  /**
   * `kind` says why (`error`, `timeout`, `cancelled`, `shutdown`, `dependency`); `options.cause`
   * is what the handler threw or rejected with, as it was, when an error ended it.
   */
  constructor(
    readonly jobId: string,
    readonly state: 'failed' | 'cancelled',
    readonly kind: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    // "job a cancelled", not "job a cancelled (cancelled): cancelled".
    const detail = message === '' || message === state ? '' : `: ${message}`;
    super(
      `job ${jobId} ${state}${detail}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
  }
}

/** A scheduler option out of range: names the option, the value and what is allowed. */
export class InvalidOptionError extends Error {
  override readonly name = 'InvalidOptionError';

  constructor(
    readonly field: string,
    readonly value: unknown,
    readonly allowed: string,
    /** Set when `field` is not a known option at all (a misspelt one): the options it could be. */
    readonly unknownField?: UnknownField,
  ) {
    super(
      `option ${unknownField ? unknownFieldSentence(field, unknownField) : `${field} must be ${allowed}; got ${formatValue(value)} (${typeof value})`}`,
    );
  }
}
