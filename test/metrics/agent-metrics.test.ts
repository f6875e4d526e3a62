/**
 * The agent's Prometheus metrics (issue 17, "Operations"), in virtual time, on the in-memory lease
 * store with the test playing the leader (assign, requestCancel, expire): attempts running and
 * ended by outcome, refusals, registrations, fencings, errors and the heartbeat age, read back
 * from the scraped text as numbers.
 */
import { describe, expect, it } from 'vitest';
import { Subject } from 'rxjs';
import type { HandlerContext } from '../../src/index.js';
import { createAgent, type Agent, type AgentJob } from '../../src/distributed/agent.js';
import type { LeaseStore } from '../../src/distributed/leases.js';
import { MemoryLeaseStore } from '../../src/distributed/memory-leases.js';
import type { Allocation } from '../../src/core/types.js';
import { createVirtualClock } from '../../src/runtime/clock.js';
import { agentMetrics, type AgentMetricsEvent } from '../../src/metrics/agent-metrics.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { parseExposition, type Exposition } from './exposition.js';

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

type Work = { ms: number; stopMs?: number; fail?: boolean };

function world(jobs: Record<string, AgentJob>) {
  const clock = createVirtualClock({ startAt: 1_000 });
  const store = new MemoryLeaseStore({ now: () => clock.now() });
  const leases = partitionable(store);
  const agent = createAgent({
    leases,
    jobs: { job: async (id) => jobs[id] },
    host: { id: 'h1', leaseMs: 3_000 },
    resources: POOL,
    clock,
    handlers: {
      work: async ({ payload, signal }: HandlerContext<Work>) => {
        await new Promise<void>((resolve, reject) => {
          const done = clock.setTimeout(resolve, payload.ms);
          signal.addEventListener('abort', () => {
            clock.clearTimeout(done);
            clock.setTimeout(() => reject(signal.reason as Error), payload.stopMs ?? 0);
          });
        });
        if (payload.fail) throw new Error('it broke');
        return 'ok';
      },
    },
  });
  const metrics = agentMetrics(agent, { clock });
  const scrape = async (): Promise<Exposition> => parseExposition(await metrics.registry.metrics());
  return { clock, store, leases, agent, metrics, scrape };
}

function epochOf(agent: Agent): number {
  const epoch = agent.currentEpoch;
  if (epoch === undefined) throw new Error('the agent has not registered');
  return epoch;
}

async function assign(store: MemoryLeaseStore, agent: Agent, jobId: string): Promise<number> {
  const assigned = await store.assign({
    jobId,
    attempt: 1,
    hostId: 'h1',
    epoch: epochOf(agent),
    allocation: allocation(`a-${jobId}`),
  });
  if (!assigned.ok) throw new Error('assign refused');
  return assigned.token;
}

function outcomes(m: Exposition): Record<string, number> {
  return Object.fromEntries(m.all('ai_batch_agent_attempts_total').map((s) => [s.labels.outcome, s.value]));
}

