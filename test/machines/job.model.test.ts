/**
 * Model-based tests generated from the job machine's own graph (xstate/graph): every edge of the
 * reachable graph becomes a path (shortest path to its source, then the edge), and each path is
 * replayed against a real actor — real invoked handler, real timers on a simulated clock —
 * checking the state after every step.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock, transition, type AnyStateMachine, type EventObject } from 'xstate';
import { getAdjacencyMap, getShortestPaths } from 'xstate/graph';
import { UnrecoverableError } from '../../src/core/errors.js';
import { jobMachine, type JobMachineSnapshot } from '../../src/machines/job.machine.js';
import { eventLabel, leafStates, transitionTable } from '../../src/machines/diagram.js';
import {
  checkJobInvariants,
  createJobHarness,
  expectSameJob,
  leafStateOf,
  makeAllocation,
  type JobStep,
} from '../helpers/job-harness.js';

type AnyJobEvent = EventObject & Record<string, unknown>;

/** The documented transition table (docs/job-lifecycle.md), written out as the spec. */
const SPEC: ReadonlyArray<[state: string, event: string, targets: ReadonlyArray<string | null>]> = [
  ['pending', 'job.ready', ['queued']],
  ['pending', 'job.dependencyFailed', ['cancelled']],
  ['pending', 'job.cancel', ['cancelled']],
  // A job recovered from a store in the middle of a backoff waits the rest of it.
  ['pending', 'job.retry', ['retrying']],
  ['queued', 'job.wait', [null]],
  ['queued', 'job.allocated', ['scheduled']],
  ['queued', 'job.cancel', ['cancelled']],
  ['scheduled', 'job.start', ['working']],
  ['scheduled', 'job.cancel', ['cancelled']],
  // `running` is `working`, then — told to stop — `stopping` until its handler has settled.
  ['working', 'job.progress', [null]],
  ['working', 'done(handler)', ['completed']],
  ['working', 'error(handler)', ['retrying', 'failed']],
  ['working', 'after(jobTimeout)', ['stopping']],
  ['working', 'job.cancel', ['stopping']],
  ['stopping', 'job.cancel', [null]],
  ['stopping', 'done(handler)', ['cancelled', 'retrying', 'failed']],
  ['stopping', 'error(handler)', ['cancelled', 'retrying', 'failed']],
  ['stopping', 'job.abandon', ['cancelled', 'failed']],
  ['stopping', 'after(stopTimeout)', ['cancelled', 'failed']],
  ['retrying', 'job.cancel', ['cancelled']],
  ['retrying', 'after(retryBackoff)', ['queued']],
];

const TIMEOUT_MS = 1_000;
const STOP_TIMEOUT_MS = 500;
// getAdjacencyMap's signature does not carry the machine's emitted-event type; the logic is the same.
const graphLogic = jobMachine as unknown as AnyStateMachine;
const clock = new SimulatedClock();
const baseInput = { id: 'job-1', type: 'test', clock };

/** Every event the job can ever see, internal ones included, with representative payloads. */
function vocabulary(): AnyJobEvent[] {
  return [
    { type: 'job.ready' },
    { type: 'job.wait', reason: 'resources' },
    { type: 'job.wait', reason: 'concurrency' },
    { type: 'job.wait', reason: 'paused' },
    { type: 'job.allocated', allocation: makeAllocation() },
    { type: 'job.start' },
    { type: 'job.progress', fraction: 0.5, note: 'half' },
    { type: 'job.cancel', reason: 'user' },
    { type: 'job.cancel', reason: 'shutdown' },
    { type: 'job.dependencyFailed', dependencyId: 'dep-1' },
    { type: 'job.retry', delayMs: 250 },
    { type: 'xstate.done.actor.handler', output: 'ok', actorId: 'handler' },
    { type: 'xstate.error.actor.handler', error: new Error('boom'), actorId: 'handler' },
    { type: 'xstate.error.actor.handler', error: new UnrecoverableError('fatal'), actorId: 'handler' },
    { type: 'job.abandon' },
    { type: 'xstate.after.jobTimeout.job.allocated.running.working' },
    { type: 'xstate.after.stopTimeout.job.allocated.running.stopping' },
    { type: 'xstate.after.retryBackoff.job.retrying' },
  ];
}

