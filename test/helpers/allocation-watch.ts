import { normalisePool } from '../../src/core/pool.js';
import type { ResourcePool } from '../../src/core/resources.js';
import type { Allocation } from '../../src/core/types.js';
import type { Scheduler } from '../../src/runtime/scheduler.js';

type NodeUse = { cpu: number; memoryMb: number; gpus: Map<number, { share: number; vramMb: number }> };

/**
 * Watches a scheduler from outside the ledger: adds each allocation when its job starts and
 * removes it when the attempt ends, and after every change checks each node and GPU against
 * the pool's capacity, and the engine's own totals against capacity. Collects violations
 * instead of throwing, because a throw inside an event handler would be swallowed by RxJS.
 */
export function watchAllocations(pool: ResourcePool) {
  const nodes = new Map(normalisePool(pool).map((n) => [n.id, n]));
  const use = new Map<string, NodeUse>();
  const held = new Map<string, Allocation>();
  const violations: string[] = [];
  let checks = 0;
  let peakHeld = 0;
  const eps = 1e-9;

  const apply = (a: Allocation, sign: 1 | -1) => {
    const u = use.get(a.nodeId) ?? { cpu: 0, memoryMb: 0, gpus: new Map() };
    use.set(a.nodeId, u);
    u.cpu += sign * a.cpu;
    u.memoryMb += sign * a.memoryMb;
    for (const g of a.gpus) {
      const gu = u.gpus.get(g.index) ?? { share: 0, vramMb: 0 };
      gu.share += sign * g.share;
      gu.vramMb += sign * g.vramMb;
      u.gpus.set(g.index, gu);
    }
  };

  const check = (nodeId: string, at: number) => {
    checks++;
    const node = nodes.get(nodeId);
    const u = use.get(nodeId);
    if (!node || !u) return void violations.push(`t=${at}: unknown node ${nodeId}`);
    if (u.cpu > node.cpu + eps) violations.push(`t=${at}: ${nodeId} cpu ${u.cpu} > ${node.cpu}`);
    if (u.memoryMb > node.memoryMb + eps) violations.push(`t=${at}: ${nodeId} memory ${u.memoryMb}`);
    for (const [index, g] of u.gpus) {
      const gpu = node.gpus.find((x) => x.index === index);
      if (!gpu) violations.push(`t=${at}: ${nodeId} has no gpu ${index}`);
      else if (g.share > 1 + eps || g.vramMb > gpu.vramMb + eps)
        violations.push(`t=${at}: ${nodeId} gpu ${index} share ${g.share} vram ${g.vramMb}`);
    }
  };

  return {
    violations,
    /** How many instants were checked. */
    get checks() {
      return checks;
    },
    /** The most allocations held at once. */
    get peakHeld() {
      return peakHeld;
    },
    /** Subscribes to the scheduler: pass as `observe` to `simulate()`. */
    observe(scheduler: Scheduler) {
      scheduler.events$.subscribe((event) => {
        if (!('job' in event)) return;
        const { id } = event.job;
        if (event.type === 'job.started' && event.job.allocation) {
          if (held.has(id)) violations.push(`t=${event.at}: ${id} started twice without ending`);
          held.set(id, event.job.allocation);
          peakHeld = Math.max(peakHeld, held.size);
          apply(event.job.allocation, 1);
          check(event.job.allocation.nodeId, event.at);
          const { allocated, capacity } = scheduler.stats().resources;
          for (const key of ['cpu', 'memoryMb', 'gpu', 'vramMb'] as const) {
            if (allocated[key] > capacity[key] + eps)
              violations.push(`t=${event.at}: pool ${key} ${allocated[key]} > ${capacity[key]}`);
          }
        } else if (
          event.type === 'job.retrying' ||
          event.type === 'job.completed' ||
          event.type === 'job.failed' ||
          event.type === 'job.cancelled'
        ) {
          const a = held.get(id);
          if (!a) return;
          held.delete(id);
          apply(a, -1);
          check(a.nodeId, event.at);
        }
      });
    },
  };
}
