/**
 * The scheduler's queue: FIFO within a priority, ordered by effective priority =
 * base + aging (one level per `aging.intervalMs` queued, up to `aging.maxLevels`) + boost.
 *
 * One FIFO per base priority, in the order jobs entered the queue. Within a FIFO aging never
 * increases from front to back (older entries have aged at least as much), so the best job is
 * the best of five heads, and walking the queue in order is a five-way merge: O(1) per step,
 * O(1) to add and to remove (linked lists), whatever the backlog. Boosted entries (usually few)
 * are merged in from a list sorted per walk: O(B log B) for B boosted queued jobs.
 */
import { MAX_LEVEL, PRIORITY_NAMES } from './priority.js';

/** Aging: a queued job gains one level per `intervalMs`, at most `maxLevels`. */
export type AgingPolicy = { intervalMs: number; maxLevels: number };

/** A real-time boost on a queued job: to at least `toLevel`, and/or up by `byLevels`. */
export type Boost = { toLevel?: number; byLevels?: number; until: number };

export type QueueEntry<T> = {
  readonly id: string;
  readonly base: number;
  /**
   * When it entered the queue (aging counts from here), as an offset from the queue's epoch:
   * `JobQueue.enqueuedAt(entry)` gives the clock's time. An offset of whole milliseconds (within
   * ~24 days of the first enqueue) is a small integer, which V8 keeps in the object itself, where
   * the clock's time (`Date.now()`, ~1.8e12) is a 16-byte number boxed apart from every queued
   * job's record (and one more old-generation object to collect per job at a deep backlog).
   */
  readonly queuedAt: number;
  /** Global order of entering the queue: FIFO within a level. */
  readonly order: number;
  boost: Boost | undefined;
  readonly value: T;
  prev: QueueEntry<T> | undefined;
  next: QueueEntry<T> | undefined;
};

type Fifo<T> = { head: QueueEntry<T> | undefined; tail: QueueEntry<T> | undefined };

/**
 * A value that is its own queue entry (see `JobQueue`'s `find`): the queue writes the entry's
 * fields onto it, and `queueEntry` is the value itself while queued, undefined otherwise.
 */
export type Indexed<T> = QueueEntry<T> & { queueEntry: QueueEntry<T> | undefined };

type Writable<E> = { -readonly [K in keyof E]: E[K] };

/**
 * Without `find`, the queue makes an entry object per queued job and keeps its own index of
 * them by id. With it — the owner already keeps its values by id, and each value is its own
 * entry (`Indexed`) — the queue keeps no index and makes no objects: adding and taking out a job
 * then costs no hash-table work and no allocation, which at a backlog of 100k jobs is a cache
 * miss or two per operation, 88 bytes per queued job, and a table of 100k entries to rebuild
 * now and then.
 */
export class JobQueue<T> {
  private readonly fifos: Array<Fifo<T>> = PRIORITY_NAMES.map(() => ({ head: undefined, tail: undefined }));
  private readonly byId: Map<string, QueueEntry<T>> | undefined;
  private count = 0;
  private readonly boosted = new Set<QueueEntry<T>>();
  /** Entries per base level. */
  private readonly counts: number[] = PRIORITY_NAMES.map(() => 0);
  private order = 0;
  /** The clock's time that `queuedAt` counts from: the first enqueue's, in whole ms. */
  private epoch = Number.NaN;
  private walker: QueueWalk<T> | undefined;

  constructor(
    private readonly aging: AgingPolicy,
    private readonly find?: (id: string) => (T & Indexed<T>) | undefined,
  ) {
    this.byId = find ? undefined : new Map();
  }

  get size(): number {
    return this.count;
  }

  /**
   * The last instant at which a queued job's aging level changes (its newest job's saturation),
   * or -Infinity with aging off or nothing queued: after it, aging moves nobody.
   */
  agingSettlesAt(): number {
    if (this.aging.maxLevels <= 0 || !(this.aging.intervalMs > 0)) return Number.NEGATIVE_INFINITY;
    let newest = Number.NEGATIVE_INFINITY;
    for (const fifo of this.fifos) if (fifo.tail && fifo.tail.queuedAt > newest) newest = fifo.tail.queuedAt;
    if (newest === Number.NEGATIVE_INFINITY) return newest;
    return newest + this.epoch + this.aging.maxLevels * this.aging.intervalMs;
  }

  /** Queued jobs with a boost set (usually none). */
  get boostedCount(): number {
    return this.boosted.size;
  }

