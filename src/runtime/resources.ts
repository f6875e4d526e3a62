/**
 * The scheduler's side of the resource manager: the pool it is given or finds, the manager's
 * input, fit checks of jobs accepted before the pool was known, its figures, and relaying what
 * the manager says to `events$`.
 */
import type { AnyActorRef } from 'xstate';
import { ResourceLedger } from '../core/ledger.js';
import {
  assertCanEverFit,
  normalisePool,
  poolMaxima,
  type PoolMaxima,
  type UnitRequest,
} from '../core/pool.js';
import { UnschedulableError } from '../core/errors.js';
import type { NormalisedNode, ResourcePool } from '../core/resources.js';
import { readMeasured } from '../actors/measure.js';
import type { ResourceManagerInput } from '../machines/resourceManager.machine.js';
import type { SchedulerClock } from './clock.js';
import { FINAL, type JobRecords } from './job-records.js';
import type { ResolvedOptions } from './options.js';
import type { SchedulerEvent, SchedulerStats } from './types.js';

/** A pool as the fit checks need it (its nodes that take new jobs). */
export type KnownPool = {
  nodes: readonly NormalisedNode[];
  maxima: PoolMaxima;
  /** Requests (units objects, shared among equal requests) already found to fit: not checked again. */
  fits: WeakSet<UnitRequest>;
  /** Requests already found to fit no node: not checked again until a node joins. */
  misfits: WeakSet<UnitRequest>;
};

/** Whether some node of `pool` could hold `units` when idle (cached per units object). */
export function canHold(pool: KnownPool, units: UnitRequest): boolean {
  if (pool.fits.has(units)) return true;
  if (pool.misfits.has(units)) return false;
  try {
    assertCanEverFit(units, pool.nodes, pool.maxima);
  } catch (error) {
    if (!(error instanceof UnschedulableError)) throw error;
    pool.misfits.add(units);
    return false;
  }
  pool.fits.add(units);
  return true;
}

/**
 * The fit checks' pool after it changed (`ledger` is the truth): a node joined (what fitted
 * still fits; what did not may now) or was retired (what did not fit still does not; what did may
 * not).
 */
export function changedPool(ledger: ResourceLedger, before: KnownPool | undefined, grew: boolean): KnownPool {
  const nodes = [...ledger.activeNodes];
  return {
    nodes,
    maxima: ledger.maxima,
    fits: grew && before ? before.fits : new WeakSet(),
    misfits: !grew && before ? before.misfits : new WeakSet(),
  };
}

/** The pool the options declare; undefined when it is to be detected. */
export function declaredPool(option: ResolvedOptions['resources']): ResourcePool | undefined {
  if (option === 'detect' || 'detect' in option) return undefined;
  return option;
}

/** The ledger of `pool`, the resource manager's input around it, and the pool normalised for fit checks. */
export function resourceInput(
  pool: ResourcePool,
  options: ResolvedOptions,
): { input: ResourceManagerInput; known: KnownPool; ledger: ResourceLedger } {
  // A pool that nodes join later may start empty, where jobs may wait for them.
  const allowEmpty =
    options.unschedulable === 'wait' &&
    'nodes' in pool &&
    Array.isArray(pool.nodes) &&
    pool.nodes.length === 0;
  const nodes = allowEmpty ? [] : normalisePool(pool);
  const known: KnownPool = { nodes, maxima: poolMaxima(nodes), fits: new WeakSet(), misfits: new WeakSet() };
  const ledger = new ResourceLedger(pool, { policy: options.placement, allowEmpty });
  const input: ResourceManagerInput = { pool, placement: options.placement, ledger };
  if (options.monitor) {
    input.monitor = {
      clock: options.clock,
      intervalMs: options.monitorIntervalMs,
      read: options.measure ?? (() => readMeasured()),
      headroom: options.headroom,
    };
  }
  return { input, known, ledger };
}

/** Cancels the live jobs that can never fit `pool`: accepted before it was known, they were checked only for their shape. */
export function cancelMisfits(records: JobRecords, pool: KnownPool): void {
  for (const [id, record] of records.entries()) {
    if (FINAL.has(record.state)) continue;
    try {
      assertCanEverFit(record.units, pool.nodes, pool.maxima);
    } catch (error) {
      records.actorOf(record)?.send({
        type: 'job.cancel',
        reason: 'user',
        message: `${id}: ${(error as Error).message}`,
      });
    }
  }
}

/** What `ResourceLink` needs of the scheduler. */
export type ResourceLinkDeps = {
  clock: SchedulerClock;
  /** The resource manager, once the pool is known. */
  manager: () => AnyActorRef | undefined;
  /** The ledger, once the pool is known. */
  ledger: () => ResourceLedger | undefined;
  /** Tells the scheduler actor that capacity changed. */
  capacityChanged: () => void;
  emit: (event: SchedulerEvent) => void;
  /** Whether anyone listens: resource figures are read only then. */
  observed: () => boolean;
};

/** The scheduler's link to its resource manager: its figures, and its events relayed. */
export class ResourceLink {
  private wired = false;
  /** The figures as they were when the resource manager stopped (after shutdown). */
  private final: SchedulerStats['resources'] | undefined;

  constructor(private readonly deps: ResourceLinkDeps) {}

  /** Capacity, allocated, free (and measured): zeros until the pool is known. */
  stats(): SchedulerStats['resources'] {
    if (this.final) return this.final;
    const ledger = this.deps.ledger();
    if (ledger) {
      const rm = this.deps.manager();
      const measured = rm
        ? (rm.getSnapshot() as { context: { stats: SchedulerStats['resources'] } }).context.stats.measured
        : undefined;
      return measured === undefined ? ledger.totals() : { ...ledger.totals(), measured };
    }
    const zero = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0, custom: {} };
    return { capacity: zero, allocated: zero, free: zero };
  }

  /** Tells listeners that allocations changed (the dispatcher granted or a job released). */
  changed(): void {
    if (this.deps.observed())
      this.deps.emit({ type: 'resources.changed', at: this.deps.clock.now(), resources: this.stats() });
  }

  /** Keeps the figures as they are now, before the resource manager stops. */
  freeze(): void {
    this.final = this.stats();
  }

  /** Relays the resource manager's events to the scheduler actor and to `events$` (once it exists; once). */
  wire(): void {
    const rm = this.deps.manager();
    if (!rm || this.wired) return;
    this.wired = true;
    const { emit, capacityChanged } = this.deps;
    const at = () => this.deps.clock.now();
    rm.on('resources.changed', () => {
      if (this.deps.observed()) emit({ type: 'resources.changed', at: at(), resources: this.stats() });
    });
    rm.on('resources.pressure', (e: { nodeId: string; pressure: never }) => {
      capacityChanged();
      emit({ type: 'resources.pressure', at: at(), nodeId: e.nodeId, pressure: e.pressure });
    });
    rm.on(
      'resources.pressureEnded',
      (e: { nodeId: string; resource: 'memory' | 'vram'; gpuIndex?: number }) => {
        capacityChanged();
        emit({
          type: 'resources.pressureEnded',
          at: at(),
          nodeId: e.nodeId,
          resource: e.resource,
          ...(e.gpuIndex === undefined ? {} : { gpuIndex: e.gpuIndex }),
        });
      },
    );
  }
}
