/**
 * The child program of the crash tests (test/store/crash.e2e.test.ts): a durable scheduler on a
 * SQLite store, on the real clock, running a batch read from a JSON file. It submits whatever of
 * the batch its store does not hold yet (in chunks, so that a kill may land in the middle of
 * submitting), runs everything to the end, and says what it does on standard output, one JSON line
 * per event, written synchronously (`writeSync`): when the parent reads a line, what it says has
 * happened. A parent that SIGKILLs it at any moment, then starts it again on the same store, sees
 * what the store kept.
 *
 * Usage: node --import tsx crash-child.ts <batch.json> <state.db>
 */
import { readFileSync, writeSync } from 'node:fs';
import {
  createRealClock,
  createScheduler,
  sqliteStore,
  type HandlerContext,
  type JobSnapshot,
} from '../../../src/index.js';
import type { ChildLine, CrashBatch, CrashPayload } from './crash-batch.js';

const [batchFile, storePath] = process.argv.slice(2);
if (batchFile === undefined || storePath === undefined)
  throw new Error('usage: crash-child.ts <batch.json> <state.db>');
const batch = JSON.parse(readFileSync(batchFile, 'utf8')) as CrashBatch;

function say(line: ChildLine): void {
  writeSync(1, `${JSON.stringify(line)}\n`);
}

const clock = createRealClock();
const scheduler = createScheduler({
  clock,
  monitor: false,
  resources: {
    cpu: batch.cpu,
    memoryMb: 16_384,
    gpus: Array.from({ length: batch.gpus }, () => ({ vramMb: 0 })),
  },
  maxConcurrentJobs: batch.cpu,
  maxQueueSize: 10_000,
  store: sqliteStore(storePath),
  retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 2 } },
  handlers: {
    work: async ({ id, payload, attempt, allocation }: HandlerContext<CrashPayload>) => {
      say({
        type: 'start',
        id,
        attempt,
        pid: process.pid,
        cpu: allocation.cpu,
        gpus: allocation.gpus.map((g) => ({ index: g.index, share: g.share })),
      });
      await new Promise<void>((resolve) => clock.setTimeout(resolve, payload.ms));
      if (attempt <= payload.failUntil) {
        say({ type: 'end', id, attempt, ok: false });
        throw new Error(`attempt ${attempt} of ${id} fails on purpose`);
      }
      const output = { id, attempt, value: payload.value };
      say({ type: 'end', id, attempt, ok: true, output });
      return output;
    },
  },
});

const summary = (j: JobSnapshot) => ({
  id: j.id,
  state: j.state,
  attempt: j.attempt,
  ...(j.error ? { error: { kind: j.error.kind, message: j.error.message } } : {}),
});
say({ type: 'opened', pid: process.pid, jobs: scheduler.list().map(summary) });

const completed = new Map<string, unknown>();
scheduler.events$.subscribe((event) => {
  if (event.type === 'job.completed') completed.set(event.job.id, event.output);
});

// Whatever of the batch the store does not hold yet, in order, a few at a time.
const missing = batch.jobs.filter((job) => scheduler.get(job.id) === undefined);
for (let i = 0; i < missing.length;) {
  const size = 1 + ((i * 7) % 4);
  const chunk = missing.slice(i, i + size);
  i += size;
  const specs = chunk.map((job) => ({
    type: 'work' as const,
    id: job.id,
    payload: job.payload,
    resources: job.resources,
    dependsOn: job.dependsOn,
    retry: { attempts: job.attempts, backoff: { type: 'fixed' as const, delayMs: 2 } },
  }));
  if (specs.length === 1) scheduler.submit(specs[0] as (typeof specs)[number]);
  else scheduler.submitAll(specs);
  say({ type: 'accepted', ids: chunk.map((job) => job.id) });
  // A turn of real time between chunks: jobs start meanwhile, and a kill may land here.
  await new Promise<void>((resolve) => clock.setTimeout(resolve, 1));
}

await scheduler.onIdle();
const jobs = scheduler.list().map(summary);
say({ type: 'idle', jobs, outputs: Object.fromEntries(completed) as Record<string, never> });
await scheduler.shutdown();
say({ type: 'closed' });
