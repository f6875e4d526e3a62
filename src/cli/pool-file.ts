/**
 * Resource pools as the CLI reads them (a job file's `resources`, or a `--resources` file), and
 * the check that every job's request can ever fit the pool — both before anything runs, with
 * errors that name the file, the job and the field. The rules are the engine's own
 * (`normalisePool`, `toUnits`, `assertCanEverFit`); this file only attributes their errors.
 */
import { InvalidPoolError, UnschedulableError } from '../core/errors.js';
import { assertCanEverFit, normalisePool, poolMaxima, toUnits } from '../core/pool.js';
import type { ResourcePool } from '../core/resources.js';
import { JobFileError, showValue } from './job-file-error.js';

const NODE_FIELDS = ['id', 'cpu', 'memoryMb', 'gpus', 'custom'];
const POOL_FORMS = 'a node { cpu, memoryMb, gpus } or { nodes: [ ... ] }';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a pool read from a file. `prefix` is where it sits in that file (`resources` in a job
 * file, empty for a pool file of its own), so the message points at the line to fix.
 *
 * @example
 * checkPool({ cpu: 8, memoryMb: 16_000, gpus: [{ vramMb: 24_000 }] }, 'pool.yaml', '');
 */
export function checkPool(data: unknown, file: string, prefix: string): ResourcePool {
  const at = (field: string) => (prefix && field ? `${prefix}.${field}` : prefix || field);
  if (!isObject(data)) {
    throw new JobFileError(
      file,
      prefix,
      `${at('') || 'the pool'} must be ${POOL_FORMS}; got ${showValue(data)}`,
    );
  }
  const nodes = 'nodes' in data ? data['nodes'] : [data];
  if ('nodes' in data) {
    for (const key of Object.keys(data)) {
      if (key !== 'nodes') throw new JobFileError(file, at(key), `unknown field "${at(key)}" next to nodes`);
    }
  }
  if (!Array.isArray(nodes) || nodes.length === 0) {
    throw new JobFileError(
      file,
      at('nodes'),
      `${at('nodes')} must be a non-empty list of nodes; got ${showValue(nodes)}`,
    );
  }
  nodes.forEach((node: unknown, n) => {
    const where = 'nodes' in data ? at(`nodes[${n}]`) : prefix;
    if (!isObject(node)) {
      throw new JobFileError(
        file,
        where,
        `${where || 'the pool'} must be a node { cpu, memoryMb, gpus }; got ${showValue(node)}`,
      );
    }
    for (const key of Object.keys(node)) {
      if (!NODE_FIELDS.includes(key)) {
        const field = where ? `${where}.${key}` : key;
        throw new JobFileError(file, field, `unknown field "${field}" (known: ${NODE_FIELDS.join(', ')})`);
      }
    }
    const gpus = node['gpus'];
    if (Array.isArray(gpus) && gpus.some((g) => !isObject(g))) {
      const field = where ? `${where}.gpus` : 'gpus';
      throw new JobFileError(file, field, `${field} must be a count or a list of { vramMb, index?, model? }`);
    }
  });
  try {
    normalisePool(data as ResourcePool);
  } catch (error) {
    if (!(error instanceof InvalidPoolError)) throw error;
    // The engine names nodes by position; a single-node pool has no `nodes[0]` in the file.
    const inFile = 'nodes' in data ? error.field : error.field.replace(/^nodes\[0\]\.?/, '');
    const field = at(inFile);
    throw new JobFileError(file, field, `${field} must be ${error.allowed}; got ${showValue(error.value)}`);
  }
  return data as ResourcePool;
}

/**
 * Throws a `JobFileError` for the first job whose request no node of the pool could ever hold,
 * so that a job that would wait forever is refused before anything runs. `poolLabel` says where
 * the pool came from (e.g. `--resources pool.yaml` or `the detected host`).
 */
export function checkJobsFitPool(
  file: string,
  jobs: ReadonlyArray<{ id: string; index: number; resources: object }>,
  pool: ResourcePool,
  poolLabel: string,
): void {
  const nodes = normalisePool(pool);
  const maxima = poolMaxima(nodes);
  for (const job of jobs) {
    try {
      assertCanEverFit(toUnits(job.resources, 'resources'), nodes, maxima, 'resources');
    } catch (error) {
      if (!(error instanceof UnschedulableError)) throw error;
      throw new JobFileError(file, error.field, `${error.message} (pool: ${poolLabel})`, {
        index: job.index,
        id: job.id,
      });
    }
  }
}
