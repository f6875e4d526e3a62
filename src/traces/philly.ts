/**
 * The Microsoft Philly trace (msr-fiddle/philly-traces, as the CSV of the Pollux simulator):
 * `timestamp, duration, num_gpus, gpu_time, cluster`. It has no CPU, memory or priority
 * columns; they are synthesised here, deterministically, as docs/simulation.md describes.
 */
import { readFileSync } from 'node:fs';
import { PRIORITY_NAMES, type PriorityName } from '../core/priority.js';
import { InvalidPoolError } from '../core/errors.js';
import { nextRandom, seedFromString } from '../core/random.js';
import type { NodeSpec } from '../core/resources.js';
import type { SimulationJob } from '../runtime/simulation-types.js';
import { TraceFormatError, numberField, parseCsv } from './csv.js';

/** One row of the Philly CSV, as read. */
export type PhillyRow = {
  /** The 1-based line of the file. */
  line: number;
  /** `YYYY-MM-DD HH:MM:SS`, read as UTC. */
  timestamp: string;
  /** Submit time, ms since the epoch (UTC). */
  submittedAtMs: number;
  durationS: number;
  numGpus: number;
  /** The virtual cluster id. */
  cluster: string;
};

/** How Philly rows become jobs. */
export type PhillyOptions = {
  /** CPU cores synthesised per GPU. @default 4 */
  cpuPerGpu?: number;
  /** Memory synthesised per GPU, MB. @default 16_384 */
  memoryMbPerGpu?: number;
  /** Chooses a row's priority. @default `phillyPriority` (a hash of the row) */
  priority?: (row: PhillyRow) => PriorityName;
  /** For error messages. @default '<string>' */
  source?: string;
};

const COLUMNS = ['timestamp', 'duration', 'num_gpus', 'cluster'] as const;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/**
 * The synthesised priority of a row: a hash of its content (timestamp, duration, GPUs,
 * cluster) mapped to 10% high, 60% normal, 20% low, 10% background (none critical). It hashes
 * the content, not the line, so a job keeps its priority in an excerpt and in the full file.
 */
export function phillyPriority(row: PhillyRow): PriorityName {
  const key = `${row.timestamp},${row.durationS},${row.numGpus},${row.cluster}`;
  const [u] = nextRandom(seedFromString(key));
  if (u < 0.1) return 'high';
  if (u < 0.7) return 'normal';
  if (u < 0.9) return 'low';
  return 'background';
}

/** Reads the rows of a Philly CSV (in file order), checking every field. */
export function parsePhillyRows(text: string, source = '<string>'): PhillyRow[] {
  return parseCsv(text, COLUMNS, source).map((record) => {
    const timestamp = (record.values['timestamp'] ?? '').trim();
    const m = TIMESTAMP.exec(timestamp);
    const submittedAtMs = m
      ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
      : Number.NaN;
    if (!Number.isFinite(submittedAtMs)) {
      throw new TraceFormatError(source, record.line, 'timestamp', timestamp, 'a time YYYY-MM-DD HH:MM:SS');
    }
    return {
      line: record.line,
      timestamp,
      submittedAtMs,
      durationS: numberField(record, 'duration', source),
      numGpus: numberField(record, 'num_gpus', source, { min: 1, integer: true }),
      cluster: (record.values['cluster'] ?? '').trim(),
    };
  });
}

/**
 * Philly CSV text → simulation jobs, sorted by arrival (ties in file order; the file itself is
 * not sorted). `submitAtMs` counts from the earliest timestamp, `durationMs` is duration × 1000,
 * the id is `philly-<line>` and the group the virtual cluster. Each job asks for `num_gpus`
 * whole GPUs, `cpuPerGpu` cores and `memoryMbPerGpu` MB per GPU.
 */
export function parsePhilly(text: string, options: PhillyOptions = {}): SimulationJob[] {
  const cpuPerGpu = options.cpuPerGpu ?? 4;
  const memoryMbPerGpu = options.memoryMbPerGpu ?? 16_384;
  const priorityOf = options.priority ?? phillyPriority;
  const rows = parsePhillyRows(text, options.source);
  let origin = Number.POSITIVE_INFINITY;
  for (const row of rows) origin = Math.min(origin, row.submittedAtMs);
  const jobs = rows.map((row): SimulationJob => ({
    id: `philly-${row.line}`,
    submitAtMs: row.submittedAtMs - origin,
    durationMs: row.durationS * 1000,
    resources: { gpu: row.numGpus, cpu: row.numGpus * cpuPerGpu, memoryMb: row.numGpus * memoryMbPerGpu },
    priority: checkPriority(priorityOf(row), row, options.source ?? '<string>'),
    ...(row.cluster === '' ? {} : { group: row.cluster }),
  }));
  // Array.prototype.sort is stable, so equal times keep file order.
  return jobs.sort((a, b) => a.submitAtMs - b.submitAtMs);
}

function checkPriority(priority: PriorityName, row: PhillyRow, source: string): PriorityName {
  if (!PRIORITY_NAMES.includes(priority)) {
    throw new TraceFormatError(source, row.line, 'priority', priority, `one of ${PRIORITY_NAMES.join(', ')}`);
  }
  return priority;
}

/** Reads a Philly CSV file (see `parsePhilly`). */
export function readPhilly(path: string, options: PhillyOptions = {}): SimulationJob[] {
  return parsePhilly(readFileSync(path, 'utf8'), { source: path, ...options });
}

/** The shape of a homogeneous Philly-like pool. */
export type PhillyPoolOptions = {
  nodes: number;
  /** @default 8 */
  gpusPerNode?: number;
  /** @default 32 (4 per GPU: what `parsePhilly` asks per GPU by default) */
  cpuPerNode?: number;
  /** @default 131_072 (16 GB per GPU) */
  memoryMbPerNode?: number;
  /** VRAM per GPU, MB; no job of the trace asks for VRAM. @default 0 (not tracked) */
  vramMbPerGpu?: number;
};

/**
 * A pool of identical nodes for Philly replays: `philly-node-<i>`, each with `gpusPerNode`
 * GPUs. Jobs asking for more GPUs than one node has (12 to 128 GPUs in the trace: they spanned
 * machines, which this engine does not do) are rejected by `simulate()` as unschedulable.
 */
export function phillyPool(options: PhillyPoolOptions): { nodes: NodeSpec[] } {
  const { nodes, gpusPerNode = 8, cpuPerNode = 32, memoryMbPerNode = 131_072, vramMbPerGpu = 0 } = options;
  if (!Number.isInteger(nodes) || nodes < 1) {
    throw new InvalidPoolError('nodes', nodes, 'a whole number of nodes ≥ 1');
  }
  return {
    nodes: Array.from({ length: nodes }, (_, i) => ({
      id: `philly-node-${i}`,
      cpu: cpuPerNode,
      memoryMb: memoryMbPerNode,
      gpus: Array.from({ length: gpusPerNode }, () => ({ vramMb: vramMbPerGpu })),
    })),
  };
}
