/**
 * Detects this machine's capacity (CPU cores, memory, compute GPUs) with systeminformation, for
 * `resources: 'detect'`. Every reading has a fallback, so detection always yields a usable node and
 * says in `warnings` what it had to guess.
 */
import nodeOs from 'node:os';
import si from 'systeminformation';
import type { NodeSpec, NormalisedNode } from '../core/resources.js';
import {
  DEFAULT_READ_TIMEOUT_MS,
  assertTimeout,
  attempt,
  describeError,
  execNvidiaSmi,
  isMissingCommand,
  withTimeout,
} from './measure.js';

/** One graphics controller: the fields of systeminformation's `GraphicsControllerData` used here. */
export type GraphicsControllerLike = {
  vendor: string;
  model: string;
  /** MB; on Linux without nvidia-smi this is the largest PCI memory window, not the VRAM. */
  vram: number | null;
  vramDynamic?: boolean;
  /** MB, from nvidia-smi. */
  memoryTotal?: number;
  /** The name nvidia-smi gives, e.g. `NVIDIA A100-SXM4-80GB`. */
  name?: string;
  /**
   * nvidia-smi's index. systeminformation 5 does not set it; a caller that merges it in may.
   * @default the controller's position among the GPUs kept
   */
  index?: number;
};

/** The part of the `systeminformation` package that detection reads; tests pass a fake. */
export interface SystemInformationLike {
  cpu(): Promise<{ cores: number }>;
  mem(): Promise<{ total: number; available: number }>;
  graphics(): Promise<{ controllers: GraphicsControllerLike[] }>;
}

/** The part of `node:os` used as a fallback. */
export interface OsLike {
  availableParallelism?(): number;
  cpus(): readonly unknown[];
  totalmem(): number;
  hostname(): string;
}

/** Options of {@link detectHost}. */
export type DetectHostOptions = {
  /** @default the `systeminformation` package */
  si?: SystemInformationLike;
  /** @default `node:os` */
  os?: OsLike;
  /** The id of the detected node. @default the host name */
  id?: string;
  /** How long each reading may take before its fallback is used, in ms. @default 10_000 */
  timeoutMs?: number;
  /**
   * Runs `nvidia-smi` with {@link NVIDIA_SMI_INVENTORY_ARGS} and resolves with its standard output.
   * Used only when systeminformation finds no GPU (it misses them where `lspci` is not installed,
   * as in most containers). @default {@link execNvidiaSmi} with those arguments
   */
  runNvidiaSmi?: () => Promise<string>;
};

/** What {@link detectHost} found. */
export type HostDetection = {
  /** A complete node: usable as a `NodeSpec` and already in normalised form. */
  node: NormalisedNode;
  /** Readings that failed or were guessed, in words; empty when everything was read. */
  warnings: string[];
};

/** The arguments that make nvidia-smi print `index, total MiB, name`, one GPU a line. */
export const NVIDIA_SMI_INVENTORY_ARGS: readonly string[] = [
  '--query-gpu=index,memory.total,name',
  '--format=csv,noheader,nounits',
];

const MB = 1_048_576;
const INTEL_DISCRETE = /\b(arc|dg1|dg2|data center gpu|flex|iris xe max)\b/i;

// si.cpu() spawns lscpu and friends; core counts do not change, so each source is read once.
let cpuReads = new WeakMap<SystemInformationLike, Promise<{ cores: number }>>();

/** Forgets cached CPU readings, so that the next {@link detectHost} asks again. For tests. */
export function resetHostDetectionCache(): void {
  cpuReads = new WeakMap();
}

/**
 * Detects CPU cores, total memory and compute GPUs (NVIDIA, AMD, Intel discrete) of this machine.
 * Never rejects because of a failed reading: CPU and memory fall back to `node:os`, GPUs to none,
 * and each fallback is named in `warnings`. Only a bad option rejects.
 *
 * @example
 * const { node, warnings } = await detectHost();
 * for (const warning of warnings) console.warn(warning);
 * const pool = applyOverrides(node, { memoryMb: 16_384 });
 */
