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
 * totals consistent, allocation ids unique. For a pool that changes (nodes added and retired):
 * positions dense and consistent, every allocation on a node present, a retired node present
 * only while it holds something (its count exact), capacity = the sum over the nodes present,
 * free = the sum of what the nodes not retired admit.
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
  checkPoolShape(ledger, held, byNode);
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
 * (not retired) take this request right now?
 */
export function someNodeFits(ledger: ResourceLedger, r: UnitRequest): boolean {
  return ledger.nodes.some((_, i) => {
    const n = ledger.node(i);
    // A retired node takes nothing new.
    if (n.retired) return false;
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

/** Positions, retired nodes, capacity and free totals of a pool that may have changed. */
function checkPoolShape(
  ledger: ResourceLedger,
  held: readonly Allocation[],
  byNode: Map<string, Allocation[]>,
): void {
  const present = new Set(ledger.nodes.map((n) => n.id));
  ensure(present.size === ledger.nodes.length, 'node ids unique');
  for (const a of held)
    ensure(present.has(a.nodeId), `allocation ${a.id} is on a node present (${a.nodeId})`);
  const cap = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 };
  const free = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 };
  const capCustom = new Map<string, number>();
  const freeCustom = new Map<string, number>();
  ledger.nodes.forEach((spec, i) => {
    const node = ledger.node(i);
    const at = `node ${spec.id}`;
    ensure(node.id === spec.id && node.position === i, `${at}: at its position ${i}`);
    ensure(ledger.positionOf(spec.id) === i, `${at}: found at its position`);
    const mine = byNode.get(spec.id)?.length ?? 0;
    ensure(node.holding === mine, `${at}: holding ${node.holding} = ${mine} held`);
    ensure(ledger.isRetired(spec.id) === node.retired, `${at}: isRetired`);
    if (node.retired) ensure(mine > 0, `${at}: a retired node present holds something`);
    cap.cpu += spec.cpu;
    cap.memoryMb += spec.memoryMb;
    cap.gpu += spec.gpus.length;
    for (const g of spec.gpus) cap.vramMb += g.vramMb;
    for (const [k, v] of Object.entries(spec.custom)) capCustom.set(k, (capCustom.get(k) ?? 0) + v);
    if (node.retired) return;
    free.cpu += Math.max(0, node.cpu - node.usedCpu) / 1_000;
    free.memoryMb += Math.max(0, node.memoryLimitMb - node.usedMemoryMb);
    for (const g of node.gpus) {
      free.gpu += g.whole ? 0 : (SHARE_UNITS - g.usedShare) / SHARE_UNITS;
      free.vramMb += Math.max(0, g.vramLimitMb - g.usedVramMb);
    }
    for (const [k, c] of node.custom)
      freeCustom.set(k, (freeCustom.get(k) ?? 0) + Math.max(0, c.cap - c.used) / 1_000);
  });
  const active = ledger.activeNodes.map((n) => n.id);
  ensure(
    active.length === ledger.nodes.filter((n) => !ledger.isRetired(n.id)).length &&
      active.every((id) => present.has(id) && !ledger.isRetired(id)),
    'activeNodes = the nodes present and not retired',
  );
  const totals = ledger.totals();
  for (const k of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const) {
    ensure(
      near(totals.capacity[k], cap[k]),
      `capacity ${k} ${totals.capacity[k]} = Σ nodes present ${cap[k]}`,
    );
    ensure(near(totals.free[k], free[k]), `free ${k} ${totals.free[k]} = Σ active nodes ${free[k]}`);
  }
  ensure(
    Object.keys(totals.capacity.custom).length === capCustom.size,
    `custom capacity names ${Object.keys(totals.capacity.custom).join()} = those of the nodes present`,
  );
  for (const [k, v] of capCustom)
    ensure(near(totals.capacity.custom[k] ?? Number.NaN, v), `capacity custom ${k}`);
  for (const [k, v] of freeCustom) ensure(near(totals.free.custom[k] ?? Number.NaN, v), `free custom ${k}`);
}
