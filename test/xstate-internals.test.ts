/**
 * What this package reads of XState beyond its documented API, checked on the installed XState.
 *
 * - The compiled job logic (src/machines/job.logic.ts) and the diagram generator
 *   (src/machines/diagram.ts) read a machine's structure from `machine.root`: its StateNode
 *   objects and, in them, the objects that `and`/`or`/`not`, `raise` and `cancel` make (a delayed
 *   transition is a delayed `raise` in the state's entry and a `cancel` in its exit).
 * - The compiled logic arms its timers on `scope.self.clock`, the clock given to `createActor`.
 * - The lean host (src/runtime/lean-actor.ts) runs the same logic as `createActor` would, so it
 *   copies the actor semantics the logic relies on (deferred effects, the mailbox, `emit`, final
 *   snapshots); the last test runs one probe logic on both and requires the same trace.
 *
 * A newer XState that changes any of it fails here, saying what changed and what to do, instead
 * of failing somewhere deep in the engine's tests (or not at all).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  and,
  assign,
  createActor,
  fromPromise,
  not,
  or,
  setup,
  type ActorLogic,
  type ActorScope,
  type AnyActorRef,
  type EventObject,
} from 'xstate';
import { describe, expect, it, vi } from 'vitest';
import { LeanActor } from '../src/runtime/lean-actor.js';

const ROOT = join(import.meta.dirname, '..');
const installed = (
  JSON.parse(readFileSync(join(ROOT, 'node_modules/xstate/package.json'), 'utf8')) as { version: string }
).version;
const pinned =
  (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> })
    .dependencies['xstate'] ?? '(none)';

const JOB_LOGIC = 'src/machines/job.logic.ts (the compiled job logic)';
const DIAGRAM = 'src/machines/diagram.ts (the lifecycle docs and `ai-batch diagram`)';
const LEAN = 'src/runtime/lean-actor.ts (the lean host for job actors)';

/** Fails with what changed, who reads it, and what to do. */
function relied(holds: boolean, what: string, readers: readonly string[], found?: unknown): void {
  const seen = found === undefined ? '' : ` Found instead: ${show(found)}.`;
  expect(
    holds,
    `XState ${installed} no longer gives what this package reads: ${what}.${seen} ` +
      `Read by ${readers.join(' and ')}. Adapt the reader to the new XState and then this test, ` +
      `or keep xstate within the range package.json pins (${pinned}).`,
  ).toBe(true);
}