  /**
   * Queued jobs whose base level is `level` or higher: with no boost set (a boost may lower a
   * level), all of them are ahead of a new unboosted job of `level`.
   */
  countFrom(level: number): number {
    let n = 0;
    for (let i = Math.max(0, level); i < this.counts.length; i++) n += this.counts[i] as number;
    return n;
  }

  has(id: string): boolean {
    return this.get(id) !== undefined;
  }

  get(id: string): QueueEntry<T> | undefined {
    return this.byId ? this.byId.get(id) : this.find?.(id)?.queueEntry;
  }

  /** Whether `value` (of job `id`) is queued, asked without a lookup by id where values carry their entry. */
  holdsValue(id: string, value: T): boolean {
    return this.byId ? this.byId.has(id) : (value as T & Indexed<T>).queueEntry !== undefined;
  }

  /** When `entry` entered the queue, on the clock. */
  enqueuedAt(entry: QueueEntry<T>): number {
    return entry.queuedAt + this.epoch;
  }

  /** Appends a job at the back of its priority's FIFO. */
  add(id: string, base: number, now: number, value: T): QueueEntry<T> {
    if (this.holdsValue(id, value)) throw new Error(`job ${id} is already queued`);
    // Never below 0: a clock that starts below 0 keeps an exact offset (its own time).
    if (Number.isNaN(this.epoch)) this.epoch = Number.isFinite(now) ? Math.max(0, Math.floor(now)) : 0;
    // `| 0` where it loses nothing: a difference of two doubles is itself a (boxed) double even
    // when whole, and one stored double would make the field boxed for every record.
    const offset = now - this.epoch;
    const queuedAt = offset === (offset | 0) ? offset | 0 : offset;
    const fifo = this.fifos[base] as Fifo<T>;
    let entry: QueueEntry<T>;
    if (this.byId) {
      entry = {
        id,
        base,
        queuedAt,
        order: this.order++,
        boost: undefined,
        value,
        prev: fifo.tail,
        next: undefined,
      };
      this.byId.set(id, entry);
    } else {
      const own = value as T & Writable<Indexed<T>>;
      own.base = base;
      own.queuedAt = queuedAt;
      own.order = this.order++;
      own.boost = undefined;
      own.value = value;
      own.prev = fifo.tail;
      own.next = undefined;
      own.queueEntry = own;
      entry = own;
    }
    if (fifo.tail) fifo.tail.next = entry;
    else fifo.head = entry;
    fifo.tail = entry;
    this.counts[base] = (this.counts[base] as number) + 1;
    this.count++;
    return entry;
  }

  /** Takes a job out, wherever it is; false when it was not queued. */
  remove(id: string): boolean {
    const entry = this.get(id);
    return entry !== undefined && this.removeEntry(entry);
  }

  /** Takes out the job of `entry` (as a walk gave it); false when it is no longer queued. */
  removeEntry(entry: QueueEntry<T>): boolean {
    if (!this.holds(entry)) return false;
    const fifo = this.fifos[entry.base] as Fifo<T>;
    if (entry.prev) entry.prev.next = entry.next;
    else fifo.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else fifo.tail = entry.prev;
    entry.prev = undefined;
    entry.next = undefined;
    if (this.byId) this.byId.delete(entry.id);
    else (entry.value as T & Indexed<T>).queueEntry = undefined;
    entry.boost = undefined;
    if (this.boosted.size > 0) this.boosted.delete(entry);
    this.counts[entry.base] = (this.counts[entry.base] as number) - 1;
    this.count--;
    return true;
  }

  /** Sets or clears a queued job's boost; false when it is not queued. */
  setBoost(id: string, boost: Boost | undefined): boolean {
    const entry = this.get(id);
    if (!entry) return false;
    entry.boost = boost;
    if (boost) this.boosted.add(entry);
    else this.boosted.delete(entry);
    return true;
  }

  /** Levels gained by waiting since it entered the queue. */
  agingLevels(entry: QueueEntry<T>, now: number): number {
    if (this.aging.maxLevels <= 0 || !(this.aging.intervalMs > 0)) return 0;
    return Math.min(
      this.aging.maxLevels,
      Math.floor(Math.max(0, now - this.enqueuedAt(entry)) / this.aging.intervalMs),
    );
  }

