/**
 * The resource ledger: what each node and GPU has, what is allocated, and the placement of new
 * requests. Deterministic and free of I/O and timers; one instance per pool, owned by the
 * resource-manager actor. It mutates in place (a copy per allocation would cost O(nodes) and
 * defeat the O(log nodes) goal), and every operation either completes or changes nothing.
 */
import type { Allocation } from './types.js';
import { RenewingMap } from './renewing-map.js';
import type {
  AdmissionLimit,
  Denial,
  NormalisedNode,
  PlacementPolicy,
  ResourcePool,
  ResourceRequest,
  ResourceTotals,
  Shortage,
} from './resources.js';
import {
  CPU_UNITS,
  CUSTOM_UNITS,
  SHARE_UNITS,
  assertCanEverFit,
  normalisePool,
  poolMaxima,
  toUnits,
  type PoolMaxima,
  type UnitRequest,
} from './pool.js';
import { ANY_IDLE_COUNT, CapacityIndex, needVector, type NodeSummary } from './capacity-index.js';
import {
  chooseGpus,
  shortagesOn,
  summarise,
  type GpuPart,
  type GpuState,
  type NodeState,
} from './node-state.js';

export type AllocateResult = { ok: true; allocation: Allocation } | { ok: false; denial: Denial };
export type ReleaseResult =
  { released: true; allocation: Allocation } | { released: false; reason: 'already-released' | 'unknown' };

type Held = {
  node: number;
  request: UnitRequest;
  gpus: GpuPart[];
  allocation: Allocation;
};

/** Totals kept in integer units so that a release restores them exactly. */
type UnitTotals = { cpu: number; memoryMb: number; gpu: number; vramMb: number; custom: Map<string, number> };

const emptyTotals = (): UnitTotals => ({ cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0, custom: new Map() });

export type LedgerOptions = {
  /** @default 'best-fit' */
  policy?: PlacementPolicy;
  /** Allocation ids are `<prefix><n>`. @default 'alloc-' */
  idPrefix?: string;
};

export class ResourceLedger {
  /**
   * Goes up whenever free resources may have grown (a release, an admission limit changed):
   * whoever remembers denials forgets them when it moves, by whatever path the ledger changed.
   */
  grown = 0;
  readonly nodes: readonly NormalisedNode[];
  readonly maxima: PoolMaxima;
  readonly policy: PlacementPolicy;
  private readonly state: NodeState[];
  private readonly index: CapacityIndex;
  private readonly held = new RenewingMap<string, Held>();
  private readonly idPrefix: string;
  private nextId = 1;
  private readonly capacityUnits = emptyTotals();
  private readonly allocatedUnits = emptyTotals();
  private readonly freeUnits = emptyTotals();
  /** Each node's contribution to freeUnits, so a change adjusts the sum instead of recounting. */
  private readonly nodeFree: UnitTotals[];
  // Scratch state of the placement in progress: searches are hot, so nothing is allocated per try.
  private readonly need = needVector();
  private pending: UnitRequest = emptyRequest;
  private pendingPolicy: PlacementPolicy = 'best-fit';
  private plan: GpuPart[] | null = null;
  private readonly summary: NodeSummary = {
    freeCpu: 0,
    freeMemoryMb: 0,
    idleGpus: 0,
    idleVramMb: 0,
    shareFree: 0,
    shareVramMb: 0,
    sharedFree: 0,
    sharedVramMb: 0,
  };
  private readonly acceptNode = (i: number): boolean => {
    this.plan = this.fits(i, this.pending, this.pendingPolicy);
    return this.plan !== null;
  };

