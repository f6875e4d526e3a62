/**
 * The commands, the model and the invariants shared by the lease store's model-based test
 * (leases.model.test.ts, against `MemoryLeaseStore`) and its conformance test (pg-leases.test.ts,
 * `PgLeaseStore` and `MemoryLeaseStore` side by side on the same commands).
 *
 * A command is drawn as an `Op` whose host, epoch and token are picks (`current` / `stale` /
 * `next` epoch; the n-th most recent token, or one never given), made concrete against the model
 * when it runs, so that stale tokens, fenced agents and unknown tokens all come up. The model
 * (`LeaseModel`) is the protocol written as plainly as it can be: it predicts each answer, and every
 * store must give exactly that answer. After every command, `checkInvariants` reads each store
 * and asserts the invariants of docs/distributed.md.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import type {
  AttemptOutcome,
  AttemptRecord,
  HostRecord,
  LeaseStore,
  ReportedOutcome,
} from '../../src/index.js';

export const HOST_IDS = ['a', 'B', 'h-1'] as const; // 'B' < 'a' by code point, not in en_US collation
export const JOB_IDS = ['j0', 'j1', 'j2'] as const;
export const START_MS = 1_000_000;

type EpochPick = 'current' | 'stale' | 'next';

export type Op =
  | { kind: 'register'; host: number; leaseMs: number }
  | { kind: 'heartbeat'; host: number; epoch: EpochPick }
  | { kind: 'assign'; job: number; attempt: number; host: number; epoch: EpochPick }
  | { kind: 'start'; token: number }
  | { kind: 'report'; token: number; outcome: ReportedOutcome }
  | { kind: 'requestCancel'; token: number }
  | { kind: 'leave'; host: number; epoch: EpochPick }
  | { kind: 'advance'; ms: number }
  | { kind: 'expire' }
  | { kind: 'ends' }
  | { kind: 'settle'; token: number }
  | { kind: 'live' }
  | { kind: 'hosts' };

/** An op made concrete: what is called on a store. */
export type Call =
  | { kind: 'register'; hostId: string; leaseMs: number }
  | { kind: 'heartbeat' | 'leave'; hostId: string; epoch: number }
  | { kind: 'assign'; jobId: string; attempt: number; hostId: string; epoch: number }
  | { kind: 'start' | 'requestCancel' | 'settle'; token: number }
  | { kind: 'report'; token: number; outcome: ReportedOutcome }
  | { kind: 'advance'; ms: number }
  | { kind: 'expire' | 'ends' | 'live' | 'hosts' };

const host = fc.nat({ max: HOST_IDS.length - 1 });
const epoch = fc.constantFrom<EpochPick>('current', 'current', 'current', 'stale', 'next');
/** 0 = the newest token, 1 = the one before, … (round the tokens given); -1: one never given. */
const token = fc.oneof(
  { weight: 9, arbitrary: fc.nat({ max: 3 }) },
  { weight: 1, arbitrary: fc.constant(-1) },
);
const outcome: fc.Arbitrary<ReportedOutcome> = fc.oneof(
  fc.constant<ReportedOutcome>({ kind: 'completed' }),
  fc
    .record({ kind: fc.constant('completed' as const), output: fc.jsonValue({ maxDepth: 2 }) })
    .map((o): ReportedOutcome => ({ kind: 'completed', output: noNul(o.output) as never })),
  fc.constant<ReportedOutcome>({ kind: 'failed', error: { kind: 'error', message: 'boom' } }),
  fc.constant<ReportedOutcome>({ kind: 'cancelled' }),
  fc.constant<ReportedOutcome>({ kind: 'timedOut' }),
);

/** PostgreSQL's jsonb holds no NUL character, so both stores refuse one (tested by hand): none drawn. */
function noNul(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value ?? null).replaceAll('\\u0000', '_')) as unknown;
}

