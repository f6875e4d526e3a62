/**
 * The agent (issue 17) in virtual time, on the in-memory lease store, with the test playing the
 * leader (assign, requestCancel, expire): it runs what it was assigned and reports it once its
 * handler has settled; a cancel stops it and its lease stays held until the work stopped; fenced
 * after a partition, it stops everything, waits until it has stopped, then registers anew, and
 * its late report is refused.
 */
import { describe, expect, it } from 'vitest';
import type { HandlerContext } from '../../src/index.js';
import { createAgent, type Agent, type AgentEvent, type AgentJob } from '../../src/distributed/agent.js';
import type { LeaseStore } from '../../src/distributed/leases.js';
import { MemoryLeaseStore } from '../../src/distributed/memory-leases.js';
import type { Allocation } from '../../src/core/types.js';
import { createVirtualClock, type VirtualClock } from '../../src/runtime/clock.js';

/** The agent's epoch (it has registered). */
function epochOf(agent: Agent): number {
  const epoch = agent.currentEpoch;
  if (epoch === undefined) throw new Error('the agent has not registered');
  return epoch;
}

const POOL = { cpu: 8, memoryMb: 16_384, gpus: [{ vramMb: 24_576 }] };
const allocation = (id: string): Allocation => ({
  id,
  nodeId: 'h1',
  cpu: 1,
  memoryMb: 512,
  gpus: [],
  custom: {},
});

