/**
 * The one clock. Every timer of the engine — job timeouts, retry backoff, scheduling ticks,
 * monitor polls, aging, boost expiry — runs on a `SchedulerClock`, which serves XState (as its
 * `Clock`) and RxJS (as a `SchedulerLike`) at once. Production uses real time; tests and
 * `simulate()` use `createVirtualClock()`, which moves only when told to.
 */
import { Subscription, type SchedulerAction, type SchedulerLike } from 'rxjs';
import { BinaryHeap } from '../core/heap.js';

/** A timer handle, as returned by `setTimeout`. */
export type TimerId = unknown;

/** Options of one timer. */
export type TimerOptions = {
  /**
   * A background timer (a periodic tick or poll) does not keep a real process alive, and a
   * virtual clock's `runUntilIdle()` does not wait for it. @default false
   */
  background?: boolean;
};

/** A clock that serves XState's `Clock`, RxJS's `SchedulerLike`, and timestamps. */
export interface SchedulerClock {
  /** Milliseconds since the epoch (real) or since the start (virtual). */
  now(): number;
  setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerId;
  clearTimeout(id: TimerId): void;
  /** An RxJS scheduler on this clock, for streams whose timers are events (e.g. a boost's end). */
  readonly scheduler: SchedulerLike;
  /** The same for periodic streams (ticks, monitor polls): their timers are background timers. */
  readonly backgroundScheduler: SchedulerLike;
}

/** The longest delay Node's own timers accept; longer ones are chained. */
const MAX_NATIVE_DELAY_MS = 2 ** 31 - 1;

class ClockAction<T> extends Subscription implements SchedulerAction<T> {
  private timer: TimerId | undefined;

  constructor(
    private readonly clock: SchedulerClock,
    private readonly work: (this: SchedulerAction<T>, state?: T) => void,
    private readonly background: boolean,
  ) {
    super(() => this.cancelTimer());
  }

  schedule(state?: T, delay = 0): Subscription {
    if (this.closed) return this;
    this.cancelTimer();
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        if (!this.closed) this.work.call(this, state);
      },
      delay,
      { background: this.background },
    );
    return this;
  }

  private cancelTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** An RxJS `SchedulerLike` whose time and timers are the given clock's. */
export function schedulerFromClock(
  clock: Omit<SchedulerClock, 'scheduler' | 'backgroundScheduler'>,
  background = false,
): SchedulerLike {
  const full = clock as SchedulerClock;
  return {
    now: () => clock.now(),
    schedule<T>(work: (this: SchedulerAction<T>, state?: T) => void, delay = 0, state?: T): Subscription {
      return new ClockAction<T>(full, work, background).schedule(state, delay);
    },
  };
}

/** Real time: `Date.now()` and Node's timers (background ones unref'd, long ones chained). */
export function createRealClock(): SchedulerClock {
  type Handle = { native: ReturnType<typeof setTimeout> | undefined };
  const clock = {
    now: () => Date.now(),
    setTimeout(fn: () => void, ms: number, options?: TimerOptions): TimerId {
      const handle: Handle = { native: undefined };
      const arm = (remaining: number) => {
        const step = Math.min(Math.max(0, remaining), MAX_NATIVE_DELAY_MS);
        handle.native = setTimeout(() => (remaining > step ? arm(remaining - step) : fn()), step);
        if (options?.background) handle.native.unref();
      };
      arm(Number.isFinite(ms) ? ms : MAX_NATIVE_DELAY_MS);
      return handle;
    },
    clearTimeout(id: TimerId): void {
      const native = (id as Handle | undefined)?.native;
      if (native !== undefined) clearTimeout(native);
    },
  };
  return Object.assign(clock, {
    scheduler: schedulerFromClock(clock),
    backgroundScheduler: schedulerFromClock(clock, true),
  });
}

type VirtualTimer = {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
  background: boolean;
  live: boolean;
};

/** A clock that moves only when told to: deterministic, and as fast as the work it runs. */
export interface VirtualClock extends SchedulerClock {
  /**
   * Moves time forward by `ms`, running every timer due by then in order, and the promise work
   * each one starts, before it settles.
   */
  advanceBy(ms: number): Promise<void>;
  /** Runs timers until no foreground timer is left (background ones fire as time passes). */
  runUntilIdle(options?: { maxTimers?: number }): Promise<void>;
  /** Lets pending promise work run without moving time. */
  flush(): Promise<void>;
  /** Timers waiting, background ones included. */
  pendingTimers(): number;
}

