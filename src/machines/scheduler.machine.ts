import { assign, enqueueActions, fromEventObservable, setup, type AnyActorRef } from 'xstate';
import { interval, map } from 'rxjs';
import { JobQueue, type AgingPolicy, type Boost } from '../core/queue.js';
import type { ResourceRequest } from '../core/resources.js';
import type { NowSource } from '../core/types.js';
import type { SchedulerClock } from '../runtime/clock.js';
import {
  resourceManagerMachine,
  type ResourceManagerInput,
  type ResourceReply,
} from './resourceManager.machine.js';

/** What the scheduler keeps of a queued job: how to reach it and what it needs. */
export type QueuedJob = { ref: AnyActorRef; request: ResourceRequest; group: string | undefined };

/** How the scheduler actor starts. */
export type SchedulerMachineInput = {
  clock: NowSource & Pick<SchedulerClock, 'backgroundScheduler'>;
  /** The resource manager's input; absent until the pool is known (`scheduler.poolReady`). */
  resources: ResourceManagerInput | undefined;
  maxConcurrentJobs: number;
  queuePolicy: 'strict' | 'backfill';
  aging: AgingPolicy;
  schedulingIntervalMs: number;
  /** Once the head has waited this long, nothing is backfilled past it. */
  reserveAfterMs: number;
  /** How many queued jobs one scheduling round may try past the head. */
  backfillDepth: number;
};

export type SchedulerEvent =
  | { type: 'scheduler.poolReady'; resources: ResourceManagerInput }
  | { type: 'scheduler.enqueue'; jobId: string; level: number; job: QueuedJob; boost?: Boost }
  | { type: 'scheduler.dequeue'; jobId: string }
  | { type: 'scheduler.released'; jobId: string; allocationId: string }
  /**
   * Resources were handed back, or a queued job left (the head may have gone), earlier in this
   * step: try to start jobs now, after that job's own events are out.
   */
  | { type: 'scheduler.kick' }
  /** A granted job is running (or gone): the next one may be started. */
  | { type: 'scheduler.started'; jobId: string }
  | { type: 'scheduler.boost'; jobIds: string[]; boost: Boost }
  | { type: 'scheduler.boostExpired' }
  | { type: 'scheduler.capacityChanged' }
  | { type: 'scheduler.tick' }
  | { type: 'scheduler.pause' }
  | { type: 'scheduler.resume' }
  | { type: 'scheduler.close' }
  | ResourceReply;

export type SchedulerContext = {
  clock: SchedulerMachineInput['clock'];
  resources: ResourceManagerInput | undefined;
  queue: JobQueue<QueuedJob>;
  /** Jobs holding a slot (scheduled or running), by id, with their allocation. */
  holders: Map<string, string>;
  maxConcurrentJobs: number;
  queuePolicy: 'strict' | 'backfill';
  schedulingIntervalMs: number;
  reserveAfterMs: number;
  backfillDepth: number;
  /**
   * The one start in progress: a resource request awaiting its answer, then (`granted`) the
   * job starting. Nothing else starts meanwhile, so jobs start in the order they were chosen
   * even when a job actor takes the start message after finishing its own step.
   */
  inFlight: { requestId: string; jobId: string; granted?: true } | undefined;
  /** Jobs denied since resources last grew: asking again now would be denied again. */
  denied: Set<string>;
  requests: number;
};

const resourceManager =
  () =>
  ({ system }: { system: { get: (id: string) => AnyActorRef | undefined } }) =>
    system.get('resourceManager') as AnyActorRef;

/**
 * The scheduler actor: holds the bounded queue and decides what starts. Scheduling is
 * event-driven (enqueue, release, boost, capacity change, resume) with a periodic tick on the
 * injected clock as a safety net. It asks the resource manager for one job's resources at a
 * time, by message, and tells the job actor to start when they are granted.
 */
