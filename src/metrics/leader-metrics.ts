/**
 * Prometheus metrics of a global scheduler's process (issue 17, "Operations"; docs/metrics.md):
 * whether it leads, elections and losses of the lead, hosts joining, leaving and lost (their
 * lease ran out) and the attempts that lease expiries interrupted — and, while it leads, its
 * engine's metrics (`schedulerMetrics` on `leader.scheduler`, in the same registry). Read through
 * the leader's public API only: `events$`, `state` and `scheduler`.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Observable, Subscription } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import { checkBuckets, checkOptionObject, checkPrefix, Registration, registryOf } from './common.js';
import {
  schedulerMetrics,
  type SchedulerMetrics,
  type SchedulerMetricsOptions,
  type SchedulerMetricsSource,
} from './scheduler-metrics.js';

/**
 * A leader's event, as far as the metrics read it: `leader.elected`, `leader.lost`,
 * `host.joined`, `host.lost` (with `interrupted`: its attempts the expiry interrupted),
 * `host.left`, `leader.error`; others are let be.
 */
export type LeaderMetricsEvent = { type: string; at: number; interrupted?: number };

/** What the metrics read of a leader (a global scheduler's process). */
export type LeaderMetricsSource = {
  readonly events$: Observable<LeaderMetricsEvent>;
  /** `leader` while this process leads. */
  readonly state: string;
  /** Its engine, while it leads. */
  readonly scheduler: SchedulerMetricsSource | undefined;
};

/** `leaderMetrics`'s options. */
export type LeaderMetricsOptions = {
  /** Where the metrics are registered (the engine's too). @default a new Registry of their own */
  registry?: Registry;
  /** The start of every metric name. @default 'ai_batch_' */
  prefix?: string;
  /** The engine's histogram buckets (see `schedulerMetrics`). */
  buckets?: SchedulerMetricsOptions['buckets'];
};

/** The metrics of one leader process, registered. */
export type LeaderMetrics = {
  readonly registry: Registry;
  /** Stops following the leader (and its engine) and takes the metrics out of the registry. Idempotent. */
  close(): void;
};

/**
 * Prometheus metrics of a leader process and, while it leads, of its engine (every metric:
 * docs/metrics.md). Throws `InvalidOptionError` naming the option for a bad prefix, registry or
 * buckets, and for a registry that holds these metrics already.
 */
export function leaderMetrics(
  leader: LeaderMetricsSource,
  options: LeaderMetricsOptions = {},
): LeaderMetrics {
  if (
    typeof leader !== 'object' ||
    leader === null ||
    typeof (leader.events$ as { subscribe?: unknown } | undefined)?.subscribe !== 'function'
  )
    throw new InvalidOptionError('leader', leader, 'a leader (createLeader())');
  const checked = checkOptionObject<LeaderMetricsOptions>('options', options, [
    'registry',
    'prefix',
    'buckets',
  ]);
  const prefix = checkPrefix(checked.prefix);
  // Checked now, not when it is elected (the engine's metrics are made then).
  const buckets = checkOptionObject<NonNullable<SchedulerMetricsOptions['buckets']>>(
    'buckets',
    checked.buckets,
    ['queueWait', 'run'],
  );
  if (buckets.queueWait !== undefined) checkBuckets('buckets.queueWait', buckets.queueWait);
  if (buckets.run !== undefined) checkBuckets('buckets.run', buckets.run);
  const registry = registryOf(checked.registry);
  const engineOptions: SchedulerMetricsOptions = {
    registry,
    prefix,
    ...(checked.buckets === undefined ? {} : { buckets: checked.buckets }),
  };

  const name = (n: string): string => `${prefix}${n}`;
  const registration = new Registration(registry);
  registration.claim(
    [
      'leader',
      'leader_elections_total',
      'leader_losses_total',
      'leader_errors_total',
      'hosts_joined_total',
      'hosts_left_total',
      'hosts_lost_total',
      'attempts_interrupted_total',
    ].map(name),
  );
  const registers = [registry];

  const leading: Gauge = new Gauge({
    name: name('leader'),
    help: 'Whether this process leads (1) — holds the leader lock and runs the engine — or not (0: a standby, or stopped).',
    registers,
    collect: () => {
      leading.set(leader.state === 'leader' ? 1 : 0);
    },
  });
  const elections = new Counter({
    name: name('leader_elections_total'),
    help: 'Times this process took the lead (summed over processes: the leader changes).',
    registers,
  });
  const losses = new Counter({
    name: name('leader_losses_total'),
    help: 'Times this process lost the lead (or its wait for it): a connection failed, or writing failed.',
    registers,
  });
  const errors = new Counter({
    name: name('leader_errors_total'),
    help: "Passes of the leader's loop that failed with an error; they are tried again.",
    registers,
  });
  const joined = new Counter({
    name: name('hosts_joined_total'),
    help: "Hosts that joined the engine's pool (a registration, each epoch once).",
    registers,
  });
  const left = new Counter({
    name: name('hosts_left_total'),
    help: 'Hosts that left the pool saying goodbye (their agent stopped).',
    registers,
  });
  const lost = new Counter({
    name: name('hosts_lost_total'),
    help: 'Hosts whose lease ran out (lease expiries): their attempts were interrupted and their node retired.',
    registers,
  });
  const interrupted = new Counter({
    name: name('attempts_interrupted_total'),
    help: "Attempts interrupted because their host's lease ran out.",
    registers,
  });

  /** The engine's metrics, while this process leads. */
  let engine: SchedulerMetrics | undefined;
  const follow = (): void => {
    const scheduler = leader.scheduler;
    if (engine || !scheduler) return;
    engine = schedulerMetrics(scheduler, engineOptions);
  };
  const unfollow = (): void => {
    engine?.close();
    engine = undefined;
  };
  if (leader.state === 'leader') follow();

  let subscription: Subscription | undefined = leader.events$.subscribe({
    next: (event) => {
      switch (event.type) {
        case 'leader.elected':
          elections.inc();
          follow();
          return;
        case 'leader.lost':
          losses.inc();
          unfollow();
          return;
        case 'leader.error':
          errors.inc();
          return;
        case 'host.joined':
          joined.inc();
          return;
        case 'host.left':
          left.inc();
          return;
        case 'host.lost':
          lost.inc();
          interrupted.inc(Math.max(0, event.interrupted ?? 0));
          return;
        default:
          return;
      }
    },
    // The leader stopped: its engine's metrics go with it.
    complete: unfollow,
  });

  return {
    registry,
    close(): void {
      subscription?.unsubscribe();
      subscription = undefined;
      unfollow();
      registration.remove();
    },
  };
}
