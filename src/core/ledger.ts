/**
 * The resource ledger: what each node and GPU has, what is allocated, and the placement of new
 * requests. Deterministic and free of I/O and timers; one instance per pool, owned by the
 * resource-manager actor. It mutates in place (a copy per allocation would cost O(nodes) and
 * defeat the O(log nodes) goal), and every operation either completes or changes nothing.
 *
 * The pool may change while it runs: a node joins (`addNode`: its capacity is free at once) or
 * is retired (`retireNode`: nothing new is placed on it; what it holds stays held until released,
 * and its capacity leaves the totals with its last allocation). Positions stay dense: a node
 * that leaves gives its position to the last node (held allocations point at their node, not at
 * a position), so the capacity index never holds more leaves than nodes present, and placement
 * stays O(log nodes) however many nodes came and went.
 */
import type { Allocation } from './types.js';
import { InvalidPoolError } from './errors.js';
import { RenewingMap } from './renewing-map.js';
import type {
  AdmissionLimit,
  Denial,
  NodeSpec,
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
  POOL_LIMITS,
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

/** What `retireNode` did. */
export type RetireResult =
  | {
      retired: true;
      nodeId: string;
      /** The allocations it still holds (held until released). */
      held: Allocation[];
      /** It held nothing: it has left the pool at once. */
      removed: boolean;
    }
  | { retired: false; reason: 'unknown' | 'already-retired' };

type Held = {
  /** The node itself, not its position: positions move when nodes leave. */
  node: NodeState;
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
  /** Accept `{ nodes: [] }`: a pool that nodes join later (`addNode`). @default false */
  allowEmpty?: boolean;
};

export class ResourceLedger {
  /**
   * Goes up whenever free resources may have grown (a release, an admission limit changed):
   * whoever remembers denials forgets them when it moves, by whatever path the ledger changed.
   */
  grown = 0;
  /**
   * Called when a retired node leaves the pool as its last allocation is released (one that
   * held none leaves inside `retireNode`, which says so: `removed`). Set by the owner (the
   * scheduler tells `node.removed`).
   */
  onNodeRemoved: ((node: NormalisedNode) => void) | undefined = undefined;
  /** The nodes present (retired ones still holding allocations included), by position. */
  readonly nodes: readonly NormalisedNode[];
  readonly policy: PlacementPolicy;
  private readonly nodeList: NormalisedNode[];
  private readonly state: NodeState[];
  private readonly index: CapacityIndex;
  /** Position by node id, for the nodes present. */
  private readonly positions = new Map<string, number>();
  /** The nodes that take new allocations, and their maxima (what could ever fit); made on demand. */
  private activeCache: { nodes: NormalisedNode[]; maxima: PoolMaxima } | undefined;
  private gpuCount = 0;
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

  /**
   * `pool` may be `{ nodes: [] }` when `options.allowEmpty` says so: a pool that nodes join later
   * (`addNode`).
   */
  constructor(pool: ResourcePool, options: LedgerOptions = {}) {
    const empty =
      options.allowEmpty === true && 'nodes' in pool && Array.isArray(pool.nodes) && pool.nodes.length === 0;
    this.nodeList = empty ? [] : normalisePool(pool);
    this.nodes = this.nodeList;
    this.policy = options.policy ?? 'best-fit';
    this.idPrefix = options.idPrefix ?? 'alloc-';
    this.state = this.nodeList.map((n, i) => stateOf(n, i));
    this.index = new CapacityIndex(this.state.length);
    this.nodeFree = this.state.map(() => emptyTotals());
    for (const node of this.state) {
      this.positions.set(node.id, node.position);
      this.gpuCount += node.gpus.length;
      this.addCapacity(node, 1);
      this.refresh(node.position);
    }
  }

  /** The most any node that takes new allocations offers (what a request could ever get). */
  get maxima(): PoolMaxima {
    return this.active$().maxima;
  }

  /** The nodes that take new allocations (not retired), by position. */
  get activeNodes(): readonly NormalisedNode[] {
    return this.active$().nodes;
  }

  private active$(): { nodes: NormalisedNode[]; maxima: PoolMaxima } {
    if (this.activeCache) return this.activeCache;
    const nodes = this.nodeList.filter((_, i) => !(this.state[i] as NodeState).retired);
    return (this.activeCache = { nodes, maxima: poolMaxima(nodes) });
  }

  /**
   * A node joins the pool: all of its capacity is free at once, and placements may use it from
   * now on. Its id must be given and must not be a node present (a retired node still holding
   * allocations is present until its last one is released; then its id may join again, as a
   * new node). Throws `InvalidPoolError` naming the field (`node.cpu`, `node.id`, …) and changes
   * nothing when the spec is bad, the id is taken, or the pool would pass `POOL_LIMITS`.
   */
  addNode(spec: NodeSpec): NormalisedNode {
    const id = (spec as { id?: unknown } | null | undefined)?.id;
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec))
      throw new InvalidPoolError('node', spec, 'a node { id, cpu, memoryMb, gpus, custom }');
    if (typeof id !== 'string' || id === '') throw new InvalidPoolError('node.id', id, 'a non-empty string');
    const at = this.positions.get(id);
    if (at !== undefined) {
      const there = this.state[at] as NodeState;
      throw new InvalidPoolError(
        'node.id',
        id,
        there.retired
          ? `an id not in the pool (node ${JSON.stringify(id)} is retired but still holds ` +
              `${there.holding} allocation(s); it may join again once they are released)`
          : `an id not in the pool (node ${JSON.stringify(id)} is in it)`,
      );
    }
    let node: NormalisedNode;
    try {
      [node] = normalisePool({ nodes: [spec] }) as [NormalisedNode];
    } catch (error) {
      if (!(error instanceof InvalidPoolError)) throw error;
      throw new InvalidPoolError(
        error.field.replace(/^nodes\[0\]/, 'node'),
        error.value,
        error.allowed,
        error.unknownField,
      );
    }
    if (this.state.length + 1 > POOL_LIMITS.nodes)
      throw new InvalidPoolError(
        'node',
        id,
        `a node of a pool of at most ${POOL_LIMITS.nodes} nodes (it is full)`,
      );
    if (this.gpuCount + node.gpus.length > POOL_LIMITS.gpus)
      throw new InvalidPoolError(
        'node.gpus',
        node.gpus.length,
        `a count that keeps the pool within ${POOL_LIMITS.gpus} GPUs (the nodes present have ${this.gpuCount})`,
      );
    const position = this.state.length;
    const state = stateOf(node, position);
    this.nodeList.push(node);
    this.state.push(state);
    this.nodeFree.push(emptyTotals());
    this.positions.set(id, position);
    this.gpuCount += node.gpus.length;
    this.index.resize(position + 1);
    this.addCapacity(state, 1);
    this.refresh(position);
    this.activeCache = undefined;
    // More is free: whoever remembers denials forgets them.
    this.grown++;
    return node;
  }

  /**
   * Retires a node: nothing new is placed on it from now on. What it holds stays held until
   * released (a unit is held until the work on it has really stopped); its capacity leaves the
   * totals when its last allocation is released (`onNodeRemoved`), or at once when it holds
   * none. Its free amounts leave the free totals at once (nothing may be placed there).
   */
  retireNode(nodeId: string): RetireResult {
    const position = this.positions.get(nodeId);
    if (position === undefined) return { retired: false, reason: 'unknown' };
    const node = this.state[position] as NodeState;
    if (node.retired) return { retired: false, reason: 'already-retired' };
    node.retired = true;
    this.activeCache = undefined;
    this.refresh(position);
    const held: Allocation[] = [];
    if (node.holding > 0) for (const h of this.held.values()) if (h.node === node) held.push(h.allocation);
    const removed = node.holding === 0;
    if (removed) this.remove(node, false);
    return { retired: true, nodeId, held, removed };
  }

  /** Whether a node of that id is present and retired (still holding allocations). */
  isRetired(nodeId: string): boolean {
    const position = this.positions.get(nodeId);
    return position !== undefined && (this.state[position] as NodeState).retired;
  }

  /** The position of a node present, or -1. */
  positionOf(nodeId: string): number {
    return this.positions.get(nodeId) ?? -1;
  }

  /**
   * Validates a request against this pool and converts it to units: throws `InvalidJobError`
   * for a bad value and `UnschedulableError` for a request no node could ever hold.
   */
  validate(request: ResourceRequest, field = 'resources'): UnitRequest {
    const units = toUnits(request, field);
    const active = this.active$();
    assertCanEverFit(units, active.nodes, active.maxima, field);
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
    const node = held.node;
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
    this.refresh(node.position);
    this.grown++;
    // A retired node leaves with its last allocation.
    if (--node.holding === 0 && node.retired) this.remove(node, true);
    return { released: true, allocation: held.allocation };
  }

  /**
   * Lowers (or restores) what a node admits, e.g. when memory is used outside the scheduler.
   * Running allocations are never revoked: free simply reads 0 until enough is released.
   */
  setAdmissionLimit(nodeId: string, limit: AdmissionLimit | undefined): void {
    const position = this.positions.get(nodeId);
    if (position === undefined) throw new RangeError(`unknown node ${JSON.stringify(nodeId)}`);
    const node = this.state[position] as NodeState;
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
    const held: Held = { node, request: r, gpus: plan, allocation };
    node.holding++;
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

  /** Adds (sign 1) or removes (sign -1) a node's capacity from the totals. */
  private addCapacity(node: NodeState, sign: 1 | -1): void {
    const cap = this.capacityUnits;
    cap.cpu += sign * node.cpu;
    cap.memoryMb += sign * node.memoryMb;
    cap.gpu += sign * node.gpus.length * SHARE_UNITS;
    for (const g of node.gpus) cap.vramMb += sign * g.vramMb;
    for (const [k, v] of node.custom) cap.custom.set(k, (cap.custom.get(k) ?? 0) + sign * v.cap);
  }

  /**
   * A retired node that holds nothing leaves: its capacity leaves the totals, and the last node
   * takes its position (O(log nodes) in the index; held allocations point at nodes, not positions).
   */
  private remove(node: NodeState, notify: boolean): void {
    const i = node.position;
    const last = this.state.length - 1;
    const spec = this.nodeList[i] as NormalisedNode;
    this.addCapacity(node, -1);
    // Its free part is zero already (retired); cleared for certain.
    const mine = this.nodeFree[i] as UnitTotals;
    const f = this.freeUnits;
    f.cpu -= mine.cpu;
    f.memoryMb -= mine.memoryMb;
    f.gpu -= mine.gpu;
    f.vramMb -= mine.vramMb;
    for (const [k, v] of mine.custom) f.custom.set(k, (f.custom.get(k) ?? 0) - v);
    if (i !== last) {
      const moved = this.state[last] as NodeState;
      moved.position = i;
      this.state[i] = moved;
      this.nodeList[i] = this.nodeList[last] as NormalisedNode;
      this.nodeFree[i] = this.nodeFree[last] as UnitTotals;
      this.positions.set(moved.id, i);
      if (moved.retired) this.index.clear(i);
      else this.index.update(i, summarise(moved, this.summary));
    }
    this.state.pop();
    this.nodeList.pop();
    this.nodeFree.pop();
    this.index.resize(last);
    this.positions.delete(node.id);
    this.gpuCount -= node.gpus.length;
    // A custom resource no node present has any more leaves the totals.
    for (const k of node.custom.keys()) {
      if (this.state.some((n) => n.custom.has(k))) continue;
      this.capacityUnits.custom.delete(k);
      this.freeUnits.custom.delete(k);
    }
    this.activeCache = undefined;
    if (notify) this.onNodeRemoved?.(spec);
  }

  /** Re-reads node i into the index and into the free totals (a retired node offers nothing). */
  private refresh(i: number): void {
    const node = this.state[i] as NodeState;
    const retired = node.retired;
    if (retired) this.index.clear(i);
    else this.index.update(i, summarise(node, this.summary));
    const mine = this.nodeFree[i] as UnitTotals;
    const f = this.freeUnits;
    const cpu = retired ? 0 : Math.max(0, node.cpu - node.usedCpu);
    const memoryMb = retired ? 0 : Math.max(0, node.memoryLimitMb - node.usedMemoryMb);
    let gpu = 0;
    let vramMb = 0;
    if (!retired)
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
      const free = retired ? 0 : Math.max(0, c.cap - c.used);
      f.custom.set(k, (f.custom.get(k) ?? 0) + free - (mine.custom.get(k) ?? 0));
      mine.custom.set(k, free);
    }
  }

  /** What is short, on the node that came closest: the best node for each resource is a candidate. */
  private deny(r: UnitRequest): Denial {
    const candidates = new Set<number>(this.state.length > 0 ? [0] : []);
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
      const node = this.state[i] as NodeState;
      if (node.retired) continue;
      const short = shortagesOn(node, r);
      if (short.length > 0 && (!best || distance(short) < distance(best))) best = short;
    }
    return { short: best ?? [] };
  }
}

const emptyRequest: UnitRequest = { cpu: 0, memoryMb: 0, gpus: 0, share: 0, vramMb: 0, custom: [] };

/** A node's live state, all of it free. */
function stateOf(n: NormalisedNode, position: number): NodeState {
  return {
    id: n.id,
    position,
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
    holding: 0,
    retired: false,
  };
}

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