  constructor(pool: ResourcePool, options: LedgerOptions = {}) {
    this.nodes = normalisePool(pool);
    this.maxima = poolMaxima(this.nodes);
    this.policy = options.policy ?? 'best-fit';
    this.idPrefix = options.idPrefix ?? 'alloc-';
    this.state = this.nodes.map((n, i) => ({
      id: n.id,
      position: i,
      cpu: Math.round(n.cpu * CPU_UNITS),
      usedCpu: 0,
      memoryMb: n.memoryMb,
      memoryLimitMb: n.memoryMb,
      usedMemoryMb: 0,
      gpus: n.gpus.map((g) => ({
        ...g,
        vramLimitMb: g.vramMb,
        usedVramMb: 0,
        usedShare: 0,
        sharers: 0,
        whole: false,
      })),
      custom: new Map(
        Object.entries(n.custom).map(([k, v]) => [k, { cap: Math.round(v * CUSTOM_UNITS), used: 0 }]),
      ),
    }));
    this.index = new CapacityIndex(this.state.length);
    this.nodeFree = this.state.map(() => emptyTotals());
    for (const node of this.state) {
      const cap = this.capacityUnits;
      cap.cpu += node.cpu;
      cap.memoryMb += node.memoryMb;
      cap.gpu += node.gpus.length * SHARE_UNITS;
      for (const g of node.gpus) cap.vramMb += g.vramMb;
      for (const [k, v] of node.custom) cap.custom.set(k, (cap.custom.get(k) ?? 0) + v.cap);
      this.refresh(node.position);
    }
  }

  /**
   * Validates a request against this pool and converts it to units: throws `InvalidJobError`
   * for a bad value and `UnschedulableError` for a request no node could ever hold.
   */
  validate(request: ResourceRequest, field = 'resources'): UnitRequest {
    const units = toUnits(request, field);
    assertCanEverFit(units, this.nodes, this.maxima, field);
    return units;
  }

  /** Places a validated request, or says what is short and where. */
  allocate(request: UnitRequest, policy: PlacementPolicy = this.policy): AllocateResult {
    const allocation = this.tryAllocate(request, policy);
    return allocation ? { ok: true, allocation } : { ok: false, denial: this.deny(request) };
  }

  /**
   * Places a validated request, or says only that it does not fit now (undefined): what a
   * scheduling round needs, without the cost of working out what is short where (`allocate`).
   */
  tryAllocate(request: UnitRequest, policy: PlacementPolicy = this.policy): Allocation | undefined {
    this.pending = request;
    this.pendingPolicy = policy;
    this.plan = null;
    const node = this.place(request, policy);
    const plan = this.plan as GpuPart[] | null;
    this.pending = emptyRequest;
    if (node < 0 || plan === null) return undefined;
    return this.commit(node, request, plan);
  }

  /** Frees an allocation. Idempotent: a second release changes nothing and says so. */
  release(id: string): ReleaseResult {
    const held = this.held.get(id);
    if (!held) {
      const n = id.startsWith(this.idPrefix) ? Number(id.slice(this.idPrefix.length)) : Number.NaN;
      const issued = Number.isInteger(n) && n >= 1 && n < this.nextId;
      return { released: false, reason: issued ? 'already-released' : 'unknown' };
    }
    this.held.delete(id);
    const node = this.state[held.node] as NodeState;
    const r = held.request;
    node.usedCpu -= r.cpu;
    node.usedMemoryMb -= r.memoryMb;
    for (const [name, units] of r.custom) (node.custom.get(name) as { used: number }).used -= units;
    for (const part of held.gpus) {
      const gpu = node.gpus[part.gpu] as GpuState;
      gpu.usedShare -= part.share;
      gpu.usedVramMb -= part.vramMb;
      if (part.whole) gpu.whole = false;
      else gpu.sharers -= 1;
    }
    this.account(held, -1);
    this.refresh(held.node);
    this.grown++;
    return { released: true, allocation: held.allocation };
  }

  /**
   * Lowers (or restores) what a node admits, e.g. when memory is used outside the scheduler.
   * Running allocations are never revoked: free simply reads 0 until enough is released.
   */
  setAdmissionLimit(nodeId: string, limit: AdmissionLimit | undefined): void {
    const node = this.state.find((n) => n.id === nodeId);
    if (!node) throw new RangeError(`unknown node ${JSON.stringify(nodeId)}`);
    node.memoryLimitMb = Math.min(node.memoryMb, Math.max(0, Math.floor(limit?.memoryMb ?? node.memoryMb)));
    for (const gpu of node.gpus) {
      const v = limit?.vramMb?.[gpu.index];
      gpu.vramLimitMb = Math.min(gpu.vramMb, Math.max(0, Math.floor(v ?? gpu.vramMb)));
    }
    this.refresh(node.position);
    this.grown++;
  }

  /** Whether an allocation id is currently held. */
  holds(id: string): boolean {
    return this.held.has(id);
  }

