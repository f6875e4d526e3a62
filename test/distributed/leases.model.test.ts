/**
 * The lease and fencing protocol (docs/distributed.md) on `MemoryLeaseStore`, model-based: random
 * sequences of register, heartbeat, assign, start, report (from current, stale and never-given
 * tokens, and from fenced agents), requestCancel, leave, a virtual clock's advance, expire, ends
 * and settle. A plain model (lease-commands.ts) predicts every answer; after every command the
 * invariants of the doc are checked on the store: an attempt ends at most once, a refused operation
 * changed nothing, at most one live attempt per job, every live attempt's host alive at its epoch,
 * a late report after expiry refused, tokens strictly rising, every end in `ends()` until settled
 * and never after. Plus the cases by hand, and the typed errors for bad input.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, MemoryLeaseStore, type LeaseStore } from '../../src/index.js';
import { numRuns } from '../helpers/num-runs.js';
import {
  commandArbitraries,
  InvariantTracker,
  LeaseModel,
  START_MS,
  type LeaseSystem,
} from './lease-commands.js';

function fresh(): { store: MemoryLeaseStore; clock: { t: number } } {
  const clock = { t: START_MS };
  return { store: new MemoryLeaseStore({ now: () => clock.t }), clock };
}

const POOL = { id: 'h', cpu: 4 };
const ALLOCATION = { id: 'x', nodeId: 'h', cpu: 1, memoryMb: 1, gpus: [], custom: {} };

async function registered(store: LeaseStore, id = 'h', leaseMs = 100) {
  return (await store.register({ id, pool: POOL, types: ['t'], leaseMs })).epoch;
}

async function assigned(store: LeaseStore, jobId: string, hostId = 'h', epoch = 1): Promise<number> {
  const r = await store.assign({ jobId, attempt: 1, hostId, epoch, allocation: ALLOCATION });
  if (!r.ok) throw new Error(`assign refused: ${r.reason}`);
  return r.token;
}

describe('MemoryLeaseStore, model-based', () => {
  it('answers as the model predicts, and keeps every invariant after every command', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.commands(commandArbitraries, { maxCommands: 60, size: 'max' }),
        async (commands) => {
          const { store, clock } = fresh();
          const system: LeaseSystem = {
            stores: [{ name: 'memory', store, tracker: new InvariantTracker() }],
            clock,
          };
          await fc.asyncModelRun(() => ({ model: new LeaseModel(), real: system }), commands);
        },
      ),
      { numRuns: numRuns(300) },
    );
  });
});

describe('MemoryLeaseStore, by hand', () => {
  it('a fenced agent’s late report after its host was lost is refused, and changes nothing', async () => {
    const { store, clock } = fresh();
    const epoch = await registered(store);
    const token = await assigned(store, 'j');
    expect(await store.start(token)).toEqual({ accepted: true });
    clock.t += 100;
    expect(await store.expire()).toMatchObject({ lostHosts: [] }); // exactly at the lease: not yet
    clock.t += 1;
    const expired = await store.expire();
    expect(expired.lostHosts).toEqual([{ id: 'h', epoch }]);
    expect(expired.expired).toMatchObject([
      { token, state: 'expired', outcome: { kind: 'interrupted', reason: 'lost' } },
    ]);
    expect(await store.heartbeat('h', epoch)).toEqual({ ok: false, reason: 'fenced' });
    expect(await store.report(token, { kind: 'completed', output: 1 })).toEqual({
      accepted: false,
      reason: 'expired',
    });
    expect((await store.attempt(token))?.outcome).toEqual({ kind: 'interrupted', reason: 'lost' });
  });

  it('a heartbeat renews the lease of the host and of its live attempts, and lists cancels', async () => {
    const { store, clock } = fresh();
    const epoch = await registered(store);
    const t1 = await assigned(store, 'j1');
    const t2 = await assigned(store, 'j2');
    expect(await store.requestCancel(t2)).toEqual({ accepted: true });
    clock.t += 90;
    expect(await store.heartbeat('h', epoch)).toEqual({ ok: true, live: [t1, t2], cancels: [t2] });
    expect((await store.attempt(t1))?.leaseUntil).toBe(clock.t + 100);
    clock.t += 90;
    expect((await store.expire()).lostHosts).toEqual([]);
  });

  it('registering again expires the earlier epoch’s live attempts and returns them; a job gets one live attempt', async () => {
    const { store } = fresh();
    await registered(store);
    const token = await assigned(store, 'j');
    expect(
      await store.assign({ jobId: 'j', attempt: 2, hostId: 'h', epoch: 1, allocation: ALLOCATION }),
    ).toEqual({
      ok: false,
      reason: 'liveAttempt',
    });
    const again = await store.register({ id: 'h', pool: POOL, types: ['t'], leaseMs: 100 });
    expect(again.epoch).toBe(2);
    expect(again.expired).toMatchObject([
      { token, outcome: { kind: 'interrupted', reason: 'reregistered' } },
    ]);
    expect(
      await store.assign({ jobId: 'j', attempt: 2, hostId: 'h', epoch: 1, allocation: ALLOCATION }),
    ).toEqual({
      ok: false,
      reason: 'hostNotAlive',
    });
    const next = await store.assign({
      jobId: 'j',
      attempt: 2,
      hostId: 'h',
      epoch: 2,
      allocation: ALLOCATION,
    });
    expect(next).toEqual({ ok: true, token: token + 1 });
  });

  it('ends() holds each end until settled, oldest first; settle is accepted once', async () => {
    const { store, clock } = fresh();
    await registered(store);
    const t1 = await assigned(store, 'j1');
    const t2 = await assigned(store, 'j2');
    expect(await store.settle(t1)).toEqual({ accepted: false, reason: 'live' });
    await store.report(t2, { kind: 'failed', error: { kind: 'error', message: 'boom' } });
    clock.t += 1;
    await store.report(t1, { kind: 'cancelled' });
    expect((await store.ends()).map((a) => a.token)).toEqual([t2, t1]);
    expect(await store.report(t1, { kind: 'completed' })).toEqual({ accepted: false, reason: 'ended' });
    expect(await store.settle(t2)).toEqual({ accepted: true });
    expect(await store.settle(t2)).toEqual({ accepted: false, reason: 'settled' });
    expect(await store.settle(99)).toEqual({ accepted: false, reason: 'unknown' });
    expect((await store.ends()).map((a) => a.token)).toEqual([t1]);
  });

  it('leave is refused while the host holds live attempts, and accepted after they ended', async () => {
    const { store } = fresh();
    const epoch = await registered(store);
    const token = await assigned(store, 'j');
    expect(await store.leave('h', epoch)).toEqual({ ok: false, reason: 'liveAttempts', live: [token] });
    await store.report(token, { kind: 'completed' });
    expect(await store.leave('h', epoch)).toEqual({ ok: true });
    expect((await store.hosts())[0]?.state).toBe('left');
    expect(await store.heartbeat('h', epoch)).toEqual({ ok: false, reason: 'fenced' });
    expect(await store.leave('h', epoch)).toEqual({ ok: false, reason: 'fenced' });
  });

  it('refuses bad input with InvalidOptionError naming the field and the allowed range', async () => {
    const { store } = fresh();
    const bad: Array<[() => Promise<unknown>, string]> = [
      [() => store.register({ id: '', pool: POOL, types: [], leaseMs: 10 }), 'host.id'],
      [() => store.register({ id: 'h', pool: POOL, types: [], leaseMs: 0 }), 'host.leaseMs'],
      [() => store.register({ id: 'h', pool: POOL, types: [], leaseMs: 2 ** 31 }), 'host.leaseMs'],
      [() => store.register({ id: 'h', pool: POOL, types: [''], leaseMs: 10 }), 'host.types'],
      [() => store.heartbeat('h', 0), 'epoch'],
      [() => store.start(1.5), 'token'],
      [() => store.report(1, { kind: 'done' } as never), 'outcome.kind'],
      [() => store.report(1, { kind: 'failed' } as never), 'outcome.error'],
      [() => store.report(1, { kind: 'completed', output: { a: ['x\0'] } }), 'outcome.output'],
      [() => store.register({ id: 'h', pool: { 'k\0': 1 }, types: [], leaseMs: 10 }), 'host.pool'],
      [
        () => store.assign({ jobId: 'j', attempt: 0, hostId: 'h', epoch: 1, allocation: ALLOCATION }),
        'attempt',
      ],
    ];
    for (const [call, field] of bad) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, field).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).field).toBe(field);
    }
    expect(await store.hosts()).toEqual([]);
    expect(() => new MemoryLeaseStore({} as never)).toThrow(InvalidOptionError);
  });
});