/** Every op, weighted (the frequent ones twice). */
const register = fc.record({
  kind: fc.constant('register' as const),
  host,
  leaseMs: fc.constantFrom(100, 300),
});
const assign = fc.record({
  kind: fc.constant('assign' as const),
  job: fc.nat({ max: JOB_IDS.length - 1 }),
  attempt: fc.integer({ min: 1, max: 3 }),
  host,
  epoch,
});
const heartbeat = fc.record({ kind: fc.constant('heartbeat' as const), host, epoch });
const report = fc.record({ kind: fc.constant('report' as const), token, outcome });
const advance = fc.record({
  kind: fc.constant('advance' as const),
  ms: fc.constantFrom(1, 50, 100, 150, 400),
});
const expire = fc.record({ kind: fc.constant('expire' as const) });
const settle = fc.record({ kind: fc.constant('settle' as const), token });

/** Every op, weighted by repeating (registers and assigns often, so attempts come and go). */
export const OP_ARBITRARIES: Array<fc.Arbitrary<Op>> = [
  register,
  register,
  register,
  heartbeat,
  heartbeat,
  assign,
  assign,
  assign,
  fc.record({ kind: fc.constant('start' as const), token }),
  report,
  report,
  fc.record({ kind: fc.constant('requestCancel' as const), token }),
  fc.record({ kind: fc.constant('leave' as const), host, epoch }),
  advance,
  advance,
  expire,
  expire,
  fc.record({ kind: fc.constant('ends' as const) }),
  settle,
  settle,
  fc.record({ kind: fc.constant('live' as const) }),
  fc.record({ kind: fc.constant('hosts' as const) }),
];

function pick(list: readonly string[], i: number): string {
  const item = list[i];
  if (item === undefined) throw new Error(`no item ${i}`);
  return item;
}

function allocationOf(hostId: string, jobId: string) {
  return { id: `${jobId}@${hostId}`, nodeId: hostId, cpu: 1, memoryMb: 512, gpus: [], custom: {} };
}

function poolOf(hostId: string) {
  return { id: hostId, cpu: 8, memoryMb: 16384, gpus: [{ vramMb: 24576 }] };
}

const TYPES = ['train', 'eval'];
const LIVE_STATES = new Set(['assigned', 'running']);

/** The protocol, as plainly as it can be said: it predicts every answer. */
export class LeaseModel {
  now = START_MS;
  lastToken = 0;
  readonly hosts = new Map<string, HostRecord>();
  readonly attempts = new Map<number, AttemptRecord>();

  /** The op made concrete against what the model holds now. */
  resolve(op: Op): Call {
    switch (op.kind) {
      case 'register':
        return { kind: 'register', hostId: pick(HOST_IDS, op.host), leaseMs: op.leaseMs };
      case 'heartbeat':
      case 'leave':
        return {
          kind: op.kind,
          hostId: pick(HOST_IDS, op.host),
          epoch: this.epochOf(pick(HOST_IDS, op.host), op.epoch),
        };
      case 'assign': {
        const hostId = pick(HOST_IDS, op.host);
        return {
          kind: 'assign',
          jobId: pick(JOB_IDS, op.job),
          attempt: op.attempt,
          hostId,
          epoch: this.epochOf(hostId, op.epoch),
        };
      }
      case 'start':
      case 'requestCancel':
      case 'settle':
        return { kind: op.kind, token: this.tokenOf(op.token) };
      case 'report':
        return { kind: 'report', token: this.tokenOf(op.token), outcome: op.outcome };
      default:
        return op;
    }
  }

  private epochOf(hostId: string, pick: EpochPick): number {
    const current = this.hosts.get(hostId)?.epoch ?? 1;
    return pick === 'current' ? current : pick === 'next' ? current + 1 : Math.max(1, current - 1);
  }

  private tokenOf(back: number): number {
    return back < 0 || this.lastToken === 0 ? this.lastToken + 1 : this.lastToken - (back % this.lastToken);
  }

