/**
 * Independent answers the model compares the runtime with: could a request be placed on the
 * ledger's nodes right now (with one allocation given back), could it ever fit an idle pool.
 */
import type { Allocation, NodeSpec } from '../../../src/index.js';
import type { ResourceLedger } from '../../../src/core/ledger.js';
import { SHARE_UNITS, type UnitRequest } from '../../../src/core/pool.js';
import type { NodeState } from '../../../src/core/node-state.js';

/** Free amounts per node, in ledger units, optionally with one allocation given back. */
export type NodeView = {
  cpu: number;
  memoryMb: number;
  gpus: Array<{ vramMb: number; freeVram: number; usedShare: number; idle: boolean; whole: boolean }>;
};

export function viewOf(ledger: ResourceLedger, without?: Allocation): NodeView[] {
  return ledger.nodes.map((spec, i) => {
    const n: Readonly<NodeState> = ledger.node(i);
    const back = without?.nodeId === spec.id ? without : undefined;
    const mem = n.usedMemoryMb - (back?.memoryMb ?? 0);
    return {
      cpu: n.cpu - n.usedCpu + Math.round((back?.cpu ?? 0) * 1_000),
      memoryMb: Math.max(0, n.memoryLimitMb - mem),
      gpus: n.gpus.map((g) => {
        const part = back?.gpus.find((p) => p.index === g.index);
        const whole = g.whole && !(part && part.share === 1);
        const sharers = g.sharers - (part && part.share < 1 ? 1 : 0);
        const usedShare = g.usedShare - (part ? Math.round(part.share * SHARE_UNITS) : 0);
        const usedVram = g.usedVramMb - (part?.vramMb ?? 0);
        return {
          vramMb: g.vramMb,
          freeVram: Math.max(0, g.vramLimitMb - usedVram),
          usedShare,
          whole,
          idle: !whole && sharers === 0,
        };
      }),
    };
  });
}

/** An independent answer to "could this request be placed right now?" */
export function fitsNow(view: readonly NodeView[], r: UnitRequest): boolean {
  return view.some((n) => {
    if (r.cpu > n.cpu || r.memoryMb > n.memoryMb) return false;
    if (r.gpus > 0) return n.gpus.filter((g) => g.idle && g.freeVram >= (r.vramMb ?? 0)).length >= r.gpus;
    if (r.share > 0) {
      return n.gpus.some(
        (g) =>
          !g.whole &&
          SHARE_UNITS - g.usedShare >= r.share &&
          g.freeVram >= (r.vramMb ?? Math.floor((r.share * g.vramMb) / SHARE_UNITS)),
      );
    }
    return true;
  });
}

/** "Could it ever fit an idle pool?" — what submit must reject with UnschedulableError. */
export function canEverFit(nodes: readonly NodeSpec[], r: UnitRequest): boolean {
  const need = r.gpus > 0 ? r.gpus : r.share > 0 ? 1 : 0;
  return nodes.some((n) => {
    const gpus = Array.isArray(n.gpus) ? n.gpus : [];
    return (
      r.cpu <= n.cpu * 1_000 &&
      r.memoryMb <= n.memoryMb &&
      gpus.filter((g) => g.vramMb >= (r.vramMb ?? 0)).length >= need
    );
  });
}

/** A small seeded random source for retry jitter. */
export function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
