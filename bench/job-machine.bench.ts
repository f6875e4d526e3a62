/**
 * Job lifecycles per second: create a job actor, take it through pending → queued → scheduled
 * → running → completed with a handler that resolves at once, and observe its release.
 */
import { SimulatedClock, createActor, fromPromise } from 'xstate';
import { jobMachine, type JobHandlerInput } from '../src/machines/job.machine.js';
import { opsPerSecond, report } from './harness.js';

const clock = new SimulatedClock();
const machine = jobMachine.provide({
  actors: { runHandler: fromPromise<unknown, JobHandlerInput>(async ({ input }) => input.attempt) },
});
const allocation = { id: 'a', nodeId: 'n', cpu: 1, memoryMb: 1, gpus: [], custom: {} };

async function lifecycles(count: number): Promise<void> {
  let released = 0;
  const done: Array<Promise<void>> = [];
  for (let i = 0; i < count; i++) {
    const actor = createActor(machine, { clock, input: { id: `job-${i}`, type: 'noop', clock } });
    actor.on('job.released', () => {
      released++;
    });
    done.push(
      new Promise<void>((resolve) => {
        actor.subscribe({ complete: () => resolve() });
      }),
    );
    actor.start();
    actor.send({ type: 'job.ready' });
    actor.send({ type: 'job.allocated', allocation });
    actor.send({ type: 'job.start' });
  }
  await Promise.all(done);
  if (released !== count) throw new Error(`released ${released} of ${count}`);
}

for (const count of [1_000, 10_000]) {
  report(await opsPerSecond('job lifecycle', { jobs: count }, count, () => lifecycles(count)));
}
