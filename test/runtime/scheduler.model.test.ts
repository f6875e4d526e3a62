/**
 * Model-based test of the whole runtime (fast-check commands, virtual time only): random pools of
 * 1–3 nodes, random submissions (resources with whole GPUs and GPU shares, priorities, groups,
 * dependencies, handler behaviours per attempt), cancels, boosts, pause/resume, memory and VRAM
 * used outside the scheduler (the monitor's measurement), time passing, and a shutdown.
 *
 * After every step the invariants of DESIGN.md and issue 4 are checked against an independent
 * model (job states from `events$`, effective priorities recomputed from base + aging + boost,
 * "would it fit" recomputed from the ledger's node state): nothing over-allocated; every accepted
 * job in exactly one state; resources held exactly by `scheduled` and `running` jobs and equal to
 * what the ledger holds; concurrency and queue bounds; in-order starts; attempts within bounds;
 * timeouts and backoffs honoured; dependency rules; outcomes that match the handler's behaviour.
 * After shutdown every job is final, every resource free and no timer is left.
 */
import { describe, it } from 'vitest';
import fc from 'fast-check';
import { PRIORITY_NAMES, type GpuSpec, type NodeSpec, type ResourceRequest } from '../../src/index.js';
import { numRuns } from '../helpers/num-runs.js';
import { finish } from '../helpers/scheduler-model/checks.js';
import {
  AdvanceCommand,
  BoostCommand,
  CancelCommand,
  OutsideUseCommand,
  PauseCommand,
  ShutdownCommand,
  SubmitCommand,
  type Cmd,
} from '../helpers/scheduler-model/commands.js';
import { NEVER_MS, type Behaviour, type Config } from '../helpers/scheduler-model/types.js';
import { World } from '../helpers/scheduler-model/world.js';

const nodeArb: fc.Arbitrary<NodeSpec> = fc.record({
  cpu: fc.constantFrom(1, 2, 4, 8),
  memoryMb: fc.constantFrom(4_096, 8_192, 16_384),
  gpus: fc.oneof(fc.constant<GpuSpec[]>([]), {
    weight: 3,
    arbitrary: fc.array(fc.record({ vramMb: fc.constantFrom(8_000, 16_000, 24_000) }), {
      minLength: 1,
      maxLength: 3,
    }),
  }),
});

const configArb: fc.Arbitrary<Config> = fc.record({
  nodes: fc.array(nodeArb, { minLength: 1, maxLength: 3 }),
  maxConcurrentJobs: fc.integer({ min: 1, max: 5 }),
  maxQueueSize: fc.integer({ min: 1, max: 12 }),
  queuePolicy: fc.constantFrom('strict', 'backfill' as const),
  attempts: fc.integer({ min: 1, max: 3 }),
  backoff: fc.record({
    type: fc.constantFrom('fixed', 'exponential' as const),
    delayMs: fc.integer({ min: 0, max: 2_000 }),
    maxDelayMs: fc.integer({ min: 0, max: 5_000 }),
    jitter: fc.boolean(),
  }),
  aging: fc.record({
    intervalMs: fc.integer({ min: 500, max: 20_000 }),
    maxLevels: fc.constantFrom(0, 0, 1, 2),
  }),
  schedulingIntervalMs: fc.integer({ min: 200, max: 10_000 }),
  monitor: fc.boolean(),
  monitorIntervalMs: fc.integer({ min: 100, max: 5_000 }),
  reserveAfterMs: fc.constantFrom(0, 2_000, NEVER_MS, NEVER_MS),
  defaultTimeoutMs: fc.option(fc.integer({ min: 50, max: 5_000 }), { nil: undefined }),
  retainFinished: fc.constantFrom(10_000, 10_000, 2),
  shutdown: fc.record({
    mode: fc.constantFrom('drain', 'cancel' as const),
    timeoutMs: fc.integer({ min: 0, max: 10_000 }),
  }),
  seed: fc.integer(),
});

// ——— arbitraries ———

const shareArb = fc.constantFrom(0.25, 1 / 3, 0.5, 0.75);
/** Mostly requests that some node can hold; now and then one that none ever can. */
const requestArb: fc.Arbitrary<ResourceRequest> = fc
  .record({
    cpu: fc.oneof({ weight: 30, arbitrary: fc.constantFrom(0, 0, 0.25, 0.5, 1, 1, 2) }, fc.constant(9)),
    memoryMb: fc.oneof(
      { weight: 30, arbitrary: fc.constantFrom(0, 0, 512, 2_048, 3_000) },
      fc.constant(20_000),
    ),
    gpu: fc.oneof(
      { weight: 2, arbitrary: fc.constant(0) },
      { weight: 2, arbitrary: fc.constant(1) },
      fc.constant(2),
      {
        weight: 2,
        arbitrary: shareArb,
      },
    ),
    vramMb: fc.option(
      fc.oneof({ weight: 30, arbitrary: fc.constantFrom(0, 2_000, 4_000, 7_000) }, fc.constant(30_000)),
      { nil: undefined },
    ),
  })
  .map(({ cpu, memoryMb, gpu, vramMb }) => {
    const r: ResourceRequest = {};
    if (cpu > 0) r.cpu = cpu;
    if (memoryMb > 0) r.memoryMb = memoryMb;
    if (gpu > 0) {
      r.gpu = gpu;
      if (vramMb !== undefined) r.vramMb = vramMb;
    }
    return r;
  });

