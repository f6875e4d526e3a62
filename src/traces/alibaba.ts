/**
 * The Alibaba GPU cluster trace v2023 ("openb", alibaba/clusterdata cluster-trace-gpu-v2023):
 * a pod list (jobs) and a node list (the pool). Times in the trace are seconds; memory is MiB,
 * taken as the engine's MB unit on both sides, so pods and nodes stay consistent.
 * docs/simulation.md describes every mapping and why.
 */
import { readFileSync } from 'node:fs';
import { PRIORITY_NAMES, type PriorityName } from '../core/priority.js';
import type { NodeSpec, ResourceRequest } from '../core/resources.js';
import type { SimulationJob } from '../runtime/simulation-types.js';
import { TraceFormatError, numberField, parseCsv, type CsvRecord } from './csv.js';

/** The default `qos` → priority mapping. */
export const ALIBABA_QOS_PRIORITY: Readonly<Record<string, PriorityName>> = {
  Guaranteed: 'critical',
  LS: 'high',
  Burstable: 'normal',
  BE: 'background',
};

/** VRAM per GPU model, MB. G2 and G3 are anonymised in the trace: 0 means "not tracked". */
export const ALIBABA_GPU_VRAM_MB: Readonly<Record<string, number>> = {
  V100M16: 16_384,
  V100M32: 32_768,
  T4: 15_360,
  P100: 16_384,
  A10: 24_576,
  G2: 0,
  G3: 0,
};

/** How pods become jobs. */
export type AlibabaPodOptions = {
  /** `qos` → priority, merged over `ALIBABA_QOS_PRIORITY`; an unknown qos is an error. */
  qosPriority?: Record<string, PriorityName>;
  /**
   * Pods that were never scheduled (`scheduled_time` empty, phase Pending): `skip` them, or
   * `include` them running for deletion − creation (how long they were wanted). @default 'skip'
   */
  pending?: 'skip' | 'include';
  /** Pods whose phase is Failed fail in the simulation too (every attempt). @default false */
  failFailed?: boolean;
  /** For error messages. @default '<string>' */
  source?: string;
};

/** A pod that did not become a job, and why. */
export type SkippedPod = { id: string; line: number; reason: string };

/** The jobs of a pod list, sorted by arrival, and the pods left out. */
export type AlibabaPods = { jobs: SimulationJob[]; skipped: SkippedPod[] };

const POD_COLUMNS = [
  'name',
  'cpu_milli',
  'memory_mib',
  'num_gpu',
  'gpu_milli',
  'qos',
  'pod_phase',
  'creation_time',
  'deletion_time',
  'scheduled_time',
] as const;
const NODE_COLUMNS = ['sn', 'cpu_milli', 'memory_mib', 'gpu', 'model'] as const;

const text = (record: CsvRecord, column: string) => (record.values[column] ?? '').trim();

/**
 * What a pod asks for: `cpu_milli / 1000` cores, `memory_mib` MB, and GPUs: `num_gpu` whole
 * GPUs, or — for one GPU with `gpu_milli` < 1000 — a share `gpu_milli / 1000` of one GPU. A
 * pod asking for several GPUs with `gpu_milli` < 1000 (not in the 2023 file) gets whole GPUs.
 */
function podResources(record: CsvRecord, source: string): ResourceRequest {
  const cpu = numberField(record, 'cpu_milli', source) / 1000;
  const memoryMb = numberField(record, 'memory_mib', source);
  const numGpu = numberField(record, 'num_gpu', source, { integer: true });
  const gpuMilli = numberField(record, 'gpu_milli', source);
  const out: ResourceRequest = { cpu, memoryMb };
  if (numGpu === 1 && gpuMilli > 0 && gpuMilli < 1000) out.gpu = gpuMilli / 1000;
  else if (numGpu > 0) out.gpu = numGpu;
  return out;
}

/**
 * Alibaba pod list text → jobs. `submitAtMs` is `creation_time` (s → ms) counted from the
 * earliest one; `durationMs` is `deletion_time − scheduled_time` (the time it ran; pods still
 * Running at the end of the trace were cut off there, so theirs is a lower bound). The id is
 * the pod `name`; the priority comes from `qos`.
 */