/** The leaf state: one of the eight job states, `running` told apart as `working` or `stopping`. */
function leafOf(snapshot: JobMachineSnapshot): string {
  return leafStateOf(snapshot.value);
}

/** The parts of a snapshot that matter for the lifecycle; times and the clock are left out. */
function serialize(snapshot: JobMachineSnapshot): string {
  const c = snapshot.context;
  return JSON.stringify({
    state: leafOf(snapshot),
    stopping: c.stopping?.outcome,
    attempt: c.attempt,
    error: c.error?.kind,
    wait: c.waitReason,
    progress: c.progress.fraction,
    holds: c.allocation !== undefined,
  });
}

/** Turns a graph event into what a test really does to an actor. */
function toStep(event: AnyJobEvent, harness: ReturnType<typeof createJobHarness>): JobStep {
  if (event.type === 'xstate.done.actor.handler') return { kind: 'resolve', output: event['output'] };
  if (event.type === 'xstate.error.actor.handler') return { kind: 'reject', error: event['error'] };
  if (event.type.startsWith('xstate.after.jobTimeout')) return { kind: 'advance', ms: TIMEOUT_MS };
  if (event.type.startsWith('xstate.after.stopTimeout')) return { kind: 'advance', ms: STOP_TIMEOUT_MS };
  if (event.type.startsWith('xstate.after.retryBackoff')) {
    return { kind: 'advance', ms: harness.actor.getSnapshot().context.retryDelayMs };
  }
  return { kind: 'send', event: event as never };
}

const variants = [
  {
    name: 'two attempts, a timeout and a stop timeout',
    input: { maxAttempts: 2, timeoutMs: TIMEOUT_MS, stopTimeoutMs: STOP_TIMEOUT_MS },
  },
  { name: 'one attempt, no timeout', input: { maxAttempts: 1 } },
] as const;

/**
 * Whether a state can receive an event at all. External events can arrive anywhere. The
 * handler's done and error events exist only while the handler is invoked (in `running`; the
 * actor is stopped on exit, so a late settlement is never delivered), and a delay's event only
 * where its timer is armed: in a real actor "the timer fires" means time passes, which does
 * nothing elsewhere.
 */
function canArrive(state: string, event: AnyJobEvent): boolean {
  if (event.type.startsWith('xstate.after.jobTimeout')) return state === 'working';
  if (event.type.startsWith('xstate.after.stopTimeout')) return state === 'stopping';
  if (event.type.startsWith('xstate.after.retryBackoff')) return state === 'retrying';
  if (event.type.endsWith('.actor.handler')) return state === 'working' || state === 'stopping';
  return true;
}

function eventsFor(snapshot: JobMachineSnapshot): AnyJobEvent[] {
  const state = leafOf(snapshot);
  return vocabulary().filter((e) => canArrive(state, e));
}

const traversal = (input: object) => ({
  input: { ...baseInput, ...input },
  events: ((s: JobMachineSnapshot) => eventsFor(s)) as never,
  serializeState: (s: JobMachineSnapshot) => serialize(s),
});

/** Every edge of the reachable graph, each with the shortest path that reaches its source. */
function edgePaths(input: object) {
  const adjacency = getAdjacencyMap(graphLogic, traversal(input));
  const toSource = new Map(
    getShortestPaths(jobMachine, traversal(input)).map((p) => [serialize(p.state as JobMachineSnapshot), p]),
  );
  const out: Array<{ prefix: AnyJobEvent[]; edge: AnyJobEvent; from: string; to: string; handled: boolean }> =
    [];
  for (const [key, vertex] of Object.entries(adjacency)) {
    const path = toSource.get(key);
    if (!path) throw new Error(`no path to ${key}`);
    const edges = Object.values(vertex.transitions) as Array<{
      event: AnyJobEvent;
      state: JobMachineSnapshot;
    }>;
    for (const { event, state } of edges) {
      // XState returns the very same snapshot when no transition was enabled.
      const [next] = transition(jobMachine, vertex.state as never, event as never);
      out.push({
        handled: next !== vertex.state,
        prefix: path.steps.map((s) => s.event as AnyJobEvent),
        edge: event as AnyJobEvent,
        from: key,
        to: serialize(state as JobMachineSnapshot),
      });
    }
  }
  return out;
}

