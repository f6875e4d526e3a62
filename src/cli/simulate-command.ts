/**
 * `ai-batch simulate`: reads a Philly or Alibaba trace, builds the pool (`--nodes` an Alibaba
 * node list, or `--gpus N` identical 8-GPU nodes), replays the trace through the real engine in
 * virtual time (`simulate()`), and prints the report. A trace that cannot be read is exit code 2.
 */
import { POOL_LIMITS } from '../core/pool.js';
import type { NodeSpec } from '../core/resources.js';
import { simulate } from '../runtime/simulate.js';
import type { SimulationJob } from '../runtime/simulation-types.js';
import { readAlibabaNodes, readAlibabaPods } from '../traces/alibaba.js';
import { TraceFormatError } from '../traces/csv.js';
import { readPhilly } from '../traces/philly.js';
import type { SimulateArgs } from './args.js';
import { JobFileError } from './job-file-error.js';
import type { Writers } from './reporter.js';
import { renderSimulationReport } from './simulation-view.js';
import { UsageError } from './usage-error.js';

/** GPUs per node of a `--gpus N` pool. */
const GPUS_PER_NODE = 8;
/** The Philly pool when neither `--gpus` nor `--nodes` is given. */
const DEFAULT_PHILLY_GPUS = 64;

/**
 * Per-GPU CPU and memory of a `--gpus` pool. Philly jobs ask 4 cores and 16 GB per GPU (the
 * synthesis of `readPhilly`); Alibaba pods ask far more, so their nodes are those of the trace's
 * 8-GPU V100 machines (96 cores, 768 GB).
 */
const PER_GPU = {
  philly: { cpu: 4, memoryMb: 16_384 },
  alibaba: { cpu: 12, memoryMb: 98_304 },
} as const;

/** `gpus` GPUs in nodes of 8 (the last one smaller when `gpus` is not a multiple of 8). */
export function gpuPool(gpus: number, format: SimulateArgs['format']): { nodes: NodeSpec[] } {
  const nodes: NodeSpec[] = [];
  for (let left = gpus, i = 0; left > 0; left -= GPUS_PER_NODE, i++) {
    const count = Math.min(GPUS_PER_NODE, left);
    nodes.push({
      id: `node-${i}`,
      cpu: PER_GPU[format].cpu * count,
      memoryMb: PER_GPU[format].memoryMb * count,
      gpus: count,
    });
  }
  return { nodes };
}

function describePool(nodes: readonly NodeSpec[]): string {
  const gpus = nodes.reduce(
    (sum, node) => sum + (typeof node.gpus === 'number' ? node.gpus : (node.gpus?.length ?? 0)),
    0,
  );
  return `${nodes.length} node(s), ${gpus} GPU(s)`;
}

/** Turns a file that cannot be read into the CLI's bad-file error (exit code 2). */
function readTrace<T>(file: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof TraceFormatError)
      throw new JobFileError(file, error.column, error.message.replace(`${file} `, ''));
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
      throw new JobFileError(file, '', `cannot read: ${code === 'ENOENT' ? 'no such file' : code}`);
    }
    throw error;
  }
}

/** Runs the simulation and prints its report; resolves with the exit code (0). */
export async function simulateCommand(args: SimulateArgs, write: Writers): Promise<0> {
  // Said as a usage error, before the trace is read: past it the pool itself is refused.
  if (args.gpus !== undefined && args.gpus > POOL_LIMITS.gpus)
    throw new UsageError(
      `--gpus must be at most ${POOL_LIMITS.gpus} (the most GPUs a pool may have); got ${args.gpus}`,
      'simulate',
    );
  let jobs: SimulationJob[];
  let skipped = 0;
  if (args.format === 'philly') {
    jobs = readTrace(args.trace, () => readPhilly(args.trace));
  } else {
    const pods = readTrace(args.trace, () => readAlibabaPods(args.trace));
    jobs = pods.jobs;
    skipped = pods.skipped.length;
  }
  if (args.limit !== undefined) jobs = jobs.slice(0, args.limit);

  let pool: { nodes: NodeSpec[] };
  if (args.nodes !== undefined) {
    const file = args.nodes;
    pool = readTrace(file, () => readAlibabaNodes(file));
  } else if (args.gpus !== undefined || args.format === 'philly') {
    pool = gpuPool(args.gpus ?? DEFAULT_PHILLY_GPUS, args.format);
  } else {
    throw new UsageError('an Alibaba trace needs its node list (--nodes <csv>) or --gpus <n>', 'simulate');
  }

  const report = await simulate({ resources: pool, jobs, options: { queuePolicy: args.policy } });
  if (args.json) {
    write.out(`${JSON.stringify(report)}\n`);
  } else {
    const lines = renderSimulationReport(report, {
      trace: args.trace,
      format: args.format,
      pool: describePool(pool.nodes),
      policy: args.policy,
      skipped,
    });
    write.out(`${lines.join('\n')}\n`);
  }
  return 0;
}
