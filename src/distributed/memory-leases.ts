/**
 * `MemoryLeaseStore`: the lease and fencing protocol (see ./leases.ts) on plain maps — the fake
 * of the PostgreSQL tables that tests (and a single process) use. Same answers as `PgLeaseStore`
 * for the same calls at the same store times: the conformance test runs both side by side. Time is
 * the injected `now()`; nothing here waits.
 */
import { InvalidOptionError } from '../core/errors.js';
import {
  checkAssign,
  checkHost,
  checkOutcome,
  checkRegistration,
  checkToken,
  jsonCopy,
  storedOutcome,
  type AssignRequest,
  type AssignResult,
  type AttemptRecord,
  type ExpireResult,
  type HeartbeatResult,
  type HostRecord,
  type HostRegistration,
  type InterruptReason,
  type LeaseStore,
  type LeaseToken,
  type LeaveResult,
  type RegisterResult,
  type ReportedOutcome,
  type SettleResult,
  type TokenResult,
} from './leases.js';

export type MemoryLeaseStoreOptions = {
  /** The store's clock (ms). */
  now: () => number;
};

function isLive(a: AttemptRecord): boolean {
  return a.state === 'assigned' || a.state === 'running';
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class MemoryLeaseStore implements LeaseStore {
  private readonly now: () => number;
  private readonly hostRows = new Map<string, HostRecord>();
  /** By token, in rising order (tokens are given rising and never removed). */
  private readonly attemptRows = new Map<LeaseToken, AttemptRecord>();
  private lastToken = 0;

  constructor(options: MemoryLeaseStoreOptions) {
    if (typeof options?.now !== 'function') {
      throw new InvalidOptionError('now', options?.now, 'a function returning the store time in ms');
    }
    this.now = options.now;
  }

  async register(host: HostRegistration): Promise<RegisterResult> {
    checkRegistration(host);
    const now = this.now();
    const epoch = (this.hostRows.get(host.id)?.epoch ?? 0) + 1;
    this.hostRows.set(host.id, {
      id: host.id,
      epoch,
      pool: jsonCopy(host.pool),
      types: [...host.types],
      leaseMs: host.leaseMs,
      heartbeatAt: now,
      state: 'alive',
    });
    const expired = this.expireWhere((a) => a.hostId === host.id && a.hostEpoch < epoch, 'reregistered', now);
    return { epoch, expired };
  }

  async heartbeat(hostId: string, epoch: number): Promise<HeartbeatResult> {
    checkHost(hostId, epoch);
    const host = this.aliveHost(hostId, epoch);
    if (!host) return { ok: false, reason: 'fenced' };
    const now = this.now();
    host.heartbeatAt = now;
    const live: LeaseToken[] = [];
    const cancels: LeaseToken[] = [];
    for (const a of this.attemptRows.values()) {
      if (a.hostId !== hostId || a.hostEpoch !== epoch || !isLive(a)) continue;
      a.leaseUntil = now + host.leaseMs;
      live.push(a.token);
      if (a.cancelRequested) cancels.push(a.token);
    }
    return { ok: true, live, cancels };
  }

  async assign(request: AssignRequest): Promise<AssignResult> {
    checkAssign(request);
    const host = this.aliveHost(request.hostId, request.epoch);
    if (!host) return { ok: false, reason: 'hostNotAlive' };
    for (const a of this.attemptRows.values()) {
      if (a.jobId === request.jobId && isLive(a)) return { ok: false, reason: 'liveAttempt' };
    }
    const now = this.now();
    const token = ++this.lastToken;
    this.attemptRows.set(token, {
      token,
      jobId: request.jobId,
      attempt: request.attempt,
      hostId: request.hostId,
      hostEpoch: request.epoch,
      allocation: jsonCopy(request.allocation),
      state: 'assigned',
      leaseUntil: now + host.leaseMs,
      cancelRequested: false,
      outcome: null,
      settled: false,
      createdAt: now,
      endedAt: null,
    });
    return { ok: true, token };
  }

  async start(token: LeaseToken): Promise<TokenResult> {
    checkToken(token);
    const a = this.attemptRows.get(token);
    const refused = this.refusal(a);
    if (refused || !a) return refused ?? { accepted: false, reason: 'unknown' };
    a.state = 'running';
    return { accepted: true };
  }

  async report(token: LeaseToken, outcome: ReportedOutcome): Promise<TokenResult> {
    checkToken(token);
    checkOutcome(outcome);
    const a = this.attemptRows.get(token);
    const refused = this.refusal(a);
    if (refused || !a) return refused ?? { accepted: false, reason: 'unknown' };
    a.state = 'ended';
    a.outcome = storedOutcome(outcome);
    a.endedAt = this.now();
    return { accepted: true };
  }

  async requestCancel(token: LeaseToken): Promise<TokenResult> {
    checkToken(token);
    const a = this.attemptRows.get(token);
    const refused = this.refusal(a);
    if (refused || !a) return refused ?? { accepted: false, reason: 'unknown' };
    a.cancelRequested = true;
    return { accepted: true };
  }

  async leave(hostId: string, epoch: number): Promise<LeaveResult> {
    checkHost(hostId, epoch);
    const host = this.aliveHost(hostId, epoch);
    if (!host) return { ok: false, reason: 'fenced' };
    const live = [...this.attemptRows.values()]
      .filter((a) => a.hostId === hostId && a.hostEpoch === epoch && isLive(a))
      .map((a) => a.token);
    if (live.length > 0) return { ok: false, reason: 'liveAttempts', live };
    host.state = 'left';
    return { ok: true };
  }

  async expire(): Promise<ExpireResult> {
    const now = this.now();
    const lost = [...this.hostRows.values()]
      .filter((h) => h.state === 'alive' && now > h.heartbeatAt + h.leaseMs)
      .sort((a, b) => byText(a.id, b.id));
    for (const h of lost) h.state = 'lost';
    const lostEpochs = new Map(lost.map((h) => [h.id, h.epoch]));
    const expired = this.expireWhere((a) => lostEpochs.get(a.hostId) === a.hostEpoch, 'lost', now);
    return { lostHosts: lost.map((h) => ({ id: h.id, epoch: h.epoch })), expired };
  }

  async ends(): Promise<AttemptRecord[]> {
    return [...this.attemptRows.values()]
      .filter((a) => !isLive(a) && !a.settled)
      .sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0) || a.token - b.token)
      .map((a) => jsonCopy(a));
  }

  async settle(token: LeaseToken): Promise<SettleResult> {
    checkToken(token);
    const a = this.attemptRows.get(token);
    if (!a) return { accepted: false, reason: 'unknown' };
    if (isLive(a)) return { accepted: false, reason: 'live' };
    if (a.settled) return { accepted: false, reason: 'settled' };
    a.settled = true;
    return { accepted: true };
  }

  async live(): Promise<AttemptRecord[]> {
    return [...this.attemptRows.values()].filter(isLive).map((a) => jsonCopy(a));
  }

  async attempt(token: LeaseToken): Promise<AttemptRecord | undefined> {
    checkToken(token);
    const a = this.attemptRows.get(token);
    return a && jsonCopy(a);
  }

  async hosts(): Promise<HostRecord[]> {
    return [...this.hostRows.values()].sort((a, b) => byText(a.id, b.id)).map((h) => jsonCopy(h));
  }

  private aliveHost(hostId: string, epoch: number): HostRecord | undefined {
    const host = this.hostRows.get(hostId);
    return host && host.epoch === epoch && host.state === 'alive' ? host : undefined;
  }

  /** Why a word about this attempt is refused, or `undefined` when it is live. */
  private refusal(a: AttemptRecord | undefined): TokenResult | undefined {
    if (!a) return { accepted: false, reason: 'unknown' };
    if (a.state === 'expired') return { accepted: false, reason: 'expired' };
    if (a.state === 'ended') return { accepted: false, reason: 'ended' };
    return undefined;
  }

  private expireWhere(
    which: (a: AttemptRecord) => boolean,
    reason: InterruptReason,
    now: number,
  ): AttemptRecord[] {
    const expired: AttemptRecord[] = [];
    for (const a of this.attemptRows.values()) {
      if (!isLive(a) || !which(a)) continue;
      a.state = 'expired';
      a.outcome = { kind: 'interrupted', reason };
      a.endedAt = now;
      expired.push(jsonCopy(a));
    }
    return expired;
  }
}
