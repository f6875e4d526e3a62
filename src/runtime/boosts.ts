/**
 * Boosts: raising waiting jobs for a while ("a user is waiting on group X"). The spec and the
 * target are checked here; the queue itself applies the levels (see `Boost` in core/queue).
 */
import type { Observable, Subscription } from 'rxjs';
import { InvalidJobError } from '../core/errors.js';
import { levelOf, MAX_LEVEL } from '../core/priority.js';
import type { Boost } from '../core/queue.js';
import type { SchedulerClock, TimerId } from './clock.js';
import { WAITING, rareOf, type JobRecord, type JobRecords } from './job-records.js';
import type { BoostReport, BoostSignal, BoostSpec, BoostTarget, SchedulerEvent } from './types.js';

/** What a boost tells the scheduler actor. */
export type BoostMessage =
  { type: 'scheduler.boost'; jobIds: string[]; boost: Boost } | { type: 'scheduler.boostExpired' };

/** What `Boosts` needs of the scheduler. */
export type BoostsDeps = {
  clock: SchedulerClock;
  records: JobRecords;
  /** Sends to the scheduler actor. */
  send: (message: BoostMessage) => void;
  /** Emits on `events$`. */
  emit: (event: SchedulerEvent) => void;
  /** Told of each waiting job given a boost (a durable scheduler journals it); none in memory. */
  given?: ((record: JobRecord, boost: Boost) => void) | undefined;
};

/** Applies boosts to job records and the queue, and ends them when their time is up. */
export class Boosts {
  private readonly timers = new Set<TimerId>();
  /** The connected streams still live: one that ended (completed, failed, unsubscribed) leaves. */
  private readonly subscriptions = new Set<Subscription>();

  constructor(private readonly deps: BoostsDeps) {}

  /** Raises queued jobs at once, for `forMs`; running and finished jobs are left alone and named. */
  apply(target: BoostTarget, spec: BoostSpec): BoostReport {
    const { clock, records, send, emit, given } = this.deps;
    const { toLevel, byLevels, forMs } = checkBoost(spec);
    const ids = boostTargetIds(target, records);
    const now = clock.now();
    const boost: Boost = {
      until: now + forMs,
      ...(toLevel === undefined ? {} : { toLevel }),
      ...(byLevels === undefined ? {} : { byLevels }),
    };
    const report: BoostReport = { boosted: [], ignored: [], until: boost.until };
    const queued: string[] = [];
    for (const id of ids) {
      const record = records.get(id);
      if (!record) continue;
      if (!WAITING.has(record.state)) {
        report.ignored.push({ id, state: record.state });
        continue;
      }
      rareOf(record).boostGiven = boost;
      if (given) given(record, boost);
      report.boosted.push(id);
      if (record.state === 'queued') queued.push(id);
    }
    if (queued.length > 0) send({ type: 'scheduler.boost', jobIds: queued, boost });
    if (report.boosted.length > 0) {
      emit({ type: 'job.boosted', at: now, jobIds: report.boosted, until: boost.until });
      this.expireAt(report.boosted, boost, forMs);
    }
    if (report.ignored.length > 0) emit({ type: 'boost.ignored', at: now, jobs: report.ignored });
    return report;
  }

  /**
   * Gives back the boosts of jobs recovered from a store, each until the `until` it was given
   * with (all still live): a queued job has its boost set as it is queued, a pending or retrying
   * one as it queues. They expire as they would have (`boost.expired`).
   */
  restore(given: ReadonlyArray<{ record: JobRecord; boost: Boost }>): void {
    const now = this.deps.clock.now();
    // One timer per moment of expiry, as for the boosts as they were given.
    const byUntil = new Map<number, string[]>();
    for (const { record, boost } of given) {
      rareOf(record).boostGiven = boost;
      const ids = byUntil.get(boost.until);
      if (ids) ids.push(record.id);
      else byUntil.set(boost.until, [record.id]);
    }
    for (const [until, ids] of byUntil) this.expireAt(ids, undefined, until - now);
  }

