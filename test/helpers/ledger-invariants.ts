import type { ResourceLedger } from '../../src/core/ledger.js';
import { SHARE_UNITS } from '../../src/core/pool.js';
import type { Allocation } from '../../src/core/types.js';
import type { UnitRequest } from '../../src/core/pool.js';

/** A cheap assertion for the hot loop (vitest's expect costs microseconds per call). */
function ensure(condition: boolean, what: string): void {
  if (!condition) throw new Error(`ledger invariant broken: ${what}`);
}

const near = (a: number, b: number) => Math.abs(a - b) < 1e-6;

/**
 * Checks everything that must hold whatever happened before: nothing over-allocated per node,
 * per GPU and per custom resource, nothing negative, usage equal to the sum of what is held,
 * totals consistent, allocation ids unique.
 */
export function checkLedgerInvariants(ledger: ResourceLedger, held: readonly Allocation[]): void {
  const heldIds = ledger.allocations().map((a) => a.id);
  ensure(new Set(heldIds).size === heldIds.length, 'allocation ids are unique');
  ensure(heldIds.length === held.length && held.every((a) => ledger.holds(a.id)), 'held = model');
  let cpu = 0;
  let mem = 0;
  let gpu = 0;
  let vram = 0;
  const byNode = new Map<string, Allocation[]>();
  for (const a of held) {
    byNode.set(a.nodeId, [...(byNode.get(a.nodeId) ?? []), a]);
    cpu += a.cpu;
    mem += a.memoryMb;
    for (const p of a.gpus) {
      gpu += p.share;
      vram += p.vramMb;
    }
  }
  ledger.nodes.forEach((spec, i) => {
    const node = ledger.node(i);
    const at = `node ${spec.id}`;
    ensure(node.usedCpu >= 0 && node.usedCpu <= node.cpu, `${at}: 0 ≤ cpu used ≤ capacity`);
    ensure(node.usedMemoryMb >= 0 && node.usedMemoryMb <= node.memoryMb, `${at}: 0 ≤ memory used ≤ capacity`);
    for (const c of node.custom.values())
      ensure(c.used >= 0 && c.used <= c.cap, `${at}: custom within capacity`);
    // The node's usage is exactly the sum of what is held on it.
    const mine = byNode.get(spec.id) ?? [];
    ensure(node.usedCpu === Math.round(mine.reduce((s, a) => s + a.cpu, 0) * 1_000), `${at}: cpu = Σ held`);
    ensure(node.usedMemoryMb === mine.reduce((s, a) => s + a.memoryMb, 0), `${at}: memory = Σ held`);
    for (const g of node.gpus) {
      const gat = `${at} gpu ${g.index}`;
      ensure(g.usedShare >= 0 && g.usedShare <= SHARE_UNITS, `${gat}: shares ≤ 1`);
      ensure(g.usedVramMb >= 0 && g.usedVramMb <= g.vramMb, `${gat}: VRAM ≤ the device's`);
      ensure(g.sharers >= 0, `${gat}: sharers ≥ 0`);
      if (g.whole)
        ensure(g.sharers === 0 && g.usedShare === SHARE_UNITS, `${gat}: a whole GPU carries no share`);
      const parts = mine.flatMap((a) => a.gpus.filter((p) => p.index === g.index));
      ensure(g.usedVramMb === parts.reduce((s, p) => s + p.vramMb, 0), `${gat}: VRAM = Σ held`);
      ensure(
        g.usedShare === parts.reduce((s, p) => s + Math.round(p.share * SHARE_UNITS), 0),
        `${gat}: share = Σ held`,
      );
      if (parts.some((p) => p.share === 1)) ensure(parts.length === 1, `${gat}: whole means alone`);
    }
  });
  const totals = ledger.totals();
  ensure(near(totals.allocated.cpu, cpu), 'allocated cpu total');
  ensure(totals.allocated.memoryMb === mem, 'allocated memory total');
  ensure(near(totals.allocated.gpu, gpu), 'allocated gpu total');
  ensure(totals.allocated.vramMb === vram, 'allocated VRAM total');
  for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const) {
    ensure(
      totals.free[k] >= -1e-9 && totals.free[k] <= totals.capacity[k] + 1e-9,
      `0 ≤ free ${k} ≤ capacity`,
    );
  }
}

/**
 * An independent brute-force answer, not using the ledger's capacity index: could any node
 * take this request right now?
 */
export function someNodeFits(ledger: ResourceLedger, r: UnitRequest): boolean {
  return ledger.nodes.some((_, i) => {
    const n = ledger.node(i);
    if (r.cpu > n.cpu - n.usedCpu || r.memoryMb > n.memoryLimitMb - n.usedMemoryMb) return false;
    if (r.custom.some(([k, u]) => u > (n.custom.get(k)?.cap ?? 0) - (n.custom.get(k)?.used ?? 0)))
      return false;
    const free = (g: (typeof n.gpus)[number]) => Math.max(0, g.vramLimitMb - g.usedVramMb);
    if (r.gpus > 0)
      return n.gpus.filter((g) => !g.whole && g.sharers === 0 && free(g) >= (r.vramMb ?? 0)).length >= r.gpus;
    if (r.share > 0) {
      return n.gpus.some(
        (g) =>
          !g.whole &&
          SHARE_UNITS - g.usedShare >= r.share &&
          free(g) >= (r.vramMb ?? Math.floor((r.share * g.vramMb) / SHARE_UNITS)),
      );
    }
    return true;
  });
}