  /** Effective level: base + aging, raised by a live boost, clamped to the five levels. */
  level(entry: QueueEntry<T>, now: number): number {
    let level = entry.base + this.agingLevels(entry, now);
    const boost = entry.boost;
    if (boost && boost.until > now) {
      level += boost.byLevels ?? 0;
      if (boost.toLevel !== undefined) level = Math.max(level, boost.toLevel);
    }
    return Math.max(0, Math.min(MAX_LEVEL, level));
  }

  /** The queued jobs in the order they should start: effective level first, then FIFO. */
  *inOrder(now: number): Generator<QueueEntry<T>> {
    const walk = new QueueWalk(this);
    walk.reset(now);
    for (let entry = walk.next(); entry; entry = walk.next()) yield entry;
  }

  /**
   * The same order as `inOrder`, on one walker per queue that allocates nothing per walk or
   * step (a round walks the queue after every release). Starting a walk ends the last one.
   */
  walk(now: number): QueueWalk<T> {
    const walk = (this.walker ??= new QueueWalk(this));
    walk.reset(now);
    return walk;
  }

  /** The head of each level's FIFO (for `QueueWalk`). */
  headOf(level: number): QueueEntry<T> | undefined {
    return (this.fifos[level] as Fifo<T>).head;
  }

  /** The boosted entries still queued whose boost is live at `now`, best first (for `QueueWalk`). */
  liveBoosts(now: number): ReadonlyArray<{ e: QueueEntry<T>; level: number }> {
    if (this.boosted.size === 0) return NO_BOOSTS;
    return [...this.boosted]
      .filter((e) => e.boost && e.boost.until > now)
      .map((e) => ({ e, level: this.level(e, now) }))
      .sort((a, b) => b.level - a.level || a.e.order - b.e.order);
  }

  /** Whether `entry` is (still) the queued entry of its id. */
  holds(entry: QueueEntry<T>): boolean {
    return this.byId
      ? this.byId.get(entry.id) === entry
      : (entry.value as T & Indexed<T>).queueEntry === entry;
  }

  /** The job that should start first, if any. */
  head(now: number): QueueEntry<T> | undefined {
    return this.inOrder(now).next().value ?? undefined;
  }
}

const NO_BOOSTS: ReadonlyArray<never> = [];

/**
 * A walk of a queue in start order: a five-way merge of the level FIFOs (each cursor's level
 * computed when the cursor moves: a step costs one level computation, not five), with the
 * boosted entries merged in at their boosted level. Its cursors are reused from walk to walk.
 */
export class QueueWalk<T> {
  private readonly cursors: Array<QueueEntry<T> | undefined> = PRIORITY_NAMES.map(() => undefined);
  private readonly levels: number[] = PRIORITY_NAMES.map(() => -1);
  private boosted: ReadonlyArray<{ e: QueueEntry<T>; level: number }> = NO_BOOSTS;
  private b = 0;
  private now = 0;

  constructor(private readonly queue: JobQueue<T>) {}

  reset(now: number): void {
    this.now = now;
    for (let i = 0; i < this.cursors.length; i++) {
      this.cursors[i] = this.queue.headOf(i);
      this.settle(i);
    }
    this.boosted = this.queue.liveBoosts(now);
    this.b = 0;
  }

  /** The next entry in start order, or undefined at the end. */
  next(): QueueEntry<T> | undefined {
    const { cursors, levels } = this;
    for (;;) {
      let best: QueueEntry<T> | undefined;
      let bestLevel = -1;
      let bestCursor = -1;
      for (let i = 0; i < cursors.length; i++) {
        const c = cursors[i];
        if (!c) continue;
        const level = levels[i] as number;
        if (level > bestLevel || (level === bestLevel && best && c.order < best.order)) {
          best = c;
          bestLevel = level;
          bestCursor = i;
        }
      }
      const boost = this.boosted[this.b];
      if (
        boost &&
        (!best || boost.level > bestLevel || (boost.level === bestLevel && boost.e.order < best.order))
      ) {
        this.b++;
        if (this.queue.holds(boost.e)) return boost.e;
        continue;
      }
      if (!best) return undefined;
      cursors[bestCursor] = best.next;
      this.settle(bestCursor);
      return best;
    }
  }

  /** Moves cursor `i` past boosted entries (they come from the boosted list) and notes its level. */
  private settle(i: number): void {
    let c = this.cursors[i];
    const now = this.now;
    while (c && c.boost && c.boost.until > now) c = c.next;
    this.cursors[i] = c;
    this.levels[i] = c ? this.queue.level(c, now) : -1;
  }
}
