import { enqueueActions, fromEventObservable, setup, type AnyActorRef } from 'xstate';
import { map } from 'rxjs';
import { ResourceLedger } from '../core/ledger.js';
import { admissionFromMeasurement, pressureKey, type Headroom, type Pressure } from '../core/reconcile.js';
import type {
  AdmissionLimit,
  Denial,
  PlacementPolicy,
  ResourcePool,
  ResourceRequest,
  ResourceTotals,
} from '../core/resources.js';
import type { Allocation } from '../core/types.js';
import type { Measured } from '../actors/measure.js';
import { measurements } from '../actors/monitor.js';
import type { SchedulerClock } from '../runtime/clock.js';

/** Capacity, allocated and admissible free amounts, plus what the monitor measured free. */
export type ResourceStats = {
  capacity: ResourceTotals;
  allocated: ResourceTotals;
  free: ResourceTotals;
  measured?: Partial<ResourceTotals>;
};

/** How the resource manager starts. */
export type ResourceManagerInput = {
  pool: ResourcePool;
  /** @default 'best-fit' */
  placement?: PlacementPolicy;
  /**
   * The ledger to keep, when the caller made it (the scheduler places on it directly, through
   * its dispatcher). @default a new ledger of `pool`
   */
  ledger?: ResourceLedger;
  /** Reconciliation with the host; absent: no monitor runs. */
  monitor?: {
    clock: Pick<SchedulerClock, 'backgroundScheduler'>;
    /** @default 30_000 */
    intervalMs?: number;
    read: () => Promise<Measured>;
    /** The node the measurements describe. @default the pool's first node */
    nodeId?: string;
    /** Kept free beyond what is measured. @default { memoryMb: 512, vramMb: 256 } */
    headroom?: Partial<Headroom>;
  };
};

/** Messages to the resource manager. A request is answered to `replyTo`. */
export type ResourceManagerEvent =
  | { type: 'resources.request'; requestId: string; request: ResourceRequest; replyTo: AnyActorRef }
  | { type: 'resources.release'; allocationId: string }
  | { type: 'resources.setLimit'; nodeId: string; limit: AdmissionLimit | undefined }
  | { type: 'resources.measured'; measured: Measured };

/** The answers sent back to a request's `replyTo`. */
export type ResourceReply =
  | { type: 'resources.granted'; requestId: string; allocation: Allocation }
  | { type: 'resources.denied'; requestId: string; denial: Denial }
  | {
      type: 'resources.rejected';
      requestId: string;
      error: { name: string; field: string; message: string };
    };

/** What observers see (`actor.on(...)`). */
export type ResourceManagerEmitted =
  | { type: 'resources.changed'; stats: ResourceStats }
  | { type: 'resources.pressure'; nodeId: string; pressure: Pressure }
  | { type: 'resources.pressureEnded'; nodeId: string; resource: Pressure['resource']; gpuIndex?: number }
  | { type: 'resources.releaseIgnored'; allocationId: string; reason: 'already-released' | 'unknown' };

export type ResourceManagerContext = {
  /**
   * The ledger. Other actors use it through messages; the scheduler's dispatcher, which shares
   * it, allocates and releases on it directly (the hot path), and `stats` is read from it.
   */
  ledger: ResourceLedger;
  stats: ResourceStats;
  monitor: ResourceManagerInput['monitor'];
  hostNodeId: string;
  headroom: Headroom;
  /** Pressures in force on the host node, by key. */
  pressures: Record<string, Pressure>;
};

const statsOf = (ledger: ResourceLedger, measured: Partial<ResourceTotals> | undefined): ResourceStats =>
  measured === undefined ? ledger.totals() : { ...ledger.totals(), measured };

/** What publishing needs of `enqueueActions`' `enqueue`. */
type Publisher = {
  assign: (values: { stats: ResourceStats }) => void;
  emit: (event: ResourceManagerEmitted) => void;
};

/** Refreshes the published stats from the ledger and tells observers they changed. */
function publish(
  context: ResourceManagerContext,
  enqueue: Publisher,
  measured: Partial<ResourceTotals> | undefined = context.stats.measured,
): void {
  const stats = statsOf(context.ledger, measured);
  enqueue.assign({ stats });
  enqueue.emit({ type: 'resources.changed', stats });
}

function errorFields(error: unknown): { name: string; field: string; message: string } {
  const e = error as { name?: unknown; field?: unknown; message?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    field: typeof e?.field === 'string' ? e.field : 'resources',
    message: typeof e?.message === 'string' ? e.message : String(error),
  };
}