  /** Applies the call to the model; its answer. */
  apply(call: Call): unknown {
    const now = this.now;
    switch (call.kind) {
      case 'register': {
        const epoch = (this.hosts.get(call.hostId)?.epoch ?? 0) + 1;
        this.hosts.set(call.hostId, {
          id: call.hostId,
          epoch,
          pool: poolOf(call.hostId),
          types: TYPES,
          leaseMs: call.leaseMs,
          heartbeatAt: now,
          state: 'alive',
        });
        const expired = this.liveAttempts().filter((a) => a.hostId === call.hostId && a.hostEpoch < epoch);
        return {
          epoch,
          expired: expired.map((a) =>
            this.end(a, 'expired', { kind: 'interrupted', reason: 'reregistered' }),
          ),
        };
      }
      case 'heartbeat': {
        const h = this.aliveHost(call.hostId, call.epoch);
        if (!h) return { ok: false, reason: 'fenced' };
        h.heartbeatAt = now;
        const mine = this.liveAttempts().filter((a) => a.hostId === h.id && a.hostEpoch === h.epoch);
        for (const a of mine) a.leaseUntil = now + h.leaseMs;
        return {
          ok: true,
          live: mine.map((a) => a.token),
          cancels: mine.filter((a) => a.cancelRequested).map((a) => a.token),
        };
      }
      case 'assign': {
        const h = this.aliveHost(call.hostId, call.epoch);
        if (!h) return { ok: false, reason: 'hostNotAlive' };
        if (this.liveAttempts().some((a) => a.jobId === call.jobId))
          return { ok: false, reason: 'liveAttempt' };
        const t = ++this.lastToken;
        this.attempts.set(t, {
          token: t,
          jobId: call.jobId,
          attempt: call.attempt,
          hostId: call.hostId,
          hostEpoch: call.epoch,
          allocation: allocationOf(call.hostId, call.jobId),
          state: 'assigned',
          leaseUntil: now + h.leaseMs,
          cancelRequested: false,
          outcome: null,
          settled: false,
          createdAt: now,
          endedAt: null,
        });
        return { ok: true, token: t };
      }
      case 'start':
      case 'report':
      case 'requestCancel': {
        const a = this.attempts.get(call.token);
        if (!a) return { accepted: false, reason: 'unknown' };
        if (a.state === 'ended' || a.state === 'expired') return { accepted: false, reason: a.state };
        if (call.kind === 'start') a.state = 'running';
        if (call.kind === 'requestCancel') a.cancelRequested = true;
        if (call.kind === 'report')
          this.end(a, 'ended', JSON.parse(JSON.stringify(call.outcome)) as AttemptOutcome);
        return { accepted: true };
      }
      case 'leave': {
        const h = this.aliveHost(call.hostId, call.epoch);
        if (!h) return { ok: false, reason: 'fenced' };
        const mine = this.liveAttempts().filter((a) => a.hostId === h.id && a.hostEpoch === h.epoch);
        if (mine.length > 0) return { ok: false, reason: 'liveAttempts', live: mine.map((a) => a.token) };
        h.state = 'left';
        return { ok: true };
      }
      case 'advance':
        this.now += call.ms;
        return undefined;
      case 'expire': {
        const lost = [...this.hosts.values()]
          .filter((h) => h.state === 'alive' && now - h.heartbeatAt > h.leaseMs)
          .sort((x, y) => (x.id < y.id ? -1 : 1));
        for (const h of lost) h.state = 'lost';
        const expired = this.liveAttempts()
          .filter((a) => lost.some((h) => h.id === a.hostId && h.epoch === a.hostEpoch))
          .map((a) => this.end(a, 'expired', { kind: 'interrupted', reason: 'lost' }));
        return { lostHosts: lost.map((h) => ({ id: h.id, epoch: h.epoch })), expired };
      }
      case 'ends':
        return [...this.attempts.values()]
          .filter((a) => !LIVE_STATES.has(a.state) && !a.settled)
          .sort((x, y) => (x.endedAt ?? 0) - (y.endedAt ?? 0) || x.token - y.token)
          .map((a) => ({ ...a }));
      case 'settle': {
        const a = this.attempts.get(call.token);
        if (!a) return { accepted: false, reason: 'unknown' };
        if (LIVE_STATES.has(a.state)) return { accepted: false, reason: 'live' };
        if (a.settled) return { accepted: false, reason: 'settled' };
        a.settled = true;
        return { accepted: true };
      }
      case 'live':
        return this.liveAttempts().map((a) => ({ ...a }));
      case 'hosts':
        return [...this.hosts.values()].sort((x, y) => (x.id < y.id ? -1 : 1)).map((h) => ({ ...h }));
    }
  }