const msArb = fc.oneof(
  fc.constantFrom(0, 1),
  fc.integer({ min: 0, max: 400 }),
  fc.integer({ min: 0, max: 6_000 }),
);
const behaviourArb: fc.Arbitrary<Behaviour> = fc.oneof(
  { weight: 4, arbitrary: msArb.map((ms): Behaviour => ({ kind: 'succeed', ms })) },
  { weight: 2, arbitrary: msArb.map((ms): Behaviour => ({ kind: 'fail', ms })) },
  { weight: 1, arbitrary: msArb.map((ms): Behaviour => ({ kind: 'rejectValue', ms })) },
  { weight: 1, arbitrary: msArb.map((ms): Behaviour => ({ kind: 'unrecoverable', ms })) },
  { weight: 1, arbitrary: fc.constant<Behaviour>({ kind: 'throw' }) },
  { weight: 1, arbitrary: fc.constant<Behaviour>({ kind: 'hang' }) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(msArb, fc.constant(Number.POSITIVE_INFINITY))
      .map((ms): Behaviour => ({ kind: 'ignoreAbort', ms })),
  },
);

const submitArb: fc.Arbitrary<Cmd> = fc
  .record({
    request: requestArb,
    priority: fc.constantFrom(...PRIORITY_NAMES),
    group: fc.option(fc.constantFrom('g0', 'g1', 'g2'), { nil: undefined }),
    deps: fc.oneof(
      { weight: 3, arbitrary: fc.constant<number[]>([]) },
      fc.array(fc.nat(), { minLength: 1, maxLength: 2 }),
    ),
    policy: fc.option(fc.constantFrom('afterok', 'afterany' as const), { nil: undefined }),
    timeoutMs: fc.option(fc.integer({ min: 1, max: 3_000 }), { nil: undefined }),
    attempts: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
    plan: fc.array(behaviourArb, { minLength: 1, maxLength: 3 }),
    progress: fc.boolean(),
    idKind: fc.oneof(
      { weight: 16, arbitrary: fc.constantFrom('fresh', 'generated' as const) },
      fc.constantFrom('duplicate', 'unknownDep' as const),
    ),
  })
  .map((p) => new SubmitCommand(p));

const boostArb: fc.Arbitrary<Cmd> = fc
  .record({
    target: fc.oneof(
      fc.constantFrom('g0', 'g1', 'g2').map((group) => ({ group })),
      fc.record({ picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), unknown: fc.boolean() }),
    ),
    spec: fc.oneof(
      fc.constantFrom(...PRIORITY_NAMES).map((to) => ({ to })),
      fc.integer({ min: -2, max: 4 }).map((by) => ({ by })),
    ),
    forMs: fc.integer({ min: 1, max: 8_000 }),
  })
  .map((p) => new BoostCommand(p));

const commandArbs: Array<fc.Arbitrary<Cmd>> = [
  fc.oneof(
    { weight: 8, arbitrary: submitArb },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.nat(), fc.constantFrom('queued', 'queued', 'live', 'any' as const))
        .map(([n, among]) => new CancelCommand(n, among)),
    },
    { weight: 2, arbitrary: boostArb },
    { weight: 1, arbitrary: fc.boolean().map((b) => new PauseCommand(b)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(0, 0.3, 0.7, 1), fc.array(fc.constantFrom(0, 0.5, 0.9, 1), { maxLength: 3 }))
        .map(([m, v]) => new OutsideUseCommand(m, v)),
    },
    {
      weight: 6,
      arbitrary: fc
        .oneof(
          fc.integer({ min: 0, max: 50 }),
          fc.integer({ min: 0, max: 1_500 }),
          fc.integer({ min: 0, max: 8_000 }),
        )
        .map((ms) => new AdvanceCommand(ms)),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom('drain', 'cancel' as const), fc.integer({ min: 0, max: 5_000 }))
        .map(([mode, t]) => new ShutdownCommand(mode, t)),
    },
  ),
];

const RUNS = numRuns(300);

describe('scheduler runtime — model-based', () => {
  it(
    'keeps every invariant after every step of random workloads, and shuts down clean',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          configArb,
          fc.commands(commandArbs, { maxCommands: 120, size: 'max' }),
          async (cfg, cmds) => {
            let world: World | undefined;
            await fc.asyncModelRun(() => {
              world = new World(cfg);
              return { model: world, real: world };
            }, cmds);
            await finish(world as World);
          },
        ),
        { numRuns: RUNS },
      );
    },
    Math.max(120_000, RUNS * 100),
  );
});
