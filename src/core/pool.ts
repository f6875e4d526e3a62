/**
 * Validation at the door: pools become normalised nodes, requests become integer units, and a
 * request that can never fit the pool is rejected with the field, the value and the maximum.
 */
import { InvalidJobError, InvalidPoolError, UnschedulableError } from './errors.js';
import type { GpuSpec, NodeSpec, NormalisedNode, ResourcePool, ResourceRequest } from './resources.js';
import { checkKeys, isObject, type UnknownFieldError } from './job-spec.js';

/** Internal units: CPU and custom amounts in thousandths, GPU shares in millionths. */
export const CPU_UNITS = 1_000;
export const CUSTOM_UNITS = 1_000;
export const SHARE_UNITS = 1_000_000;

/** A request in integer units, ready for the ledger; shared by jobs that ask the same (never changed). */
export type UnitRequest = {
  readonly cpu: number;
  readonly memoryMb: number;
  /** Whole GPUs (0 when the request is a share or needs none). */
  readonly gpus: number;
  /** A share of one GPU in SHARE_UNITS (0 when none). */
  readonly share: number;
  /** VRAM per GPU in MB; for a share, undefined means "in proportion to the share". */
  readonly vramMb: number | undefined;
  readonly custom: ReadonlyArray<readonly [name: string, units: number]>;
};

/** Shared by every request that names no custom resource (most). */
const NO_CUSTOM: UnitRequest['custom'] = Object.freeze([]);

/** The most any single node or GPU of a pool offers, for rejecting what can never fit. */
export type PoolMaxima = {
  cpu: number;
  memoryMb: number;
  gpus: number;
  vramMb: number;
  custom: Map<string, number>;
};

const isFiniteNonNegative = (v: unknown): v is number =>
  typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * How large a pool may be. Its GPUs are objects, each with its place in the ledger's index (~1 KB
 * and ~10 µs each to build): unbounded, `gpus: 1e6` took 11 s and 900 MB and `1e7` ran out of heap.
 * The figures keep every amount, in ledger units, a whole number that adds up exactly (below
 * 2^53) over the largest pool. The real traces are far within: Alibaba's 1,213 nodes of at most
 * 8 GPUs, 96 cores and 768 GB; `ai-batch simulate --gpus N` makes nodes of 8 GPUs.
 */
export const POOL_LIMITS = Object.freeze({
  /** Nodes in a pool. */
  nodes: 100_000,
  /** GPUs on one node. */
  gpusPerNode: 1_024,
  /** GPUs in the whole pool (128 nodes of 1,024; 16,384 nodes of 8). */
  gpus: 131_072,
  /** CPU cores of one node. */
  cpu: 1_000_000,
  /** Memory of one node, MB (about a petabyte). */
  memoryMb: 1_000_000_000,
  /** VRAM of one GPU, MB (about 10 TB). */
  vramMb: 10_000_000,
  /** A custom amount of one node. */
  custom: 10_000_000,
});

function poolNumber(field: string, value: unknown, max: number): number {
  if (!isFiniteNonNegative(value) || value > max) {
    throw new InvalidPoolError(field, value, `a finite number in [0, ${max}]`);
  }
  return value;
}

const NODE_KEYS: ReadonlySet<string> = new Set(['id', 'cpu', 'memoryMb', 'gpus', 'custom']);
const GPU_KEYS: ReadonlySet<string> = new Set(['index', 'vramMb', 'model']);
const poolError: UnknownFieldError = (field, value, allowed, unknown) =>
  new InvalidPoolError(field, value, allowed, unknown);

