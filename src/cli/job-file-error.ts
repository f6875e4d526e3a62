/**
 * A job file (or pool file) that cannot be run as written. The message names the file, the job
 * (id and index) when one is at fault, and the field, so that one line tells the user what to fix:
 *
 * `jobs.yaml: job "resize" (jobs[2]): command must be a non-empty string or argv array; got 42`
 *
 * Nothing has run when this is thrown; the CLI exits with code 2.
 */
export class JobFileError extends Error {
  override readonly name = 'JobFileError';

  constructor(
    /** The file as the user named it. */
    readonly file: string,
    /** The field at fault, e.g. `command`, `resources.gpu`, `jobs`. */
    readonly field: string,
    /** What is wrong with the field, starting with the field itself. */
    detail: string,
    /** The job at fault, when one is. */
    readonly job?: { index: number; id?: string },
  ) {
    super(`${file}: ${jobLabel(job)}${detail}`);
  }
}

function jobLabel(job: { index: number; id?: string } | undefined): string {
  if (job === undefined) return '';
  const at = `jobs[${job.index}]`;
  return job.id === undefined ? `${at}: ` : `job ${JSON.stringify(job.id)} (${at}): `;
}

/** A value as it appears in an error message: strings quoted, objects as JSON, short. */
export function showValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
