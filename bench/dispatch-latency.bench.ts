/**
 * Dispatch latency (issue 6): from one job's handler finishing to the next queued job's handler
 * starting, on the real clock, with one slot (maxConcurrentJobs 1) and a queue behind it.
 */
import { performance } from 'node:perf_hooks';
import { createScheduler, createRealClock } from '../src/index.js';
import { reportLatency } from './harness.js';

const JOBS = 2_000;
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
// The first 200 warm the JIT.
reportLatency('dispatch latency', { jobs: JOBS }, gaps.slice(200));
