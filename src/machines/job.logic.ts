/**
 * The job machine, compiled for the hot path. XState's machine interpreter costs ~5 µs per
 * event and ~6 µs per actor start on this project's machine (a job's lifecycle took ~250 µs);
 * a scheduler that aims at 30k jobs/s has ~30 µs per job in all. So the runtime runs every job
 * as an XState actor (`createActor`, inspectable, `actor.on`, snapshots) whose logic is the job
 * machine's own structure — its states, transitions, guards, entry/exit actions, delays and the
 * invoked handler, read from `jobMachine.root` when this module loads — executed by the small
 * interpreter below with the same guard and update functions the machine calls
 * (`jobGuards`, `jobUpdates`, `jobEmits`, `jobDelays`). A change to the machine's structure
 * flows here by itself; a construct this interpreter does not know fails loudly at load.
 * The project's tests replay every path of the machine's graph and random event sequences on
 * both and assert identical states and contexts after every step.
 */
import { and, not, or } from 'xstate';
import type { ActorLogic, ActorScope, ActorSystem, AnyActorRef, EventObject, StateValue } from 'xstate';
import type { Attempt } from './attempt.js';
import { type AttemptSignal } from './attempt.js';
import {
  ABORT_HANDLER,
  MAX_TIMER_DELAY_MS,
  jobDelays,
  jobEmits,
  jobGuards,
  jobMachine,
  jobUpdates,
  type JobContext,
  type JobEmitted,
  type JobEvent,
  type JobHandlerInput,
  type JobMachineInput,
} from './job.machine.js';

/**
 * Runs one attempt's handler; `attempt.signal` is aborted when the attempt is told to stop. The
 * signal is made on first read: a handler that never looks at it costs no AbortController.
 */
export type RunHandler = (input: JobHandlerInput, attempt: AttemptSignal) => Promise<unknown> | unknown;

export type { AttemptSignal };

/** A compiled job actor's snapshot: the machine's state value and context, as XState's. */
export type JobLogicSnapshot = {
  status: 'active' | 'done';
  value: StateValue;
  context: JobContext;
  output: undefined;
  error: undefined;
  /** The leaf state's id, e.g. `job.allocated.running.working`. */
  leaf: string;
  /** Transitions taken so far: an event that took none leaves it as it was. */
  steps: number;
  /** Per actor, not data: the handler attempt in flight and the armed delays. Shared by its snapshots. */
  readonly run: Run;
};

/** What one job actor keeps besides its snapshot data. */
/** `armed` is made at the first armed delay (a queued job has none). */
type Run = {
  attempt: Attempt | undefined;
  armed: Array<{ id: string; timer: unknown }> | undefined;
  /** The attempt whose state was left before its handler settled (force-released), if any. */
  left?: Attempt | undefined;
};

/** The events a compiled job takes: the machine's, plus its internal ones (done, error, after). */
/** XState's `Clock` (the timers an actor runs on; not exported from its entry point). */
type Clock = { setTimeout: (fn: () => void, ms: number) => unknown; clearTimeout: (id: unknown) => void };

/** XState's own `AnyActorSystem` (not exported from its entry point). */
type AnyActorSystem = ActorSystem<{ actors: Record<string, AnyActorRef> }>;

export type JobLogicEvent = JobEvent | { type: string; output?: unknown; error?: unknown };

/** The compiled logic's type, as `createActor` sees it. */
export type JobLogic = ActorLogic<
  JobLogicSnapshot,
  JobLogicEvent,
  JobMachineInput,
  AnyActorSystem,
  JobEmitted
> & {
  /** The machine's id (`job`), as inspection tools show it. */
  id: string;
};

// ——— the structural part of XState's StateNode read here (public properties) ———

type ParamsShape = unknown;
type ActionShape =
  | string
  | { type: string; params?: ParamsShape }
  | (((...args: never[]) => unknown) & {
      type?: string;
      delay?: unknown;
      event?: EventObject;
      id?: string;
      sendId?: string;
    });
type GuardShape =
  | string
  | { type: string; params?: ParamsShape }
  | (((...args: never[]) => unknown) & { guards?: GuardShape[]; name?: string; check?: unknown });
