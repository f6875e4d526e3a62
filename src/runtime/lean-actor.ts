/**
 * A lean host for an actor's logic: the job actors of a scheduler run here unless it is
 * inspected. It runs the very same `ActorLogic` object that `createActor` would (the compiled
 * job machine), with the actor semantics the logic relies on — a step's deferred effects run
 * after the step is committed, in order; an event sent while a step is being taken (by the
 * step's own effects or observers) is taken after it; a final snapshot takes nothing more — and
 * nothing else: no actor system, no inspection, no observers (the logic reports its steps
 * through its own hook).
 *
 * Why: XState's `createActor` costs ~6 µs per actor here (its constructor, the actor system, the
 * mailbox) and ~2 µs per event — about a third of the ~30 µs per job that the throughput goal
 * leaves (docs/performance.md). With `inspect`, the scheduler hosts its jobs with `createActor`
 * instead, so that the inspector sees every job actor; the project's tests run the same
 * workloads both ways and require the same events.
 */
import type { ActorScope, AnyActorRef, EventObject, Snapshot } from 'xstate';

/** The timers the logic runs on (XState's `Clock`). */
export type LeanClock = {
  setTimeout(fn: () => void, ms: number): unknown;
  // Method syntax: a clock whose handles are numbers (XState's SimulatedClock) fits too.
  clearTimeout(id: unknown): void;
};

/** Any logic with these snapshot and event types, whatever its input, system and emitted types. */
type LogicOf<TSnapshot, TEvent> = {
  getInitialSnapshot: (scope: never, input: never) => TSnapshot;
  transition: (snapshot: TSnapshot, event: TEvent, scope: never) => TSnapshot;
};

/**
 * What every actor of one logic shares: the logic, its clock and who hears of its steps and
 * errors. One object for all the actors, so that an actor costs only its own state.
 */
export type LeanHost<TSnapshot extends Snapshot<unknown>, TEvent extends EventObject> = {
  readonly logic: LogicOf<TSnapshot, TEvent>;
  readonly clock: LeanClock;
  /** Told when the logic throws; the actor then takes nothing more. */
  onError(error: unknown, actor: LeanActor<TSnapshot, TEvent>): void;
  /** Told the snapshot after every event taken, its effects run: an observer, as XState's. */
  onSnapshot?(snapshot: TSnapshot, actor: LeanActor<TSnapshot, TEvent>): void;
  /**
   * For an actor made with `deferred`: its input and the events it takes first, asked for when it
   * starts (so that a waiting actor holds nothing of its own).
   */
  wake?(actor: LeanActor<TSnapshot, TEvent>): { input: unknown; events: readonly TEvent[] };
};

let sessions = 0;
/** Emptied lists of deferred effects, for the next step of any actor (a step with effects made one each). */
const spareLists: Array<Array<() => void>> = [];

/**
 * One actor of `host.logic`, hosted without an actor system. It is its own actor scope (`self`,
 * `defer`, `emit`), so hosting costs one object per actor.
 */
export class LeanActor<TSnapshot extends Snapshot<unknown>, TEvent extends EventObject> {
  /** Undefined while the actor has not started (see `deferred` in the constructor). */
  private snapshot: TSnapshot | undefined;
  private busy = false;
  private inbox: TEvent[] | undefined;
  private deferred: Array<() => void> | undefined;
  private listeners: Map<string, Array<(event: EventObject) => void>> | undefined;
  private readonly session = ++sessions;
  /** The owner's own data about this actor (the scheduler's job record): no lookup per step. */
  tag: unknown = undefined;

  /**
   * `deferred`: start the actor only when it is first sent an event or asked for its snapshot,
   * with the input and first events `host.wake` gives then (`input` is not used) (its owner already knows where they
   * lead). Until then it holds nothing of its own: an actor that waits long costs little, and
   * what it makes when it starts lives only as long as its work.
   */
  constructor(
    private readonly host: LeanHost<TSnapshot, TEvent>,
    input: unknown,
    deferred = false,
  ) {
    if (!deferred) this.start(input);
  }