export const schedulerMachine = setup({
  types: {
    context: {} as SchedulerContext,
    events: {} as SchedulerEvent,
    input: {} as SchedulerMachineInput,
  },
  actors: {
    resourceManager: resourceManagerMachine,
    ticks: fromEventObservable(({ input }: { input: { clock: SchedulerContext['clock']; ms: number } }) =>
      interval(input.ms, input.clock.backgroundScheduler).pipe(
        map(() => ({ type: 'scheduler.tick' as const })),
      ),
    ),
  },
  guards: {
    hasPool: ({ context }) => context.resources !== undefined,
  },
  actions: {
    setPool: assign({
      resources: ({ context, event }) =>
        event.type === 'scheduler.poolReady' ? event.resources : context.resources,
    }),
    // A queued job's `paused` / `concurrency` reasons are read off this actor's state when its
    // snapshot is built (src/runtime/job-view.ts), so nothing here tells every queued job.
    enqueue: ({ context, event }) => {
      if (event.type !== 'scheduler.enqueue' || context.queue.has(event.jobId)) return;
      context.queue.add(event.jobId, event.level, context.clock.now(), event.job);
      if (event.boost) context.queue.setBoost(event.jobId, event.boost);
    },
    dequeue: ({ context, event }) => {
      if (event.type !== 'scheduler.dequeue') return;
      context.queue.remove(event.jobId);
      context.denied.delete(event.jobId);
    },
    boost: ({ context, event }) => {
      if (event.type !== 'scheduler.boost') return;
      for (const id of event.jobIds) context.queue.setBoost(id, event.boost);
    },
    expireBoosts: ({ context }) => {
      const now = context.clock.now();
      for (const entry of [...context.queue.inOrder(now)]) {
        if (entry.boost && entry.boost.until <= now) context.queue.setBoost(entry.id, undefined);
      }
    },
    clearStart: ({ context, event }) => {
      if (
        event.type === 'scheduler.started' &&
        context.inFlight?.granted &&
        context.inFlight.jobId === event.jobId
      ) {
        context.inFlight = undefined;
      }
    },
    /** Resources may have grown: every queued job deserves a new try. */
    forgetDenials: ({ context }) => context.denied.clear(),
    release: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'scheduler.released') return;
      if (context.inFlight?.granted && context.inFlight.jobId === event.jobId) context.inFlight = undefined;
      if (context.holders.delete(event.jobId)) context.denied.clear();
      enqueue.sendTo(resourceManager(), { type: 'resources.release', allocationId: event.allocationId });
    }),
    onGranted: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'resources.granted') return;
      const flight = context.inFlight;
      const entry = flight?.requestId === event.requestId ? context.queue.get(flight.jobId) : undefined;
      if (flight?.requestId === event.requestId) context.inFlight = undefined;
      if (!entry) {
        // The job left the queue while its request was in flight (cancelled): give it back.
        enqueue.sendTo(resourceManager(), { type: 'resources.release', allocationId: event.allocation.id });
        return;
      }
      context.queue.remove(entry.id);
      context.holders.set(entry.id, event.allocation.id);
      context.inFlight = { requestId: event.requestId, jobId: entry.id, granted: true };
      enqueue.sendTo(entry.value.ref, { type: 'job.allocated', allocation: event.allocation });
      enqueue.sendTo(entry.value.ref, { type: 'job.start' });
    }),
    onDenied: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'resources.denied' && event.type !== 'resources.rejected') return;
      const flight = context.inFlight;
      if (flight?.requestId !== event.requestId) return;
      context.inFlight = undefined;
      const entry = context.queue.get(flight.jobId);
      if (!entry) return;
      if (event.type === 'resources.rejected') {
        // Checked at submit, so only a pool that changed under it gets here: it can never run.
        context.queue.remove(entry.id);
        enqueue.sendTo(entry.value.ref, { type: 'job.cancel', reason: 'user', message: event.error.message });
        return;
      }
      context.denied.add(entry.id);
      enqueue.sendTo(entry.value.ref, { type: 'job.wait', reason: 'resources' });
    }),
    /**
     * One step of a scheduling round: ask for the resources of the first queued job, in
     * effective-priority order, that was not denied since resources last grew. In `strict`
     * mode only the head may start; in `backfill` mode a later job may start while the head
     * waits, until the head has waited `reserveAfterMs`: then its need is reserved (nothing
     * starts past it) until it starts.
     */
    dispatch: enqueueActions(({ context, enqueue, self }) => {
      if (context.inFlight || context.queue.size === 0) return;
      const now = context.clock.now();
      if (context.holders.size >= context.maxConcurrentJobs) return;
      let position = 0;
      for (const entry of context.queue.inOrder(now)) {
        if (context.denied.has(entry.id)) {
          const headWaits = position === 0;
          if (headWaits && context.queuePolicy === 'strict') return;
          if (headWaits && now - entry.enqueuedAt >= context.reserveAfterMs) return;
          if (++position > context.backfillDepth) return;
          continue;
        }
        const requestId = `q${++context.requests}`;
        context.inFlight = { requestId, jobId: entry.id };
        enqueue.sendTo(resourceManager(), {
          type: 'resources.request',
          requestId,
          request: entry.value.request,
          replyTo: self,
        });
        return;
      }
    }),
  },
}).createMachine({
  id: 'scheduler',
  context: ({ input }) => ({
    clock: input.clock,
    resources: input.resources,
    queue: new JobQueue<QueuedJob>(input.aging),
    holders: new Map(),
    maxConcurrentJobs: input.maxConcurrentJobs,
    queuePolicy: input.queuePolicy,
    schedulingIntervalMs: input.schedulingIntervalMs,
    reserveAfterMs: input.reserveAfterMs,
    backfillDepth: input.backfillDepth,
    inFlight: undefined,
    denied: new Set(),
    requests: 0,
  }),
  on: {
    'scheduler.enqueue': { actions: 'enqueue' },
    'scheduler.dequeue': { actions: 'dequeue' },
    'scheduler.boost': { actions: 'boost' },
    'scheduler.boostExpired': { actions: 'expireBoosts' },
  },
  initial: 'starting',
  states: {
    starting: {
      description: 'Waiting for the pool (host detection); jobs may queue meanwhile.',
      always: { guard: 'hasPool', target: 'ready' },
      on: { 'scheduler.poolReady': { actions: 'setPool', target: 'ready' } },
    },
    ready: {
      description: 'The resource manager runs; releases are always handed back to it.',
      invoke: [
        {
          id: 'resourceManager',
          systemId: 'resourceManager',
          src: 'resourceManager',
          input: ({ context }) => context.resources as ResourceManagerInput,
        },
      ],
      on: {
        'scheduler.released': { actions: 'release' },
        'scheduler.started': { actions: 'clearStart' },
        'resources.granted': { actions: 'onGranted' },
        'resources.denied': { actions: 'onDenied' },
        'resources.rejected': { actions: 'onDenied' },
      },
      initial: 'active',
      states: {
        active: {
          description: 'Starting jobs as resources and slots allow.',
          entry: 'dispatch',
          invoke: {
            src: 'ticks',
            input: ({ context }) => ({ clock: context.clock, ms: context.schedulingIntervalMs }),
          },
          on: {
            'scheduler.enqueue': { actions: ['enqueue', 'dispatch'] },
            'scheduler.kick': { actions: 'dispatch' },
            'scheduler.started': { actions: ['clearStart', 'dispatch'] },
            'scheduler.boost': { actions: ['boost', 'dispatch'] },
            'scheduler.boostExpired': { actions: ['expireBoosts', 'dispatch'] },
            'scheduler.capacityChanged': { actions: ['forgetDenials', 'dispatch'] },
            'scheduler.tick': { actions: ['forgetDenials', 'dispatch'] },
            'resources.granted': { actions: ['onGranted', 'dispatch'] },
            'resources.denied': { actions: ['onDenied', 'dispatch'] },
            'resources.rejected': { actions: ['onDenied', 'dispatch'] },
            'scheduler.pause': { target: 'paused' },
            'scheduler.close': { target: 'closed' },
          },
        },
        paused: {
          description: 'No new starts; running jobs go on.',
          on: {
            'scheduler.resume': { target: 'active', actions: 'forgetDenials' },
            'scheduler.close': { target: 'closed' },
          },
        },
        closed: {
          description: 'Shutting down: nothing starts; releases still return resources.',
        },
      },
    },
  },
});
