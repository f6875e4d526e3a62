/**
 * A pool that changes while the ledger runs: nodes join (`addNode`) and are retired
 * (`retireNode`). Unit tests of each rule, then a fast-check property: random sequences of
 * add / retire / allocate / release on a multi-node ledger keep every invariant after every step
 * (test/helpers/ledger-invariants.ts: nothing over-allocated, usage = what is held, capacity =
 * the sum over the nodes present, free = the sum over the nodes not retired), nothing is placed
 * on a retired node, a request is denied only when no node could take it, and a retired node
 * leaves exactly when its last allocation is released.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ResourceLedger } from '../../src/core/ledger.js';
import { InvalidPoolError, UnschedulableError } from '../../src/core/errors.js';
import { POOL_LIMITS, toUnits } from '../../src/core/pool.js';
import type { NodeSpec, PlacementPolicy, ResourceRequest } from '../../src/core/resources.js';
import type { Allocation } from '../../src/core/types.js';
import { numRuns } from '../helpers/num-runs.js';
import { checkLedgerInvariants, someNodeFits } from '../helpers/ledger-invariants.js';

const gpuNode = (id: string, gpus = 2, cpu = 8): NodeSpec & { id: string } => ({
  id,
  cpu,
  memoryMb: 16_000,
  gpus: Array.from({ length: gpus }, () => ({ vramMb: 24_000 })),
});

const grant = (ledger: ResourceLedger, request: ResourceRequest): Allocation => {
  const result = ledger.allocate(ledger.validate(request));
  if (!result.ok) throw new Error(`denied: ${JSON.stringify(result.denial)}`);
  return result.allocation;
};

describe('ResourceLedger.addNode', () => {
  it('a node that joins is free at once: its capacity is in the totals and requests land on it', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a', 1)] });
    const first = grant(ledger, { gpu: 1 });
    expect(ledger.tryAllocate(ledger.validate({ gpu: 1 }))).toBeUndefined();
    const grown = ledger.grown;
    const added = ledger.addNode(gpuNode('b', 2));
    expect(added).toMatchObject({ id: 'b', cpu: 8, memoryMb: 16_000 });
    expect(ledger.grown).toBeGreaterThan(grown);
    expect(ledger.totals().capacity).toMatchObject({ cpu: 16, gpu: 3, vramMb: 72_000 });
    expect(ledger.totals().free).toMatchObject({ gpu: 2 });
    const second = grant(ledger, { gpu: 2 });
    expect(second.nodeId).toBe('b');
    checkLedgerInvariants(ledger, [first, second]);
  });

  it('a request only the new node can hold passes validate once it joined', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a', 1)] });
    expect(() => ledger.validate({ gpu: 4 })).toThrow(UnschedulableError);
    ledger.addNode(gpuNode('big', 4));
    expect(ledger.maxima.gpus).toBe(4);
    expect(grant(ledger, { gpu: 4 }).nodeId).toBe('big');
  });

  it('refuses a duplicate id or a bad spec with InvalidPoolError naming the field, and changes nothing', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a')] });
    const before = JSON.stringify(ledger.totals());
    const refusals: Array<[unknown, string]> = [
      [gpuNode('a'), 'node.id'],
      [{ cpu: 1, memoryMb: 1 }, 'node.id'],
      [{ id: '', cpu: 1, memoryMb: 1 }, 'node.id'],
      [{ id: 'x', cpu: -1, memoryMb: 1 }, 'node.cpu'],
      [{ id: 'x', cpu: 1, memoryMb: Number.NaN }, 'node.memoryMb'],
      [{ id: 'x', cpu: 1, memoryMb: 1, gpus: [{ vramMb: -5 }] }, 'node.gpus[0].vramMb'],
      [{ id: 'x', cpu: 1, memoryMb: 1, gpu: 2 }, 'node.gpu'],
      [{ id: 'x', cpu: 1, memoryMb: 1, gpus: POOL_LIMITS.gpusPerNode + 1 }, 'node.gpus'],
      [null, 'node'],
      ['a', 'node'],
    ];
    for (const [spec, field] of refusals) {
      let error: unknown;
      try {
        ledger.addNode(spec as NodeSpec);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(spec)).toBeInstanceOf(InvalidPoolError);
      expect((error as InvalidPoolError).field, JSON.stringify(spec)).toBe(field);
    }
    expect(JSON.stringify(ledger.totals())).toBe(before);
    expect(ledger.nodes.map((n) => n.id)).toEqual(['a']);
    checkLedgerInvariants(ledger, []);
  });

  it('starts from an empty pool when allowed (a pool that hosts join later); refuses one otherwise', () => {
    expect(() => new ResourceLedger({ nodes: [] })).toThrow(InvalidPoolError);
    const ledger = new ResourceLedger({ nodes: [] }, { allowEmpty: true });
    expect(ledger.nodes).toEqual([]);
    expect(() => ledger.validate({ cpu: 1 })).toThrow(UnschedulableError);
    const denied = ledger.allocate(toUnits({ cpu: 1 }));
    expect(denied).toEqual({ ok: false, denial: { short: [] } });
    ledger.addNode(gpuNode('a'));
    expect(grant(ledger, { cpu: 1 }).nodeId).toBe('a');
  });

  it('keeps placing in O(log nodes): the index grows past its leaves (1 → 300 nodes, one at a time)', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('n0', 1)] });
    const held: Allocation[] = [grant(ledger, { gpu: 1 })];
    for (let i = 1; i < 300; i++) {
      ledger.addNode(gpuNode(`n${i}`, 1));
      // The one free GPU is on the node just added.
      const a = grant(ledger, { gpu: 1 });
      expect(a.nodeId).toBe(`n${i}`);
      held.push(a);
    }
    expect(ledger.tryAllocate(ledger.validate({ gpu: 1 }))).toBeUndefined();
    checkLedgerInvariants(ledger, held);
  });
});

describe('ResourceLedger.retireNode', () => {
  it('a retired node gets nothing new; what it holds stays held; its capacity leaves with its last release', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a', 2), gpuNode('b', 2)] });
    const removed: string[] = [];
    ledger.onNodeRemoved = (node) => removed.push(node.id);
    const [a0, a1] = [grant(ledger, { gpu: 1 }), grant(ledger, { gpu: 1 })];
    const onA = [a0, a1];
    expect(onA.map((a) => a.nodeId)).toEqual(['a', 'a']);
    const result = ledger.retireNode('a');
    expect(result).toEqual({ retired: true, nodeId: 'a', held: onA, removed: false });
    expect(ledger.isRetired('a')).toBe(true);
    // Still in the pool: its capacity counts, it is allocated, and none of it is free.
    expect(ledger.totals().capacity.gpu).toBe(4);
    expect(ledger.totals().allocated.gpu).toBe(2);
    expect(ledger.totals().free.gpu).toBe(2);
    expect(ledger.maxima.gpus).toBe(2);
    expect(ledger.activeNodes.map((n) => n.id)).toEqual(['b']);
    checkLedgerInvariants(ledger, onA);
    // Released one: the unit is not placed again on a, which still holds the other.
    expect(ledger.release(a0.id).released).toBe(true);
    const onB = [grant(ledger, { gpu: 1 }), grant(ledger, { gpu: 1 })];
    expect(onB.map((a) => a.nodeId)).toEqual(['b', 'b']);
    expect(ledger.tryAllocate(ledger.validate({ gpu: 1 }))).toBeUndefined();
    expect(removed).toEqual([]);
    checkLedgerInvariants(ledger, [a1, ...onB]);
    // The last release: a leaves, and its capacity with it.
    ledger.release(a1.id);
    expect(removed).toEqual(['a']);
    expect(ledger.nodes.map((n) => n.id)).toEqual(['b']);
    expect(ledger.totals().capacity).toMatchObject({ cpu: 8, gpu: 2, vramMb: 48_000 });
    checkLedgerInvariants(ledger, onB);
  });

  it('a node holding nothing leaves at once; retiring again or an unknown node changes nothing', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a'), gpuNode('b'), gpuNode('c')] });
    const removed: string[] = [];
    ledger.onNodeRemoved = (node) => removed.push(node.id);
    expect(ledger.retireNode('a')).toEqual({ retired: true, nodeId: 'a', held: [], removed: true });
    // Told by the result, not the callback (that is for a release).
    expect(removed).toEqual([]);
    // The last node took its position.
    expect(ledger.nodes.map((n) => n.id)).toEqual(['c', 'b']);
    expect(ledger.totals().capacity.cpu).toBe(16);
    expect(ledger.retireNode('a')).toEqual({ retired: false, reason: 'unknown' });
    const b = grant(ledger, { cpu: 1 });
    ledger.retireNode(b.nodeId);
    expect(ledger.retireNode(b.nodeId)).toEqual({ retired: false, reason: 'already-retired' });
    checkLedgerInvariants(ledger, [b]);
  });

  it('a retired node that takes the position of one that left still gets nothing new', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a', 1), gpuNode('b', 1), gpuNode('c', 4)] });
    const onC = grant(ledger, { gpu: 3 });
    expect(onC.nodeId).toBe('c');
    ledger.retireNode('c');
    // a leaves at once and c, the last, takes its position 0.
    ledger.retireNode('a');
    expect(ledger.nodes.map((n) => n.id)).toEqual(['c', 'b']);
    expect(grant(ledger, { gpu: 1 }).nodeId).toBe('b');
    // c has a free GPU, but is retired: nothing fits.
    expect(ledger.tryAllocate(ledger.validate({ gpu: 1 }), 'first-fit')).toBeUndefined();
  });

  it('the requests only the retired node could hold become unschedulable; the others go elsewhere', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('small', 1), gpuNode('big', 8, 64)] });
    expect(ledger.validate({ gpu: 8 })).toBeDefined();
    ledger.retireNode('big');
    expect(() => ledger.validate({ gpu: 8 })).toThrow(UnschedulableError);
    expect(() => ledger.validate({ cpu: 32 })).toThrow(UnschedulableError);
    expect(grant(ledger, { gpu: 1 }).nodeId).toBe('small');
  });

  it('a retired id may join again once it has left: a new node, fresh; not while it still holds', () => {
    const ledger = new ResourceLedger({ nodes: [gpuNode('a', 1), gpuNode('b', 1)] });
    const held = grant(ledger, { gpu: 1, cpu: 2 });
    const host = held.nodeId;
    ledger.retireNode(host);
    let error: unknown;
    try {
      ledger.addNode(gpuNode(host, 4));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidPoolError);
    expect((error as InvalidPoolError).field).toBe('node.id');
    expect((error as Error).message).toMatch(/retired but still holds 1 allocation/);
    ledger.release(held.id);
    ledger.addNode(gpuNode(host, 4));
    expect(ledger.isRetired(host)).toBe(false);
    const node = ledger.node(ledger.positionOf(host));
    expect(node.gpus).toHaveLength(4);
    expect(node.usedCpu).toBe(0);
    expect(node.holding).toBe(0);
    const again = grant(ledger, { gpu: 4 });
    expect(again.nodeId).toBe(host);
    checkLedgerInvariants(ledger, [again]);
  });

  it('a custom resource leaves the totals with the last node that has it', () => {
    const ledger = new ResourceLedger({
      nodes: [{ id: 'a', cpu: 1, memoryMb: 1, custom: { licence: 2 } }, gpuNode('b')],
    });
    expect(ledger.totals().capacity.custom).toEqual({ licence: 2 });
    ledger.retireNode('a');
    expect(ledger.totals().capacity.custom).toEqual({});
    expect(() => ledger.validate({ custom: { licence: 1 } })).toThrow(UnschedulableError);
    checkLedgerInvariants(ledger, []);
  });
});

// ——— the property ———

type Model = { held: Allocation[]; retired: Set<string>; present: Set<string>; nextId: number };

const nodeArb: fc.Arbitrary<NodeSpec> = fc.record({
  cpu: fc.integer({ min: 1, max: 16 }),
  memoryMb: fc.integer({ min: 1_024, max: 32_768 }),
  gpus: fc.array(fc.record({ vramMb: fc.constantFrom(8_000, 24_000, 80_000) }), { maxLength: 8 }),
  custom: fc.constantFrom({}, { licence: 2 }),
});

const requestArb: fc.Arbitrary<ResourceRequest> = fc.record(
  {
    cpu: fc.integer({ min: 0, max: 8 }),
    memoryMb: fc.integer({ min: 0, max: 8_192 }),
    gpu: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4 }), fc.constantFrom(0.25, 0.5)),
    vramMb: fc.constantFrom(0, 12_000),
    custom: fc.constantFrom({}, { licence: 1 }),
  },
  { requiredKeys: [] },
);

type Step =
  | { kind: 'add'; spec: NodeSpec; reuse: number | undefined }
  | { kind: 'retire'; pick: number }
  | { kind: 'allocate'; request: ResourceRequest; policy: PlacementPolicy }
  | { kind: 'release'; pick: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      spec: nodeArb,
      reuse: fc.option(fc.nat(), { nil: undefined }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retire' as const), pick: fc.nat() }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('allocate' as const),
      request: requestArb,
      policy: fc.constantFrom<PlacementPolicy>('best-fit', 'first-fit'),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
);

function runStep(ledger: ResourceLedger, model: Model, step: Step, removed: string[]): void {
  switch (step.kind) {
    case 'add': {
      // Sometimes the id of a node that retired (and left, or not yet): a host that registers again.
      const gone = [...model.retired];
      const id =
        step.reuse !== undefined && gone.length > 0
          ? (gone[step.reuse % gone.length] as string)
          : `n${model.nextId++}`;
      const stillThere = model.present.has(id);
      const before = JSON.stringify(ledger.totals());
      let refused = false;
      try {
        ledger.addNode({ ...step.spec, id });
      } catch (error) {
        refused = true;
        expect(error).toBeInstanceOf(InvalidPoolError);
        expect(JSON.stringify(ledger.totals())).toBe(before);
      }
      // Refused exactly when a node of that id is still present (retired, holding something).
      expect(refused).toBe(stillThere);
      if (!refused) {
        model.present.add(id);
        model.retired.delete(id);
      }
      return;
    }
    case 'retire': {
      const ids = ledger.nodes.map((n) => n.id);
      if (ids.length === 0) return;
      const id = ids[step.pick % ids.length] as string;
      const holding = model.held.filter((a) => a.nodeId === id);
      const result = ledger.retireNode(id);
      if (model.retired.has(id)) {
        expect(result).toEqual({ retired: false, reason: 'already-retired' });
        return;
      }
      expect(result).toEqual({ retired: true, nodeId: id, held: holding, removed: holding.length === 0 });
      model.retired.add(id);
      if (holding.length === 0) model.present.delete(id);
      return;
    }
    case 'allocate': {
      let units;
      try {
        units = ledger.validate(step.request);
      } catch (error) {
        expect((error as Error).name).toMatch(/InvalidJobError|UnschedulableError/);
        return;
      }
      const couldFit = someNodeFits(ledger, units);
      const allocation = ledger.tryAllocate(units, step.policy);
      expect(allocation !== undefined).toBe(couldFit);
      if (allocation) {
        expect(model.retired.has(allocation.nodeId), `placed on retired ${allocation.nodeId}`).toBe(false);
        expect(model.present.has(allocation.nodeId)).toBe(true);
        model.held.push(allocation);
      }
      return;
    }
    case 'release': {
      if (model.held.length === 0) return;
      const [allocation] = model.held.splice(step.pick % model.held.length, 1) as [Allocation];
      const lastOnRetired =
        model.retired.has(allocation.nodeId) && !model.held.some((a) => a.nodeId === allocation.nodeId);
      expect(ledger.release(allocation.id)).toEqual({ released: true, allocation });
      if (lastOnRetired) {
        // It left with its last allocation, and said so once.
        expect(removed.pop()).toBe(allocation.nodeId);
        model.present.delete(allocation.nodeId);
      }
      expect(removed).toEqual([]);
      return;
    }
  }
}

describe('a changing pool (property)', () => {
  it('after every add / retire / allocate / release: the invariants hold, nothing lands on a retired node, totals = Σ nodes present', () => {
    fc.assert(
      fc.property(
        fc.array(nodeArb, { minLength: 0, maxLength: 4 }),
        fc.array(stepArb, { maxLength: 60 }),
        (initial, steps) => {
          const ledger =
            initial.length === 0
              ? new ResourceLedger({ nodes: [] }, { allowEmpty: true })
              : new ResourceLedger({ nodes: initial.map((spec, i) => ({ ...spec, id: `i${i}` })) });
          const model: Model = {
            held: [],
            retired: new Set(),
            present: new Set(initial.map((_, i) => `i${i}`)),
            nextId: 0,
          };
          const removed: string[] = [];
          ledger.onNodeRemoved = (node) => removed.push(node.id);
          for (const step of steps) {
            runStep(ledger, model, step, removed);
            checkLedgerInvariants(ledger, model.held);
            expect(new Set(ledger.nodes.map((n) => n.id))).toEqual(model.present);
            for (const id of model.present) expect(ledger.isRetired(id)).toBe(model.retired.has(id));
          }
        },
      ),
      { numRuns: numRuns(200) },
    );
  });
});
