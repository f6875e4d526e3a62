/**
 * The lease and fencing protocol of docs/distributed.md (issue 17): how the leader hands attempts
 * to agents (one per host) and knows, without trusting any host's clock, which of them still run.
 *
 * - A host **registers** and gets a new **epoch**; it stays `alive` while it **heartbeats** within
 *   its lease (`leaseMs`). A heartbeat of an older epoch, or of a host no longer alive, is
 *   **fenced**: that agent must stop all it runs and register again.
 * - The leader **assigns** an attempt of a job to a host at an epoch and gets a **token** (the
 *   fencing token: from one rising sequence, never reused). Every later word about the attempt
 *   (`start`, `report`, `requestCancel`, `settle`) names the token, and is accepted only while the
 *   attempt is in a state that allows it: a report with an expired or already ended token is
 *   refused, so a fenced agent's late report changes nothing and no attempt ends twice.
 * - `expire()` (the leader, on a timer) turns hosts whose lease ran out into `lost`, and their live
 *   attempts into `expired` with outcome `interrupted`. Registering again does the same to the
 *   live attempts of the host's earlier epochs (that agent process is gone).
 * - Ended and expired attempts stay in `ends()` until the leader `settle`s each one, in the
 *   transaction that writes its job's transition, so a new leader applies each end exactly once.
 *
 * Every time is the store's own clock, in milliseconds: the in-memory fake's injected `now()`,
 * the database's `clock_timestamp()` for PostgreSQL (or an injected `now()` there too, for tests
 * in virtual time). A host is lost when the store's time is **past** `heartbeatAt + leaseMs`
 * (strictly); `expire()` is the only thing that makes it so — until it runs, a late heartbeat of
 * an alive host is still accepted.
 *
 * Decisions the design left open, as built:
 * - `start` of an attempt already `running` is accepted and changes nothing (an agent may repeat
 *   it after a lost connection); so is a second `requestCancel`.
 * - `leave` (a clean goodbye) is refused while the host holds live attempts (`liveAttempts`, with
 *   their tokens): the agent knows how each of them ended, so it reports them first; an agent
 *   that cannot simply stops heartbeating and its attempts expire as `interrupted`.
 * - Epochs count per host: 1 at the first registration, one more at each later one.
 */
import { InvalidOptionError } from '../core/errors.js';
import type { Allocation, JobError } from '../core/types.js';
import type { JsonValue } from '../store/store.js';

/** A fencing token: names one attempt, from a rising sequence, never reused. */
export type LeaseToken = number;

/** A host's state: `alive`, `lost` (its lease ran out), `left` (it said goodbye). */
export type HostState = 'alive' | 'lost' | 'left';

/**
 * An attempt's state: `assigned` and `running` are live; `ended` (its agent reported how it
 * ended) and `expired` (its lease ran out, or its host registered again) are final.
 */
export type AttemptState = 'assigned' | 'running' | 'ended' | 'expired';

/** How an agent says an attempt ended. */
export type ReportedOutcome =
  | { kind: 'completed'; output?: JsonValue }
  | { kind: 'failed'; error: JobError }
  | { kind: 'cancelled' }
  | { kind: 'timedOut' };

/** Why an attempt was expired: its host's lease ran out (`lost`), or the host registered again. */
export type InterruptReason = 'lost' | 'reregistered';

/** How an attempt ended: as its agent reported, or `interrupted` when it expired. */
export type AttemptOutcome = ReportedOutcome | { kind: 'interrupted'; reason: InterruptReason };

/** A host's registration: its id, its node (pool) description, the job types it serves, its lease. */
export type HostRegistration = {
  id: string;
  /** The node it offers, as JSON (a pool file's node description). */
  pool: JsonValue;
  /** The job types it runs. */
  types: string[];
  /** How long after its last heartbeat it counts as alive (ms, an integer ≥ 1). */
  leaseMs: number;
};

/** A host as the store holds it. */
export type HostRecord = {
  id: string;
  epoch: number;
  pool: JsonValue;
  types: string[];
  leaseMs: number;
  /** Store time (ms) of its registration or last accepted heartbeat. */
  heartbeatAt: number;
  state: HostState;
};