export async function detectHost(options: DetectHostOptions = {}): Promise<HostDetection> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  assertTimeout(timeoutMs, 'timeoutMs');
  const source = options.si ?? si;
  const os = options.os ?? nodeOs;
  const runNvidiaSmi = options.runNvidiaSmi ?? (() => execNvidiaSmi(NVIDIA_SMI_INVENTORY_ARGS, timeoutMs));
  const warnings: string[] = [];

  const [cpu, mem, graphics] = await Promise.allSettled([
    withTimeout(readCpuOnce(source), timeoutMs, 'si.cpu()'),
    withTimeout(
      attempt(() => source.mem()),
      timeoutMs,
      'si.mem()',
    ),
    withTimeout(
      attempt(() => source.graphics()),
      timeoutMs,
      'si.graphics()',
    ),
  ]);

  const cores = cpuCores(cpu, os, warnings);
  const totalMb = memoryMb(mem, os, warnings);
  let gpus: NormalisedNode['gpus'] = [];
  if (graphics.status === 'rejected') {
    warnings.push(`GPUs: ${describeError(graphics.reason)}`);
  } else if (!Array.isArray(graphics.value?.controllers)) {
    warnings.push('GPUs: si.graphics() gave no controller list');
  } else {
    gpus = computeGpus(graphics.value.controllers, warnings);
  }
  if (gpus.length === 0) gpus = await gpusFromNvidiaSmi(runNvidiaSmi, timeoutMs, warnings);

  return {
    node: {
      id: options.id ?? (safeHostname(os) || 'localhost'),
      cpu: cores,
      memoryMb: totalMb,
      gpus,
      custom: {},
    },
    warnings,
  };
}

/**
 * Lets a pool given in options correct what detection found: every field present in `override`
 * replaces the detected one whole (`custom` and `gpus` are not merged). Returns a new node.
 *
 * @example
 * applyOverrides(detected, { gpus: 0 }); // keep the GPUs away from this scheduler
 */
export function applyOverrides(detected: NodeSpec, override?: Partial<NodeSpec>): NodeSpec {
  if (override === undefined) return { ...detected };
  const { id, cpu, memoryMb, gpus, custom } = override;
  return {
    ...detected,
    ...(id !== undefined && { id }),
    ...(cpu !== undefined && { cpu }),
    ...(memoryMb !== undefined && { memoryMb }),
    ...(gpus !== undefined && { gpus }),
    ...(custom !== undefined && { custom }),
  };
}

function readCpuOnce(source: SystemInformationLike): Promise<{ cores: number }> {
  const cached = cpuReads.get(source);
  if (cached !== undefined) return cached;
  const read = attempt(() => source.cpu());
  cpuReads.set(source, read);
  // A failure may be passing (a busy system); keep only answers, so the next detection retries.
  read.catch(() => {
    if (cpuReads.get(source) === read) cpuReads.delete(source);
  });
  return read;
}

function cpuCores(reading: PromiseSettledResult<{ cores: number }>, os: OsLike, warnings: string[]): number {
  const cores = reading.status === 'fulfilled' ? reading.value?.cores : undefined;
  if (typeof cores === 'number' && Number.isInteger(cores) && cores >= 1) return cores;
  const why =
    reading.status === 'rejected' ? describeError(reading.reason) : `si.cpu() gave cores = ${String(cores)}`;
  const fallback = osCores(os);
  warnings.push(`CPU: ${why}; using ${fallback} from node:os`);
  return fallback;
}

function osCores(os: OsLike): number {
  try {
    const count = os.availableParallelism?.() ?? os.cpus().length;
    return Number.isInteger(count) && count >= 1 ? count : 1;
  } catch {
    return 1;
  }
}

function memoryMb(reading: PromiseSettledResult<{ total: number }>, os: OsLike, warnings: string[]): number {
  const total = reading.status === 'fulfilled' ? reading.value?.total : undefined;
  if (typeof total === 'number' && Number.isFinite(total) && total >= MB) return Math.floor(total / MB);
  const why =
    reading.status === 'rejected' ? describeError(reading.reason) : `si.mem() gave total = ${String(total)}`;
  let fallback = 0;
  try {
    fallback = Math.floor(os.totalmem() / MB);
  } catch (error) {
    warnings.push(`memory: os.totalmem() failed too (${describeError(error)})`);
  }
  warnings.push(`memory: ${why}; using ${fallback} MB from node:os`);
  return Math.max(0, fallback);
}