describe('agentMetrics', () => {
  it('counts attempts as they start and end, by outcome; running is read at scrape time', async () => {
    const { clock, store, agent, scrape, metrics } = world({
      ok: { type: 'work', payload: { ms: 500 } },
      bad: { type: 'work', payload: { ms: 100, fail: true } },
      stop: { type: 'work', payload: { ms: 60_000, stopMs: 300 } },
      never: { type: 'work', payload: { ms: 10 } },
    });
    let m = await scrape();
    expect(m.value('ai_batch_agent_registered')).toBe(0);
    expect(m.value('ai_batch_agent_registrations_total')).toBe(0);
    // Not registered yet: it ages from when the metrics were made.
    await clock.advanceBy(200);
    m = await scrape();
    expect(m.value('ai_batch_agent_heartbeat_age_seconds')).toBe(0.2);
    await agent.start();
    m = await scrape();
    expect(m.value('ai_batch_agent_registered')).toBe(1);
    expect(m.value('ai_batch_agent_registrations_total')).toBe(1);
    expect(m.value('ai_batch_agent_heartbeat_age_seconds')).toBe(0);
    expect(m.value('ai_batch_agent_attempts_running')).toBe(0);

    await assign(store, agent, 'ok');
    await assign(store, agent, 'bad');
    const stop = await assign(store, agent, 'stop');
    const never = await assign(store, agent, 'never');
    await store.requestCancel(never);
    await agent.poke();
    m = await scrape();
    expect(m.value('ai_batch_agent_attempts_running')).toBe(3);
    expect(m.value('ai_batch_agent_attempts_started_total')).toBe(3);
    // Cancelled before it started: reported, never started.
    expect(outcomes(m)).toEqual({ completed: 0, failed: 0, cancelled: 1, timeout: 0 });

    await clock.advanceBy(100);
    m = await scrape();
    expect(m.value('ai_batch_agent_attempts_running')).toBe(2);
    expect(outcomes(m)).toEqual({ completed: 0, failed: 1, cancelled: 1, timeout: 0 });

    await store.requestCancel(stop);
    await agent.poke();
    await clock.advanceBy(400);
    m = await scrape();
    expect(m.value('ai_batch_agent_attempts_running')).toBe(0);
    expect(outcomes(m)).toEqual({ completed: 1, failed: 1, cancelled: 2, timeout: 0 });
    expect(m.value('ai_batch_agent_attempts_refused_total', { reason: 'expired' })).toBe(0);
    expect(m.value('ai_batch_agent_errors_total')).toBe(0);
    expect(m.value('ai_batch_agent_fenced_total')).toBe(0);
    await agent.stop();
    metrics.close();
  });

  it('a partition: errors, then fenced; registered again; the late report refused (expired); the heartbeat age', async () => {
    const { clock, store, leases, agent, scrape, metrics } = world({
      j1: { type: 'work', payload: { ms: 60_000, stopMs: 5_000 } },
    });
    await agent.start();
    await assign(store, agent, 'j1');
    await agent.poke();
    leases.cut = true;
    await clock.advanceBy(3_500);
    await store.expire();
    let m = await scrape();
    // Its heartbeats at 2,000, 3,000 and 4,000 ms failed.
    expect(m.value('ai_batch_agent_errors_total')).toBe(3);
    // Renewed last when it registered, at 1,000 ms.
    expect(m.value('ai_batch_agent_heartbeat_age_seconds')).toBe(3.5);
    leases.cut = false;
    await clock.advanceBy(1_000);
    m = await scrape();
    expect(m.value('ai_batch_agent_fenced_total')).toBe(1);
    expect(m.value('ai_batch_agent_registered')).toBe(0);
    // Still stopping what it ran.
    expect(m.value('ai_batch_agent_attempts_running')).toBe(1);
    expect(m.value('ai_batch_agent_heartbeat_age_seconds')).toBe(4.5);
    await clock.advanceBy(4_600);
    m = await scrape();
    expect(m.value('ai_batch_agent_registered')).toBe(1);
    expect(m.value('ai_batch_agent_registrations_total')).toBe(2);
    expect(m.value('ai_batch_agent_attempts_refused_total', { reason: 'expired' })).toBe(1);
    expect(m.value('ai_batch_agent_attempts_running')).toBe(0);
    // Registered again at 10,000 ms: renewed then.
    expect(clock.now()).toBe(10_100);
    expect(m.value('ai_batch_agent_heartbeat_age_seconds')).toBe(0.1);
    // An attempt that ended on a refusal is not counted as ended.
    expect(outcomes(m)).toEqual({ completed: 0, failed: 0, cancelled: 0, timeout: 0 });
    await agent.stop();
    metrics.close();
  });

  it('the heartbeat age follows agent.heartbeat events, when the agent tells of them', async () => {
    const clock = createVirtualClock({ startAt: 0 });
    const events$ = new Subject<AgentMetricsEvent>();
    const metrics = agentMetrics({ events$, running: () => [] }, { clock });
    const scrape = async () => parseExposition(await metrics.registry.metrics());
    events$.next({ type: 'agent.registered', at: 0 });
    await clock.advanceBy(1_000);
    events$.next({ type: 'agent.heartbeat', at: 1_000 });
    await clock.advanceBy(250);
    expect((await scrape()).value('ai_batch_agent_heartbeat_age_seconds')).toBe(0.25);
    // Without currentEpoch, registered reads 0.
    expect((await scrape()).value('ai_batch_agent_registered')).toBe(0);
    metrics.close();
  });

  it('names follow Prometheus conventions; bad options are refused naming the field', async () => {
    const { metrics, agent } = world({});
    const text = await metrics.registry.metrics();
    const m = parseExposition(text);
    expect(m.types.size).toBe(9);
    for (const [name, type] of m.types) {
      expect(name).toMatch(/^ai_batch_agent_[a-z_]+$/);
      expect(name.endsWith('_total')).toBe(type === 'counter');
    }
    for (const [options, field] of [
      [{ clock: {} }, 'clock'],
      [{ prefix: '' }, 'prefix'],
      [{ registry: metrics.registry }, 'registry'],
      [{ colck: {} }, 'colck'],
    ] as const) {
      expect(() => agentMetrics(agent, options as never)).toThrow(InvalidOptionError);
      expect(() => agentMetrics(agent, options as never)).toThrow(expect.objectContaining({ field }));
    }
    expect(() => agentMetrics({} as never)).toThrow(expect.objectContaining({ field: 'agent' }));
    metrics.close();
  });
});
