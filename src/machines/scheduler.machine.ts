import { assign, emit, fromEventObservable, setup } from 'xstate';
import { filter, interval, map } from 'rxjs';
import type { Dispatcher, Waiting } from '../core/dispatcher.js';
import type { Boost } from '../core/queue.js';
import type { NowSource } from '../core/types.js';
import type { SchedulerClock } from '../runtime/clock.js';
import { resourceManagerMachine, type ResourceManagerInput } from './resourceManager.machine.js';

/** What the scheduler keeps of a queued job: what it needs, in ledger units. */
export type QueuedJob = Waiting;

/** How the scheduler actor starts. */
export type SchedulerMachineInput = {
  clock: NowSource & Pick<SchedulerClock, 'backgroundScheduler'>;
  /** The queue and the slots; the runtime carries out what its rounds decide. */
  dispatcher: Dispatcher<QueuedJob>;
  /** The resource manager's input; absent until the pool is known (`scheduler.poolReady`). */
  resources: ResourceManagerInput | undefined;
  schedulingIntervalMs: number;
};

export type SchedulerEvent =
  | { type: 'scheduler.poolReady'; resources: ResourceManagerInput }
  | { type: 'scheduler.boost'; jobIds: string[]; boost: Boost }
  | { type: 'scheduler.boostExpired' }
  | { type: 'scheduler.capacityChanged' }
  | { type: 'scheduler.tick' }
  | { type: 'scheduler.pause' }
  | { type: 'scheduler.resume' }
  | { type: 'scheduler.close' };

/** Emitted when a scheduling round should run now (observe with `actor.on('scheduler.round', ...)`). */
export type SchedulerEmitted = { type: 'scheduler.round' };

export type SchedulerContext = {
  clock: SchedulerMachineInput['clock'];
  resources: ResourceManagerInput | undefined;
  dispatcher: Dispatcher<QueuedJob>;
  schedulingIntervalMs: number;
};

/**
 * The scheduler actor: decides when jobs may start. It is `starting` until the pool is known
 * (remembering a pause meanwhile: paused then, it is paused once the pool is known), then runs the resource manager and, while `active`, opens the dispatcher (the queue and the
 * slots) and asks for a scheduling round whenever starts may have become possible — a tick (the
 * safety net), a capacity change, a boost, a resume. Rounds also run, without a message, when a
 * job queues or hands back its allocation (the runtime calls the dispatcher: the hot path).
 * `paused` and `closed` keep the dispatcher shut: nothing starts, releases still return resources.
 */
export const schedulerMachine = setup({
  types: {
    context: {} as SchedulerContext,
    events: {} as SchedulerEvent,
    input: {} as SchedulerMachineInput,
    emitted: {} as SchedulerEmitted,
  },
  actors: {
    resourceManager: resourceManagerMachine,
    /** The safety-net tick; it is skipped when the dispatcher can tell that a round would start nothing. */
    ticks: fromEventObservable(
      ({ input }: { input: { clock: SchedulerContext['clock']; ms: number; due: () => boolean } }) =>
        interval(input.ms, input.clock.backgroundScheduler).pipe(
          filter(input.due),
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
    boost: ({ context, event }) => {
      if (event.type !== 'scheduler.boost') return;
      for (const id of event.jobIds) context.dispatcher.queue.setBoost(id, event.boost);
    },
    expireBoosts: ({ context }) => {
      const now = context.clock.now();
      const queue = context.dispatcher.queue;
      for (const entry of [...queue.inOrder(now)]) {
        if (entry.boost && entry.boost.until <= now) queue.setBoost(entry.id, undefined);
      }
    },
    /** Resources may have grown: every queued job deserves a new try. */
    forgetDenials: ({ context }) => context.dispatcher.forgetDenials(),
    open: ({ context }) => {
      context.dispatcher.open = true;
    },
    shut: ({ context }) => {
      context.dispatcher.open = false;
    },
    round: emit({ type: 'scheduler.round' }),
  },
}).createMachine({
  id: 'scheduler',
  context: ({ input }) => ({
    clock: input.clock,
    resources: input.resources,
    dispatcher: input.dispatcher,
    schedulingIntervalMs: input.schedulingIntervalMs,
  }),
  on: {
    'scheduler.boost': { actions: 'boost' },
    'scheduler.boostExpired': { actions: 'expireBoosts' },
  },
  initial: 'starting',
  states: {
    starting: {
      description: 'Waiting for the pool (host detection); jobs may queue meanwhile.',
      initial: 'detecting',
      states: {
        detecting: {
          description: 'No pool yet (none at all when one was declared: it is known at once).',
          always: { guard: 'hasPool', target: '#scheduler.ready' },
          on: {
            'scheduler.poolReady': { actions: 'setPool', target: '#scheduler.ready.active' },
            'scheduler.pause': { target: 'pausedEarly' },
          },
        },
        pausedEarly: {
          description: 'Paused before the pool was known: paused once it is, until resumed.',
          on: {
            'scheduler.poolReady': { actions: 'setPool', target: '#scheduler.ready.paused' },
            'scheduler.resume': { target: 'detecting' },
          },
        },
      },
    },
    ready: {
      description: 'The resource manager runs; releases always return resources to the ledger.',
      invoke: [
        {
          id: 'resourceManager',
          systemId: 'resourceManager',
          src: 'resourceManager',
          input: ({ context }) => context.resources as ResourceManagerInput,
        },
      ],
      initial: 'active',
      states: {
        active: {
          description: 'Starting jobs as resources and slots allow.',
          entry: ['open', 'round'],
          exit: 'shut',
          invoke: {
            src: 'ticks',
            input: ({ context }) => ({
              clock: context.clock,
              ms: context.schedulingIntervalMs,
              due: () => context.dispatcher.mayStart(context.clock.now()),
            }),
          },
          on: {
            'scheduler.boost': { actions: ['boost', 'round'] },
            'scheduler.boostExpired': { actions: ['expireBoosts', 'round'] },
            'scheduler.capacityChanged': { actions: ['forgetDenials', 'round'] },
            // A tick does not forget denials: only more free resources (a release, a capacity
            // change) can turn a denial into a grant, and those forget them. A tick's round tries
            // the jobs aging or boosts moved ahead, skipping denied ones cheaply.
            'scheduler.tick': { actions: 'round' },
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