  /** How many allocations are held. */
  get active(): number {
    return this.held.size;
  }

  /** Every held allocation, in grant order. */
  allocations(): Allocation[] {
    return [...this.held.values()].map((h) => h.allocation);
  }

  /** Pool-wide capacity, allocated and admissible free amounts. */
  totals(): { capacity: ResourceTotals; allocated: ResourceTotals; free: ResourceTotals } {
    return {
      capacity: fromUnits(this.capacityUnits),
      allocated: fromUnits(this.allocatedUnits),
      free: fromUnits(this.freeUnits),
    };
  }

  /** A read-only view of one node's state (for monitors and tests). */
  node(i: number): Readonly<NodeState> {
    const node = this.state[i];
    if (!node) throw new RangeError(`no node at position ${i}`);
    return node;
  }

  private place(request: UnitRequest, policy: PlacementPolicy): number {
    const need = writeNeed(request, this.need);
    const accept = this.acceptNode;
    if (policy === 'first-fit') return this.index.findLeftmost(need, ANY_IDLE_COUNT, accept);
    // Best fit: a share goes first onto a GPU that already carries shares; then every request
    // goes to the node with the fewest idle GPUs that can take it, so whole GPUs stay whole and
    // nodes with many free GPUs stay free for the jobs that need many.
    if (request.share > 0) {
      need[6] = request.share;
      need[7] = request.vramMb ?? 0;
      const shared = this.index.findLeftmost(need, ANY_IDLE_COUNT, accept);
      need[6] = 0;
      need[7] = 0;
      if (shared >= 0) return shared;
    }
    const from = request.gpus > 0 ? Math.min(request.gpus, 30) : request.share > 0 ? 1 : 0;
    // Each idle-GPU count present in the pool, from the smallest that can do: lowest bit first.
    let counts = this.index.idleCounts() & ~((1 << from) - 1);
    while (counts !== 0) {
      const bit = counts & -counts;
      const found = this.index.findLeftmost(need, bit, accept);
      if (found >= 0) return found;
      counts ^= bit;
    }
    return -1;
  }

  private fits(i: number, r: UnitRequest, policy: PlacementPolicy) {
    const node = this.state[i] as NodeState;
    if (r.cpu > node.cpu - node.usedCpu) return null;
    if (r.memoryMb > node.memoryLimitMb - node.usedMemoryMb) return null;
    for (const [name, units] of r.custom) {
      const c = node.custom.get(name);
      if (!c || units > c.cap - c.used) return null;
    }
    return chooseGpus(node, r, policy);
  }

  private commit(i: number, r: UnitRequest, plan: GpuPart[]): Allocation {
    const node = this.state[i] as NodeState;
    node.usedCpu += r.cpu;
    node.usedMemoryMb += r.memoryMb;
    for (const [name, units] of r.custom) (node.custom.get(name) as { used: number }).used += units;
    for (const part of plan) {
      const gpu = node.gpus[part.gpu] as GpuState;
      gpu.usedShare += part.share;
      gpu.usedVramMb += part.vramMb;
      if (part.whole) gpu.whole = true;
      else gpu.sharers += 1;
    }
    const id = `${this.idPrefix}${this.nextId++}`;
    const gpus: Allocation['gpus'] = [];
    for (const p of plan) {
      gpus.push({
        index: (node.gpus[p.gpu] as GpuState).index,
        share: p.share / SHARE_UNITS,
        vramMb: p.vramMb,
      });
    }
    const allocation: Allocation = {
      id,
      nodeId: node.id,
      cpu: r.cpu / CPU_UNITS,
      memoryMb: r.memoryMb,
      gpus,
      custom:
        r.custom.length === 0 ? {} : Object.fromEntries(r.custom.map(([k, u]) => [k, u / CUSTOM_UNITS])),
    };
    const held: Held = { node: i, request: r, gpus: plan, allocation };
    this.held.set(id, held);
    this.account(held, 1);
    this.refresh(i);
    return allocation;
  }

