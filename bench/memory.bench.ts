/**
 * Memory (issue 6): heap bytes per queued job at a large backlog, and per retained finished job.
 * Run with --expose-gc (bench/run.ts passes it) so that each reading follows a full collection.
 * Each figure is the median of 5 rounds after a warm-up round, each round a new scheduler that is
 * shut down (and collected) before the next.
 */
import { createScheduler, createRealClock } from '../src/index.js';
import { report, summarise } from './harness.js';

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};
const QUEUED = Number(process.env['BENCH_QUEUED'] ?? 100_000);
const FINISHED = 10_000;
const WARMUP = 1;
const RUNS = Number(process.env['BENCH_MEMORY_RUNS'] ?? 5);

/** Heap per retained finished record: FINISHED no-op jobs run to the end and kept. */
async function perFinished(): Promise<number> {
  const scheduler = createScheduler({
    clock: createRealClock(),
    resources: { cpu: 4, memoryMb: 16_000 },
    maxQueueSize: Number.POSITIVE_INFINITY,
    retainFinished: FINISHED,
    monitor: false,
    handlers: { noop: async () => undefined },
  });
  const before = heap();
  for (let i = 0; i < FINISHED; i++) scheduler.submit({ type: 'noop' });
  await scheduler.onIdle();
  const perRecord = (heap() - before) / FINISHED;
  await scheduler.shutdown();
  return perRecord;
}

/** Heap per queued job: QUEUED jobs behind one that holds the only GPU. */
async function perQueued(): Promise<number> {
  const scheduler = createScheduler({
    clock: createRealClock(),
    resources: { cpu: 4, memoryMb: 16_000, gpus: [{ vramMb: 16_000 }] },
    maxQueueSize: Number.POSITIVE_INFINITY,
    monitor: false,
    handlers: { hold: () => new Promise<never>(() => undefined), noop: async () => undefined },
  });
  scheduler.submit({ type: 'hold', resources: { gpu: 1 } });
  const before = heap();
  for (let i = 0; i < QUEUED; i++) scheduler.submit({ type: 'noop', resources: { gpu: 1 } });
  const perJob = (heap() - before) / QUEUED;
  await scheduler.shutdown({ mode: 'cancel' });
  return perJob;
}

async function rounds(measure: () => Promise<number>): Promise<number[]> {
  const values: number[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    // Let the last round's scheduler go (its shutdown's promise chain unwinds over a few
    // macrotasks): a heap read before then would count it as this round's garbage freed.
    for (let k = 0; k < 3; k++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      gc?.();
    }
    const value = await measure();
    if (i >= WARMUP) values.push(value);
  }
  return values;
}

// Finished records first (as before the rounds were added): the 100k backlog's rounds leave
// the larger heap behind.
const measures = [
  { name: 'heap per retained finished job', params: { finished: FINISHED }, measure: perFinished },
  { name: 'heap per queued job', params: { queued: QUEUED }, measure: perQueued },
];
for (const { name, params, measure } of measures) {
  report({ name, params, unit: 'bytes', runs: RUNS, ...summarise(await rounds(measure)) });
}