type Vendor = 'NVIDIA' | 'AMD' | 'Intel';
type FoundGpu = { index: number | undefined; vramMb: number; model: string };

function vendorOf(controller: GraphicsControllerLike): Vendor | undefined {
  // An unparsed lspci line leaves vendor empty; the model then still names the maker.
  const text = controller.vendor || `${controller.model} ${controller.name ?? ''}`;
  if (/nvidia/i.test(text)) return 'NVIDIA';
  if (/advanced micro devices|\bamd\b|\bati\b/i.test(text)) return 'AMD';
  if (/intel/i.test(text)) return 'Intel';
  return undefined;
}

/** Keeps compute GPUs; BMC, virtual and integrated adapters are not places to run jobs. */
function computeGpus(
  controllers: readonly GraphicsControllerLike[],
  warnings: string[],
): NormalisedNode['gpus'] {
  const kept: FoundGpu[] = [];
  for (const controller of controllers) {
    const vendor = vendorOf(controller);
    if (vendor === undefined) continue;
    const model = controller.name || controller.model || `${vendor} GPU`;
    if (vendor === 'Intel' && !INTEL_DISCRETE.test(model)) continue;
    const fromDriver = positive(controller.memoryTotal);
    // Dynamic VRAM is borrowed system memory: an integrated GPU, unless the driver says otherwise.
    if (controller.vramDynamic === true && fromDriver === undefined) continue;
    const vramMb = fromDriver ?? positive(controller.vram);
    if (vramMb === undefined) {
      warnings.push(`GPUs: skipped ${vendor} "${model}": no VRAM size reported`);
      continue;
    }
    if (fromDriver === undefined) {
      warnings.push(
        // systeminformation's `vram` without the driver's `memoryTotal` is OpenCL's global memory
        // (an H200 in a sandbox: 143,156 MB, what CUDA reports as its total) or a PCI memory window.
        `GPUs: ${vendor} "${model}" has ${vramMb} MB as systeminformation read it (OpenCL or the PCI memory window), not from its driver; ` +
          'give the pool in options if that is wrong',
      );
    }
    const { index } = controller;
    kept.push({
      index: Number.isInteger(index) && index !== undefined && index >= 0 ? index : undefined,
      vramMb,
      model,
    });
  }
  return indexGpus(kept, warnings);
}

function indexGpus(gpus: readonly FoundGpu[], warnings: string[]): NormalisedNode['gpus'] {
  const indexed = gpus.map((gpu, position) => ({ ...gpu, index: gpu.index ?? position }));
  if (new Set(indexed.map((gpu) => gpu.index)).size === indexed.length) return indexed;
  warnings.push('GPUs: reported indexes repeat; numbering the GPUs by position instead');
  return gpus.map((gpu, position) => ({ ...gpu, index: position }));
}

async function gpusFromNvidiaSmi(
  runNvidiaSmi: () => Promise<string>,
  timeoutMs: number,
  warnings: string[],
): Promise<NormalisedNode['gpus']> {
  let output: string;
  try {
    output = await withTimeout(attempt(runNvidiaSmi), timeoutMs, 'nvidia-smi');
  } catch (error) {
    // Most machines have no NVIDIA GPU: a missing nvidia-smi only confirms there is none.
    if (!isMissingCommand(error)) warnings.push(`GPUs: ${describeError(error)}`);
    return [];
  }
  const gpus: FoundGpu[] = [];
  for (const line of output.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const [index, total, ...name] = line.split(',').map((field) => field.trim());
    const vramMb = /^\d+$/.test(total ?? '') ? positive(Number(total)) : undefined;
    if (!/^\d+$/.test(index ?? '') || vramMb === undefined) {
      warnings.push(`GPUs: skipped an unreadable nvidia-smi line: "${line.trim().slice(0, 120)}"`);
      continue;
    }
    gpus.push({ index: Number(index), vramMb, model: name.join(',') || 'NVIDIA GPU' });
  }
  return indexGpus(gpus, warnings);
}

function positive(value: number | null | undefined): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
}

function safeHostname(os: OsLike): string {
  try {
    return os.hostname();
  } catch {
    return '';
  }
}