/** A lease store the test can cut off from the agent (a network partition): calls throw. */
function partitionable(inner: LeaseStore): LeaseStore & { cut: boolean } {
  const wrapper = { cut: false } as LeaseStore & { cut: boolean };
  for (const key of Object.getOwnPropertyNames(Object.getPrototypeOf(inner)) as Array<keyof LeaseStore>) {
    if (key === ('constructor' as never)) continue;
    (wrapper as unknown as Record<string, unknown>)[key] = async (...args: unknown[]) => {
      if (wrapper.cut) throw new Error('connection terminated unexpectedly');
      return (inner[key] as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
    };
  }
  return wrapper;
}

function world(jobs: Record<string, AgentJob>, leaseMs = 3_000) {
  const clock: VirtualClock = createVirtualClock({ startAt: 1_000 });
  const store = new MemoryLeaseStore({ now: () => clock.now() });
  const leases = partitionable(store);
  const calls: Array<{ id: string; attempt: number; payload: unknown }> = [];
  const events: AgentEvent[] = [];
  const agent = createAgent({
    leases,
    jobs: { job: async (id) => jobs[id] },
    host: { id: 'h1', leaseMs },
    resources: POOL,
    clock,
    handlers: {
      work: async ({ id, attempt, payload, signal }: HandlerContext<{ ms: number; stopMs?: number }>) => {
        calls.push({ id, attempt, payload });
        await new Promise<void>((resolve, reject) => {
          const done = clock.setTimeout(resolve, payload.ms);
          // Stopping takes a while (a process writing a checkpoint, say): `stopMs` after the abort.
          signal.addEventListener('abort', () => {
            clock.clearTimeout(done);
            clock.setTimeout(() => reject(signal.reason as Error), payload.stopMs ?? 0);
          });
        });
        return { id, attempt };
      },
    },
  });
  agent.events$.subscribe((e) => events.push(e));
  return { clock, store, leases, agent, calls, events };
}

describe('agent', () => {
  it('registers, runs what the leader assigned (payload, allocation), and reports its end once the handler settled', async () => {
    const { clock, store, agent, calls, events } = world({ j1: { type: 'work', payload: { ms: 500 } } });
    await agent.start();
    const [host] = await store.hosts();
    expect(host).toMatchObject({ id: 'h1', state: 'alive', types: ['work'], leaseMs: 3_000, pool: POOL });
    const assigned = await store.assign({
      jobId: 'j1',
      attempt: 1,
      hostId: 'h1',
      epoch: epochOf(agent),
      allocation: allocation('a1'),
    });
    if (!assigned.ok) throw new Error('assign refused');
    await agent.poke();
    expect(calls).toEqual([{ id: 'j1', attempt: 1, payload: { ms: 500 } }]);
    expect(await store.attempt(assigned.token)).toMatchObject({ state: 'running' });
    await clock.advanceBy(499);
    expect((await store.attempt(assigned.token))?.state).toBe('running');
    await clock.advanceBy(1);
    expect(await store.attempt(assigned.token)).toMatchObject({
      state: 'ended',
      outcome: { kind: 'completed', output: { id: 'j1', attempt: 1 } },
    });
    expect(events.map((e) => e.type).filter((t) => t !== 'agent.heartbeat')).toEqual([
      'agent.registered',
      'attempt.started',
      'attempt.reported',
    ]);
    expect(events.filter((e) => e.type === 'agent.heartbeat').length).toBeGreaterThan(0);
    expect(agent.running()).toEqual([]);
    await agent.stop();
    expect((await store.hosts())[0]?.state).toBe('left');
  });

  it('heartbeats on its own: a lease never runs out while the agent is reachable', async () => {
    const { clock, store, agent } = world({ j1: { type: 'work', payload: { ms: 60_000 } } });
    await agent.start();
    const assigned = await store.assign({
      jobId: 'j1',
      attempt: 1,
      hostId: 'h1',
      epoch: epochOf(agent),
      allocation: allocation('a1'),
    });
    if (!assigned.ok) throw new Error('assign refused');
    // Found at its next heartbeat (1 s: a third of its lease), without a poke.
    await clock.advanceBy(1_000);
    expect(agent.running()).toHaveLength(1);
    for (let t = 0; t < 50; t++) {
      await clock.advanceBy(1_000);
      expect((await store.expire()).expired).toEqual([]);
    }
    await clock.advanceBy(10_000);
    expect((await store.attempt(assigned.token))?.state).toBe('ended');
    await agent.stop();
  });

  it('a cancel stops the attempt; the attempt stays live (its units held) until the handler has stopped', async () => {
    const { clock, store, agent } = world({ j1: { type: 'work', payload: { ms: 60_000, stopMs: 2_000 } } });
    await agent.start();
    const assigned = await store.assign({
      jobId: 'j1',
      attempt: 1,
      hostId: 'h1',
      epoch: epochOf(agent),
      allocation: allocation('a1'),
    });
    if (!assigned.ok) throw new Error('assign refused');
    await agent.poke();
    await store.requestCancel(assigned.token);
    await agent.poke();
    // Told to stop; still stopping for 2 s: the attempt is not ended, its resources not free.
    await clock.advanceBy(1_999);
    expect((await store.attempt(assigned.token))?.state).toBe('running');
    await clock.advanceBy(1);
    expect(await store.attempt(assigned.token)).toMatchObject({
      state: 'ended',
      outcome: { kind: 'cancelled' },
    });
    await agent.stop();
  });

  it('an attempt cancelled before it started is reported cancelled, never run; a type it cannot run fails', async () => {
    const { store, agent, calls } = world({
      j1: { type: 'work', payload: { ms: 10 } },
      j2: { type: 'render', payload: {} },
    });
    await agent.start();
    const epoch = epochOf(agent);
    const a1 = await store.assign({
      jobId: 'j1',
      attempt: 1,
      hostId: 'h1',
      epoch,
      allocation: allocation('a1'),
    });
    const a2 = await store.assign({
      jobId: 'j2',
      attempt: 1,
      hostId: 'h1',
      epoch,
      allocation: allocation('a2'),
    });
    if (!a1.ok || !a2.ok) throw new Error('assign refused');
    await store.requestCancel(a1.token);
    await agent.poke();
    expect(calls).toEqual([]);
    expect(await store.attempt(a1.token)).toMatchObject({ state: 'ended', outcome: { kind: 'cancelled' } });
    expect(await store.attempt(a2.token)).toMatchObject({
      state: 'ended',
      outcome: {
        kind: 'failed',
        error: { message: expect.stringContaining('no handler for job type "render"') },
      },
    });
    await agent.stop();
  });

  it('fenced after a partition: stops all it runs, registers again only once that work stopped; its late report is refused', async () => {
    const { clock, store, leases, agent, events } = world({
      j1: { type: 'work', payload: { ms: 60_000, stopMs: 5_000 } },
    });
    await agent.start();
    const first = epochOf(agent);
    const assigned = await store.assign({
      jobId: 'j1',
      attempt: 1,
      hostId: 'h1',
      epoch: first,
      allocation: allocation('a1'),
    });
    if (!assigned.ok) throw new Error('assign refused');
    await agent.poke();
    leases.cut = true;
    await clock.advanceBy(3_500);
    // The leader: the host's lease ran out, its attempt is interrupted (and may run elsewhere).
    const expired = await store.expire();
    expect(expired.expired.map((a) => a.token)).toEqual([assigned.token]);
    expect(events.some((e) => e.type === 'agent.error')).toBe(true);
    leases.cut = false;
    await clock.advanceBy(1_000);
    // Fenced: it aborted its work, which takes 5 s to stop; no new epoch until then.
    expect(events.find((e) => e.type === 'agent.fenced')).toMatchObject({ epoch: first, stopping: 1 });
    expect(agent.currentEpoch).toBeUndefined();
    expect((await store.hosts())[0]).toMatchObject({ epoch: first, state: 'lost' });
    // Fenced at its heartbeat at 5,000 ms; its work stops at 10,000 ms.
    await clock.advanceBy(4_400);
    expect(agent.currentEpoch).toBeUndefined();
    await clock.advanceBy(200);
    expect(agent.currentEpoch).toBeGreaterThan(first);
    expect((await store.hosts())[0]).toMatchObject({ state: 'alive' });
    // Its report of the old attempt came too late: refused, the attempt stays interrupted.
    expect(events.find((e) => e.type === 'attempt.refused')).toMatchObject({ token: assigned.token });
    expect(await store.attempt(assigned.token)).toMatchObject({
      state: 'expired',
      outcome: { kind: 'interrupted' },
    });
    expect(agent.running()).toEqual([]);
    await agent.stop();
  });

  it('a report the database could not take is tried again at the next pass', async () => {
    const { clock, store, leases, agent } = world({ j1: { type: 'work', payload: { ms: 100 } } });
    await agent.start();
    const assigned = await store.assign({
      jobId: 'j1',
      attempt: 1,
      hostId: 'h1',
      epoch: epochOf(agent),
      allocation: allocation('a1'),
    });
    if (!assigned.ok) throw new Error('assign refused');
    await agent.poke();
    leases.cut = true;
    await clock.advanceBy(100);
    expect((await store.attempt(assigned.token))?.state).toBe('running');
    leases.cut = false;
    await clock.advanceBy(1_000);
    expect(await store.attempt(assigned.token)).toMatchObject({
      state: 'ended',
      outcome: { kind: 'completed' },
    });
    await agent.stop();
  });

  it('refuses bad options with InvalidOptionError naming the field', () => {
    const clock = createVirtualClock();
    const leases = new MemoryLeaseStore({ now: () => clock.now() });
    const base = { leases, jobs: { job: async () => undefined }, clock, handlers: { work: async () => 1 } };
    expect(() => createAgent({ ...base, host: { id: '' }, resources: POOL })).toThrow(
      expect.objectContaining({ field: 'host.id' }),
    );
    expect(() => createAgent({ ...base, host: { id: 'h', leaseMs: 10 }, resources: POOL })).toThrow(
      expect.objectContaining({ field: 'host.leaseMs' }),
    );
    expect(() =>
      createAgent({ ...base, host: { id: 'h', leaseMs: 3_000 }, resources: POOL, heartbeatMs: 3_000 }),
    ).toThrow(expect.objectContaining({ field: 'heartbeatMs' }));
    expect(() => createAgent({ ...base, host: { id: 'h', types: ['render'] }, resources: POOL })).toThrow(
      expect.objectContaining({ field: 'host.types' }),
    );
  });
});
