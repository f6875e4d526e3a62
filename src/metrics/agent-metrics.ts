/**
 * Prometheus metrics of an agent (issue 17, "Operations"; docs/metrics.md): what it runs now, how
 * its attempts ended, what the lease store refused it, its registrations and fencings, and how
 * long ago its lease was last renewed. Read through the agent's public API only: `events$`
 * (counters, and the time of the last renewal) and `running()` / `currentEpoch` (read at scrape
 * time). One process serves one agent: Prometheus's own target labels (`instance`) tell hosts
 * apart.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Observable, Subscription } from 'rxjs';
import { InvalidOptionError } from '../core/errors.js';
import { createRealClock } from '../runtime/clock.js';
import { checkOptionObject, checkPrefix, Registration, registryOf, seconds } from './common.js';

/**
 * An agent's event, as far as the metrics read it (an `Agent`'s `AgentEvent`s are such):
 * `agent.registered`, `agent.heartbeat` (when the agent tells of each renewal), `agent.fenced`,
 * `attempt.started`, `attempt.reported` (with `outcome`), `attempt.refused` (with `reason`),
 * `agent.error`; others are let be.
 */
export type AgentMetricsEvent = { type: string; at: number; outcome?: string; reason?: string };

/** What the metrics read of an agent: an `Agent` (`createAgent()`) is one. */
export type AgentMetricsSource = {
  readonly events$: Observable<AgentMetricsEvent>;
  running(): readonly unknown[];
  /** The epoch it is registered at; undefined before it registered and while fenced. */
  readonly currentEpoch?: number | undefined;
};

/** `agentMetrics`'s options. */
export type AgentMetricsOptions = {
  /** Where the metrics are registered. @default a new Registry of their own */
  registry?: Registry;
  /** The start of every metric name. @default 'ai_batch_' */
  prefix?: string;
  /**
   * The agent's clock (what its events' `at` are read against, for the heartbeat age): give the
   * one the agent was given. @default the real clock
   */
  clock?: { now(): number };
};

/** The metrics of one agent, registered. */
export type AgentMetrics = {
  readonly registry: Registry;
  /** Stops following the agent and takes its metrics out of the registry. Idempotent. */
  close(): void;
};

/** How an attempt the agent reported ended (the store's `timedOut` is `timeout`, as the scheduler's). */
const OUTCOMES: Record<string, string> = {
  completed: 'completed',
  failed: 'failed',
  cancelled: 'cancelled',
  timedOut: 'timeout',
};

/** Why the store refused a start or a report of an attempt. */
const REFUSALS = ['expired', 'ended', 'unknown'] as const;

/**
 * Prometheus metrics of an agent (every metric: docs/metrics.md). Serve them with
 * `serveMetrics(metrics.registry, { port })`. Throws `InvalidOptionError` naming the option for
 * a bad prefix, registry or clock, and for a registry that holds these metrics already.
 */
export function agentMetrics(agent: AgentMetricsSource, options: AgentMetricsOptions = {}): AgentMetrics {
  if (
    typeof agent !== 'object' ||
    agent === null ||
    typeof agent.running !== 'function' ||
    typeof (agent.events$ as { subscribe?: unknown } | undefined)?.subscribe !== 'function'
  )
    throw new InvalidOptionError('agent', agent, 'an agent (createAgent())');
  const checked = checkOptionObject<AgentMetricsOptions>('options', options, ['registry', 'prefix', 'clock']);
  const prefix = checkPrefix(checked.prefix);
  if (checked.clock !== undefined && typeof (checked.clock as { now?: unknown } | null)?.now !== 'function')
    throw new InvalidOptionError('clock', checked.clock, 'a clock: an object with now() in ms');
  const clock = checked.clock ?? createRealClock();
  const registry = registryOf(checked.registry);

  const name = (n: string): string => `${prefix}agent_${n}`;
  const registration = new Registration(registry);
  registration.claim(
    [
      'attempts_running',
      'registered',
      'heartbeat_age_seconds',
      'attempts_started_total',
      'attempts_total',
      'attempts_refused_total',
      'registrations_total',
      'fenced_total',
      'errors_total',
    ].map(name),
  );
  const registers = [registry];

  /**
   * When its lease was last renewed: its last registration, or its last heartbeat if it tells of
   * them; until it first registers, when the metrics were made (an agent that cannot register
   * ages as one whose heartbeats stopped).
   */
  let renewedAt = clock.now();

  const running: Gauge = new Gauge({
    name: name('attempts_running'),
    help: 'Attempts running on this host now (their handlers have not settled, or their ends are not reported yet).',
    registers,
    collect: () => {
      running.set(agent.running().length);
    },
  });
  const registered: Gauge = new Gauge({
    name: name('registered'),
    help: 'Whether the agent holds a registration now (1), or not: not yet, or fenced and not registered again (0).',
    registers,
    collect: () => {
      registered.set(agent.currentEpoch === undefined ? 0 : 1);
    },
  });
  const heartbeatAge: Gauge = new Gauge({
    name: name('heartbeat_age_seconds'),
    help: "Time since the agent's lease was last renewed (a registration, or a heartbeat the agent tells of); before its first registration, since these metrics were made.",
    registers,
    collect: () => {
      heartbeatAge.set(seconds(Math.max(0, clock.now() - renewedAt)));
    },
  });
  const started = new Counter({
    name: name('attempts_started_total'),
    help: 'Attempts this agent started (the store accepted their start).',
    registers,
  });
  const ended = new Counter<'outcome'>({
    name: name('attempts_total'),
    help: 'Attempts whose end the store took, by outcome (completed, failed, cancelled, timeout).',
    labelNames: ['outcome'],
    registers,
  });
  const refused = new Counter<'reason'>({
    name: name('attempts_refused_total'),
    help: "Starts and reports of attempts the store refused, by reason (expired: the attempt's lease had run out, so a late report changed nothing; ended; unknown).",
    labelNames: ['reason'],
    registers,
  });
  const registrations = new Counter({
    name: name('registrations_total'),
    help: 'Registrations of this host (each a new epoch): the first, and each one after a fencing.',
    registers,
  });
  const fenced = new Counter({
    name: name('fenced_total'),
    help: 'Times the agent found itself fenced (its lease had run out): it stopped all it ran before registering again.',
    registers,
  });
  const errors = new Counter({
    name: name('errors_total'),
    help: 'Passes or reports that failed with an error (the store could not be reached, say); they are tried again.',
    registers,
  });
  for (const outcome of new Set(Object.values(OUTCOMES))) ended.inc({ outcome }, 0);
  for (const reason of REFUSALS) refused.inc({ reason }, 0);

  let subscription: Subscription | undefined = agent.events$.subscribe({
    next: (event) => {
      switch (event.type) {
        case 'agent.registered':
          registrations.inc();
          renewedAt = event.at;
          return;
        case 'agent.heartbeat':
          renewedAt = event.at;
          return;
        case 'agent.fenced':
          fenced.inc();
          return;
        case 'attempt.started':
          started.inc();
          return;
        case 'attempt.reported':
          ended.inc({ outcome: OUTCOMES[event.outcome ?? ''] ?? event.outcome ?? 'unknown' });
          return;
        case 'attempt.refused':
          refused.inc({ reason: event.reason ?? 'unknown' });
          return;
        case 'agent.error':
          errors.inc();
          return;
        default:
          return;
      }
    },
  });

  return {
    registry,
    close(): void {
      subscription?.unsubscribe();
      subscription = undefined;
      registration.remove();
    },
  };
}
