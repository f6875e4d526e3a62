/** How long a job waits between a failed attempt and the next one. */
export type BackoffPolicy = {
  /** `fixed`: always `delayMs`; `exponential`: `delayMs * 2^(attempt-1)`, capped. @default 'exponential' */
  type: 'fixed' | 'exponential';
  /** The base delay in ms. @default 1000 */
  delayMs: number;
  /** The cap for exponential growth, in ms. @default 60000 */
  maxDelayMs: number;
  /**
   * Equal jitter (in the terms of the AWS Architecture Blog's "Exponential Backoff And Jitter":
   * full jitter draws from [0, d], equal jitter from [d/2, d]): the delay is drawn uniformly from
   * [delay/2, delay], so that jobs which failed together do not retry together. Only when asked:
   * a backoff given without `jitter: true` (per job or in the scheduler's `retry` option) waits
   * exactly its delay, as BullMQ's does. @default true in `DEFAULT_BACKOFF` (no backoff given
   * anywhere); false in a backoff that does not say
   */
  jitter: boolean;
};

/**
 * The default backoff: exponential from 1 s up to 60 s, with equal jitter. A backoff a user
 * gives takes its type and delays from here (or from the scheduler's), but not its jitter.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = {
  type: 'exponential',
  delayMs: 1_000,
  maxDelayMs: 60_000,
  jitter: true,
};

/**
 * The delay before the next attempt after `failedAttempt` (1-based) failed.
 * `random01` is a value in [0, 1) from the caller's seeded source; it is used only with jitter.
 */
export function backoffDelay(policy: BackoffPolicy, failedAttempt: number, random01: number): number {
  // Bounded exponent: 2^1999 is Infinity, and 0 × Infinity would make the delay NaN.
  const exponent = Math.min(Math.max(0, failedAttempt - 1), 52);
  const capped =
    policy.type === 'fixed' ? policy.delayMs : Math.min(policy.delayMs * 2 ** exponent, policy.maxDelayMs);
  if (!policy.jitter) return Math.round(capped);
  return Math.round(capped / 2 + (capped / 2) * random01);
}
