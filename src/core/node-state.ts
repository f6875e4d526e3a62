/**
 * One node's live state inside the ledger, and the decisions that look at one node only:
 * its summary for the capacity index, which of its GPUs a request gets, and what it lacks.
 */
import { CPU_UNITS, CUSTOM_UNITS, SHARE_UNITS, type UnitRequest } from './pool.js';
import type { NodeSummary } from './capacity-index.js';
import type { PlacementPolicy, Shortage } from './resources.js';

export type GpuState = {
  index: number;
  model: string;
  vramMb: number;
  /** What may be allocated on it (≤ vramMb); lowered by reconciliation under pressure. */
  vramLimitMb: number;
  usedVramMb: number;
  /** In SHARE_UNITS; SHARE_UNITS when taken whole. */
  usedShare: number;
  /** How many shares it carries. */
  sharers: number;
  whole: boolean;
};

export type NodeState = {
  id: string;
  position: number;
  /** In CPU_UNITS. */
  cpu: number;
  usedCpu: number;
  memoryMb: number;
  memoryLimitMb: number;
  usedMemoryMb: number;
  gpus: GpuState[];
  /** In CUSTOM_UNITS. */
  custom: Map<string, { cap: number; used: number }>;
  /** How many allocations it holds. */
  holding: number;
  /**
   * Retired (`ResourceLedger.retireNode`): nothing new is placed on it; it stays in the pool,
   * holding what it holds, until its last allocation is released.
   */
  retired: boolean;
};

/** One GPU's part of a placement. */
export type GpuPart = { gpu: number; share: number; vramMb: number; whole: boolean };

const freeVram = (g: GpuState): number => Math.max(0, g.vramLimitMb - g.usedVramMb);
const isIdle = (g: GpuState): boolean => !g.whole && g.sharers === 0;

/** VRAM a share takes on a GPU: what was asked, or the share's proportion of the device. */
export function shareVram(r: UnitRequest, g: GpuState): number {
  return r.vramMb ?? Math.floor((r.share * g.vramMb) / SHARE_UNITS);
}

/** What the capacity index needs to know of a node, written into `into` (reused: this is hot). */
export function summarise(node: NodeState, into: NodeSummary): NodeSummary {
  into.freeCpu = Math.max(0, node.cpu - node.usedCpu);
  into.freeMemoryMb = Math.max(0, node.memoryLimitMb - node.usedMemoryMb);
  into.idleGpus = 0;
  into.idleVramMb = 0;
  into.shareFree = 0;
  into.shareVramMb = 0;
  into.sharedFree = 0;
  into.sharedVramMb = 0;
  for (const g of node.gpus) {
    if (g.whole) continue;
    const vram = freeVram(g);
    const share = SHARE_UNITS - g.usedShare;
    if (share > into.shareFree) into.shareFree = share;
    if (vram > into.shareVramMb) into.shareVramMb = vram;
    if (g.sharers === 0) {
      into.idleGpus += 1;
      if (vram > into.idleVramMb) into.idleVramMb = vram;
    } else {
      if (share > into.sharedFree) into.sharedFree = share;
      if (vram > into.sharedVramMb) into.sharedVramMb = vram;
    }
  }
  return into;
}

/**
 * The GPUs of this node a request gets, or null when they are not there. Whole GPUs come only
 * from idle ones (never from a GPU carrying a share); a share never takes a GPU past 1 or past
 * its VRAM. Best fit takes the GPUs whose free VRAM fits most tightly, shares going first onto
 * GPUs that already carry shares; first fit takes the lowest positions.
 */