/** Validates a pool and gives every node an id and every GPU an index. */
export function normalisePool(pool: ResourcePool): NormalisedNode[] {
  const specs: NodeSpec[] = 'nodes' in pool ? pool.nodes : [pool];
  if (!Array.isArray(specs) || specs.length === 0)
    throw new InvalidPoolError('nodes', specs, 'a non-empty array');
  // Checked before anything is made for them (a node's GPUs, below, likewise).
  if (specs.length > POOL_LIMITS.nodes)
    throw new InvalidPoolError(
      'nodes.length',
      specs.length,
      `at most ${POOL_LIMITS.nodes} (nodes in a pool)`,
    );
  const ids = new Set<string>();
  let gpusBefore = 0;
  return specs.map((spec, n) => {
    const at = `nodes[${n}]`;
    if (!isObject(spec)) throw new InvalidPoolError(at, spec, 'a node { id, cpu, memoryMb, gpus, custom }');
    checkKeys(at, spec, NODE_KEYS, poolError);
    const id = spec.id ?? `node-${n}`;
    if (typeof id !== 'string' || id === '') throw new InvalidPoolError(`${at}.id`, id, 'a non-empty string');
    if (ids.has(id)) throw new InvalidPoolError(`${at}.id`, id, 'unique within the pool');
    ids.add(id);
    const gpuSpecs: GpuSpec[] =
      typeof spec.gpus === 'number'
        ? Array.from({ length: integerCount(`${at}.gpus`, spec.gpus) }, () => ({ vramMb: 0 }))
        : (spec.gpus ?? []);
    if (!Array.isArray(gpuSpecs))
      throw new InvalidPoolError(`${at}.gpus`, gpuSpecs, 'a number of GPUs or an array of { vramMb, model }');
    if (gpuSpecs.length > POOL_LIMITS.gpusPerNode)
      throw new InvalidPoolError(
        `${at}.gpus.length`,
        gpuSpecs.length,
        `at most ${POOL_LIMITS.gpusPerNode} (GPUs on a node)`,
      );
    gpusBefore += gpuSpecs.length;
    if (gpusBefore > POOL_LIMITS.gpus)
      throw new InvalidPoolError(
        `${at}.gpus`,
        gpuSpecs.length,
        `a count that keeps the pool within ${POOL_LIMITS.gpus} GPUs (the nodes before this one ` +
          `have ${gpusBefore - gpuSpecs.length})`,
      );
    const indexes = new Set<number>();
    const gpus = Array.from(gpuSpecs, (g: GpuSpec | undefined, i) => {
      if (!isObject(g)) throw new InvalidPoolError(`${at}.gpus[${i}]`, g, 'a GPU { vramMb, model, index }');
      checkKeys(`${at}.gpus[${i}]`, g, GPU_KEYS, poolError);
      if (g.model !== undefined && typeof g.model !== 'string')
        throw new InvalidPoolError(`${at}.gpus[${i}].model`, g.model, 'a string');
      const index = g.index ?? i;
      if (!Number.isInteger(index) || index < 0) {
        throw new InvalidPoolError(`${at}.gpus[${i}].index`, index, 'an integer ≥ 0');
      }
      if (indexes.has(index))
        throw new InvalidPoolError(`${at}.gpus[${i}].index`, index, 'unique on its node');
      indexes.add(index);
      const vramMb = Math.floor(poolNumber(`${at}.gpus[${i}].vramMb`, g.vramMb, POOL_LIMITS.vramMb));
      return { index, vramMb, model: g.model ?? 'unknown' };
    });
    const custom: Record<string, number> = {};
    if (spec.custom !== undefined && !isObject(spec.custom))
      throw new InvalidPoolError(`${at}.custom`, spec.custom, 'an object of name → amount');
    for (const [name, amount] of Object.entries(spec.custom ?? {})) {
      custom[name] = poolNumber(`${at}.custom.${name}`, amount, POOL_LIMITS.custom);
    }
    return {
      id,
      cpu: poolNumber(`${at}.cpu`, spec.cpu, POOL_LIMITS.cpu),
      memoryMb: Math.floor(poolNumber(`${at}.memoryMb`, spec.memoryMb, POOL_LIMITS.memoryMb)),
      gpus,
      custom,
    };
  });
}

function integerCount(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > POOL_LIMITS.gpusPerNode)
    throw new InvalidPoolError(field, value, `a whole number of GPUs in [0, ${POOL_LIMITS.gpusPerNode}]`);
  return value;
}