describe('job machine — generated from its graph', () => {
  it('the machine implements exactly the documented transition table', () => {
    const derived = new Map<string, Set<string | null>>();
    for (const row of transitionTable(jobMachine)) {
      const key = `${row.state} × ${row.label}`;
      derived.set(key, (derived.get(key) ?? new Set()).add(row.target));
    }
    const spec = new Map(SPEC.map(([s, e, t]) => [`${s} × ${e}`, new Set(t)]));
    expect(derived).toEqual(spec);
    expect(leafStates(jobMachine)).toEqual([
      'pending',
      'queued',
      'scheduled',
      'working',
      'stopping',
      'retrying',
      'completed',
      'failed',
      'cancelled',
    ]);
  });

  it('generated paths cover every state and every (state, event, target) of the table', () => {
    const covered = new Set<string>();
    const states = new Set<string>();
    for (const variant of variants) {
      for (const p of edgePaths(variant.input)) {
        const from = JSON.parse(p.from).state as string;
        const to = JSON.parse(p.to).state as string;
        states.add(from).add(to);
        if (p.handled) covered.add(`${from} × ${eventLabel(p.edge.type)} → ${from === to ? 'null' : to}`);
      }
    }
    const expected = SPEC.flatMap(([s, e, targets]) => targets.map((t) => `${s} × ${e} → ${t ?? 'null'}`));
    expect([...covered].sort()).toEqual([...expected].sort());
    // The eight job states, `running` as its two leaves.
    expect(states.size).toBe(9);
  });

  for (const variant of variants) {
    it(`every generated path replays on a real actor (${variant.name})`, async () => {
      const paths = edgePaths(variant.input);
      expect(paths.length).toBeGreaterThan(20);
      for (const path of paths) {
        const harness = createJobHarness(variant.input);
        // The runtime's compiled logic walks the same path beside it and must agree on everything.
        const compiled = createJobHarness(variant.input, 'compiled');
        // …and on the runtime's lean host.
        const lean = createJobHarness(variant.input, 'lean');
        const steps = [...path.prefix, path.edge];
        for (const [i, event] of steps.entries()) {
          const before = harness.actor.getSnapshot() as JobMachineSnapshot;
          // What the graph says this step leads to, computed from the same snapshot.
          const [predicted] = transition(jobMachine, before as never, event as never);
          const expectedVertex = serialize(predicted as JobMachineSnapshot);
          const step = toStep(event, harness);
          await harness.apply(step);
          await compiled.apply(step);
          await lean.apply(step);
          const actual = serialize(harness.actor.getSnapshot() as JobMachineSnapshot);
          const where = `step ${i} (${eventLabel(event.type)}) of a path to ${path.to}`;
          expect(actual, where).toBe(expectedVertex);
          expectSameJob(compiled, harness, where);
          expectSameJob(lean, harness, where);
          checkJobInvariants(harness);
          checkJobInvariants(compiled);
          checkJobInvariants(lean);
        }
        expect(serialize(harness.actor.getSnapshot() as JobMachineSnapshot)).toBe(path.to);
        harness.actor.stop();
        compiled.actor.stop();
      }
    });
  }

  it('an event outside the table changes neither state nor context, and final states accept nothing', () => {
    const table = transitionTable(jobMachine);
    for (const variant of variants) {
      const adjacency = getAdjacencyMap(graphLogic, traversal(variant.input));
      for (const vertex of Object.values(adjacency)) {
        const snapshot = vertex.state as JobMachineSnapshot;
        const state = leafOf(snapshot);
        for (const event of eventsFor(snapshot)) {
          const listed = table.some((r) => r.state === state && r.label === eventLabel(event.type));
          if (listed) continue;
          const [next] = transition(jobMachine, snapshot as never, event as never);
          expect(next.value, `${state} × ${event.type}`).toEqual(snapshot.value);
          expect(next.context).toEqual(snapshot.context);
          expect(next.status).toBe(snapshot.status);
        }
        if (['completed', 'failed', 'cancelled'].includes(state)) {
          expect(snapshot.status).toBe('done');
          expect(table.filter((r) => r.state === state)).toEqual([]);
        }
      }
    }
  });
});