/** Lets every pending microtask (and the promise chains they start) run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * A virtual clock for tests and simulations. Timers due at the same instant run in the order
 * they were set.
 *
 * @example
 * ```ts
 * const clock = createVirtualClock();
 * const scheduler = createScheduler({ clock, handlers });
 * scheduler.submit({ type: 'upscale', payload });
 * await clock.advanceBy(60_000); // a minute passes at once
 * ```
 */
export function createVirtualClock(options: { startAt?: number } = {}): VirtualClock {
  let now = options.startAt ?? 0;
  let seq = 0;
  let dead = 0;
  let foreground = 0;
  const live = new Map<number, VirtualTimer>();
  const heap = new BinaryHeap<VirtualTimer>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  let queue: Promise<void> = Promise.resolve();

  const drop = (timer: VirtualTimer) => {
    timer.live = false;
    live.delete(timer.id);
    if (!timer.background) foreground--;
  };

  /** Runs every live timer due at the earliest instant ≤ target; false when none is due. */
  const runNextInstant = (target: number): boolean => {
    let top = heap.peek();
    while (top && !top.live) {
      heap.pop();
      dead--;
      top = heap.peek();
    }
    if (!top || top.at > target) return false;
    now = Math.max(now, top.at);
    while (heap.peek() && (heap.peek() as VirtualTimer).at <= now) {
      const timer = heap.pop() as VirtualTimer;
      if (!timer.live) {
        dead--;
        continue;
      }
      drop(timer);
      timer.fn();
    }
    return true;
  };

  const serial = (work: () => Promise<void>): Promise<void> => {
    const run = queue.then(work);
    queue = run.catch(() => undefined);
    return run;
  };

  const clock = {
    now: () => now,
    setTimeout(fn: () => void, ms: number, timerOptions?: TimerOptions): TimerId {
      const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
      const timer: VirtualTimer = {
        id: ++seq,
        at: now + delay,
        seq,
        fn,
        background: timerOptions?.background === true,
        live: true,
      };
      live.set(timer.id, timer);
      if (!timer.background) foreground++;
      heap.push(timer);
      return timer.id;
    },
    clearTimeout(id: TimerId): void {
      const timer = live.get(id as number);
      if (!timer) return;
      drop(timer);
      dead++;
      // Cancelled timers wait in the heap until due; compact when they are most of it.
      if (dead > 1_024 && dead > heap.size / 2) {
        heap.filter((t) => t.live);
        dead = 0;
      }
    },
    advanceBy(ms: number): Promise<void> {
      if (!Number.isFinite(ms) || ms < 0) {
        return Promise.reject(new RangeError(`advanceBy(ms): ms must be a finite number ≥ 0; got ${ms}`));
      }
      return serial(async () => {
        const target = now + ms;
        await settle();
        while (runNextInstant(target)) await settle();
        now = target;
        await settle();
      });
    },
    runUntilIdle({ maxTimers = 10_000_000 } = {}): Promise<void> {
      return serial(async () => {
        await settle();
        let ran = 0;
        while (foreground > 0) {
          if (++ran > maxTimers) throw new Error(`runUntilIdle: still busy after ${maxTimers} timers`);
          if (!runNextInstant(Number.POSITIVE_INFINITY)) break;
          await settle();
        }
      });
    },
    flush: () => serial(settle),
    pendingTimers: () => live.size,
  };
  return Object.assign(clock, {
    scheduler: schedulerFromClock(clock),
    backgroundScheduler: schedulerFromClock(clock, true),
  });
}

/**
 * Waits `ms` on a clock (virtual time in tests), rejecting with the signal's reason when it
 * aborts: the building block of handlers that honour cancellation and timeouts.
 *
 * @example
 * ```ts
 * handlers: { train: async ({ signal }) => { await delay(clock, 5_000, signal); return 'done'; } }
 * ```
 */
export function delay(
  clock: Pick<SchedulerClock, 'setTimeout' | 'clearTimeout'>,
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