  /**
   * Ends the boost of `ids` in `ms`: each job's own (`boost`: only if it still has that one; any
   * other it was given since lasts on — undefined: the one it has, if it ends by then).
   */
  private expireAt(ids: string[], boost: Boost | undefined, ms: number): void {
    const { clock, records, send, emit } = this.deps;
    const timer = clock.setTimeout(() => {
      this.timers.delete(timer);
      const now = clock.now();
      for (const id of ids) {
        const rare = records.get(id)?.rare;
        const own = rare?.boostGiven;
        if (rare && own && (boost === undefined ? own.until <= now : own === boost))
          rare.boostGiven = undefined;
      }
      send({ type: 'scheduler.boostExpired' });
      emit({ type: 'boost.expired', at: now, jobIds: ids });
    }, ms);
    this.timers.add(timer);
  }

  /** Applies every boost signal of a stream as it comes; a bad one is reported, not thrown. */
  connect(boost$: Observable<BoostSignal>): Subscription {
    const { clock, emit } = this.deps;
    const subscription = boost$.subscribe({
      next: (signal) => {
        try {
          if (typeof signal !== 'object' || signal === null)
            throw new InvalidJobError('signal', signal, 'a boost signal { target, to | by, forMs }');
          const { target, ...spec } = signal;
          this.apply(target, spec as BoostSpec);
        } catch (error) {
          emit({ type: 'boost.invalid', at: clock.now(), message: (error as Error).message });
        }
      },
      error: (error: unknown) =>
        emit({ type: 'boost.invalid', at: clock.now(), message: `boost stream failed: ${String(error)}` }),
    });
    // Forgotten as it ends, however it ends (RxJS runs a subscription's teardowns when it
    // completes, errors or is unsubscribed); one that ended during `subscribe` is never kept.
    if (!subscription.closed) {
      this.subscriptions.add(subscription);
      subscription.add(() => this.subscriptions.delete(subscription));
    }
    return subscription;
  }

  /** How many connected streams are live (for tests: ended ones must not be kept). */
  get connected(): number {
    return this.subscriptions.size;
  }

  /** Clears every expiry timer and ends every connected stream (at shutdown). */
  dispose(): void {
    for (const timer of this.timers) this.deps.clock.clearTimeout(timer);
    this.timers.clear();
    for (const subscription of [...this.subscriptions]) subscription.unsubscribe();
  }
}

/** Checks a boost spec: exactly one of `to` (a priority name) or `by` (levels), and `forMs` > 0. */
export function checkBoost(spec: BoostSpec): {
  toLevel: number | undefined;
  byLevels: number | undefined;
  forMs: number;
} {
  if (typeof spec !== 'object' || spec === null)
    throw new InvalidJobError('boost', spec, '{ to | by, forMs }');
  const { to, by, forMs } = spec as { to?: unknown; by?: unknown; forMs?: unknown };
  if ((to === undefined) === (by === undefined))
    throw new InvalidJobError('boost', spec, 'exactly one of to or by');
  if (to !== undefined && levelOf(to) < 0) throw new InvalidJobError('boost.to', to, 'a priority name');
  if (by !== undefined && (typeof by !== 'number' || !Number.isInteger(by) || Math.abs(by) > MAX_LEVEL)) {
    throw new InvalidJobError('boost.by', by, `a whole number of levels in [-${MAX_LEVEL}, ${MAX_LEVEL}]`);
  }
  if (typeof forMs !== 'number' || !Number.isFinite(forMs) || forMs <= 0) {
    throw new InvalidJobError('boost.forMs', forMs, 'a number of ms > 0');
  }
  return { toLevel: to === undefined ? undefined : levelOf(to), byLevels: by as number | undefined, forMs };
}

/** The ids a boost target names: a group's members (known now) or a list of ids. */
export function boostTargetIds(target: BoostTarget, records: JobRecords): string[] {
  if (
    typeof target === 'object' &&
    target !== null &&
    'group' in target &&
    typeof target.group === 'string'
  ) {
    return [...records.ids(target.group)];
  }
  if (typeof target === 'object' && target !== null && 'ids' in target && Array.isArray(target.ids))
    return [...target.ids];
  throw new InvalidJobError('target', target, '{ group } or { ids }');
}
