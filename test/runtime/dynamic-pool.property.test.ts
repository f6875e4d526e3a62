/**
 * A property of the scheduler on a pool that changes while it runs: random sequences of
 * submits, nodes joining and retiring (ids reused once gone, as a host that registers again),
 * cancels and time passing, in virtual time, under both `unschedulable` modes. After every step:
 * the ledger's invariants hold (nothing over-allocated, usage = what is held, capacity = the nodes
 * present); no job starts on a retired node; a submit is refused (`'reject'`) or waits with
 * `noNode` exactly when no node not retired could hold it; a retired node leaves (`node.removed`,
 * once) exactly when nothing is held on it. At the end a node that can hold anything joins, and
 * every accepted job ends: none is lost.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  UnschedulableError,
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type NodeSpec,
  type SchedulerEvent,
} from '../../src/index.js';
import type { ResourceLedger } from '../../src/core/ledger.js';
import { assertCanEverFit, toUnits } from '../../src/core/pool.js';
import { checkLedgerInvariants } from '../helpers/ledger-invariants.js';
import { numRuns } from '../helpers/num-runs.js';

type Step =
  | { kind: 'submit'; gpu: number; cpu: number; ms: number; priority: 'low' | 'normal' | 'high' }
  | { kind: 'add'; gpus: number; cpu: number; reuse: number | undefined }
  | { kind: 'retire'; pick: number }
  | { kind: 'cancel'; pick: number }
  | { kind: 'advance'; ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('submit' as const),
      gpu: fc.integer({ min: 0, max: 4 }),
      cpu: fc.integer({ min: 1, max: 6 }),
      ms: fc.integer({ min: 1, max: 400 }),
      priority: fc.constantFrom('low' as const, 'normal' as const, 'high' as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      gpus: fc.integer({ min: 0, max: 4 }),
      cpu: fc.integer({ min: 1, max: 8 }),
      reuse: fc.option(fc.nat(), { nil: undefined }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retire' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 300 }) }),
  },
);

const nodeOf = (id: string, gpus: number, cpu: number): NodeSpec & { id: string } => ({
  id,
  cpu,
  memoryMb: 8_000,
  gpus: Array.from({ length: gpus }, () => ({ vramMb: 16_000 })),
});

/** Brute force, from the specs of the nodes not retired: could one of them hold it when idle? */
function someActiveNodeCouldHold(ledger: ResourceLedger, request: { gpu: number; cpu: number }): boolean {
  const units = toUnits(request);
  return ledger.nodes
    .filter((n) => !ledger.isRetired(n.id))
    .some((n) => {
      try {
        assertCanEverFit(units, [n], {
          cpu: n.cpu,
          memoryMb: n.memoryMb,
          gpus: n.gpus.length,
          vramMb: Math.max(0, ...n.gpus.map((g) => g.vramMb)),
          custom: new Map(Object.entries(n.custom)),
        });
        return true;
      } catch {
        return false;
      }
    });
}

