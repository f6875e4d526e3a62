/**
 * A binary min-heap ordered by a comparison function: O(log n) push and pop, O(1) peek.
 * Used for timers ordered by due time and for queues ordered by priority.
 */
export class BinaryHeap<T> {
  private items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(item, items[parent] as T)) break;
      items[i] = items[parent] as T;
      i = parent;
    }
    items[i] = item;
  }

  pop(): T | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      let i = 0;
      const n = items.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const child = r < n && this.before(items[r] as T, items[l] as T) ? r : l;
        if (!this.before(items[child] as T, last)) break;
        items[i] = items[child] as T;
        i = child;
      }
      items[i] = last;
    }
    return top;
  }

  /** Keeps only the items for which `keep` is true, in O(n). */
  filter(keep: (item: T) => boolean): void {
    const kept = this.items.filter(keep);
    this.items = [];
    for (const item of kept) this.push(item);
  }
}
