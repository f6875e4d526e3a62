/**
 * Scheduler throughput: N no-op jobs with random priorities, each needing { cpu: 1 } on a pool
 * of 4 CPUs with maxConcurrentJobs 4, all submitted at once; jobs/s from the first submit to
 * idle, and the per-job cost at a large backlog relative to a small one (scaling).
 */
import { createScheduler, createRealClock, PRIORITY_NAMES } from '../src/index.js';
import { nextRandom } from '../src/core/random.js';
import { opsPerSecond, report } from './harness.js';

async function run(jobs: number): Promise<void> {
  const scheduler = createScheduler({
    clock: createRealClock(),
    resources: { cpu: 4, memoryMb: 16_000 },
    maxConcurrentJobs: 4,
    maxQueueSize: jobs,
    monitor: false,
    retainFinished: 1_000,
    handlers: { noop: async () => undefined },
  });
  let seed = 42;
  const specs = Array.from({ length: jobs }, () => {
    const [r, next] = nextRandom(seed);
    seed = next;
    return {
      type: 'noop' as const,
      priority: PRIORITY_NAMES[Math.floor(r * 5)] ?? 'normal',
      resources: { cpu: 1 },
    };
  });
  for (const spec of specs) scheduler.submit(spec);
  await scheduler.onIdle();
  await scheduler.shutdown();
}

for (const jobs of [1_000, 10_000]) {
  report(
    await opsPerSecond(
      'scheduler throughput',
      { jobs, cpus: 4, maxConcurrentJobs: 4 },
      jobs,
      () => run(jobs),
      { warmup: 1, runs: 5 },
    ),
  );
}