/** An attempt as the store holds it. */
export type AttemptRecord = {
  token: LeaseToken;
  jobId: string;
  /** The job's attempt number (1, 2, …). */
  attempt: number;
  hostId: string;
  /** The host's epoch the attempt was assigned at. */
  hostEpoch: number;
  allocation: Allocation;
  state: AttemptState;
  /** Store time (ms) its lease runs to (renewed by its host's heartbeats while it is live). */
  leaseUntil: number;
  cancelRequested: boolean;
  /** How it ended; `null` while it is live. */
  outcome: AttemptOutcome | null;
  /** Whether the leader has applied its end to the job. */
  settled: boolean;
  /** Store time (ms) it was assigned. */
  createdAt: number;
  /** Store time (ms) it ended or expired; `null` while it is live. */
  endedAt: number | null;
};

/** What `assign` is given. */
export type AssignRequest = {
  jobId: string;
  /** The job's attempt number (an integer ≥ 1). */
  attempt: number;
  hostId: string;
  /** The host's epoch the leader saw: refused unless the host is alive at exactly this one. */
  epoch: number;
  allocation: Allocation;
};

export type RegisterResult = {
  epoch: number;
  /** Live attempts of the host's earlier epochs, now expired (interrupted): the leader tells their jobs. */
  expired: AttemptRecord[];
};

export type HeartbeatResult =
  | {
      ok: true;
      /** Tokens of the host's live attempts at this epoch (rising). */
      live: LeaseToken[];
      /** Those of them whose cancel the leader requested (rising). */
      cancels: LeaseToken[];
    }
  | { ok: false; reason: 'fenced' };

export type AssignResult =
  { ok: true; token: LeaseToken } | { ok: false; reason: 'hostNotAlive' | 'liveAttempt' };

/** The answer to `start`, `report` and `requestCancel`. */
export type TokenResult = { accepted: true } | { accepted: false; reason: 'expired' | 'ended' | 'unknown' };

/** The answer to `settle`. */
export type SettleResult = { accepted: true } | { accepted: false; reason: 'live' | 'settled' | 'unknown' };

export type LeaveResult =
  { ok: true } | { ok: false; reason: 'fenced' } | { ok: false; reason: 'liveAttempts'; live: LeaseToken[] };

export type ExpireResult = {
  /** Hosts whose lease ran out, now `lost` (by id). */
  lostHosts: Array<{ id: string; epoch: number }>;
  /** Their live attempts, now expired (interrupted), by token. */
  expired: AttemptRecord[];
};

/** The store of hosts and attempts that the lease and fencing protocol runs on. */
export interface LeaseStore {
  /** A host (re)registers: a new epoch, state `alive`; live attempts of its earlier epochs expire. */
  register(host: HostRegistration): Promise<RegisterResult>;
  /** Renews the host's lease and its live attempts' leases, or says it is fenced (nothing changed). */
  heartbeat(hostId: string, epoch: number): Promise<HeartbeatResult>;
  /** The leader gives an attempt to a host at an epoch: a new token, or refused (nothing changed). */
  assign(request: AssignRequest): Promise<AssignResult>;
  /** `assigned` → `running` (accepted, unchanged, when already running). */
  start(token: LeaseToken): Promise<TokenResult>;
  /** The attempt's end: accepted once, only while it is live. */
  report(token: LeaseToken, outcome: ReportedOutcome): Promise<TokenResult>;
  /** Asks the host to stop a live attempt (it stays live until reported or expired). */
  requestCancel(token: LeaseToken): Promise<TokenResult>;
  /** A clean goodbye: the host becomes `left`; refused while it holds live attempts. */
  leave(hostId: string, epoch: number): Promise<LeaveResult>;
  /** Hosts past their lease become `lost`; their live attempts `expired` (interrupted). */
  expire(): Promise<ExpireResult>;
  /** Attempts ended or expired and not yet settled, oldest end first (then by token). */
  ends(): Promise<AttemptRecord[]>;
  /** Marks an ended or expired attempt applied to its job. */
  settle(token: LeaseToken): Promise<SettleResult>;
  /** Every live attempt (by token): what a new leader adopts. */
  live(): Promise<AttemptRecord[]>;
  /** One attempt, live or not, or `undefined` for a token never given. */
  attempt(token: LeaseToken): Promise<AttemptRecord | undefined>;
  /** Every host ever registered, by id. */
  hosts(): Promise<HostRecord[]>;
}