type TransitionShape = {
  target?: readonly NodeShape[] | undefined;
  guard?: GuardShape | undefined;
  actions: readonly ActionShape[];
  reenter?: boolean;
};
type InvokeShape = { id: string; src: unknown; input?: unknown };
type NodeShape = {
  key: string;
  id: string;
  type: string;
  parent?: NodeShape | undefined;
  initial?: { target: readonly NodeShape[] } | undefined;
  states: Record<string, NodeShape>;
  transitions: Map<string, TransitionShape[]>;
  always?: readonly TransitionShape[] | undefined;
  entry: readonly ActionShape[];
  exit: readonly ActionShape[];
  invoke: readonly InvokeShape[];
};

// ——— compiled form ———

type Args = { context: JobContext; event: JobLogicEvent };
type Step =
  | { kind: 'update'; run: (context: JobContext, event: JobLogicEvent) => Partial<JobContext> }
  | { kind: 'emit'; run: (context: JobContext) => JobEmitted }
  | { kind: 'arm'; id: string; event: EventObject; delay: (context: JobContext) => number }
  | { kind: 'disarm'; id: string }
  | {
      kind: 'invoke';
      id: string;
      /** The done and error event types, made once (not per attempt). */
      done: string;
      error: string;
      input: (args: Args & { self: AnyActorRef }) => JobHandlerInput;
    }
  | { kind: 'stop'; id: string }
  /** Tells the attempt in flight to stop; it stays the attempt in flight until it settles. */
  | { kind: 'abort' };
type Guard = (context: JobContext, event: JobLogicEvent) => boolean;
type Candidate = {
  guard: Guard | undefined;
  steps: Step[];
  target: Leaf | undefined;
};
type Leaf = {
  id: string;
  value: StateValue;
  final: boolean;
  /** Nothing runs while in it (no handler, no timer): an actor can be made from a snapshot there. */
  restorable: boolean;
  on: Map<string, Candidate[]>;
};

const updates = jobUpdates as unknown as Record<
  string,
  (context: JobContext, event: JobLogicEvent, params: unknown) => Partial<JobContext>
>;
const emits = jobEmits as Record<string, (context: JobContext) => JobEmitted>;
const guards = jobGuards as unknown as Record<
  string,
  (context: JobContext, event: JobLogicEvent, params: unknown) => boolean
>;
const delays = jobDelays as Record<string, (context: JobContext) => number>;

function unsupported(what: string): never {
  throw new Error(`job.logic: the job machine uses ${what}, which the compiled logic does not support`);
}

/** Resolves a `params` field (a value or a function of the arguments). */
function paramsOf(params: ParamsShape): (args: Args) => unknown {
  if (typeof params === 'function') return params as (args: Args) => unknown;
  return () => params;
}

/** XState's evaluators of `and`, `or` and `not` (each combinator's `check`), read once. */
const COMBINATORS = new Map<unknown, 'and' | 'or' | 'not'>([
  [(and([]) as unknown as { check?: unknown }).check, 'and'],
  [(or([]) as unknown as { check?: unknown }).check, 'or'],
  [(not('x') as unknown as { check?: unknown }).check, 'not'],
]);

/** Which combinator a guard function is: by its evaluator (its `check`), else by its name. */
export function combinatorOf(guard: object): 'and' | 'or' | 'not' | undefined {
  const { check, name } = guard as { check?: unknown; name?: unknown };
  const byCheck = check === undefined ? undefined : COMBINATORS.get(check);
  if (byCheck) return byCheck;
  return name === 'and' || name === 'or' || name === 'not' ? name : undefined;
}

function compileGuard(guard: GuardShape | undefined): Guard | undefined {
  if (guard === undefined) return undefined;
  if (typeof guard === 'string') {
    const fn = guards[guard] ?? unsupported(`the guard ${guard}`);
    return (c, e) => fn(c, e, undefined);
  }
  if (typeof guard === 'function') {
    const parts = (guard.guards ?? unsupported('an inline guard')).map((g) => compileGuard(g) as Guard);
    // Told apart by XState's own evaluator, not by the function's name: a bundler or minifier
    // that renames functions (`and` → `and2`) must not break the logic.
    const kind = combinatorOf(guard);
    if (kind === 'and') return (c, e) => parts.every((g) => g(c, e));
    if (kind === 'or') return (c, e) => parts.some((g) => g(c, e));
    if (kind === 'not') return (c, e) => !parts.every((g) => g(c, e));
    return unsupported(`the guard combinator ${guard.name}`);
  }
  const fn = guards[guard.type] ?? unsupported(`the guard ${guard.type}`);
  const params = paramsOf(guard.params);
  return (c, e) => fn(c, e, params({ context: c, event: e }));
}

