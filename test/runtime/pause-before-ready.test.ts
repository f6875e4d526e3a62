import { describe, expect, it } from 'vitest';
import { createScheduler, createVirtualClock, type SystemInformationLike } from '../../src/index.js';

const si: SystemInformationLike = {
  cpu: async () => ({ cores: 4 }),
  mem: async () => ({ total: 8 * 1024 ** 3, available: 8 * 1024 ** 3 }),
  graphics: async () => ({ controllers: [] }),
};

/** A scheduler on a detected pool (mocked), whose `work` handler counts its runs. */
function detecting() {
  const clock = createVirtualClock();
  const runs = { count: 0 };
  const scheduler = createScheduler({
    clock,
    monitor: false,
    resources: 'detect',
    detect: { si, id: 'box', runNvidiaSmi: async () => '' },
    handlers: { work: async () => ++runs.count },
  });
  return { clock, scheduler, runs };
}

describe('pause before the pool is known', () => {
  it('keeps jobs queued once detection ends, until resumed', async () => {
    const { clock, scheduler, runs } = detecting();
    scheduler.pause();
    const job = scheduler.submit({ type: 'work', resources: { cpu: 1 } });
    // Paused while the pool is still being detected: the job says so.
    expect(scheduler.get(job.id)?.waitReason).toBe('paused');
    await scheduler.ready;
    await clock.advanceBy(10_000);
    expect(scheduler.get(job.id)?.waitReason).toBe('paused');
    expect(runs.count).toBe(0);
    expect(scheduler.stats().jobs).toMatchObject({ queued: 1, running: 0 });
    expect(scheduler.get(job.id)?.state).toBe('queued');
    scheduler.resume();
    await clock.advanceBy(0);
    await expect(job.result).resolves.toBe(1);
  });

  it('pause then resume before the pool is known changes nothing: jobs start once it is', async () => {
    const { clock, scheduler, runs } = detecting();
    scheduler.pause();
    scheduler.resume();
    const job = scheduler.submit({ type: 'work', resources: { cpu: 1 } });
    expect(scheduler.get(job.id)?.waitReason).not.toBe('paused');
    await scheduler.ready;
    await clock.advanceBy(0);
    await expect(job.result).resolves.toBe(1);
    expect(runs.count).toBe(1);
  });
});
