/**
 * A Map for the engine's long-lived churn: one entry set and deleted per job, for as long as the
 * scheduler lives (the dispatcher's slot holders, the ledger's held allocations).
 *
 * Why not a plain Map: V8 grows and shrinks a Map by moving it to a new hash table, allocated in
 * the generation of the table it replaces. Once a long-lived Map's table has been promoted, every
 * later table is born in the old generation, and each key and value written to it is kept alive
 * from there (the scavenger promotes it) until the next mark-compact, however short its life. At
 * a deep backlog that was about a kilobyte of short-lived allocations per job promoted, which the
 * engine then paid for in mark-compacts (docs/performance.md, step 21).
 *
 * This Map starts over — copies its live entries into a new Map, so iteration still runs in
 * insertion order — after as many deletions as it holds entries, and at least `every` of them:
 * the copy is a young Map again, and it costs O(1) per deletion, amortised.
 *
 * One difference from Map: an iterator taken before a renewal goes on over the entries as they
 * were then, and sees no later change. The engine only iterates to copy.
 */
export class RenewingMap<K, V> {
  private map = new Map<K, V>();
  private deletions = 0;
  /** How many times it started over (for tests and diagnostics). */
  renewals = 0;

  constructor(private readonly every = 256) {
    if (!Number.isInteger(every) || every < 1) {
      throw new RangeError(`every must be an integer ≥ 1, got ${String(every)}`);
    }
  }

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    return this.map.get(key);
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  set(key: K, value: V): this {
    this.map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    if (!this.map.delete(key)) return false;
    if (++this.deletions >= this.every && this.deletions >= this.map.size) {
      this.deletions = 0;
      this.renewals++;
      this.map = new Map(this.map);
    }
    return true;
  }

  clear(): void {
    this.map = new Map();
    this.deletions = 0;
  }

  keys(): IterableIterator<K> {
    return this.map.keys();
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }

  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.map.entries();
  }
}