  private start(input: unknown): void {
    this.busy = true;
    try {
      this.snapshot = this.host.logic.getInitialSnapshot(this.scope as never, input as never);
      this.runDeferred();
    } finally {
      this.busy = false;
    }
  }

  /** Starts a deferred actor and takes the events its host gives. */
  private wake(): TSnapshot {
    const wake = this.host.wake;
    if (!wake) throw new Error('LeanActor: a deferred actor needs host.wake');
    const { input, events } = wake(this);
    this.start(input);
    for (const event of events) this.send(event);
    return this.snapshot as TSnapshot;
  }

  /** As XState's `sessionId` (made when asked: most actors are never asked). */
  get sessionId(): string {
    return `lean:${this.session}`;
  }

  get id(): string {
    return this.sessionId;
  }

  /** The clock the logic arms its delays on. */
  get clock(): LeanClock {
    return this.host.clock;
  }

  // ——— the actor scope the logic sees ———

  get self(): AnyActorRef {
    return this as unknown as AnyActorRef;
  }

  get scope(): ActorScope<TSnapshot, TEvent, never, EventObject> {
    return this as unknown as ActorScope<TSnapshot, TEvent, never, EventObject>;
  }

  get system(): never {
    throw new Error('LeanActor: this logic needs an actor system; host it with createActor');
  }

  defer(fn: () => void): void {
    (this.deferred ??= spareLists.pop() ?? []).push(fn);
  }

  /** Tells the listeners of `event.type` (see `on`); usually there are none. */
  emit(event: EventObject): void {
    const listeners = this.listeners?.get(event.type);
    if (listeners) for (const listener of listeners) listener(event);
  }

  /** Listens to events the logic emits, as `actor.on` does. */
  on<E extends EventObject>(type: E['type'], listener: (event: E) => void): { unsubscribe: () => void } {
    const listeners = (this.listeners ??= new Map()).get(type) ?? [];
    const entry = listener as (event: EventObject) => void;
    listeners.push(entry);
    this.listeners.set(type, listeners);
    return {
      unsubscribe: () => {
        const at = listeners.indexOf(entry);
        if (at >= 0) listeners.splice(at, 1);
      },
    };
  }

  /** The job logic logs nothing; a `log` action would print as a warning. */
  logger(...args: unknown[]): void {
    console.warn(...args);
  }

  // ——— the actor ref the owner and the logic use ———

  getSnapshot(): TSnapshot {
    return this.snapshot ?? this.wake();
  }

  send(event: TEvent): void {
    if (this.snapshot === undefined) this.wake();
    if (this.busy) {
      (this.inbox ??= []).push(event);
      return;
    }
    this.busy = true;
    try {
      this.take(event);
      for (let next = this.inbox?.shift(); next; next = this.inbox?.shift()) this.take(next);
    } finally {
      this.busy = false;
      this.inbox = undefined;
    }
  }

  private take(event: TEvent): void {
    const current = this.snapshot as TSnapshot;
    if (current.status !== 'active') return;
    try {
      const next = this.host.logic.transition(current, event, this.scope as never);
      this.snapshot = next;
      this.runDeferred();
      this.host.onSnapshot?.(next, this);
    } catch (error) {
      this.deferred = undefined;
      this.snapshot = { ...current, status: 'error', error } as TSnapshot;
      this.host.onError(error, this);
    }
  }

  /** Runs the step's deferred effects in order (and any they defer), as XState's actor does. */
  private runDeferred(): void {
    for (let deferred = this.deferred; deferred; deferred = this.deferred) {
      this.deferred = undefined;
      for (const fn of deferred) fn();
      deferred.length = 0;
      if (spareLists.length < 16) spareLists.push(deferred);
    }
  }
}