function compileAction(action: ActionShape): Step {
  if (typeof action === 'string' || (typeof action === 'object' && action !== null)) {
    const name = typeof action === 'string' ? action : action.type;
    if (name === ABORT_HANDLER) return { kind: 'abort' };
    const emitFn = emits[name];
    if (emitFn) return { kind: 'emit', run: emitFn };
    const fn = updates[name] ?? unsupported(`the action ${name}`);
    const declared = typeof action === 'string' ? undefined : action.params;
    if (declared === undefined) return { kind: 'update', run: (c, e) => fn(c, e, undefined) };
    const params = paramsOf(declared);
    return { kind: 'update', run: (c, e) => fn(c, e, params({ context: c, event: e })) };
  }
  if (action.type === 'xstate.raise' && action.delay !== undefined && action.event && action.id) {
    const delay = action.delay;
    const resolve =
      typeof delay === 'number'
        ? () => delay
        : typeof delay === 'string'
          ? (delays[delay] ?? unsupported(`the delay ${delay}`))
          : unsupported('an inline delay');
    return { kind: 'arm', id: action.id, event: action.event, delay: resolve };
  }
  if (action.type === 'xstate.cancel' && typeof action.sendId === 'string') {
    return { kind: 'disarm', id: action.sendId };
  }
  return unsupported(`an inline action (${action.type ?? 'function'})`);
}

function entrySteps(node: NodeShape): Step[] {
  const steps = node.entry.map(compileAction);
  for (const invoke of node.invoke) {
    if (invoke.src !== 'runHandler' || typeof invoke.input !== 'function')
      unsupported(`the invoked actor ${String(invoke.src)}`);
    steps.push({
      kind: 'invoke',
      id: invoke.id,
      done: `xstate.done.actor.${invoke.id}`,
      error: `xstate.error.actor.${invoke.id}`,
      input: invoke.input as (args: Args & { self: AnyActorRef }) => JobHandlerInput,
    });
  }
  return steps;
}

function exitSteps(node: NodeShape): Step[] {
  return [...node.exit.map(compileAction), ...node.invoke.map((i): Step => ({ kind: 'stop', id: i.id }))];
}

function pathOf(node: NodeShape): NodeShape[] {
  const path: NodeShape[] = [];
  for (let n: NodeShape | undefined = node; n; n = n.parent) path.unshift(n);
  return path;
}

function initialLeaf(node: NodeShape): NodeShape {
  let current = node;
  while (Object.keys(current.states).length > 0) {
    current = current.initial?.target[0] ?? unsupported(`a compound state without initial (${current.id})`);
  }
  return current;
}

function valueOf(leaf: NodeShape): StateValue {
  const keys = pathOf(leaf)
    .slice(1)
    .map((n) => n.key);
  let value: StateValue = keys.pop() as string;
  while (keys.length > 0) value = { [keys.pop() as string]: value };
  return value;
}

/** Compiles every leaf state's transitions (its own first, then its ancestors'), as XState tries them. */
function compile(root: NodeShape): { initial: Leaf; entry: Step[]; leaves: Map<string, Leaf> } {
  const leafNodes: NodeShape[] = [];
  const collect = (n: NodeShape) => {
    const children = Object.values(n.states);
    if (children.length === 0) leafNodes.push(n);
    else children.forEach(collect);
  };
  collect(root);
  const leaves = new Map<string, Leaf>();
  for (const node of leafNodes) {
    const effects = pathOf(node)
      .slice(1)
      .flatMap(entrySteps)
      .some((s) => s.kind === 'invoke' || s.kind === 'arm');
    leaves.set(node.id, {
      id: node.id,
      value: valueOf(node),
      final: node.type === 'final',
      restorable: !effects,
      on: new Map(),
    });
  }
  for (const node of leafNodes) {
    const leaf = leaves.get(node.id) as Leaf;
    if (leaf.final) continue;
    const sourcePath = pathOf(node);
    for (let declaring: NodeShape | undefined = node; declaring; declaring = declaring.parent) {
      if (declaring.always && declaring.always.length > 0) unsupported('eventless (always) transitions');
      for (const [event, list] of declaring.transitions) {
        const candidates = leaf.on.get(event) ?? [];
        for (const t of list) candidates.push(compileTransition(t, declaring, sourcePath, leaves));
        leaf.on.set(event, candidates);
      }
    }
  }
  const first = initialLeaf(root);
  const entry = pathOf(first).slice(1).flatMap(entrySteps);
  return { initial: leaves.get(first.id) as Leaf, entry, leaves };
}

