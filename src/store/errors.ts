/**
 * What a store says when it cannot do what it was asked. Every one names the store's path and
 * what to do, and carries the underlying error (the database's own) as `cause` where there is one.
 * Nothing was half-done: a refused open wrote nothing, a failed write was rolled back.
 */

/** A store operation, as named in errors. */
export type StoreOperation = 'open' | 'accept' | 'update' | 'prune' | 'setPaused' | 'sync' | 'close';

/** Another scheduler (this process or another) has the store open; it was not touched. */
export class StoreLockedError extends Error {
  override readonly name = 'StoreLockedError';

  constructor(
    readonly path: string,
    options?: { cause?: unknown },
  ) {
    super(
      `the store ${path} is in use by another scheduler, which holds its lock; stop that scheduler first ` +
        `(the lock goes with its process), or give this one another store path`,
      options,
    );
  }
}

/** The file is not a store of this package (not SQLite, another program's database, or damaged). */
export class StoreCorruptError extends Error {
  override readonly name = 'StoreCorruptError';

  constructor(
    readonly path: string,
    /** What is wrong with it. */
    readonly detail: string,
    /** `hint`: what to do, when not the file store's advice (move the file away). */
    options: { cause?: unknown; hint?: string } = {},
  ) {
    super(
      `${path} is not a usable ai-batch-scheduler store: ${detail}; nothing was written to it — ` +
        (options.hint ?? `move the file away (or give another store path) and start again`),
      'cause' in options ? { cause: options.cause } : undefined,
    );
  }
}

/** The store was written by a newer version of this package (a newer schema); it was not touched. */
export class StoreVersionError extends Error {
  override readonly name = 'StoreVersionError';

  constructor(
    readonly path: string,
    /** The schema version the file has. */
    readonly found: number,
    /** The newest schema version this package reads. */
    readonly supported: number,
    /** `hint`: what to do, when not the file store's advice. */
    options: { hint?: string } = {},
  ) {
    super(
      `the store ${path} has schema version ${found}, newer than this version of ai-batch-scheduler ` +
        `reads (up to ${supported}); ` +
        (options.hint ?? 'upgrade ai-batch-scheduler to open it, or give another store path'),
    );
  }
}

/**
 * A write to the store failed (a full disk, a read-only file, an I/O error): nothing of that
 * operation was kept (its transaction was rolled back), and the store is still usable.
 */
export class StoreWriteError extends Error {
  override readonly name = 'StoreWriteError';

  constructor(
    readonly path: string,
    /** What was being written. */
    readonly operation: StoreOperation,
    /** Why, in words (usually the database's message). */
    readonly reason: string,
    options: { cause?: unknown; hint?: string } = {},
  ) {
    const hint = options.hint ?? "free disk space or fix the file's permissions, then try again";
    super(
      `could not write to the store ${path} (${operation}): ${reason}; nothing of this ${operation} was kept — ${hint}`,
      'cause' in options ? { cause: options.cause } : undefined,
    );
  }
}

/** The store is not open (not yet opened, or closed): nothing was done. */
export class StoreClosedError extends Error {
  override readonly name = 'StoreClosedError';

  constructor(
    readonly path: string,
    /** What was asked of it. */
    readonly operation: StoreOperation,
    /** Whether it was closed (else it was never opened). */
    readonly closed: boolean,
  ) {
    super(
      closed
        ? `the store ${path} is closed; ${operation} needs an open store (a closed store stays closed: ` +
            `make a new one for the path and open it)`
        : `the store ${path} is not open yet; call open() before ${operation}`,
    );
  }
}
