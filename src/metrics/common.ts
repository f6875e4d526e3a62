/** What the scheduler's and the agent's Prometheus metrics share: the prefix, the registry, a scrape-time clock. */
import { Registry } from 'prom-client';
import { InvalidOptionError } from '../core/errors.js';
import { checkKeys, type UnknownFieldError } from '../core/job-spec.js';

/** The prefix of every metric name, unless told otherwise. */
export const DEFAULT_METRICS_PREFIX = 'ai_batch_';

/** A metric name's prefix: what Prometheus allows at the start of a name. */
const PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** The prefix, checked (`InvalidOptionError` naming `prefix` otherwise). */
export function checkPrefix(prefix: unknown): string {
  if (prefix === undefined) return DEFAULT_METRICS_PREFIX;
  if (typeof prefix !== 'string' || prefix.length > 100 || !PREFIX.test(prefix))
    throw new InvalidOptionError(
      'prefix',
      prefix,
      'a Prometheus metric name prefix: letters, digits, _ and :, not starting with a digit (at most 100 characters)',
    );
  return prefix;
}

const optionError: UnknownFieldError = (field, value, allowed, unknown) =>
  new InvalidOptionError(field, value, allowed, unknown);

/** Options, checked: an object (or nothing) of known keys only (`InvalidOptionError` otherwise). */
export function checkOptionObject<T extends object>(
  field: string,
  options: unknown,
  keys: readonly string[],
): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new InvalidOptionError(field, options, `an object: { ${keys.map((k) => `${k}?`).join(', ')} }`);
  checkKeys(field === 'options' ? '' : field, options as Record<string, unknown>, new Set(keys), optionError);
  return options as Partial<T>;
}

/**
 * The registry given, checked, or a new one. Checked by its methods, not `instanceof`: an
 * application's own copy of prom-client makes registries of another class.
 */
export function registryOf(registry: unknown, required = false): Registry {
  if (registry === undefined && !required) return new Registry();
  const r = registry as Partial<Record<keyof Registry, unknown>> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.metrics !== 'function' ||
    typeof r.getSingleMetric !== 'function' ||
    typeof r.removeSingleMetric !== 'function' ||
    typeof r.registerMetric !== 'function'
  )
    throw new InvalidOptionError(
      'registry',
      registry,
      "a prom-client Registry (new Registry() from 'prom-client')",
    );
  return registry as Registry;
}

/** The options of a metric that need no more than a name, a help and label names. */
export type Defined = { name: string; help: string; labelNames?: readonly string[] };

/**
 * Registers metrics in a registry, all or none: a name the registry holds already (another
 * scheduler's metrics under the same prefix, say) refuses them all, with `InvalidOptionError`
 * naming `registry`. `remove()` takes them out again.
 */
export class Registration {
  private readonly names: string[] = [];

  constructor(readonly registry: Registry) {}

  /** Refuses every name the registry holds already, before anything is made. */
  claim(names: readonly string[]): void {
    const taken = names.filter((name) => this.registry.getSingleMetric(name) !== undefined);
    if (taken.length > 0)
      throw new InvalidOptionError(
        'registry',
        taken,
        `a registry that does not hold these metrics already (${taken.join(', ')}): another collector uses it; give this one a registry or a prefix of its own`,
      );
    this.names.push(...names);
  }

  remove(): void {
    for (const name of this.names.splice(0)) this.registry.removeSingleMetric(name);
  }
}

/** Milliseconds to seconds, Prometheus's base unit of time. */
export function seconds(ms: number): number {
  return ms / 1000;
}

/**
 * Buckets for batch work, in seconds: from a tenth of a second to a day. (Prometheus's defaults
 * stop at 10 s, too short for jobs that run for hours.)
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1_800, 3_600, 7_200, 14_400, 43_200, 86_400,
];

/** Histogram buckets, checked: finite, positive and rising (`InvalidOptionError` naming `field`). */
export function checkBuckets(field: string, buckets: unknown): number[] {
  if (buckets === undefined) return [...DURATION_BUCKETS];
  const ok =
    Array.isArray(buckets) &&
    buckets.length > 0 &&
    buckets.length <= 100 &&
    buckets.every(
      (b, i) =>
        typeof b === 'number' && Number.isFinite(b) && b > 0 && (i === 0 || b > (buckets[i - 1] as number)),
    );
  if (!ok)
    throw new InvalidOptionError(
      field,
      buckets,
      'an array of 1 to 100 finite upper bounds in seconds, each above 0 and rising',
    );
  return [...(buckets as number[])];
}