function compileTransition(
  t: TransitionShape,
  declaring: NodeShape,
  sourcePath: NodeShape[],
  leaves: Map<string, Leaf>,
): Candidate {
  const guard = compileGuard(t.guard);
  const actions = t.actions.map(compileAction);
  const targetNode = t.target?.[0];
  if (!targetNode) return { guard, steps: actions, target: undefined };
  if ((t.target?.length ?? 0) > 1) unsupported('parallel targets');
  if (t.reenter) unsupported('reentering transitions');
  const targetLeaf = initialLeaf(targetNode);
  const targetPath = pathOf(targetLeaf);
  const declaredPath = pathOf(declaring);
  // The transition's domain: the deepest node on both paths that is a proper ancestor of the
  // declaring state (or the declaring state itself when the target lies inside it).
  let domain = 0;
  const inside = pathOf(targetNode).includes(declaring) && targetNode !== declaring;
  const limit = inside ? declaredPath.length : declaredPath.length - 1;
  while (domain + 1 < limit && targetPath[domain + 1] === declaredPath[domain + 1]) domain++;
  const exits = sourcePath
    .slice(domain + 1)
    .reverse()
    .flatMap(exitSteps);
  const entries = targetPath.slice(domain + 1).flatMap(entrySteps);
  const steps = [...exits, ...actions, ...entries];
  return { guard, steps, target: leaves.get(targetLeaf.id) as Leaf };
}

const compiled = compile(jobMachine.root as unknown as NodeShape);

/** The context a job starts with: the machine's own `context` function of its input. */
const initialContext = jobMachine.config.context as (args: { input: JobMachineInput }) => JobContext;

type Scope = ActorScope<JobLogicSnapshot, JobLogicEvent, AnyActorSystem, JobEmitted>;

/**
 * Executes steps in order. The context is copied once, on the first update, and the copy is
 * then updated in place (one copy per transition); side effects run after the step is committed.
 */
function execute(
  steps: readonly Step[],
  context: JobContext,
  event: JobLogicEvent,
  run: Run,
  scope: Scope,
  runHandler: RunHandler,
  inPlace = false,
): JobContext {
  let next = context;
  let copied = inPlace;
  for (const step of steps) {
    switch (step.kind) {
      case 'update':
        // `{ ...next }` alone is V8's fast clone; `{ ...next, ...changes }` is ~10× slower.
        if (!copied) {
          next = { ...next };
          copied = true;
        }
        Object.assign(next, step.run(next, event));
        break;
      case 'emit': {
        const emitted = step.run(next);
        scope.defer(() => scope.emit(emitted));
        break;
      }
      case 'arm': {
        const ms = step.delay(next);
        // A delay of MAX_TIMER_DELAY_MS or more means "never": no timer is armed.
        // Timers run on the actor's own clock (not the system's scheduler, whose cancelAll scans
        // every scheduled event of the system when an actor stops).
        if (ms < MAX_TIMER_DELAY_MS) {
          const { id, event: delayed } = step;
          const self = scope.self;
          const clock = (self as unknown as { clock: Clock }).clock;
          const armed = { id, timer: undefined as unknown };
          const list = (run.armed ??= []);
          list.push(armed);
          scope.defer(() => {
            armed.timer = clock.setTimeout(() => {
              const at = list.indexOf(armed);
              if (at < 0) return;
              list.splice(at, 1);
              self.send(delayed);
            }, ms);
          });
        }
        break;
      }
      case 'disarm': {
        const list = run.armed;
        const at = list ? list.findIndex((a) => a.id === step.id) : -1;
        if (list && at >= 0) {
          const [armed] = list.splice(at, 1);
          const clock = (scope.self as unknown as { clock: Clock }).clock;
          if (armed?.timer !== undefined) clock.clearTimeout(armed.timer);
        }
        break;
      }
      case 'invoke': {
        const input = step.input({ context: next, event, self: scope.self });
        const attempt: Attempt = input.control;
        run.attempt = attempt;
        const self = scope.self;
        const { done, error: failed } = step;
        scope.defer(() => {
          let settled: Promise<unknown>;
          try {
            settled = Promise.resolve(runHandler(input, attempt));
          } catch (error) {
            settled = Promise.reject(error);
          }
          settled.then(
            (output) => {
              attempt.settled = true;
              if (run.attempt === attempt) self.send({ type: done, output });
            },
            (error: unknown) => {
              attempt.settled = true;
              if (run.attempt === attempt) self.send({ type: failed, error });
            },
          );
        });
        break;
      }
      case 'stop': {
        const attempt = run.attempt;
        run.attempt = undefined;
        if (attempt && !attempt.settled) {
          attempt.abort();
          run.left = attempt;
        }
        break;
      }
      case 'abort':
        run.attempt?.abort();
        break;
    }
  }
  return next;
}

