/**
 * A leader process's Prometheus metrics (issue 17, "Operations"), in virtual time, on a stand-in
 * leader (its events by hand, a real engine): whether it leads, elections and losses, hosts joined,
 * left and lost, attempts interrupted by lease expiries, errors — and its engine's metrics in the
 * same registry only while it leads.
 */
import { describe, expect, it } from 'vitest';
import { Subject } from 'rxjs';
import { createScheduler, createVirtualClock, InvalidOptionError, type Scheduler } from '../../src/index.js';
import { leaderMetrics, type LeaderMetricsEvent } from '../../src/metrics/leader-metrics.js';
import { parseExposition } from './exposition.js';

function standIn() {
  const clock = createVirtualClock();
  const events$ = new Subject<LeaderMetricsEvent>();
  const leader = {
    events$,
    state: 'standby',
    scheduler: undefined as Scheduler<{ work: () => Promise<string> }> | undefined,
  };
  const elect = () => {
    leader.state = 'leader';
    leader.scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { cpu: 4, memoryMb: 4_096 },
      handlers: { work: async () => 'ok' },
    });
    events$.next({ type: 'leader.elected', at: clock.now() });
  };
  return { clock, events$, leader, elect };
}

describe('leaderMetrics', () => {
  it('a standby, elected, hosts joining, lost and leaving, then the lead lost: the counts, and the engine only while it leads', async () => {
    const { clock, events$, leader, elect } = standIn();
    const metrics = leaderMetrics(leader);
    const scrape = async () => parseExposition(await metrics.registry.metrics());
    let m = await scrape();
    expect(m.value('ai_batch_leader')).toBe(0);
    expect(m.value('ai_batch_leader_elections_total')).toBe(0);
    expect(m.has('ai_batch_jobs', { state: 'queued' })).toBe(false);

    elect();
    const engine = leader.scheduler as Scheduler<{ work: () => Promise<string> }>;
    engine.submit({ type: 'work', id: 'a' });
    await clock.advanceBy(0);
    events$.next({ type: 'host.joined', at: 1 });
    events$.next({ type: 'host.joined', at: 2 });
    events$.next({ type: 'host.lost', at: 3, interrupted: 3 });
    events$.next({ type: 'host.lost', at: 4, interrupted: 0 });
    events$.next({ type: 'host.left', at: 5 });
    events$.next({ type: 'leader.error', at: 6 });
    events$.next({ type: 'leader.standby', at: 7 });
    m = await scrape();
    expect(m.value('ai_batch_leader')).toBe(1);
    expect(m.value('ai_batch_leader_elections_total')).toBe(1);
    expect(m.value('ai_batch_hosts_joined_total')).toBe(2);
    expect(m.value('ai_batch_hosts_lost_total')).toBe(2);
    expect(m.value('ai_batch_attempts_interrupted_total')).toBe(3);
    expect(m.value('ai_batch_hosts_left_total')).toBe(1);
    expect(m.value('ai_batch_leader_errors_total')).toBe(1);
    // The engine's metrics, in the same registry.
    expect(m.value('ai_batch_jobs_submitted_total')).toBe(1);
    expect(m.value('ai_batch_jobs', { state: 'completed' })).toBe(1);

    leader.state = 'stopped';
    events$.next({ type: 'leader.lost', at: 8 });
    m = await scrape();
    expect(m.value('ai_batch_leader')).toBe(0);
    expect(m.value('ai_batch_leader_losses_total')).toBe(1);
    expect(m.has('ai_batch_jobs_submitted_total')).toBe(false);
    expect(m.value('ai_batch_hosts_lost_total')).toBe(2);
    await engine.shutdown();
    metrics.close();
    metrics.close();
    expect(await metrics.registry.metrics()).toBe('\n');
  });

  it("a leader already leading is followed at once; its events' end takes the engine's metrics away", async () => {
    const { events$, leader, elect } = standIn();
    elect();
    const metrics = leaderMetrics(leader, { prefix: 'x_' });
    let m = parseExposition(await metrics.registry.metrics());
    expect(m.value('x_leader')).toBe(1);
    expect(m.value('x_jobs', { state: 'queued' })).toBe(0);
    events$.complete();
    m = parseExposition(await metrics.registry.metrics());
    expect(m.has('x_jobs', { state: 'queued' })).toBe(false);
    expect(m.value('x_leader_elections_total')).toBe(0);
    for (const [name, type] of m.types) {
      expect(name).toMatch(/^x_[a-z_]+$/);
      expect(name.endsWith('_total')).toBe(type === 'counter');
    }
    metrics.close();
    await leader.scheduler?.shutdown();
  });

  it('bad options: InvalidOptionError naming the field', () => {
    const { leader } = standIn();
    expect(() => leaderMetrics(leader, { prefix: '1' })).toThrow(
      expect.objectContaining({ field: 'prefix' }),
    );
    expect(() => leaderMetrics(leader, { buckets: { run: [] } })).toThrow(InvalidOptionError);
    expect(() => leaderMetrics(leader, { buckets: { queueWait: [2, 1] } })).toThrow(
      expect.objectContaining({ field: 'buckets.queueWait' }),
    );
    expect(() => leaderMetrics({} as never)).toThrow(expect.objectContaining({ field: 'leader' }));
  });
});