/** The largest node and GPU figures of a pool. */
export function poolMaxima(nodes: readonly NormalisedNode[]): PoolMaxima {
  const maxima: PoolMaxima = { cpu: 0, memoryMb: 0, gpus: 0, vramMb: 0, custom: new Map() };
  for (const node of nodes) {
    maxima.cpu = Math.max(maxima.cpu, node.cpu);
    maxima.memoryMb = Math.max(maxima.memoryMb, node.memoryMb);
    maxima.gpus = Math.max(maxima.gpus, node.gpus.length);
    for (const gpu of node.gpus) maxima.vramMb = Math.max(maxima.vramMb, gpu.vramMb);
    for (const [name, amount] of Object.entries(node.custom)) {
      maxima.custom.set(name, Math.max(maxima.custom.get(name) ?? 0, amount));
    }
  }
  return maxima;
}

/** `prefix.key` as a number ≥ 0 (0 when absent); the field's name is made only for an error. */
function requestNumber(prefix: string, key: string, value: unknown): number {
  if (value === undefined) return 0;
  if (!isFiniteNonNegative(value))
    throw new InvalidJobError(`${prefix}.${key}`, value, 'a finite number ≥ 0');
  return value;
}

/**
 * The last requests made, for reuse: a backlog of jobs that ask the same holds one object, not
 * one per job (most workloads ask for a handful of shapes). Only requests with no custom amounts.
 */
const recent: UnitRequest[] = [];
const RECENT = 8;

function unitsOf(
  cpu: number,
  memoryMb: number,
  gpus: number,
  share: number,
  vramMb: number | undefined,
): UnitRequest {
  for (const r of recent)
    if (
      r.cpu === cpu &&
      r.memoryMb === memoryMb &&
      r.gpus === gpus &&
      r.share === share &&
      r.vramMb === vramMb
    )
      return r;
  // Frozen: it is shared (and `ResourceLedger.validate` hands it out), so nobody may change it.
  const units: UnitRequest = Object.freeze({ cpu, memoryMb, gpus, share, vramMb, custom: NO_CUSTOM });
  if (recent.length >= RECENT) recent.pop();
  recent.unshift(units);
  return units;
}

const REQUEST_KEYS: ReadonlySet<string> = new Set(['cpu', 'memoryMb', 'gpu', 'vramMb', 'custom']);

/**
 * Checks a request's values and converts them to integer units. Throws `InvalidJobError` for a
 * value out of range (negative, NaN, infinite, a GPU count that is neither a share nor whole).
 */
export function toUnits(request: ResourceRequest, prefix = 'resources'): UnitRequest {
  if (typeof request !== 'object' || request === null) {
    throw new InvalidJobError(prefix, request, 'an object such as { cpu: 1, memoryMb: 512 }');
  }
  // A misspelt resource (`gpus`, `vram`, `memory`) would otherwise be dropped, and the job run
  // without it: on a GPU job, with no GPU. A switch first: this runs on every submit.
  for (const key in request) {
    switch (key) {
      case 'cpu':
      case 'memoryMb':
      case 'gpu':
      case 'vramMb':
      case 'custom':
        continue;
      default:
        checkKeys(prefix, request as Record<string, unknown>, REQUEST_KEYS);
    }
  }
  const cpu = requestNumber(prefix, 'cpu', request.cpu);
  const memoryMb = requestNumber(prefix, 'memoryMb', request.memoryMb);
  const gpu = requestNumber(prefix, 'gpu', request.gpu);
  if (gpu > 1 && !Number.isInteger(gpu)) {
    throw new InvalidJobError(`${prefix}.gpu`, gpu, '0, a share in (0, 1), or a whole number of GPUs');
  }
  const vram = request.vramMb === undefined ? undefined : requestNumber(prefix, 'vramMb', request.vramMb);
  if (vram !== undefined && vram > 0 && gpu === 0) {
    throw new InvalidJobError(
      `${prefix}.vramMb`,
      vram,
      '0 unless resources.gpu asks for a GPU (VRAM is per GPU)',
    );
  }
  const share = gpu > 0 && gpu < 1 ? Math.max(1, Math.round(gpu * SHARE_UNITS)) : 0;
  if (share >= SHARE_UNITS) {
    throw new InvalidJobError(`${prefix}.gpu`, gpu, 'a share that rounds below 1 (use 1 for a whole GPU)');
  }
  const custom: Array<[string, number]> = [];
  if (request.custom !== undefined) {
    if (typeof request.custom !== 'object' || request.custom === null) {
      throw new InvalidJobError(`${prefix}.custom`, request.custom, 'an object of name → amount');
    }
    for (const [name, amount] of Object.entries(request.custom)) {
      const units = toCeilUnits(requestNumber(`${prefix}.custom`, name, amount), CUSTOM_UNITS);
      if (units > 0) custom.push([name, units]);
    }
  }
  const cpuUnits = toCeilUnits(cpu, CPU_UNITS);
  const gpus = share > 0 ? 0 : gpu;
  const vramMb = vram === undefined ? (share > 0 ? undefined : 0) : Math.ceil(vram);
  if (custom.length === 0) return unitsOf(cpuUnits, Math.ceil(memoryMb), gpus, share, vramMb);
  return { cpu: cpuUnits, memoryMb: Math.ceil(memoryMb), gpus, share, vramMb, custom };
}

