/**
 * What starts next: the queue, the jobs holding a slot, and the scheduling round, as plain data
 * and one synchronous decision (`next`). No timers, no I/O, no actors: the scheduler actor decides
 * *when* rounds run (active, paused, closed; ticks, boosts, capacity changes) and the runtime
 * carries a decision out (tells the job actor it is allocated and may start).
 *
 * A round takes queued jobs in effective-priority order and places each on the resource ledger
 * directly — a synchronous call of ~1 µs where a request/grant message round trip between two
 * XState actors cost ~20 µs (see docs/performance.md). In `strict` mode only the head may start;
 * in `backfill` mode a later job may start while the head waits, until the head has waited
 * `reserveAfterMs` (then nothing starts past it) and at most `backfillDepth` waiting jobs are
 * passed over. A job denied since resources last grew is not asked about again.
 */
import type { ResourceLedger } from './ledger.js';
import type { UnitRequest } from './pool.js';
import { JobQueue, type AgingPolicy, type Boost, type Indexed, type QueueEntry } from './queue.js';
import type { Allocation } from './types.js';
import { RenewingMap } from './renewing-map.js';

/** How rounds choose. */
export type DispatchPolicy = {
  maxConcurrentJobs: number;
  queuePolicy: 'strict' | 'backfill';
  reserveAfterMs: number;
  backfillDepth: number;
  aging: AgingPolicy;
};

/** What a queued job carries: its request, in ledger units. */
export type Waiting = { readonly units: UnitRequest };

/** One decision of a round. */
export type Decision<T> =
  | { kind: 'granted'; id: string; value: T; allocation: Allocation }
  /** The ledger refused the request itself (a pool that changed under a checked job). */
  | { kind: 'rejected'; id: string; value: T; error: unknown };

/** The ledger as rounds use it. */
export type Placer = Pick<ResourceLedger, 'tryAllocate' | 'release'> & {
  /** Goes up when free resources may have grown (see `ResourceLedger.grown`). */
  readonly grown?: number;
};

export class Dispatcher<T extends Waiting> {
  readonly queue: JobQueue<T>;
  /** Jobs holding a slot (allocated: scheduled or running), with their allocation id. */
  readonly holders = new RenewingMap<string, string>();
  /** Queued jobs denied since resources last grew: asking again now would be denied again. */
  private denied = new Set<string>();
  private placer: Placer | undefined;
  /**
   * The last round ended with nothing more to start, and nothing that could change that (a
   * release, forgotten denials, a job leaving the queue, opening) has happened since.
   */
  private quiet = false;
  private isOpen = false;
  /** When the last round ran. */
  private lastRoundAt = Number.NEGATIVE_INFINITY;
  /** The placer's `grown` when denials were last forgotten. */
  private grownSeen: number | undefined;
  /** Whether rounds may start jobs (the scheduler actor is active). */
  get open(): boolean {
    return this.isOpen;
  }

  set open(value: boolean) {
    this.isOpen = value;
    this.quiet = false;
  }

  /** `find`: where the owner keeps its values by id and each carries its entry (see `JobQueue`). */
  constructor(
    private readonly policy: DispatchPolicy,
    find?: (id: string) => (T & Indexed<T>) | undefined,
  ) {
    this.queue = new JobQueue<T>(policy.aging, find);
  }

  /** The ledger to place on, once the pool is known; until then nothing starts. */
  attach(placer: Placer): void {
    this.placer = placer;
    this.quiet = false;
  }

  get attached(): boolean {
    return this.placer !== undefined;
  }

  /**
   * Appends a job to the queue (no-op when it is queued already or holds a slot). Says whether a
   * round could start it now: false when the last round found nothing to start, nothing has
   * changed since, no boost is set, and at least a whole window of jobs is ahead of it (jobs
   * of its level or higher by their base level alone are ahead of it whatever aging does) —
   * then a round would walk the window only to stop before it. (Time-driven changes among the
   * others — aging, boosts running out — are the tick's to notice, as they always were.)
   */
  enqueue(id: string, level: number, now: number, value: T, boost?: Boost): boolean {
    if (this.queue.holdsValue(id, value) || this.holders.has(id)) return false;
    const entry = this.queue.add(id, level, now, value);
    if (boost) this.queue.setBoost(id, boost);
    // Every slot is taken: nothing starts before a release, which runs a round of its own.
    if (this.full) return false;
    const ahead = this.queue.countFrom(entry.base) - 1;
    const window = this.policy.queuePolicy === 'strict' ? 1 : this.policy.backfillDepth + 1;
    if (
      this.quiet &&
      this.placer?.grown === this.grownSeen &&
      this.queue.boostedCount === 0 &&
      ahead >= window
    )
      return false;
    // A new candidate: the last round's verdict no longer stands.
    this.quiet = false;
    return true;
  }