/**
 * The resource-manager actor around the ledger. It talks by messages only: a request is
 * answered with a grant, a denial (what is short, where) or a rejection (it can never fit);
 * a release frees (a second release is reported, not applied); a limit change or a host
 * measurement changes what is admitted, never what is held.
 */
export const resourceManagerMachine = setup({
  types: {
    context: {} as ResourceManagerContext,
    events: {} as ResourceManagerEvent,
    input: {} as ResourceManagerInput,
    emitted: {} as ResourceManagerEmitted,
  },
  actors: {
    monitor: fromEventObservable(({ input }: { input: NonNullable<ResourceManagerInput['monitor']> }) =>
      measurements(input).pipe(map((measured) => ({ type: 'resources.measured' as const, measured }))),
    ),
  },
  guards: {
    monitorEnabled: ({ context }) => context.monitor !== undefined,
  },
  actions: {
    answerRequest: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'resources.request') return;
      let reply: ResourceReply;
      try {
        const units = context.ledger.validate(event.request);
        const result = context.ledger.allocate(units);
        reply = result.ok
          ? { type: 'resources.granted', requestId: event.requestId, allocation: result.allocation }
          : { type: 'resources.denied', requestId: event.requestId, denial: result.denial };
      } catch (error) {
        reply = { type: 'resources.rejected', requestId: event.requestId, error: errorFields(error) };
      }
      enqueue.sendTo(event.replyTo, reply);
      if (reply.type === 'resources.granted') {
        publish(context, enqueue);
      }
    }),
    releaseAllocation: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'resources.release') return;
      const result = context.ledger.release(event.allocationId);
      if (result.released) {
        publish(context, enqueue);
      } else {
        enqueue.emit({
          type: 'resources.releaseIgnored',
          allocationId: event.allocationId,
          reason: result.reason,
        });
      }
    }),
    applyLimit: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'resources.setLimit') return;
      context.ledger.setAdmissionLimit(event.nodeId, event.limit);
      publish(context, enqueue);
    }),
    reconcile: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'resources.measured') return;
      const position = context.ledger.nodes.findIndex((n) => n.id === context.hostNodeId);
      if (position < 0) return;
      const { limit, pressures } = admissionFromMeasurement(
        context.ledger.node(position),
        event.measured,
        context.headroom,
      );
      context.ledger.setAdmissionLimit(context.hostNodeId, limit);
      const now: Record<string, Pressure> = {};
      for (const p of pressures) {
        const key = pressureKey(p);
        now[key] = p;
        const before = context.pressures[key];
        if (!before || before.limitMb !== p.limitMb) {
          enqueue.emit({ type: 'resources.pressure', nodeId: context.hostNodeId, pressure: p });
        }
      }
      for (const [key, p] of Object.entries(context.pressures)) {
        if (now[key]) continue;
        enqueue.emit({
          type: 'resources.pressureEnded',
          nodeId: context.hostNodeId,
          resource: p.resource,
          ...(p.gpuIndex === undefined ? {} : { gpuIndex: p.gpuIndex }),
        });
      }
      const measured: Partial<ResourceTotals> = {};
      if (event.measured.freeMemoryMb !== undefined) measured.memoryMb = event.measured.freeMemoryMb;
      if (event.measured.gpus) measured.vramMb = event.measured.gpus.reduce((s, g) => s + g.freeVramMb, 0);
      enqueue.assign({ pressures: now });
      publish(context, enqueue, measured);
    }),
  },
}).createMachine({
  id: 'resourceManager',
  context: ({ input }) => {
    const ledger =
      input.ledger ?? new ResourceLedger(input.pool, input.placement ? { policy: input.placement } : {});
    return {
      ledger,
      stats: statsOf(ledger, undefined),
      monitor: input.monitor,
      hostNodeId: input.monitor?.nodeId ?? (ledger.nodes[0]?.id as string),
      headroom: { memoryMb: 512, vramMb: 256, ...input.monitor?.headroom },
      pressures: {},
    };
  },
  initial: 'starting',
  on: {
    'resources.request': { actions: 'answerRequest' },
    'resources.release': { actions: 'releaseAllocation' },
    'resources.setLimit': { actions: 'applyLimit' },
    'resources.measured': { actions: 'reconcile' },
  },
  states: {
    starting: {
      description: 'Chooses whether to run the reconciliation monitor.',
      always: [{ guard: 'monitorEnabled', target: 'monitored' }, { target: 'serving' }],
    },
    monitored: {
      description: 'Serving requests while the reconciliation monitor polls the host.',
      invoke: {
        id: 'monitor',
        src: 'monitor',
        input: ({ context }) => context.monitor as NonNullable<ResourceManagerInput['monitor']>,
      },
    },
    serving: {
      description: 'Serving requests; no monitor (a declared or simulated pool).',
    },
  },
});
