/**
 * Type tests: `npm run typecheck` compiles this file, and every `@ts-expect-error` below must
 * really be an error, or the build fails. The runtime assertions keep vitest honest too.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock, createActor } from 'xstate';
import { jobMachine, type JobEvent } from '../../src/machines/job.machine.js';

describe('job machine types', () => {
  it('rejects unknown events and missing or wrong payloads at compile time', () => {
    const clock = new SimulatedClock();
    const actor = createActor(jobMachine, { clock, input: { id: 'typed', type: 't', clock } });
    actor.start();

    // Compiled, never run: each line must fail to type-check.
    const compileOnly = () => {
      // @ts-expect-error: not an event of the job machine
      actor.send({ type: 'job.explode' });
      // @ts-expect-error: job.allocated needs an allocation
      actor.send({ type: 'job.allocated' });
      // @ts-expect-error: job.wait takes only the reasons a scheduler can give
      actor.send({ type: 'job.wait', reason: 'backoff' });
      // @ts-expect-error: progress is a number
      actor.send({ type: 'job.progress', fraction: '50%' });
      // @ts-expect-error: dependencyFailed names the dependency
      actor.send({ type: 'job.dependencyFailed' });
      // @ts-expect-error: the input needs a clock
      createActor(jobMachine, { input: { id: 'x', type: 't' } });
    };
    expect(typeof compileOnly).toBe('function');

    const ok: JobEvent = { type: 'job.cancel', reason: 'user' };
    actor.send(ok);
    expect(actor.getSnapshot().value).toBe('cancelled');
  });
});