export function chooseGpus(node: NodeState, r: UnitRequest, policy: PlacementPolicy): GpuPart[] | null {
  if (r.gpus === 1) return oneWholeGpu(node, r.vramMb ?? 0, policy);
  if (r.gpus > 0) {
    const need = r.vramMb ?? 0;
    // Candidate positions, kept sorted for best fit by (free VRAM, position): at most a
    // node's GPU count, so an insertion sort beats allocating and sorting.
    const picked: number[] = [];
    for (let i = 0; i < node.gpus.length; i++) {
      const g = node.gpus[i] as GpuState;
      if (!isIdle(g) || freeVram(g) < need) continue;
      if (policy === 'first-fit') {
        picked.push(i);
        if (picked.length === r.gpus) break;
        continue;
      }
      let at = picked.length;
      while (at > 0 && freeVram(node.gpus[picked[at - 1] as number] as GpuState) > freeVram(g)) at--;
      picked.splice(at, 0, i);
    }
    if (picked.length < r.gpus) return null;
    const parts: GpuPart[] = [];
    // A whole GPU is exclusive, so all of its admissible VRAM counts as allocated.
    for (let k = 0; k < r.gpus; k++) {
      const gpu = picked[k] as number;
      parts.push({ gpu, share: SHARE_UNITS, vramMb: freeVram(node.gpus[gpu] as GpuState), whole: true });
    }
    return parts;
  }
  if (r.share > 0) {
    let best: { i: number; slack: number; shared: boolean } | undefined;
    for (let i = 0; i < node.gpus.length; i++) {
      const g = node.gpus[i] as GpuState;
      if (g.whole || SHARE_UNITS - g.usedShare < r.share) continue;
      const slack = freeVram(g) - shareVram(r, g);
      if (slack < 0) continue;
      if (policy === 'first-fit') return [{ gpu: i, share: r.share, vramMb: shareVram(r, g), whole: false }];
      const shared = g.sharers > 0;
      if (!best || (shared && !best.shared) || (shared === best.shared && slack < best.slack)) {
        best = { i, slack, shared };
      }
    }
    if (!best) return null;
    const g = node.gpus[best.i] as GpuState;
    return [{ gpu: best.i, share: r.share, vramMb: shareVram(r, g), whole: false }];
  }
  return [];
}

/** The common case of one whole GPU, in one pass without allocating candidates. */
function oneWholeGpu(node: NodeState, need: number, policy: PlacementPolicy): GpuPart[] | null {
  let best = -1;
  let bestFree = Number.POSITIVE_INFINITY;
  for (let i = 0; i < node.gpus.length; i++) {
    const g = node.gpus[i] as GpuState;
    if (!isIdle(g)) continue;
    const free = freeVram(g);
    if (free < need || free >= bestFree) continue;
    best = i;
    bestFree = free;
    if (policy === 'first-fit') break;
  }
  if (best < 0) return null;
  return [{ gpu: best, share: SHARE_UNITS, vramMb: bestFree, whole: true }];
}

/** Everything this node lacks for the request (empty when it fits). */
export function shortagesOn(node: NodeState, r: UnitRequest): Shortage[] {
  const out: Shortage[] = [];
  const nodeId = node.id;
  const freeCpu = node.cpu - node.usedCpu;
  if (r.cpu > freeCpu)
    out.push({
      resource: 'cpu',
      nodeId,
      requested: r.cpu / CPU_UNITS,
      free: Math.max(0, freeCpu) / CPU_UNITS,
    });
  const freeMem = node.memoryLimitMb - node.usedMemoryMb;
  if (r.memoryMb > freeMem)
    out.push({ resource: 'memory', nodeId, requested: r.memoryMb, free: Math.max(0, freeMem) });
  for (const [name, units] of r.custom) {
    const c = node.custom.get(name);
    const free = c ? Math.max(0, c.cap - c.used) : 0;
    if (units > free)
      out.push({
        resource: `custom:${name}`,
        nodeId,
        requested: units / CUSTOM_UNITS,
        free: free / CUSTOM_UNITS,
      });
  }
  if (r.gpus > 0) {
    const idle = node.gpus.filter(isIdle);
    const need = r.vramMb ?? 0;
    if (idle.length < r.gpus) out.push({ resource: 'gpu', nodeId, requested: r.gpus, free: idle.length });
    else if (idle.filter((g) => freeVram(g) >= need).length < r.gpus) {
      out.push({ resource: 'vram', nodeId, requested: need, free: Math.max(0, ...idle.map(freeVram)) });
    }
  } else if (r.share > 0) {
    const open = node.gpus.filter((g) => !g.whole && SHARE_UNITS - g.usedShare >= r.share);
    if (open.length === 0) {
      const most = Math.max(0, ...node.gpus.map((g) => (g.whole ? 0 : SHARE_UNITS - g.usedShare)));
      out.push({ resource: 'gpu', nodeId, requested: r.share / SHARE_UNITS, free: most / SHARE_UNITS });
    } else if (!open.some((g) => freeVram(g) >= shareVram(r, g))) {
      out.push({
        resource: 'vram',
        nodeId,
        requested: r.vramMb ?? 0,
        free: Math.max(0, ...open.map(freeVram)),
      });
    }
  }
  return out;
}
