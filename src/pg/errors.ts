/** Errors of the PostgreSQL side of the distributed mode (docs/distributed.md). */
import { describeSchema } from './target.js';

/**
 * The schema is missing, empty, or at an older version than this package needs: processes never
 * migrate on their own (only `ai-batch migrate` does, or `migrate: true`). Nothing was written.
 */
export class SchemaNotMigratedError extends Error {
  override readonly name = 'SchemaNotMigratedError';
  /** How errors name the schema: `postgres schema "ai_batch"`. */
  readonly path: string;

  constructor(
    /** The schema. */
    readonly schema: string,
    /** Its version: 0 when it is missing or holds nothing. */
    readonly found: number,
    /** The version this package needs. */
    readonly required: number,
    /** Whether the schema exists at all. */
    readonly exists: boolean,
  ) {
    const state = !exists
      ? 'does not exist'
      : found === 0
        ? 'is not migrated (it holds no ai-batch tables)'
        : `is at version ${found}`;
    super(
      `${describeSchema(schema)} ${state}; this version of ai-batch-scheduler needs version ${required}: ` +
        `run \`ai-batch migrate --db URL --schema ${schema}\` first (nothing was written)`,
    );
    this.path = describeSchema(schema);
  }
}