  private aliveHost(hostId: string, epoch: number): HostRecord | undefined {
    const h = this.hosts.get(hostId);
    return h?.epoch === epoch && h.state === 'alive' ? h : undefined;
  }

  private liveAttempts(): AttemptRecord[] {
    return [...this.attempts.values()]
      .filter((a) => LIVE_STATES.has(a.state))
      .sort((x, y) => x.token - y.token);
  }

  private end(a: AttemptRecord, state: 'ended' | 'expired', outcome: AttemptOutcome): AttemptRecord {
    a.state = state;
    a.outcome = outcome;
    a.endedAt = this.now;
    return { ...a };
  }
}

/** Calls the store as the call says; its answer (`undefined` for the clock's advance). */
export async function perform(store: LeaseStore, call: Call): Promise<unknown> {
  switch (call.kind) {
    case 'register':
      return store.register({
        id: call.hostId,
        pool: poolOf(call.hostId),
        types: TYPES,
        leaseMs: call.leaseMs,
      });
    case 'heartbeat':
      return store.heartbeat(call.hostId, call.epoch);
    case 'leave':
      return store.leave(call.hostId, call.epoch);
    case 'assign':
      return store.assign({
        jobId: call.jobId,
        attempt: call.attempt,
        hostId: call.hostId,
        epoch: call.epoch,
        allocation: allocationOf(call.hostId, call.jobId),
      });
    case 'start':
      return store.start(call.token);
    case 'report':
      return store.report(call.token, call.outcome);
    case 'requestCancel':
      return store.requestCancel(call.token);
    case 'settle':
      return store.settle(call.token);
    case 'expire':
      return store.expire();
    case 'ends':
      return store.ends();
    case 'live':
      return store.live();
    case 'hosts':
      return store.hosts();
    case 'advance':
      return undefined;
  }
}

/** What a store holds: every host, and every attempt of a token the model gave (and one past). */
export type Dump = { hosts: HostRecord[]; attempts: AttemptRecord[]; past: AttemptRecord | undefined };

export async function dump(store: LeaseStore, lastToken: number): Promise<Dump> {
  const tokens = Array.from({ length: lastToken }, (_, i) => i + 1);
  const [hosts, attempts, past] = await Promise.all([
    store.hosts(),
    Promise.all(tokens.map((t) => store.attempt(t))),
    store.attempt(lastToken + 1),
  ]);
  expect(
    attempts.every((a) => a !== undefined),
    'every token given names an attempt',
  ).toBe(true);
  return { hosts, attempts: attempts as AttemptRecord[], past };
}

const MUTATING = new Set<Call['kind']>([
  'register',
  'heartbeat',
  'assign',
  'start',
  'report',
  'requestCancel',
  'leave',
  'settle',
  'expire',
]);

function refused(answer: unknown): boolean {
  const a = answer as { ok?: boolean; accepted?: boolean } | undefined;
  return a?.ok === false || a?.accepted === false;
}

type EndSeen = { state: string; endedAt: number | null; outcome: AttemptOutcome | null };

/** One store's history for the invariants that span steps. */
export class InvariantTracker {
  private readonly endsSeen = new Map<number, EndSeen>();
  private maxToken = 0;

  /** A dump before the call, when the call may refuse (compared with the one after). */
  async before(store: LeaseStore, call: Call, lastToken: number): Promise<Dump | undefined> {
    return MUTATING.has(call.kind) ? dump(store, lastToken) : undefined;
  }

