/**
 * Job lifecycles per second: take a job through pending → queued → scheduled → running →
 * completed with a handler that resolves at once, and observe its release — on the three
 * executors of the job machine: XState's interpreter of `jobMachine`, the compiled logic
 * (src/machines/job.logic.ts) in XState's `createActor` (the scheduler under inspection), and the
 * compiled logic on the lean host (src/runtime/lean-actor.ts, the scheduler's default).
 */
import { SimulatedClock, createActor, fromPromise } from 'xstate';
import { jobMachine, type JobEvent, type JobHandlerInput } from '../src/machines/job.machine.js';
import { createJobLogic } from '../src/machines/job.logic.js';
import { LeanActor } from '../src/runtime/lean-actor.js';
import { opsPerSecond, report } from './harness.js';

const clock = new SimulatedClock();
const machine = jobMachine.provide({
  actors: { runHandler: fromPromise<unknown, JobHandlerInput>(async ({ input }) => input.attempt) },
});
const allocation = { id: 'a', nodeId: 'n', cpu: 1, memoryMb: 1, gpus: [], custom: {} };
const steps: JobEvent[] = [
  { type: 'job.ready' },
  { type: 'job.allocated', allocation },
  { type: 'job.start' },
];
type Executor = 'machine' | 'compiled' | 'lean';

async function lifecycles(count: number, executor: Executor): Promise<void> {
  let released = 0;
  let finished = 0;
  let wake: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (wake = resolve));
  const ended = () => {
    if (++finished === count) wake();
  };
  const logic = createJobLogic(
    (input) => input.attempt,
    (snapshot) => {
      if (snapshot.status === 'done') ended();
    },
    { inPlace: executor === 'lean' },
  );
  // What every lean actor of the run shares, as in the scheduler.
  const host = {
    logic,
    clock,
    onError: (error: unknown): never => {
      throw error;
    },
  };
  for (let i = 0; i < count; i++) {
    const input = { id: `job-${i}`, type: 'noop', clock };
    if (executor === 'lean') {
      const actor = new LeanActor(host, input);
      actor.on('job.released', () => void released++);
      for (const event of steps) actor.send(event);
      continue;
    }
    if (executor === 'machine') {
      const actor = createActor(machine, { clock, input });
      actor.on('job.released', () => void released++);
      actor.subscribe({ complete: ended });
      actor.start();
      for (const event of steps) actor.send(event);
      continue;
    }
    const actor = createActor(logic, { clock, input });
    actor.on('job.released', () => void released++);
    actor.start();
    for (const event of steps) actor.send(event);
  }
  await done;
  if (released !== count) throw new Error(`released ${released} of ${count}`);
}

for (const executor of ['machine', 'compiled', 'lean'] as const) {
  for (const count of [1_000, 10_000]) {
    report(
      await opsPerSecond('job lifecycle', { jobs: count, executor }, count, () =>
        lifecycles(count, executor),
      ),
    );
  }
}
