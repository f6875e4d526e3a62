/**
 * Durable mode (issue 16) beside the in-memory engine and p-queue, in one run: throughput of N
 * no-op jobs submitted at once (1k / 10k / 100k backlog), `submit()` p99 into a durable
 * scheduler holding a backlog, recovery time of a store with 100,000 queued jobs, and store
 * bytes per job (the file after 100,000 accepted, and after they all finished with
 * `retainFinished` 1,000), and the store's size as 1,000,000 jobs go through it (100,000 at a
 * time, its files measured after each). Each store is a fresh file in a temporary folder,
 * removed after. Sizes from BENCH_SIZES (default 1000,10000,100000); BENCH_MILLION=0 skips the
 * million.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { performance } from 'node:perf_hooks';
import PQueue from 'p-queue';
import {
  createRealClock,
  createScheduler,
  sqliteStore,
  sqliteStoreFiles,
  type JobStore,
} from '../src/index.js';
import { opsPerSecond, percentile, report, summarise } from './harness.js';

const dir = mkdtempSync(nodePath.join(tmpdir(), 'aib-durable-bench-'));
let files = 0;
const freshPath = () => nodePath.join(dir, `state-${files++}.db`);
/** Bytes of every file a store keeps (the database, SQLite's WAL and index, the operation log). */
const fileBytes = (path: string) =>
  sqliteStoreFiles(path).reduce((n, file) => {
    try {
      return n + statSync(file).size;
    } catch {
      return n;
    }
  }, 0);

function make(store: JobStore | undefined, jobs: number, paused = false) {
  const scheduler = createScheduler({
    clock: createRealClock(),
    resources: { cpu: 4, memoryMb: 16_000 },
    maxConcurrentJobs: 4,
    maxQueueSize: jobs + 1,
    monitor: false,
    retainFinished: 1_000,
    handlers: { noop: async () => undefined },
    ...(store ? { store } : {}),
  });
  if (paused) scheduler.pause();
  return scheduler;
}

async function run(store: JobStore | undefined, jobs: number): Promise<void> {
  const scheduler = make(store, jobs);
  for (let i = 0; i < jobs; i++) scheduler.submit({ type: 'noop', resources: { cpu: 1 } });
  await scheduler.onIdle();
  await scheduler.shutdown();
}

async function pQueue(jobs: number): Promise<void> {
  const queue = new PQueue({ concurrency: 4 });
  for (let i = 0; i < jobs; i++) void queue.add(async () => undefined);
  await queue.onIdle();
}

try {
  const sizes = (process.env['BENCH_SIZES'] ?? '1000,10000,100000').split(',').map(Number);
  for (const jobs of sizes) {
    const runs = { warmup: Math.max(1, Math.ceil(10_000 / jobs)), runs: 5 };
    const theirs = await opsPerSecond('p-queue throughput', { jobs }, jobs, () => pQueue(jobs), runs);
    const memory = await opsPerSecond(
      'scheduler throughput',
      { jobs, store: 'none' },
      jobs,
      () => run(undefined, jobs),
      runs,
    );
    const durable = await opsPerSecond(
      'durable throughput',
      { jobs, store: 'sqlite', synchronous: 'normal' },
      jobs,
      () => run(sqliteStore(freshPath()), jobs),
      runs,
    );
    report(theirs);
    report({ ...memory, pQueue: theirs.value, ratio: memory.value / theirs.value });
    report({ ...durable, pQueue: theirs.value, ratio: durable.value / theirs.value });
  }

  // submit() into a paused durable scheduler holding a backlog: p50 / p99 of 5 runs' percentiles.
  for (const backlog of [0, 100_000]) {
    const p50s: number[] = [];
    const p99s: number[] = [];
    for (let r = 0; r < 6; r++) {
      const scheduler = make(sqliteStore(freshPath()), backlog + 10_000, true);
      for (let i = 0; i < backlog; i++) scheduler.submit({ type: 'noop' });
      const samples: number[] = [];
      for (let i = 0; i < 10_000; i++) {
        const t = performance.now();
        scheduler.submit({ type: 'noop' });
        samples.push((performance.now() - t) * 1_000);
      }
      await scheduler.shutdown({ mode: 'cancel' });
      if (r === 0) continue; // warm-up
      p50s.push(percentile(samples, 50));
      p99s.push(percentile(samples, 99));
    }
    report({
      name: 'durable submit latency p50',
      params: { backlog },
      unit: 'µs',
      runs: 5,
      ...summarise(p50s),
    });
    report({
      name: 'durable submit latency p99',
      params: { backlog },
      unit: 'µs',
      runs: 5,
      ...summarise(p99s),
    });
  }

  // Recovery of 100,000 queued jobs, and the store's size.
  const recoveries: number[] = [];
  let bytesQueued = 0;
  for (let r = 0; r < 4; r++) {
    const path = freshPath();
    const first = make(sqliteStore(path), 100_001, true);
    for (let i = 0; i < 100_000; i++) first.submit({ type: 'noop', payload: { i } });
    // Dies here, as far as the store knows: its lock goes with the connection.
    (first as unknown as { options: { store: JobStore } }).options.store.close();
    bytesQueued = fileBytes(path);
    const t = performance.now();
    const second = make(sqliteStore(path), 100_001, true);
    const ms = performance.now() - t;
    if (second.stats().jobs.queued !== 100_000) throw new Error('recovery lost jobs');
    await second.shutdown({ mode: 'cancel' });
    if (r > 0) recoveries.push(ms);
  }
  report({
    name: 'durable recovery, 100k queued jobs',
    params: {},
    unit: 'ms',
    runs: recoveries.length,
    ...summarise(recoveries),
  });
  report({
    name: 'store bytes per queued job',
    params: { jobs: 100_000 },
    unit: 'bytes',
    runs: 1,
    value: bytesQueued / 100_000,
    min: bytesQueued / 100_000,
    max: bytesQueued / 100_000,
  });
  // 100,000 jobs run through with retainFinished 1,000: the file holds what is retained.
  const path = freshPath();
  await run(sqliteStore(path), 100_000);
  const after = fileBytes(path);
  report({
    name: 'store bytes after 100k jobs ran (retainFinished 1,000)',
    params: {},
    unit: 'bytes',
    runs: 1,
    value: after,
    min: after,
    max: after,
  });

  // 1,000,000 jobs through one store, 100,000 at a time (retainFinished 1,000): its files after each.
  if (process.env['BENCH_MILLION'] !== '0') {
    const path = freshPath();
    const scheduler = make(sqliteStore(path), 100_001);
    const sizes: number[] = [];
    const t = performance.now();
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100_000; i++) scheduler.submit({ type: 'noop', resources: { cpu: 1 } });
      await scheduler.onIdle();
      sizes.push(fileBytes(path));
    }
    const seconds = (performance.now() - t) / 1_000;
    await scheduler.shutdown();
    report({
      name: 'store bytes while 1,000,000 jobs ran (retainFinished 1,000), largest after a 100k round',
      params: { perRound: sizes.map((b) => Math.round(b / 1024)).join(' ') + ' KiB' },
      unit: 'bytes',
      runs: sizes.length,
      value: Math.max(...sizes),
      min: Math.min(...sizes),
      max: Math.max(...sizes),
    });
    report({
      name: 'durable throughput, 1,000,000 jobs in rounds of 100k',
      params: {},
      unit: 'jobs/s',
      runs: 1,
      value: 1_000_000 / seconds,
      min: 1_000_000 / seconds,
      max: 1_000_000 / seconds,
    });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