/** Whole units, rounding up but forgiving float noise (0.3 × 1000 = 300.00000000000006). */
function toCeilUnits(value: number, units: number): number {
  return Math.max(0, Math.ceil(value * units - 1e-9));
}

/**
 * Rejects a request that no node of the pool could hold even when idle, naming the field,
 * the value and the pool's maximum. Per-field checks come first so the message names the
 * resource that is out of reach — GPUs and VRAM before CPU and memory: AI jobs are sized by their
 * GPUs, and a trace's CPU and memory are often derived from its GPU count (a 16-GPU Philly job on
 * 8-GPU nodes is refused for its GPUs, not for the cores that come with them); then one node
 * must hold everything at once.
 */
export function assertCanEverFit(
  request: UnitRequest,
  nodes: readonly NormalisedNode[],
  maxima: PoolMaxima,
  prefix = 'resources',
): void {
  const gpusNeeded = request.gpus > 0 ? request.gpus : request.share > 0 ? 1 : 0;
  if (gpusNeeded > maxima.gpus) {
    throw new UnschedulableError(
      `${prefix}.gpu`,
      request.gpus || request.share / SHARE_UNITS,
      maxima.gpus,
      `the largest node has ${maxima.gpus} GPUs`,
    );
  }
  const vram = request.vramMb ?? 0;
  if (gpusNeeded > 0 && vram > maxima.vramMb) {
    throw new UnschedulableError(
      `${prefix}.vramMb`,
      vram,
      maxima.vramMb,
      `the largest GPU has ${maxima.vramMb} MB of VRAM`,
    );
  }
  const cpu = request.cpu / CPU_UNITS;
  if (cpu > maxima.cpu)
    throw new UnschedulableError(
      `${prefix}.cpu`,
      cpu,
      maxima.cpu,
      `the largest node has ${maxima.cpu} CPU cores`,
    );
  if (request.memoryMb > maxima.memoryMb) {
    throw new UnschedulableError(
      `${prefix}.memoryMb`,
      request.memoryMb,
      maxima.memoryMb,
      `the largest node has ${maxima.memoryMb} MB of memory`,
    );
  }
  for (const [name, units] of request.custom) {
    const max = maxima.custom.get(name);
    if (max === undefined) {
      throw new UnschedulableError(
        `${prefix}.custom.${name}`,
        units / CUSTOM_UNITS,
        0,
        `no node has a custom resource named "${name}"`,
      );
    }
    if (units > Math.round(max * CUSTOM_UNITS)) {
      throw new UnschedulableError(
        `${prefix}.custom.${name}`,
        units / CUSTOM_UNITS,
        max,
        `the most any node has is ${max}`,
      );
    }
  }
  const fits = nodes.some(
    (node) =>
      request.cpu <= Math.round(node.cpu * CPU_UNITS) &&
      request.memoryMb <= node.memoryMb &&
      node.gpus.filter((g) => g.vramMb >= vram).length >= gpusNeeded &&
      request.custom.every(([name, units]) => units <= Math.round((node.custom[name] ?? 0) * CUSTOM_UNITS)),
  );
  if (!fits) {
    throw new UnschedulableError(
      prefix,
      gpusNeeded,
      maxima.gpus,
      'no single node has all of it at once (CPU, memory, GPUs with that VRAM, custom)',
    );
  }
}