/** The largest lease (ms) a host may ask for: the `integer` column's range. */
export const MAX_LEASE_MS = 2 ** 31 - 1;

const REPORTED_KINDS = ['completed', 'failed', 'cancelled', 'timedOut'] as const;

function checkText(field: string, value: unknown): void {
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw new InvalidOptionError(field, value, 'a non-empty string without NUL characters');
  }
}

function checkInteger(field: string, value: unknown, min: number, max: number, allowed: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(field, value, allowed);
  }
}

/** Whether a JSON value holds a NUL character in a string or a key (PostgreSQL's jsonb refuses it). */
function hasNul(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('\0');
  if (Array.isArray(value)) return value.some(hasNul);
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).some(([key, item]) => key.includes('\0') || hasNul(item));
  }
  return false;
}

function checkJson(field: string, value: unknown, allowed: string): void {
  if (value === undefined || hasNul(value)) {
    throw new InvalidOptionError(field, value, `${allowed} (JSON without NUL characters)`);
  }
}

/** Refuses a malformed registration with an `InvalidOptionError` naming the field. */
export function checkRegistration(host: HostRegistration): void {
  checkText('host.id', host.id);
  if (
    !Array.isArray(host.types) ||
    host.types.some((t) => typeof t !== 'string' || t.length === 0 || t.includes('\0'))
  ) {
    throw new InvalidOptionError('host.types', host.types, 'an array of non-empty job type names (no NUL)');
  }
  checkInteger('host.leaseMs', host.leaseMs, 1, MAX_LEASE_MS, `an integer from 1 to ${MAX_LEASE_MS} (ms)`);
  checkJson('host.pool', host.pool, 'a node description');
}

export function checkHost(hostId: string, epoch: number): void {
  checkText('hostId', hostId);
  checkInteger('epoch', epoch, 1, Number.MAX_SAFE_INTEGER, 'an integer ≥ 1 (a registration’s epoch)');
}

export function checkToken(token: LeaseToken): void {
  checkInteger('token', token, 1, Number.MAX_SAFE_INTEGER, 'an integer ≥ 1 (a token assign gave)');
}

export function checkAssign(request: AssignRequest): void {
  checkText('jobId', request.jobId);
  checkInteger('attempt', request.attempt, 1, 2 ** 31 - 1, `an integer from 1 to ${2 ** 31 - 1}`);
  checkHost(request.hostId, request.epoch);
  if (typeof request.allocation !== 'object' || request.allocation === null) {
    throw new InvalidOptionError('allocation', request.allocation, 'an allocation object');
  }
  checkJson('allocation', request.allocation, 'an allocation object');
}

export function checkOutcome(outcome: ReportedOutcome): void {
  const kind = (outcome as { kind?: unknown } | null)?.kind;
  if (!REPORTED_KINDS.includes(kind as (typeof REPORTED_KINDS)[number])) {
    throw new InvalidOptionError('outcome.kind', kind, `one of ${REPORTED_KINDS.join(', ')}`);
  }
  if (outcome.kind === 'failed') {
    const error = outcome.error as Partial<JobError> | undefined;
    if (typeof error !== 'object' || error === null || typeof error.message !== 'string' || !error.kind) {
      throw new InvalidOptionError('outcome.error', error, 'a JobError ({ kind, message })');
    }
    checkJson('outcome.error', error, 'a JobError ({ kind, message })');
  }
  if (outcome.kind === 'completed' && outcome.output !== undefined) {
    checkJson('outcome.output', outcome.output, 'a JSON value');
  }
}

/** The outcome as stored: only its own fields, a JSON copy (what PostgreSQL's jsonb gives back too). */
export function storedOutcome(outcome: ReportedOutcome): ReportedOutcome {
  switch (outcome.kind) {
    case 'completed':
      return outcome.output === undefined
        ? { kind: 'completed' }
        : { kind: 'completed', output: jsonCopy(outcome.output) };
    case 'failed':
      return { kind: 'failed', error: jsonCopy(outcome.error) };
    default:
      return { kind: outcome.kind };
  }
}

/** A deep copy through JSON: what a jsonb column gives back (undefined members dropped). */
export function jsonCopy<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
