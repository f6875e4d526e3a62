/**
 * The compiled job logic as XState actor logic, beyond what the model and property tests replay:
 * a persisted snapshot restores where nothing runs, and is refused where a handler or a timer
 * would be lost.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock, and, createActor, not, or } from 'xstate';
import { combinatorOf, createJobLogic } from '../../src/machines/job.logic.js';
import { jobMachine } from '../../src/machines/job.machine.js';
import { LeanActor } from '../../src/runtime/lean-actor.js';
import { makeAllocation } from '../helpers/job-harness.js';

describe('compiled job logic', () => {
  const clock = new SimulatedClock();
  const input = { id: 'p', type: 'test', clock, maxAttempts: 2, timeoutMs: 1_000 };

  it('a job persisted while queued restores into a working actor that runs to completion', async () => {
    const runs: number[] = [];
    const logic = createJobLogic(async (i) => {
      runs.push(i.attempt);
      return 'ok';
    });
    const first = createActor(logic, { clock, input }).start();
    first.send({ type: 'job.ready' });
    const persisted = first.getPersistedSnapshot();
    expect(persisted).not.toHaveProperty('run');
    first.stop();
    const restored = createActor(logic, { clock, input, snapshot: persisted }).start();
    expect(restored.getSnapshot().value).toBe('queued');
    restored.send({ type: 'job.allocated', allocation: makeAllocation() });
    restored.send({ type: 'job.start' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(restored.getSnapshot()).toMatchObject({ status: 'done', value: 'completed' });
    expect(runs).toEqual([1]);
  });

  it('on the lean host (in place) the snapshot is its own run, and persists as the same data', () => {
    const lean = createJobLogic(() => 'ok', undefined, { inPlace: true });
    const immutable = createJobLogic(() => 'ok');
    const host = {
      logic: lean,
      clock,
      onError: (error: unknown) => {
        throw error;
      },
    };
    const onLean = new LeanActor(host, input);
    onLean.send({ type: 'job.ready' });
    const inXState = createActor(immutable, { clock, input }).start();
    inXState.send({ type: 'job.ready' });
    const snapshot = onLean.getSnapshot();
    expect(snapshot.run).toBe(snapshot);
    const persisted = lean.getPersistedSnapshot(snapshot);
    for (const key of ['run', 'attempt', 'armed']) expect(persisted).not.toHaveProperty(key);
    expect(persisted).toEqual(inXState.getPersistedSnapshot());
  });

  it('a late start keeps the times it is told: input.submittedAt and job.ready at (machine and compiled)', () => {
    const late = { ...input, submittedAt: 3 };
    const machine = createActor(jobMachine, { clock, input: late }).start();
    const compiled = createActor(
      createJobLogic(() => 'ok'),
      { clock, input: late },
    ).start();
    for (const actor of [machine, compiled]) {
      actor.send({ type: 'job.ready', at: 5 });
      expect(actor.getSnapshot().context).toMatchObject({
        submittedAt: 3,
        queuedAt: 5,
        waitReason: 'resources',
      });
    }
    expect(compiled.getSnapshot().context).toEqual(machine.getSnapshot().context);
  });

  it('a job persisted while running is refused: its handler and its timeout would be lost', () => {
    const logic = createJobLogic(() => new Promise<never>(() => undefined));
    const actor = createActor(logic, { clock, input }).start();
    for (const event of [
      { type: 'job.ready' },
      { type: 'job.allocated', allocation: makeAllocation() },
      { type: 'job.start' },
    ] as const)
      actor.send(event);
    expect(actor.getSnapshot().value).toEqual({ allocated: { running: 'working' } });
    const persisted = actor.getPersistedSnapshot();
    actor.stop();
    const restored = createActor(logic, { clock, input, snapshot: persisted });
    expect(restored.getSnapshot().status).toBe('error');
    expect(String((restored.getSnapshot() as { error?: unknown }).error)).toMatch(/cannot be restored/);
  });
});

describe('compiled job logic under a bundler that renames functions', () => {
  it("tells XState's and / or / not apart by their evaluator, not by their names", () => {
    const renamed = <T extends object>(fn: T, name: string): T => {
      Object.defineProperty(fn, 'name', { value: name });
      return fn;
    };
    expect(combinatorOf(renamed(and(['a', 'b']), 'and2'))).toBe('and');
    expect(combinatorOf(renamed(or(['a', 'b']), 'or3'))).toBe('or');
    expect(combinatorOf(renamed(not('a'), 'not$1'))).toBe('not');
    // A function that is none of them is not taken for one.
    expect(combinatorOf(renamed(() => true, 'x'))).toBeUndefined();
  });
});
