/**
 * Reading job and pool files from disk: YAML (the default) or JSON (by the `.json` suffix), then
 * the pure checks of `job-file.ts` and `pool-file.ts`, then what only the disk can say (that each
 * job's working folder exists). Every problem is a `JobFileError` naming the file.
 */
import { readFileSync, statSync } from 'node:fs';
import nodePath from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { ResourcePool } from '../core/resources.js';
import { JobFileError } from './job-file-error.js';
import { validateJobFile, type JobFile } from './job-file.js';
import { checkPool } from './pool-file.js';

/** Reads and parses a YAML or JSON file; a missing file or a syntax error is a `JobFileError`. */
export function readStructuredFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a folder' : (error as Error).message;
    throw new JobFileError(file, '', `cannot read: ${why}`);
  }
  if (file.toLowerCase().endsWith('.json')) {
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new JobFileError(file, '', `not valid JSON: ${(error as Error).message}`);
    }
  }
  try {
    return parseYaml(text) as unknown;
  } catch (error) {
    // The yaml package's message already says the line and column.
    throw new JobFileError(file, '', `not valid YAML: ${(error as Error).message.split('\n')[0] ?? ''}`);
  }
}

/**
 * Loads a job file: parses it, checks every job (see `validateJobFile`), and checks that each
 * job's `cwd` is an existing folder. Nothing is created or run.
 */
export function loadJobFile(file: string): JobFile {
  const data = readStructuredFile(file);
  const jobFile = validateJobFile(data, { file, dir: nodePath.dirname(nodePath.resolve(file)) });
  for (const job of jobFile.jobs) {
    let isDir = false;
    try {
      isDir = statSync(job.cwd).isDirectory();
    } catch {
      // Reported below, the same way as a file that is not a folder.
    }
    if (!isDir) {
      throw new JobFileError(file, 'cwd', `cwd ${JSON.stringify(job.cwd)} is not an existing folder`, {
        index: job.index,
        id: job.id,
      });
    }
  }
  return jobFile;
}

/** Loads a pool file (`--resources`): one node `{ cpu, memoryMb, gpus }` or `{ nodes: [...] }`. */
export function loadPoolFile(file: string): ResourcePool {
  return checkPool(readStructuredFile(file), file, '');
}