async function run(mode: 'reject' | 'wait', initial: Array<{ gpus: number; cpu: number }>, steps: Step[]) {
  const clock = createVirtualClock();
  const scheduler = createScheduler({
    clock,
    monitor: false,
    unschedulable: mode,
    maxConcurrentJobs: 8,
    maxQueueSize: 1_000,
    retry: { attempts: 1 },
    resources: { nodes: initial.map((n, i) => nodeOf(`i${i}`, n.gpus, n.cpu)) },
    handlers: {
      work: async ({ payload, signal }: HandlerContext<{ ms: number }>) => {
        await delay(clock, payload.ms, signal);
      },
    },
  });
  const rm = scheduler['actor'].system.get('resourceManager') as {
    getSnapshot(): { context: { ledger: ResourceLedger } };
  };
  const ledger = rm.getSnapshot().context.ledger;
  const problems: string[] = [];
  const removedOnce = new Set<string>();
  const retiredBefore = new Set<string>();
  scheduler.events$.subscribe((e: SchedulerEvent) => {
    if (e.type === 'job.started') {
      const on = e.job.allocation?.nodeId as string;
      if (ledger.isRetired(on)) problems.push(`${e.job.id} started on retired ${on}`);
    }
    if (e.type === 'node.retired') retiredBefore.add(e.nodeId);
    if (e.type === 'node.removed') {
      if (!retiredBefore.has(e.nodeId)) problems.push(`${e.nodeId} removed without a retire`);
      if (ledger.positionOf(e.nodeId) >= 0) problems.push(`${e.nodeId} removed but still present`);
      retiredBefore.delete(e.nodeId);
      removedOnce.add(e.nodeId);
    }
  });
  const accepted: string[] = [];
  const gone: string[] = [];
  let n = 0;
  let nodeIds = 0;
  for (const step of steps) {
    switch (step.kind) {
      case 'submit': {
        const id = `j${n++}`;
        const request = { gpu: step.gpu, cpu: step.cpu };
        const could = someActiveNodeCouldHold(ledger, request);
        try {
          scheduler.submit({
            type: 'work',
            id,
            payload: { ms: step.ms },
            resources: request,
            priority: step.priority,
          });
          accepted.push(id);
          expect(could || mode === 'wait', `${id} accepted though no node could hold it`).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(UnschedulableError);
          expect(mode === 'reject' && !could, `${id} refused`).toBe(true);
        }
        break;
      }
      case 'add': {
        const reusable = gone.filter((id) => ledger.positionOf(id) < 0);
        const id =
          step.reuse !== undefined && reusable.length > 0
            ? (reusable[step.reuse % reusable.length] as string)
            : `n${nodeIds++}`;
        scheduler.addNode(nodeOf(id, step.gpus, step.cpu));
        break;
      }
      case 'retire': {
        const present = ledger.nodes.map((x) => x.id);
        if (present.length === 0) break;
        const id = present[step.pick % present.length] as string;
        const holding = ledger.allocations().filter((a) => a.nodeId === id).length;
        const result = scheduler.retireNode(id);
        expect(result.jobIds.length).toBe(holding);
        expect(result.removed).toBe(holding === 0 && !ledger.isRetired(id) && ledger.positionOf(id) < 0);
        gone.push(id);
        break;
      }
      case 'cancel':
        if (accepted.length > 0) scheduler.cancel(accepted[step.pick % accepted.length] as string);
        break;
      case 'advance':
        await clock.advanceBy(step.ms);
        break;
    }
    await clock.advanceBy(0);
    checkLedgerInvariants(ledger, ledger.allocations());
    expect(problems).toEqual([]);
    for (const id of accepted) expect(scheduler.get(id), `${id} is known`).toBeDefined();
    // A queued job waits for a node exactly when no node not retired could hold it.
    for (const job of scheduler.list({ state: 'queued' })) {
      const spec = specs.get(job.id);
      if (!spec) continue;
      expect(job.waitReason === 'noNode', `${job.id} ${job.waitReason}`).toBe(
        !someActiveNodeCouldHold(ledger, spec),
      );
    }
    // A retired node is present exactly while something is held on it.
    for (const node of ledger.nodes)
      if (ledger.isRetired(node.id))
        expect(ledger.allocations().some((a) => a.nodeId === node.id)).toBe(true);
  }
  // A node that can hold anything joins: every accepted job ends, none is lost.
  scheduler.addNode(nodeOf('everything', 4, 8));
  await clock.runUntilIdle();
  await clock.advanceBy(10_000);
  for (const id of accepted) expect(['completed', 'cancelled'], id).toContain(scheduler.get(id)?.state);
  expect(problems).toEqual([]);
  checkLedgerInvariants(ledger, []);
  await scheduler.shutdown();
}

const specs = new Map<string, { gpu: number; cpu: number }>();

describe('a pool that changes under a running scheduler (property)', () => {
  for (const mode of ['wait', 'reject'] as const)
    it(`unschedulable: '${mode}': invariants after every step, nothing on a retired node, no job lost`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ gpus: fc.integer({ min: 0, max: 4 }), cpu: fc.integer({ min: 1, max: 8 }) }), {
            minLength: 1,
            maxLength: 3,
          }),
          fc.array(stepArb, { maxLength: 40 }),
          async (initial, steps) => {
            specs.clear();
            let k = 0;
            for (const s of steps) if (s.kind === 'submit') specs.set(`j${k++}`, { gpu: s.gpu, cpu: s.cpu });
            await run(mode, initial, steps);
          },
        ),
        { numRuns: numRuns(150) },
      );
    });
});