function snapshotAt(leaf: Leaf, context: JobContext, run: Run, steps: number): JobLogicSnapshot {
  return {
    steps,
    status: leaf.final ? 'done' : 'active',
    value: leaf.value,
    context,
    output: undefined,
    error: undefined,
    leaf: leaf.id,
    run,
  };
}

/**
 * The job machine as lean actor logic, running `runHandler` for each attempt. Create jobs with
 * `createActor(createJobLogic(run), { clock, input })`: the same input, events, emitted events,
 * state values and context as an actor of `jobMachine`.
 *
 * `onStep`, when given, is told each new snapshot of every actor of this logic — after the
 * step's emitted events, before the actor's own observers — so that one owner can follow many
 * actors without a subscription each.
 */
export function createJobLogic(
  runHandler: RunHandler,
  onStep?: (snapshot: JobLogicSnapshot, self: AnyActorRef) => void,
  options: {
    /**
     * Update each actor's snapshot and context in place instead of making new ones per step: an
     * earlier snapshot then is the later one. Only for a host that keeps no earlier snapshot
     * (the lean host; never XState's, whose inspection keeps them). Saves ~1 KB of garbage per job.
     */
    inPlace?: boolean;
  } = {},
): JobLogic {
  const inPlace = options.inPlace ?? false;
  const leaves = compiled.leaves;
  return {
    id: jobMachine.id,
    config: jobMachine.config,
    getInitialSnapshot(scope, input) {
      const context = initialContext({ input });
      if (inPlace) {
        // One object for the actor's life: the snapshot, updated in place, is also its run.
        const leaf = compiled.initial;
        const own = {
          steps: 0,
          status: leaf.final ? ('done' as const) : ('active' as const),
          value: leaf.value,
          context,
          output: undefined,
          error: undefined,
          leaf: leaf.id,
          run: undefined as unknown as Run,
          attempt: undefined,
          armed: undefined,
        } satisfies JobLogicSnapshot & Run;
        own.run = own;
        own.context = execute(compiled.entry, context, { type: 'xstate.init' }, own, scope, runHandler, true);
        return own;
      }
      const run: Run = { attempt: undefined, armed: undefined };
      const first = execute(compiled.entry, context, { type: 'xstate.init' }, run, scope, runHandler);
      return snapshotAt(compiled.initial, first, run, 0);
    },
    transition(snapshot, event, scope) {
      if (snapshot.status !== 'active') return snapshot;
      const leaf = leaves.get(snapshot.leaf) as Leaf;
      const candidates = leaf.on.get(event.type);
      if (!candidates) return snapshot;
      for (const candidate of candidates) {
        if (candidate.guard && !candidate.guard(snapshot.context, event)) continue;
        const context = execute(
          candidate.steps,
          snapshot.context,
          event,
          snapshot.run,
          scope,
          runHandler,
          inPlace,
        );
        const target = candidate.target ?? leaf;
        let next: JobLogicSnapshot;
        if (inPlace) {
          next = snapshot;
          next.status = target.final ? 'done' : 'active';
          next.value = target.value;
          next.leaf = target.id;
          next.context = context;
          next.steps++;
        } else next = snapshotAt(target, context, snapshot.run, snapshot.steps + 1);
        if (onStep) {
          const self = scope.self;
          scope.defer(() => onStep(next, self));
        }
        return next;
      }
      return snapshot;
    },
    /** A snapshot kept as data (or persisted) gets a run of its own: nothing in flight. */
    restoreSnapshot(persisted) {
      const data = persisted as JobLogicSnapshot;
      if (!leaves.get(data.leaf)?.restorable)
        throw new Error(
          `job.logic: a job cannot be restored in ${data.leaf} (its handler or timer would be lost)`,
        );
      return { ...data, run: { attempt: undefined, armed: undefined } };
    },
    getPersistedSnapshot(snapshot) {
      // (On the lean host the snapshot is its own run: its `attempt` and `armed` are not data either.)
      const {
        run: _run,
        attempt: _attempt,
        armed: _armed,
        left: _left,
        ...data
      } = snapshot as JobLogicSnapshot & Partial<Run>;
      return data as unknown as ReturnType<JobLogic['getPersistedSnapshot']>;
    },
  };
}
