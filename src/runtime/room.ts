/**
 * Back-pressure: callers waiting for room in the queue (`maxQueueSize`), served first come,
 * first served. Each waiter says how many places it needs and what to do once they are free
 * (`take`: submit its job, or just resolve); `take` runs at once when the places are free, so
 * the places it saw are still free when it submits — nobody's submit lands between.
 */
import { SchedulerClosedError } from '../core/errors.js';

/** Options of `submitWhenRoom()` and `onRoom()`. */
export type RoomOptions = {
  /** Stops waiting: the promise rejects with the signal's reason, and nothing was submitted. */
  signal?: AbortSignal;
};

type Waiter = {
  places: number;
  take: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Served, aborted or closed: skipped when it comes to the head. */
  done: boolean;
};

export class Room {
  /** Waiters in arrival order; those before `head` were served (the array is trimmed now and then). */
  private waiters: Waiter[] = [];
  private head = 0;
  /** Waiters not yet done. */
  private count = 0;
  /** Done waiters (aborted) still in the line behind the head: dropped once they outnumber the rest. */
  private doneInLine = 0;
  private serving = false;
  private closed = false;

  /** `free`: the places free now. */
  constructor(private readonly free: () => number) {}

  /** Callers waiting now. */
  get waiting(): number {
    return this.count;
  }

  /**
   * Runs `take` once `places` places are free and every earlier waiter has been served, or
   * `reject`s: when `signal` aborts (with its reason) or when the room closes (shutdown).
   */
  wait(places: number, take: () => void, reject: (error: unknown) => void, signal?: AbortSignal): void {
    if (this.closed) return reject(new SchedulerClosedError());
    if (signal?.aborted) return reject(signal.reason);
    const waiter: Waiter = { places, take, reject, signal, onAbort: undefined, done: false };
    if (signal) {
      waiter.onAbort = () => {
        if (waiter.done) return;
        this.settle(waiter);
        // An aborted waiter stays in the line until the head passes it; a blocked head must not
        // make the line keep every waiter that ever gave up.
        if (++this.doneInLine > Math.max(1_024, this.count)) this.compact();
        reject(signal.reason);
        // The head may have been the one that left: those behind it may fit now.
        this.freed();
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
    }
    this.waiters.push(waiter);
    this.count++;
    this.freed();
  }

  /**
   * Places may have come free (a job left the queue): the waiters at the head that fit are
   * served now. Called in the middle of a job's step, it defers to a microtask: a waiter's
   * submit never runs inside another job's transition.
   */
  freed(): void {
    if (this.count === 0 || this.serving) return;
    this.serving = true;
    queueMicrotask(() => this.serve());
  }

  /** The scheduler is closing: every waiter rejects with `SchedulerClosedError`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiters = this.waiters.slice(this.head);
    this.waiters = [];
    this.head = 0;
    for (const waiter of waiters) {
      if (waiter.done) continue;
      this.settle(waiter);
      waiter.reject(new SchedulerClosedError());
    }
  }

  /** Drops the done waiters from the line (those still waiting keep their order). */
  private compact(): void {
    this.waiters = this.waiters.slice(this.head).filter((w) => !w.done);
    this.head = 0;
    this.doneInLine = 0;
  }

  /** Waiters in the line, done or not (for tests). */
  get lineLength(): number {
    return this.waiters.length - this.head;
  }

  private serve(): void {
    this.serving = false;
    while (this.head < this.waiters.length) {
      const waiter = this.waiters[this.head] as Waiter;
      if (!waiter.done) {
        if (this.free() < waiter.places) break;
        this.settle(waiter);
        // A take that throws rejects its own promise (see the scheduler); it never stops the rest.
        waiter.take();
      }
      this.head++;
    }
    if (this.head > 1_024 && this.head * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.head);
      this.head = 0;
    }
  }

  private settle(waiter: Waiter): void {
    waiter.done = true;
    this.count--;
    if (waiter.onAbort) waiter.signal?.removeEventListener('abort', waiter.onAbort);
  }
}
