/**
 * Model-based test of the resource-manager actor (fast-check commands): random requests,
 * releases, double releases, capacity changes and host measurements, all by message. After
 * every step the ledger's invariants hold, the published stats equal the ledger's totals, and
 * every request got exactly one answer.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createActor, fromCallback, type Actor, type AnyActorRef } from 'xstate';
import { resourceManagerMachine, type ResourceReply } from '../../src/machines/resourceManager.machine.js';
import type { NodeSpec, ResourceRequest } from '../../src/core/resources.js';
import type { Allocation } from '../../src/core/types.js';
import { checkLedgerInvariants } from '../helpers/ledger-invariants.js';
import { numRuns } from '../helpers/num-runs.js';

type Model = { held: Allocation[]; released: string[]; requests: number };
type Real = { actor: Actor<typeof resourceManagerMachine>; replies: ResourceReply[]; inbox: AnyActorRef };

function check(model: Model, real: Real): void {
  const { ledger, stats } = real.actor.getSnapshot().context;
  checkLedgerInvariants(ledger, model.held);
  const totals = ledger.totals();
  if (
    JSON.stringify({ ...stats, measured: undefined }) !== JSON.stringify({ ...totals, measured: undefined })
  ) {
    throw new Error('published stats differ from the ledger');
  }
  if (real.replies.length !== model.requests) throw new Error('every request gets exactly one answer');
}

class Request implements fc.Command<Model, Real> {
  constructor(readonly request: ResourceRequest) {}
  check = () => true;
  run(model: Model, real: Real): void {
    model.requests++;
    real.actor.send({
      type: 'resources.request',
      requestId: `r${model.requests}`,
      request: this.request,
      replyTo: real.inbox,
    });
    const reply = real.replies.at(-1);
    if (reply?.requestId !== `r${model.requests}`) throw new Error('the answer names its request');
    if (reply.type === 'resources.granted') model.held.push(reply.allocation);
    check(model, real);
  }
  toString = () => `request(${JSON.stringify(this.request)})`;
}

class Release implements fc.Command<Model, Real> {
  constructor(
    readonly pick: number,
    readonly twice: boolean,
  ) {}
  check = (m: Readonly<Model>) => (this.twice ? m.released.length > 0 : m.held.length > 0);
  run(model: Model, real: Real): void {
    if (this.twice) {
      real.actor.send({
        type: 'resources.release',
        allocationId: model.released[this.pick % model.released.length] as string,
      });
    } else {
      const [a] = model.held.splice(this.pick % model.held.length, 1);
      if (!a) throw new Error('check() guarantees one');
      model.released.push(a.id);
      real.actor.send({ type: 'resources.release', allocationId: a.id });
    }
    check(model, real);
  }
  toString = () => `${this.twice ? 'releaseAgain' : 'release'}(#${this.pick})`;
}

class Capacity implements fc.Command<Model, Real> {
  constructor(
    readonly memoryMb: number | undefined,
    readonly measuredFree: number | undefined,
  ) {}
  check = () => true;
  run(model: Model, real: Real): void {
    const before = real.actor.getSnapshot().context.ledger.allocations();
    if (this.measuredFree === undefined) {
      real.actor.send({
        type: 'resources.setLimit',
        nodeId: 'n0',
        limit: this.memoryMb === undefined ? undefined : { memoryMb: this.memoryMb },
      });
    } else {
      real.actor.send({
        type: 'resources.measured',
        measured: { freeMemoryMb: this.measuredFree, warnings: [] },
      });
    }
    expect(real.actor.getSnapshot().context.ledger.allocations()).toEqual(before); // never revokes
    check(model, real);
  }
  toString = () => `capacity(limit ${this.memoryMb}, measured ${this.measuredFree})`;
}

const nodes: fc.Arbitrary<NodeSpec[]> = fc.array(
  fc.record({
    cpu: fc.integer({ min: 1, max: 16 }),
    memoryMb: fc.integer({ min: 1_000, max: 32_000 }),
    gpus: fc.array(fc.record({ vramMb: fc.constantFrom(16_000, 24_000) }), { maxLength: 4 }),
  }),
  { minLength: 1, maxLength: 4 },
);

const request: fc.Arbitrary<ResourceRequest> = fc.record(
  {
    cpu: fc.integer({ min: 0, max: 6 }),
    memoryMb: fc.integer({ min: 0, max: 8_000 }),
    gpu: fc.constantFrom(0, 1, 2, 0.5, 0.25, 7, -1),
    vramMb: fc.constantFrom(0, 8_000, 30_000),
  },
  { requiredKeys: [] },
);

describe('resource manager — model-based, by message', () => {
  it('keeps the ledger invariants and its published stats after every message', () => {
    fc.assert(
      fc.property(
        nodes,
        fc.commands(
          [
            request.map((r) => new Request(r)),
            fc.tuple(fc.nat(), fc.boolean()).map(([n, twice]) => new Release(n, twice)),
            fc
              .tuple(
                fc.option(fc.integer({ min: 0, max: 32_000 }), { nil: undefined }),
                fc.option(fc.integer({ min: 0, max: 32_000 }), { nil: undefined }),
              )
              .map(([limit, measured]) => new Capacity(limit, measured)),
          ],
          { size: 'max', maxCommands: 200 },
        ),
        (specs, cmds) => {
          const replies: ResourceReply[] = [];
          const inbox = createActor(
            fromCallback(({ receive }) => receive((e) => replies.push(e as ResourceReply))),
          ).start();
          const actor = createActor(resourceManagerMachine, {
            input: { pool: { nodes: specs.map((s, i) => ({ ...s, id: `n${i}` })) } },
          }).start();
          fc.modelRun(
            () => ({ model: { held: [], released: [], requests: 0 }, real: { actor, replies, inbox } }),
            cmds,
          );
          actor.stop();
        },
      ),
      { numRuns: numRuns(100) },
    );
  });
});