export function parseAlibabaPods(csv: string, options: AlibabaPodOptions = {}): AlibabaPods {
  const source = options.source ?? '<string>';
  const qosPriority = { ...ALIBABA_QOS_PRIORITY, ...options.qosPriority };
  const records = parseCsv(csv, POD_COLUMNS, source);
  let origin = Number.POSITIVE_INFINITY;
  for (const record of records) origin = Math.min(origin, numberField(record, 'creation_time', source));
  const jobs: SimulationJob[] = [];
  const skipped: SkippedPod[] = [];
  for (const record of records) {
    const id = text(record, 'name');
    if (id === '') throw new TraceFormatError(source, record.line, 'name', id, 'a pod name');
    const qos = text(record, 'qos');
    const priority = Object.hasOwn(qosPriority, qos) ? qosPriority[qos] : undefined;
    if (priority === undefined || !PRIORITY_NAMES.includes(priority)) {
      const known = Object.keys(qosPriority).join(', ');
      throw new TraceFormatError(
        source,
        record.line,
        'qos',
        qos,
        `one of ${known} (or map it in qosPriority)`,
      );
    }
    const created = numberField(record, 'creation_time', source);
    if (text(record, 'deletion_time') === '') {
      skipped.push({ id, line: record.line, reason: 'no deletion_time: its run time is unknown' });
      continue;
    }
    const deleted = numberField(record, 'deletion_time', source);
    const neverScheduled = text(record, 'scheduled_time') === '';
    if (neverScheduled && options.pending !== 'include') {
      skipped.push({ id, line: record.line, reason: 'never scheduled (pending)' });
      continue;
    }
    const began = neverScheduled ? created : numberField(record, 'scheduled_time', source);
    if (deleted < began) {
      throw new TraceFormatError(source, record.line, 'deletion_time', deleted, `a time ≥ ${began}`);
    }
    const resources = podResources(record, source);
    const failed = options.failFailed === true && text(record, 'pod_phase') === 'Failed';
    jobs.push({
      id,
      submitAtMs: (created - origin) * 1000,
      durationMs: (deleted - began) * 1000,
      resources,
      priority,
      ...(failed ? { fails: true } : {}),
    });
  }
  jobs.sort((a, b) => a.submitAtMs - b.submitAtMs);
  return { jobs, skipped };
}

/** Reads an Alibaba pod list file (see `parseAlibabaPods`). */
export function readAlibabaPods(path: string, options: AlibabaPodOptions = {}): AlibabaPods {
  return parseAlibabaPods(readFileSync(path, 'utf8'), { source: path, ...options });
}

/** How nodes become a pool. */
export type AlibabaNodeOptions = {
  /** VRAM per GPU model, MB, merged over `ALIBABA_GPU_VRAM_MB`; an unknown model gets 0. */
  vramMbByModel?: Record<string, number>;
  /** For error messages. @default '<string>' */
  source?: string;
};

/**
 * Alibaba node list text → a pool: each node `sn` with `cpu_milli / 1000` cores, `memory_mib`
 * MB and `gpu` GPUs of its `model`, each with that model's VRAM (0 — not tracked — for the
 * anonymised G2 and G3 and any model the table does not know).
 */
export function parseAlibabaNodes(csv: string, options: AlibabaNodeOptions = {}): { nodes: NodeSpec[] } {
  const source = options.source ?? '<string>';
  const vram = { ...ALIBABA_GPU_VRAM_MB, ...options.vramMbByModel };
  const nodes = parseCsv(csv, NODE_COLUMNS, source).map((record): NodeSpec => {
    const id = text(record, 'sn');
    if (id === '') throw new TraceFormatError(source, record.line, 'sn', id, 'a node name');
    const model = text(record, 'model');
    const count = numberField(record, 'gpu', source, { integer: true });
    const vramMb = Object.hasOwn(vram, model) ? (vram[model] ?? 0) : 0;
    return {
      id,
      cpu: numberField(record, 'cpu_milli', source) / 1000,
      memoryMb: numberField(record, 'memory_mib', source),
      gpus: Array.from({ length: count }, () => ({ vramMb, model: model === '' ? 'unknown' : model })),
    };
  });
  return { nodes };
}

/** Reads an Alibaba node list file (see `parseAlibabaNodes`). */
export function readAlibabaNodes(path: string, options: AlibabaNodeOptions = {}): { nodes: NodeSpec[] } {
  return parseAlibabaNodes(readFileSync(path, 'utf8'), { source: path, ...options });
}