  /** Asserts every invariant after `call` answered `answer`. */
  async check(
    store: LeaseStore,
    call: Call,
    answer: unknown,
    before: Dump | undefined,
    lastToken: number,
  ): Promise<void> {
    const after = await dump(store, lastToken);
    const [ends, live] = await Promise.all([store.ends(), store.live()]);
    expect(after.past, 'no attempt past the last token given').toBeUndefined();

    // A refused operation changed nothing.
    if (before && refused(answer)) expect(after, 'a refused operation changed nothing').toEqual(before);

    // A late report (or start, or cancel) after expiry is refused.
    if ((call.kind === 'report' || call.kind === 'start' || call.kind === 'requestCancel') && before) {
      const was = before.attempts[call.token - 1];
      if (was?.state === 'expired') expect(answer).toEqual({ accepted: false, reason: 'expired' });
      if (was?.state === 'ended') expect(answer).toEqual({ accepted: false, reason: 'ended' });
    }

    // Tokens strictly rise.
    if (call.kind === 'assign' && (answer as { ok: boolean }).ok) {
      const t = (answer as { token: number }).token;
      expect(t, 'tokens strictly rise').toBeGreaterThan(this.maxToken);
      this.maxToken = t;
    }

    // An attempt ends at most once: once ended or expired, its state, end time and outcome stay.
    for (const a of after.attempts) {
      const seen = this.endsSeen.get(a.token);
      const now: EndSeen = { state: a.state, endedAt: a.endedAt, outcome: a.outcome };
      if (seen) expect(now, `attempt ${a.token} ends at most once`).toEqual(seen);
      else if (!LIVE_STATES.has(a.state)) {
        expect(a.endedAt, 'an end has a time').not.toBeNull();
        expect(a.outcome, 'an end has an outcome').not.toBeNull();
        expect(a.state === 'expired', 'expired iff interrupted').toBe(a.outcome?.kind === 'interrupted');
        this.endsSeen.set(a.token, now);
      } else {
        expect([a.endedAt, a.outcome], 'a live attempt has no end').toEqual([null, null]);
      }
    }

    // At most one live attempt per job; live() is exactly the live attempts.
    const liveAttempts = after.attempts.filter((a) => LIVE_STATES.has(a.state));
    expect(live).toEqual(liveAttempts);
    const jobs = liveAttempts.map((a) => a.jobId);
    expect(new Set(jobs).size, 'at most one live attempt per job').toBe(jobs.length);

    // Every live attempt's host is alive at the attempt's epoch.
    for (const a of liveAttempts) {
      const h = after.hosts.find((x) => x.id === a.hostId);
      expect([h?.state, h?.epoch], `live attempt ${a.token}'s host alive at its epoch`).toEqual([
        'alive',
        a.hostEpoch,
      ]);
    }

    // Every ended or expired attempt is in ends() until settled, and never after; oldest first.
    const unsettled = after.attempts
      .filter((a) => !LIVE_STATES.has(a.state) && !a.settled)
      .sort((x, y) => (x.endedAt ?? 0) - (y.endedAt ?? 0) || x.token - y.token);
    expect(ends, 'ends(): the unsettled ends, oldest first').toEqual(unsettled);
    for (const a of after.attempts) {
      if (a.settled) expect(LIVE_STATES.has(a.state), 'only an end is settled').toBe(false);
    }
  }
}

/** What the commands run on: one or more stores (all must answer as the model does), one clock. */
export type LeaseSystem = {
  stores: Array<{ name: string; store: LeaseStore; tracker: InvariantTracker }>;
  clock: { t: number };
};

/** One command: the op made concrete, the model's answer, each store's answer and invariants. */
export class OpCommand implements fc.AsyncCommand<LeaseModel, LeaseSystem> {
  constructor(readonly op: Op) {}

  check(): boolean {
    return true;
  }

  async run(model: LeaseModel, system: LeaseSystem): Promise<void> {
    const call = model.resolve(this.op);
    const lastBefore = model.lastToken;
    const expected = model.apply(call);
    system.clock.t = model.now;
    let first: { name: string; answer: unknown } | undefined;
    for (const { name, store, tracker } of system.stores) {
      const before = await tracker.before(store, call, lastBefore);
      const answer = await perform(store, call);
      if (first)
        expect(answer, `${name} answers as ${first.name} does to ${JSON.stringify(call)}`).toEqual(
          first.answer,
        );
      else first = { name, answer };
      expect(answer, `${name}'s answer to ${JSON.stringify(call)}`).toEqual(expected);
      await tracker.check(store, call, answer, before, model.lastToken);
    }
  }

  toString(): string {
    return JSON.stringify(this.op);
  }
}

/** The command arbitrary for `fc.commands`. */
export const commandArbitraries: Array<fc.Arbitrary<OpCommand>> = OP_ARBITRARIES.map((arb) =>
  arb.map((o) => new OpCommand(o)),
);
