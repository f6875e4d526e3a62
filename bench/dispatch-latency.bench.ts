/**
 * Dispatch latency (issue 6): from one job's handler finishing to the next queued job's handler
 * starting, on the real clock, with one slot (maxConcurrentJobs 1) and a queue behind it.
 *
 * Reported twice: cold (jobs 200 to 2,000 of a fresh process, as a short CLI run sees it: V8 is
 * still compiling the hot path, and on a 2-core machine its compiler threads take the CPU from
 * the main thread for a scheduler tick of a few ms at a time) and warm (the 2,000 jobs after
 * 10,000, as a long-running scheduler sees it). A cold start happens once per process, so the
 * benchmark runs itself in fresh processes: one warm-up (its figures dropped), then 5 runs; each
 * percentile is the median of the runs' percentiles, the spread their smallest and largest.
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createScheduler, createRealClock } from '../src/index.js';
import { percentile, report, summarise } from './harness.js';

const COLD = 2_000;
const WARM_AFTER = 10_000;
const JOBS = WARM_AFTER + 2_000;
const WARMUP = 1;
const RUNS = Number(process.env['BENCH_DISPATCH_RUNS'] ?? 5);
const CHILD = 'BENCH_DISPATCH_CHILD';

type Percentiles = { cold: { p50: number; p99: number }; warm: { p50: number; p99: number } };

/** One process's measurement: the gaps (µs) between one handler's end and the next's start. */
async function measure(): Promise<Percentiles> {
  let endedAt = 0;
  const gaps: number[] = [];
  const scheduler = createScheduler({
    clock: createRealClock(),
    resources: { cpu: 4, memoryMb: 16_000 },
    maxConcurrentJobs: 1,
    maxQueueSize: JOBS,
    monitor: false,
    retainFinished: 100,
    handlers: {
      step: async () => {
        if (endedAt > 0) gaps.push((performance.now() - endedAt) * 1_000);
        endedAt = performance.now();
      },
    },
  });
  for (let i = 0; i < JOBS; i++) scheduler.submit({ type: 'step', resources: { cpu: 1 } });
  await scheduler.onIdle();
  await scheduler.shutdown();
  // The first 200 warm the JIT's first tiers.
  const cold = gaps.slice(200, COLD);
  const warm = gaps.slice(WARM_AFTER);
  return {
    cold: { p50: percentile(cold, 50), p99: percentile(cold, 99) },
    warm: { p50: percentile(warm, 50), p99: percentile(warm, 99) },
  };
}

if (process.env[CHILD]) {
  console.log(`RUN ${JSON.stringify(await measure())}`);
} else {
  const runs: Percentiles[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const out = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
      encoding: 'utf8',
      env: { ...process.env, [CHILD]: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const line = out.split('\n').find((l) => l.startsWith('RUN '));
    if (!line) throw new Error(`dispatch-latency: a run printed no result:\n${out}`);
    if (i >= WARMUP) runs.push(JSON.parse(line.slice(4)) as Percentiles);
  }
  const params = {
    cold: { jobs: COLD - 200, process: 'cold' },
    warm: { jobs: JOBS - WARM_AFTER, process: 'warm' },
  };
  for (const phase of ['cold', 'warm'] as const) {
    for (const p of ['p50', 'p99'] as const) {
      report({
        name: `dispatch latency ${p}`,
        params: params[phase],
        unit: 'µs',
        runs: RUNS,
        ...summarise(runs.map((run) => run[phase][p])),
      });
    }
  }
}