  /** Takes a queued job out (cancelled); false when it was not queued. */
  dequeue(id: string): boolean {
    if (this.denied.size > 0) this.denied.delete(id);
    const removed = this.queue.remove(id);
    if (removed) this.quiet = false;
    return removed;
  }

  /** Whether every slot is taken. */
  get full(): boolean {
    return this.holders.size >= this.policy.maxConcurrentJobs;
  }

  /**
   * A job handed its allocation back: the slot and the resources are free again, and every
   * denied job deserves a new try. False, changing nothing, when `id` does not hold that
   * allocation (already released, or another job's).
   */
  release(id: string, allocationId: string): boolean {
    if (this.holders.get(id) !== allocationId) return false;
    this.holders.delete(id);
    this.quiet = false;
    const released = this.placer?.release(allocationId).released ?? false;
    if (released) this.forgetDenied();
    return released;
  }

  /** Resources may have grown (a tick, a capacity change, a resume): everyone may try again. */
  forgetDenials(): void {
    this.forgetDenied();
    this.quiet = false;
  }

  /**
   * Empties the denied set — by dropping it, and only when it holds something. `Set#clear`
   * always makes a new table, in the old generation when the set is old (a long-lived set is):
   * called on every release, even empty, that was two dead old-space tables per job.
   */
  private forgetDenied(): void {
    if (this.denied.size > 0) this.denied = new Set();
  }

  /**
   * The next start of the current round, with its resources taken from the ledger; undefined
   * when nothing (more) can start now. Call it until it says so.
   */
  next(now: number): Decision<T> | undefined {
    const decision = this.round(now);
    this.quiet = decision === undefined && this.placer !== undefined && this.isOpen;
    this.lastRoundAt = now;
    return decision;
  }

  /**
   * Whether a round now might start something the last round did not: false only when the last
   * round found nothing, nothing has changed since (no release, no grown resources, no job
   * gone, no boost set) and aging has moved no queued job since it ran. The periodic tick asks
   * this first, so a long quiet backlog costs no rounds.
   */
  mayStart(now: number): boolean {
    if (this.queue.size === 0 || this.full) return false;
    if (!this.quiet || this.queue.boostedCount > 0 || this.placer?.grown !== this.grownSeen) return true;
    return this.queue.agingSettlesAt() > this.lastRoundAt || now < this.lastRoundAt;
  }

  private round(now: number): Decision<T> | undefined {
    const placer = this.placer;
    if (!placer || !this.isOpen || this.full || this.queue.size === 0) return undefined;
    // Resources grew by a path this class did not see (a limit raised, a release sent to the
    // resource manager): a denial may now be a grant.
    if (placer.grown !== this.grownSeen) {
      this.grownSeen = placer.grown;
      this.forgetDenied();
    }
    let passed = 0;
    const walk = this.queue.walk(now);
    for (let entry = walk.next(); entry; entry = walk.next()) {
      // (Mostly empty: then the id, long out of the caches at a deep backlog, is not read.)
      if (this.denied.size === 0 || !this.denied.has(entry.id)) {
        const decision = this.place(placer, entry);
        if (decision) return decision;
        this.denied.add(entry.id);
      }
      // This job waits. Strict order, or a head waiting past its reservation, stops the round.
      const head = passed === 0;
      if (head && this.policy.queuePolicy === 'strict') return undefined;
      if (head && now - this.queue.enqueuedAt(entry) >= this.policy.reserveAfterMs) return undefined;
      if (++passed > this.policy.backfillDepth) return undefined;
    }
    return undefined;
  }

  private place(placer: Placer, entry: QueueEntry<T>): Decision<T> | undefined {
    let allocation: Allocation | undefined;
    try {
      allocation = placer.tryAllocate(entry.value.units);
    } catch (error) {
      this.dequeue(entry.id);
      return { kind: 'rejected', id: entry.id, value: entry.value, error };
    }
    if (!allocation) return undefined;
    this.queue.removeEntry(entry);
    this.holders.set(entry.id, allocation.id);
    return { kind: 'granted', id: entry.id, value: entry.value, allocation };
  }
}