function show(value: unknown): string {
  if (typeof value === 'function')
    return `a function ${value.name || '(anonymous)'} with ${Object.keys(value).join(', ')}`;
  if (value instanceof Map) return `a Map of ${[...value.keys()].join(', ')}`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

// ——— a machine with every construct the job machine uses ———

type ProbeEvent =
  | { type: 'go' }
  | { type: 'stop' }
  | { type: 'ping' }
  | { type: 'xstate.done.actor.handler'; output: number };

const probeContext = ({ input }: { input: { n: number } }) => ({ n: input.n });

const probe = setup({
  types: {} as { context: { n: number }; events: ProbeEvent; input: { n: number } },
  actions: {
    bump: assign(({ context }) => ({ n: context.n + 1 })),
    note: (_args, _params: { what: string }) => {},
  },
  guards: {
    yes: () => true,
    no: () => false,
    above: ({ context }, params: { n: number }) => context.n > params.n,
  },
  delays: { later: () => 1_000 },
  actors: { work: fromPromise(async ({ input }: { input: number }) => input) },
}).createMachine({
  id: 'probe',
  context: probeContext,
  initial: 'idle',
  states: {
    idle: {
      description: 'Waiting.',
      on: {
        go: {
          target: 'busy',
          guard: and(['yes', not('no'), { type: 'above', params: { n: -1 } }]),
          actions: ['bump', { type: 'note', params: { what: 'go' } }],
        },
      },
    },
    busy: {
      initial: 'working',
      entry: { type: 'note', params: ({ context }) => ({ what: String(context.n) }) },
      exit: ['bump'],
      invoke: {
        id: 'handler',
        src: 'work',
        input: ({ context }) => context.n,
        onDone: { target: '#probe.done' },
        onError: [{ guard: 'no', target: '#probe.failed' }, { target: '#probe.failed' }],
      },
      on: { stop: { target: 'failed' } },
      states: {
        working: {
          on: { ping: { guard: or(['no', 'yes']), actions: 'bump' } },
          after: {
            later: [{ guard: 'no', target: 'waiting' }, { target: 'waiting' }],
            500: { actions: 'bump' },
          },
        },
        waiting: {
          on: { 'xstate.done.actor.handler': { target: '#probe.done' } },
        },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
});

/** A StateNode, loosely: what the readers look at. */
type Node = Record<string, unknown> & {
  states: Record<string, Node>;
  transitions: Map<string, Array<Record<string, unknown>>>;
};

const root = probe.root as unknown as Node;
const busy = root.states['busy'] as Node;
const working = busy?.states['working'] as Node;
const waiting = busy?.states['waiting'] as Node;
const idle = root.states['idle'] as Node;

describe(`XState internals this package reads (xstate ${installed}, package.json pins ${pinned})`, () => {
  it('the installed xstate is one package.json pins to a patch range (~x.y.z)', () => {
    const range = /^~(\d+)\.(\d+)\.(\d+)$/.exec(pinned);
    expect(
      range,
      `package.json should pin xstate to ~x.y.z (src reads its internals); it says ${pinned}`,
    ).not.toBeNull();
    const [major, minor, patch] = installed.split('.').map(Number);
    const inRange =
      !!range && major === Number(range[1]) && minor === Number(range[2]) && (patch ?? 0) >= Number(range[3]);
    expect(inRange, `xstate ${installed} is installed but package.json pins ${pinned}: run npm install`).toBe(
      true,
    );
  });

  it('machine.root is a tree of StateNodes: key, id, type, parent, states, initial.target', () => {
    relied(
      root.key === 'probe' && root.id === 'probe',
      'the root StateNode has key and id (the machine id)',
      [JOB_LOGIC, DIAGRAM],
      { key: root.key, id: root.id },
    );
    relied(root.parent === undefined, 'the root StateNode has no parent', [JOB_LOGIC, DIAGRAM]);
    relied(
      typeof root.states === 'object' && Object.keys(root.states).join() === 'idle,busy,done,failed',
      'StateNode.states is a record of child StateNodes in declaration order',
      [JOB_LOGIC, DIAGRAM],
      Object.keys(root.states ?? {}),
    );
    relied(busy?.parent === root && working?.parent === busy, 'StateNode.parent is the parent StateNode', [
      JOB_LOGIC,
      DIAGRAM,
    ]);
    relied(
      working?.key === 'working' && working.id === 'probe.busy.working',
      'a StateNode key is its own name and its id the dotted path',
      [JOB_LOGIC, DIAGRAM],
      { key: working?.key, id: working?.id },
    );
    const types = Object.fromEntries(Object.entries(root.states).map(([k, n]) => [k, n.type]));
    relied(
      root.type === 'compound' &&
        types['idle'] === 'atomic' &&
        types['busy'] === 'compound' &&
        types['done'] === 'final',
      "StateNode.type is 'compound', 'atomic' or 'final'",
      [JOB_LOGIC, DIAGRAM],
      types,
    );
    const initial = busy?.initial as { target?: unknown } | undefined;
    relied(
      Array.isArray(initial?.target) && initial.target[0] === working,
      "a compound StateNode's initial.target is an array holding its initial child StateNode",
      [JOB_LOGIC, DIAGRAM],
      initial,
    );
    relied(
      idle?.description === 'Waiting.',
      'StateNode.description is the declared description',
      [DIAGRAM],
      idle?.description,
    );
    relied(
      (probe.config as { context?: unknown }).context === probeContext,
      "machine.config.context is the machine's own context function",
      [JOB_LOGIC],
    );
  });

  it('StateNode.transitions is a Map of event type to transition definitions (target, guard, actions, reenter)', () => {
    relied(
      idle?.transitions instanceof Map,
      'StateNode.transitions is a Map',
      [JOB_LOGIC, DIAGRAM],
      idle?.transitions,
    );
    const [go] = idle?.transitions.get('go') ?? [];
    relied(
      go !== undefined,
      "a state's `on` events are keys of its transitions Map",
      [JOB_LOGIC, DIAGRAM],
      idle?.transitions,
    );
    relied(
      go?.['eventType'] === 'go',
      'a transition definition has its eventType',
      [DIAGRAM],
      go?.['eventType'],
    );
    relied(
      Array.isArray(go?.['target']) && (go['target'] as unknown[])[0] === busy,
      'a transition definition has target: an array of StateNodes',
      [JOB_LOGIC, DIAGRAM],
      go?.['target'],
    );
    relied(
      go?.['reenter'] === false,
      'a transition definition has reenter: false unless declared',
      [JOB_LOGIC],
      go?.['reenter'],
    );
    const actions = go?.['actions'];
    relied(
      Array.isArray(actions) &&
        actions[0] === 'bump' &&
        show(actions[1]) === '{"type":"note","params":{"what":"go"}}',
      'transition actions are kept as declared: a name, or { type, params }',
      [JOB_LOGIC, DIAGRAM],
      actions,
    );
    const [ping] = working?.transitions.get('ping') ?? [];
    relied(
      ping !== undefined && ping['target'] === undefined,
      'a targetless transition has target undefined',
      [JOB_LOGIC, DIAGRAM],
      ping?.['target'],
    );
    const [stop] = busy?.transitions.get('stop') ?? [];
    relied(
      stop !== undefined && working?.transitions.get('stop') === undefined,
      "a parent's transitions are on the parent's Map only (the readers walk up the parents)",
      [JOB_LOGIC, DIAGRAM],
    );
    relied(
      idle?.['always'] === undefined,
      'StateNode.always is undefined when no eventless transition is declared',
      [JOB_LOGIC, DIAGRAM],
      idle?.['always'],
    );
    relied(
      Array.isArray(idle?.['entry']) && Array.isArray(idle?.['exit']) && show(busy?.['exit']) === '["bump"]',
      'StateNode.entry and exit are arrays of the declared actions',
      [JOB_LOGIC],
      { entry: idle?.['entry'], exit: busy?.['exit'] },
    );
    const entry = (busy?.['entry'] as Array<{ type?: unknown; params?: unknown }> | undefined)?.[0];
    relied(
      entry?.type === 'note' && typeof entry.params === 'function',
      'an action { type, params } keeps params as declared (a function of the arguments, or a value)',
      [JOB_LOGIC],
      entry,
    );
  });

  it('guards: a name, { type, params }, or the function that and / or / not make (name and guards)', () => {
    const [go] = idle?.transitions.get('go') ?? [];
    const guard = go?.['guard'] as ((...args: never[]) => unknown) & { guards?: unknown[] };
    relied(
      typeof guard === 'function' &&
        guard.name === 'and' &&
        Array.isArray(guard.guards) &&
        guard.guards.length === 3,
      "and([...]) is a function named 'and' with the guards array",
      [JOB_LOGIC, DIAGRAM],
      guard,
    );
    const [first, negated, withParams] = (guard?.guards ?? []) as Array<
      ((...args: never[]) => unknown) & { guards?: unknown[] }
    >;
    relied(
      first === ('yes' as unknown),
      'a named guard inside and() is kept as its name',
      [JOB_LOGIC, DIAGRAM],
      first,
    );
    relied(
      typeof negated === 'function' && negated.name === 'not' && show(negated.guards) === '["no"]',
      "not(g) is a function named 'not' with guards [g]",
      [JOB_LOGIC, DIAGRAM],
      negated,
    );
    relied(
      show(withParams) === '{"type":"above","params":{"n":-1}}',
      'a guard { type, params } is kept as declared',
      [JOB_LOGIC, DIAGRAM],
      withParams,
    );
    const [ping] = working?.transitions.get('ping') ?? [];
    const either = ping?.['guard'] as ((...args: never[]) => unknown) & { guards?: unknown[] };
    relied(
      typeof either === 'function' && either.name === 'or' && show(either.guards) === '["no","yes"]',
      "or([...]) is a function named 'or' with the guards array",
      [JOB_LOGIC, DIAGRAM],
      either,
    );
  });

  it('invoke: StateNode.invoke lists { id, src, input }, and onDone / onError are xstate.done|error.actor.<id> transitions', () => {
    const invoke = busy?.['invoke'] as Array<{ id?: unknown; src?: unknown; input?: unknown }> | undefined;
    relied(
      Array.isArray(invoke) && invoke.length === 1,
      'StateNode.invoke is an array of invoke definitions',
      [JOB_LOGIC],
      invoke,
    );
    const [handler] = invoke ?? [];
    relied(handler?.id === 'handler', 'an invoke definition has its declared id', [JOB_LOGIC], handler?.id);
    relied(
      handler?.src === 'work',
      'an invoke definition keeps src as the name given in setup({ actors })',
      [JOB_LOGIC],
      handler?.src,
    );
    relied(
      typeof handler?.input === 'function',
      'an invoke definition keeps its input function',
      [JOB_LOGIC],
      handler?.input,
    );
    relied(
      busy?.transitions.has('xstate.done.actor.handler') === true &&
        busy.transitions.get('xstate.error.actor.handler')?.length === 2,
      'onDone and onError become the transitions xstate.done.actor.<id> and xstate.error.actor.<id>',
      [JOB_LOGIC, DIAGRAM],
      busy?.transitions,
    );
    relied(
      waiting?.transitions.has('xstate.done.actor.handler') === true,
      'a transition on xstate.done.actor.<id> may be declared in a child state by that name',
      [JOB_LOGIC],
      waiting?.transitions,
    );
  });

  it("after: a delayed raise (type 'xstate.raise', event, id, delay) in entry, a cancel (type 'xstate.cancel', sendId) in exit", () => {
    // Read straight after createMachine, as the compiled logic does when it loads: the delayed
    // actions must already be in entry and exit (XState adds them when it builds the transitions).
    const entry = working?.['entry'] as
      Array<((...args: never[]) => unknown) & Record<string, unknown>> | undefined;
    const exit = working?.['exit'] as
      Array<((...args: never[]) => unknown) & Record<string, unknown>> | undefined;
    const raises = (entry ?? []).filter((a) => typeof a === 'function' && a['type'] === 'xstate.raise');
    relied(
      raises.length === 2,
      "each `after` delay adds a function with type 'xstate.raise' to the state's entry",
      [JOB_LOGIC],
      entry,
    );
    const named = raises.find((r) => r['delay'] === 'later');
    const numeric = raises.find((r) => r['delay'] === 500);
    relied(
      named !== undefined && numeric !== undefined,
      'a delayed raise has delay: the delay name, or the number of ms',
      [JOB_LOGIC],
      raises,
    );
    const event = named?.['event'] as { type?: unknown } | undefined;
    relied(
      event?.type === 'xstate.after.later.probe.busy.working',
      'the raised event is { type: `xstate.after.<delay>.<state id>` }',
      [JOB_LOGIC, DIAGRAM],
      event,
    );
    relied(
      named?.['id'] === event?.type,
      "a delayed raise's id is its event type",
      [JOB_LOGIC],
      named?.['id'],
    );
    relied(
      working?.transitions.get(String(event?.type))?.length === 2,
      "the delay's transitions are on the transitions Map under the raised event type",
      [JOB_LOGIC, DIAGRAM],
      working?.transitions,
    );
    const cancels = (exit ?? []).filter((a) => typeof a === 'function' && a['type'] === 'xstate.cancel');
    relied(
      cancels.length === 2 && cancels.some((c) => c['sendId'] === named?.['id']),
      "each delay adds a function with type 'xstate.cancel' and sendId (the raise's id) to the state's exit",
      [JOB_LOGIC],
      exit,
    );
  });

  it("createActor(logic, { clock }): the scope's self is the actor, and actor.clock is the clock given", () => {
    const clock = { setTimeout: () => 1, clearTimeout: () => {} };
    let self: AnyActorRef | undefined;
    const logic: ActorLogic<{ status: 'active'; output: undefined; error: undefined }, EventObject> = {
      getInitialSnapshot: (scope) => {
        self = scope.self;
        return { status: 'active', output: undefined, error: undefined };
      },
      transition: (snapshot) => snapshot,
      getPersistedSnapshot: (snapshot) => snapshot,
    };
    const actor = createActor(logic, { clock });
    relied(self === actor, 'the ActorScope a logic is given has self: the actor itself', [JOB_LOGIC]);
    relied(
      (actor as unknown as { clock?: unknown }).clock === clock,
      'an actor made with createActor(logic, { clock }) has .clock === that clock',
      [JOB_LOGIC, LEAN],
    );
  });

  it('the lean host runs a logic as createActor does: deferred effects, the mailbox, emit, final snapshots', () => {
    type Snap = { status: 'active' | 'done'; output: undefined; error: undefined; n: number };
    type Scope = ActorScope<Snap, EventObject, never, EventObject>;
    const clock = { setTimeout: () => 1, clearTimeout: () => {} };

    /** A logic that records what it sees; it leans on each behaviour the job logic relies on. */
    function traced(trace: string[]) {
      const logic = {
        getInitialSnapshot: (scope: Scope): Snap => {
          trace.push('init');
          scope.defer(() =>
            trace.push(
              `deferred init; clock given: ${(scope.self as unknown as { clock: unknown }).clock === clock}`,
            ),
          );
          return { status: 'active', output: undefined, error: undefined, n: 0 };
        },
        transition: (snapshot: Snap, event: EventObject, scope: Scope): Snap => {
          trace.push(`take ${event.type} at n=${snapshot.n}`);
          const n = snapshot.n + 1;
          if (event.type === 'ping') {
            // Sent while a step is being taken: taken after it, not inside it.
            scope.self.send({ type: 'pong' });
            trace.push('sent pong');
            scope.defer(() => {
              trace.push(`deferred ping sees n=${(scope.self.getSnapshot() as Snap).n}`);
              scope.emit({ type: 'pinged' });
              scope.defer(() => trace.push('deferred in deferred'));
            });
          }
          if (event.type === 'end') return { ...snapshot, n, status: 'done' };
          return { ...snapshot, n };
        },
        getPersistedSnapshot: (snapshot: Snap) => snapshot,
      };
      return logic;
    }

    const xstateTrace: string[] = [];
    const actor = createActor(traced(xstateTrace) as unknown as ActorLogic<Snap, EventObject>, { clock });
    actor.on('pinged', () => xstateTrace.push('heard pinged'));
    actor.subscribe({ error: (error) => xstateTrace.push(`error ${String(error)}`) });
    actor.start();
    // XState warns (on the console) of the event sent to a done actor; the trace says the rest.
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      for (const type of ['ping', 'end', 'late']) actor.send({ type });
    } finally {
      warn.mockRestore();
    }
    xstateTrace.push(`status ${actor.getSnapshot().status}, n=${actor.getSnapshot().n}`);

    const leanTrace: string[] = [];
    const lean = new LeanActor<Snap, EventObject>(
      {
        logic: traced(leanTrace) as never,
        clock,
        onError: (error) => leanTrace.push(`error ${String(error)}`),
      },
      undefined,
    );
    lean.on('pinged', () => leanTrace.push('heard pinged'));
    for (const type of ['ping', 'end', 'late']) lean.send({ type });
    leanTrace.push(`status ${lean.getSnapshot().status}, n=${lean.getSnapshot().n}`);

    relied(
      show(xstateTrace) ===
        show([
          'init',
          'deferred init; clock given: true',
          'take ping at n=0',
          'sent pong',
          'deferred ping sees n=1',
          'heard pinged',
          'deferred in deferred',
          'take pong at n=1',
          'take end at n=2',
          'status done, n=3',
        ]),
      "XState's actor semantics as the lean host copies them: a step's deferred effects run after it is committed, in order; " +
        'an event sent during a step is taken after it; emit reaches actor.on; a done actor takes nothing more',
      [LEAN, JOB_LOGIC],
      xstateTrace,
    );
    expect(leanTrace, 'the lean host no longer behaves as XState’s actor').toEqual(xstateTrace);
  });
});
