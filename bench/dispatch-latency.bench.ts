/**
 * Dispatch latency (issue 6): from one job's handler finishing to the next queued job's handler
 * starting, on the real clock, with one slot (maxConcurrentJobs 1) and a queue behind it.
 *
 * Reported twice from one process: cold (jobs 200 to 2,000 of a fresh process, as a short CLI
 * run sees it: V8 is still compiling the hot path, and on a 2-core machine its compiler threads
 * take the CPU from the main thread for a scheduler tick of a few ms at a time) and warm (the
 * 2,000 jobs after 10,000, as a long-running scheduler sees it).
 */
import { performance } from 'node:perf_hooks';
import { createScheduler, createRealClock } from '../src/index.js';
import { reportLatency } from './harness.js';

const COLD = 2_000;
const WARM_AFTER = 10_000;
const JOBS = WARM_AFTER + 2_000;
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
reportLatency('dispatch latency', { jobs: COLD, process: 'cold' }, gaps.slice(200, COLD));
reportLatency('dispatch latency', { jobs: JOBS - WARM_AFTER, process: 'warm' }, gaps.slice(WARM_AFTER));
