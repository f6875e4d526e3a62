/**
 * Memory (issue 6): heap bytes per queued job at a large backlog, and per retained finished job.
 * Run with --expose-gc (bench/run.ts passes it) so that each reading follows a full collection.
 */
import { createScheduler, createRealClock } from '../src/index.js';
import { report } from './harness.js';

const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};
const QUEUED = Number(process.env['BENCH_QUEUED'] ?? 100_000);

// Finished records first: the queued backlog below leaves garbage that would skew this reading.
{
  const FINISHED = 10_000;
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
  report({
    name: 'heap per retained finished job',
    params: { finished: FINISHED },
    value: perRecord,
    unit: 'bytes',
    min: perRecord,
    max: perRecord,
    runs: 1,
  });
  await scheduler.shutdown();
}

{
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
  report({
    name: 'heap per queued job',
    params: { queued: QUEUED },
    value: perJob,
    unit: 'bytes',
    min: perJob,
    max: perJob,
    runs: 1,
  });
  await scheduler.shutdown({ mode: 'cancel' });
}
