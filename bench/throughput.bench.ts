/**
 * Throughput against p-queue (issue 6): N no-op jobs with random priorities over the five
 * levels, each needing { cpu: 1 } on a pool of 4 CPUs with maxConcurrentJobs 4, all submitted at
 * once; p-queue 9 with the same priorities and concurrency 4, in the same process run. Reports
 * jobs/s for both and the ratio, and the per-job cost at the largest size divided by that at
 * the smallest (1/throughput), measured in the same run. Sizes from BENCH_SIZES
 * (default 1000,10000,100000).
 */
import PQueue from 'p-queue';
import { createScheduler, createRealClock, PRIORITY_NAMES } from '../src/index.js';
import { nextRandom } from '../src/core/random.js';
import { opsPerSecond, report } from './harness.js';

function priorities(n: number): number[] {
  let seed = 7;
  return Array.from({ length: n }, () => {
    const [r, next] = nextRandom(seed);
    seed = next;
    return Math.floor(r * 5);
  });
}

async function ours(levels: number[]): Promise<void> {
  const scheduler = createScheduler({
    clock: createRealClock(),
    resources: { cpu: 4, memoryMb: 16_000 },
    maxConcurrentJobs: 4,
    maxQueueSize: levels.length,
    monitor: false,
    retainFinished: 1_000,
    handlers: { noop: async () => undefined },
  });
  for (const level of levels) {
    scheduler.submit({ type: 'noop', priority: PRIORITY_NAMES[level] ?? 'normal', resources: { cpu: 1 } });
  }
  await scheduler.onIdle();
  await scheduler.shutdown();
}

async function pQueue(levels: number[]): Promise<void> {
  const queue = new PQueue({ concurrency: 4 });
  for (const level of levels) void queue.add(async () => undefined, { priority: level });
  await queue.onIdle();
}

const sizes = (process.env['BENCH_SIZES'] ?? '1000,10000,100000').split(',').map(Number);
const perJob = new Map<number, { value: number; min: number; max: number }>();
for (const jobs of sizes) {
  const levels = priorities(jobs);
  // Warm up on at least 10,000 jobs (both engines alike): a 1k run lasts ~30 ms, and two of
  // them leave much of the path unoptimised by the JIT.
  const runs = { warmup: Math.max(1, Math.ceil(10_000 / jobs)), runs: 5 };
  const theirs = await opsPerSecond('p-queue throughput', { jobs }, jobs, () => pQueue(levels), runs);
  const mine = await opsPerSecond(
    'scheduler throughput',
    { jobs, cpus: 4, maxConcurrentJobs: 4 },
    jobs,
    () => ours(levels),
    runs,
  );
  report(theirs);
  report({ ...mine, pQueue: theirs.value, ratio: mine.value / theirs.value });
  perJob.set(jobs, { value: 1 / mine.value, min: 1 / mine.max, max: 1 / mine.min });
}
const small = Math.min(...sizes);
const large = Math.max(...sizes);
const [a, b] = [perJob.get(small), perJob.get(large)];
if (a && b && large > small) {
  report({
    // All jobs are submitted at once, so the largest size also holds the largest heap; the
    // steady-backlog measurement of scaling is bench/scaling.bench.ts.
    name: 'throughput per-job cost, largest ÷ smallest size',
    params: { small, large },
    value: b.value / a.value,
    unit: '×',
    // The spread pairs the extremes of both sizes' runs.
    min: b.min / a.max,
    max: b.max / a.min,
    runs: 5,
  });
}
