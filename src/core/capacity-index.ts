/**
 * A segment tree over the nodes of a pool that keeps, for every range of nodes, the most free
 * of each resource any one node in it has, and which counts of idle GPUs occur in it. A search
 * descends only into ranges that may hold a fit, so finding the leftmost node that fits costs
 * O(log n) when resources are not fragmented across dimensions (each maximum is per dimension,
 * so a range can pass the test and still hold no node that fits all at once; the search then
 * backtracks, which is O(n) in the worst case). The pool may change: positions are added
 * (`resize`) and cleared (`clear`: a node that takes nothing new, or a vacant position), and a
 * cleared position never passes a search.
 */

/** What one node offers, as the index sees it. */
export type NodeSummary = {
  freeCpu: number;
  freeMemoryMb: number;
  /** GPUs carrying nothing. */
  idleGpus: number;
  /** The largest VRAM among idle GPUs (admission limit applied). */
  idleVramMb: number;
  /** The largest free share (SHARE_UNITS) among GPUs not taken whole, idle ones included. */
  shareFree: number;
  /** The largest free VRAM among GPUs not taken whole. */
  shareVramMb: number;
  /** Like shareFree/shareVramMb, but only among GPUs that already carry a share. */
  sharedFree: number;
  sharedVramMb: number;
};

const FIELDS = [
  'freeCpu',
  'freeMemoryMb',
  'idleGpus',
  'idleVramMb',
  'shareFree',
  'shareVramMb',
  'sharedFree',
  'sharedVramMb',
] as const;
const MAX_IDLE_BIT = 30;

/** Every idle-GPU count is a candidate. */
export const ANY_IDLE_COUNT = 0x7fffffff;

/** The bit for nodes with exactly `count` idle GPUs. */
export function idleBit(count: number): number {
  return 1 << Math.min(count, MAX_IDLE_BIT);
}

/** A vector of needs in index order: cpu, memory, idle GPUs, idle VRAM, share, share VRAM, shared, shared VRAM. */
export function needVector(): Float64Array {
  return new Float64Array(FIELDS.length);
}

export class CapacityIndex {
  private size: number;
  /** Per tree node, FIELDS.length maxima side by side. */
  private data: Float64Array;
  private mask: Int32Array;
  private count: number;

  constructor(length: number) {
    this.size = CapacityIndex.sizeFor(length);
    this.count = length;
    this.data = new Float64Array(2 * this.size * FIELDS.length).fill(-1);
    this.mask = new Int32Array(2 * this.size);
  }

  /** How many positions the index covers (nodes of the pool, vacant ones included). */
  get length(): number {
    return this.count;
  }

  private static sizeFor(length: number): number {
    let size = 1;
    while (size < Math.max(1, length)) size *= 2;
    return size;
  }

  /**
   * Covers `length` positions from now on (a pool that nodes joined or left). Positions beyond
   * the old length start vacant (see `clear`); positions dropped are cleared. Growing past the
   * tree's leaves rebuilds it at twice the size, O(n) once per doubling: O(1) amortised per node
   * added, and placements stay O(log n).
   */
  resize(length: number): void {
    for (let i = length; i < this.count; i++) this.clear(i);
    if (length > this.size) {
      const F = FIELDS.length;
      const size = CapacityIndex.sizeFor(length);
      const data = new Float64Array(2 * size * F).fill(-1);
      const mask = new Int32Array(2 * size);
      data.set(this.data.subarray(this.size * F, (this.size + this.count) * F), size * F);
      mask.set(this.mask.subarray(this.size, this.size + this.count), size);
      for (let t = size - 1; t >= 1; t--) {
        for (let f = 0; f < F; f++)
          data[t * F + f] = Math.max(data[2 * t * F + f] as number, data[(2 * t + 1) * F + f] as number);
        mask[t] = (mask[2 * t] as number) | (mask[2 * t + 1] as number);
      }
      this.size = size;
      this.data = data;
      this.mask = mask;
    }
    this.count = length;
  }

  /** Records what node `i` offers now and refreshes the ranges above it. */
  update(i: number, summary: NodeSummary): void {
    const F = FIELDS.length;
    const d = this.data;
    const t = this.size + i;
    for (let f = 0; f < F; f++) d[t * F + f] = summary[FIELDS[f] as (typeof FIELDS)[number]];
    this.mask[t] = idleBit(summary.idleGpus);
    this.propagate(t);
  }

  /**
   * Position `i` offers nothing to any search (a vacant position, or a node that takes no new
   * allocation): its maxima read below any need and its idle-GPU mask is empty.
   */
  clear(i: number): void {
    const F = FIELDS.length;
    const t = this.size + i;
    this.data.fill(-1, t * F, (t + 1) * F);
    this.mask[t] = 0;
    this.propagate(t);
  }

  /** Refreshes the ranges above leaf `t`. */
  private propagate(leaf: number): void {
    const F = FIELDS.length;
    const d = this.data;
    for (let t = leaf >> 1; t >= 1; t >>= 1) {
      const l = 2 * t * F;
      const r = l + F;
      let changed = false;
      for (let f = 0; f < F; f++) {
        const value = Math.max(d[l + f] as number, d[r + f] as number);
        if (d[t * F + f] !== value) {
          d[t * F + f] = value;
          changed = true;
        }
      }
      const mask = (this.mask[2 * t] as number) | (this.mask[2 * t + 1] as number);
      if (this.mask[t] !== mask) {
        this.mask[t] = mask;
        changed = true;
      }
      // Nothing above can change either: most updates stop well below the root.
      if (!changed) break;
    }
  }

  /** The idle-GPU counts that occur anywhere in the pool, as a bit mask. */
  idleCounts(): number {
    return this.mask[1] as number;
  }

  /**
   * The leftmost node that may fit `need` (see `needVector`), whose idle-GPU count is in
   * `idleMask`, and for which `accept` (the exact check) says yes; -1 when none.
   */
  findLeftmost(need: Float64Array, idleMask: number, accept: (node: number) => boolean): number {
    return this.search(1, need, idleMask, accept);
  }

  private mayFit(t: number, need: Float64Array, idleMask: number): boolean {
    if (((this.mask[t] as number) & idleMask) === 0) return false;
    const base = t * FIELDS.length;
    for (let f = 0; f < FIELDS.length; f++) {
      if ((this.data[base + f] as number) < (need[f] as number)) return false;
    }
    return true;
  }

  private search(t: number, need: Float64Array, idleMask: number, accept: (node: number) => boolean): number {
    if (!this.mayFit(t, need, idleMask)) return -1;
    if (t >= this.size) {
      const node = t - this.size;
      return node < this.count && accept(node) ? node : -1;
    }
    const left = this.search(2 * t, need, idleMask, accept);
    return left >= 0 ? left : this.search(2 * t + 1, need, idleMask, accept);
  }
}