  /** Adds (sign 1) or removes (sign -1) a holding from the allocated totals. */
  private account(held: Held, sign: 1 | -1): void {
    const a = this.allocatedUnits;
    a.cpu += sign * held.request.cpu;
    a.memoryMb += sign * held.request.memoryMb;
    for (const p of held.gpus) {
      a.gpu += sign * p.share;
      a.vramMb += sign * p.vramMb;
    }
    for (const [k, u] of held.request.custom) a.custom.set(k, (a.custom.get(k) ?? 0) + sign * u);
  }

  /** Re-reads node i into the index and into the free totals. */
  private refresh(i: number): void {
    const node = this.state[i] as NodeState;
    this.index.update(i, summarise(node, this.summary));
    const mine = this.nodeFree[i] as UnitTotals;
    const f = this.freeUnits;
    const cpu = Math.max(0, node.cpu - node.usedCpu);
    const memoryMb = Math.max(0, node.memoryLimitMb - node.usedMemoryMb);
    let gpu = 0;
    let vramMb = 0;
    for (const g of node.gpus) {
      gpu += g.whole ? 0 : SHARE_UNITS - g.usedShare;
      vramMb += Math.max(0, g.vramLimitMb - g.usedVramMb);
    }
    f.cpu += cpu - mine.cpu;
    f.memoryMb += memoryMb - mine.memoryMb;
    f.gpu += gpu - mine.gpu;
    f.vramMb += vramMb - mine.vramMb;
    mine.cpu = cpu;
    mine.memoryMb = memoryMb;
    mine.gpu = gpu;
    mine.vramMb = vramMb;
    if (node.custom.size === 0) return;
    for (const [k, c] of node.custom) {
      const free = Math.max(0, c.cap - c.used);
      f.custom.set(k, (f.custom.get(k) ?? 0) + free - (mine.custom.get(k) ?? 0));
      mine.custom.set(k, free);
    }
  }

  /** What is short, on the node that came closest: the best node for each resource is a candidate. */
  private deny(r: UnitRequest): Denial {
    const candidates = new Set<number>([0]);
    const probe = (need: Partial<UnitRequest>) => {
      const vector = writeNeed({ ...emptyRequest, ...need }, needVector());
      const i = this.index.findLeftmost(vector, ANY_IDLE_COUNT, () => true);
      if (i >= 0) candidates.add(i);
    };
    probe({ cpu: r.cpu });
    probe({ memoryMb: r.memoryMb });
    if (r.gpus > 0) {
      probe({ gpus: r.gpus });
      probe({ gpus: 1, vramMb: r.vramMb ?? 0 });
      probe({ gpus: r.gpus, vramMb: r.vramMb ?? 0 });
    }
    if (r.share > 0) {
      probe({ share: r.share });
      probe({ share: 1, vramMb: r.vramMb ?? 0 });
      probe({ share: r.share, vramMb: r.vramMb ?? 0 });
    }
    // The closest node lacks the fewest resources, and among those the smallest fraction of them.
    const distance = (short: Shortage[]) =>
      short.length * 2 + short.reduce((sum, s) => sum + (s.requested - s.free) / s.requested, 0);
    let best: Shortage[] | undefined;
    for (const i of candidates) {
      const short = shortagesOn(this.state[i] as NodeState, r);
      if (short.length > 0 && (!best || distance(short) < distance(best))) best = short;
    }
    return { short: best ?? [] };
  }
}

const emptyRequest: UnitRequest = { cpu: 0, memoryMb: 0, gpus: 0, share: 0, vramMb: 0, custom: [] };

/** What a node must at least offer for a request, in the capacity index's order. */
function writeNeed(r: UnitRequest, into: Float64Array): Float64Array {
  into[0] = r.cpu;
  into[1] = r.memoryMb;
  into[2] = r.gpus;
  into[3] = r.gpus > 0 ? (r.vramMb ?? 0) : 0;
  into[4] = r.share;
  into[5] = r.share > 0 ? (r.vramMb ?? 0) : 0;
  into[6] = 0;
  into[7] = 0;
  return into;
}

function fromUnits(u: UnitTotals): ResourceTotals {
  return {
    cpu: u.cpu / CPU_UNITS,
    memoryMb: u.memoryMb,
    gpu: u.gpu / SHARE_UNITS,
    vramMb: u.vramMb,
    custom: Object.fromEntries([...u.custom].map(([k, v]) => [k, v / CUSTOM_UNITS])),
  };
}
