/**
 * The CLI's client commands of the distributed mode (issue 17): `ai-batch submit` (a job file's
 * jobs, written all or none), `ai-batch status` and `ai-batch cancel`, each through
 * `createClient`. Exit 0 when done; 1 when the database refused or could not be reached (or, for
 * status and cancel, a job named is unknown or has ended); 2 for bad usage or a bad file.
 */
import { describeError, DuplicateJobError, UnknownDependencyError } from '../core/errors.js';
import { createClient, type Client, type RemoteJob } from '../distributed/client.js';
import { redactUrl } from '../pg/target.js';
import { StoreCorruptError, StoreVersionError } from '../store/errors.js';
import { SchemaNotMigratedError } from '../pg/errors.js';
import { databaseUrl, type CancelArgs, type StatusArgs, type SubmitArgs } from './args.js';
import { loadJobFile } from './load-file.js';
import type { Writers } from './reporter.js';
import { submitErrorToJobFileError, toSubmission } from './submission.js';

type ClientArgs = SubmitArgs | StatusArgs | CancelArgs;

/** Runs `submit`, `status` or `cancel`; returns the exit code. */
export async function clientCommand(
  args: ClientArgs,
  write: Writers,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const db = databaseUrl(args.db, args.command, env);
  // A bad file is refused before any connection (exit 2, nothing written).
  const jobFile = args.command === 'submit' ? loadJobFile(args.file) : undefined;
  let client: Client;
  try {
    client = await createClient({ db, schema: args.schema });
  } catch (error) {
    const known =
      error instanceof SchemaNotMigratedError ||
      error instanceof StoreVersionError ||
      error instanceof StoreCorruptError;
    write.err(
      `ai-batch: ${known ? (error as Error).message : `could not connect to ${redactUrl(db)}: ${describeError(error)}`}\n`,
    );
    return 1;
  }
  try {
    switch (args.command) {
      case 'submit': {
        if (!jobFile) return 2;
        try {
          await client.submitAll(jobFile.jobs.map((job) => toSubmission(job)));
        } catch (error) {
          if (error instanceof DuplicateJobError || error instanceof UnknownDependencyError) {
            write.err(`ai-batch: ${error.message}; nothing was submitted\n`);
            return 1;
          }
          throw submitErrorToJobFileError(error, jobFile) ?? error;
        }
        const ids = jobFile.jobs.map((job) => job.id);
        write.out(
          args.json
            ? `${JSON.stringify({ submitted: ids })}\n`
            : `submitted ${ids.length} job(s) to schema ${args.schema}: ${ids.join(', ')}\n`,
        );
        return 0;
      }
      case 'status': {
        const jobs: RemoteJob[] = [];
        const unknown: string[] = [];
        if (args.ids.length === 0) jobs.push(...(await client.list()));
        for (const id of args.ids) {
          const job = await client.get(id);
          if (job) jobs.push(job);
          else unknown.push(id);
        }
        if (args.json) write.out(`${JSON.stringify({ jobs, unknown })}\n`);
        else {
          for (const job of jobs) write.out(`${statusLine(job)}\n`);
          for (const id of unknown) write.err(`ai-batch: no job ${JSON.stringify(id)}\n`);
        }
        return unknown.length === 0 ? 0 : 1;
      }
      case 'cancel': {
        const cancelled: string[] = [];
        const notCancelled: string[] = [];
        for (const id of args.ids) ((await client.cancel(id)) ? cancelled : notCancelled).push(id);
        if (args.json) write.out(`${JSON.stringify({ cancelled, notCancelled })}\n`);
        else {
          if (cancelled.length > 0) write.out(`asked to cancel: ${cancelled.join(', ')}\n`);
          if (notCancelled.length > 0)
            write.err(`ai-batch: not cancelled (unknown, or already ended): ${notCancelled.join(', ')}\n`);
        }
        return notCancelled.length === 0 ? 0 : 1;
      }
    }
  } finally {
    await client.close();
  }
}

/** `id  state  attempt N  type [group]  error`. */
function statusLine(job: RemoteJob): string {
  const parts = [job.id, job.state, `attempt ${job.attempt}`, job.type];
  if (job.group !== undefined) parts.push(`group ${job.group}`);
  if (job.error) parts.push(`${job.error.kind}: ${job.error.message}`);
  return parts.join('  ');
}
