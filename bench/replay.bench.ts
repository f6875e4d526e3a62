/**
 * Trace replay (issue 6): the Philly trace through `simulate()` — the real engine in virtual
 * time — reporting wall seconds and the schedule's mean/p99 wait and GPU utilisation.
 *
 * - the first 10% of the trace (8,225 jobs) on 16 nodes × 8 GPUs: that slice offers ~287 GPUs
 *   of work on average, so on 128 GPUs a deep backlog forms (a stress test of the queue);
 * - the whole trace (82,247 jobs, 109 days) on 48 nodes × 8 GPUs: the trace offers ~323 GPUs of
 *   work on average (computed below from the file), so 384 GPUs is an offered load of ~0.84 —
 *   jobs queue at the bursts and drain between them, as in a busy but sustainable cluster.
 *
 * Jobs of more than 8 GPUs (289 of them) cannot be placed on one node (no gang scheduling) and
 * are reported as rejected by simulate(). Skipped, with a message, where the trace is absent.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { simulate } from '../src/runtime/simulate.js';
import { phillyPool, readPhilly } from '../src/traces/philly.js';
import type { SimulationJob } from '../src/runtime/simulation-types.js';
import { report, summarise } from './harness.js';

const TRACE = resolve(process.cwd(), '../shared/traces/philly.csv');

/** Average GPUs of work the jobs offer over their arrival span (jobs that fit one node). */
function offeredGpus(jobs: SimulationJob[], gpusPerNode: number): number {
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  let gpuMs = 0;
  for (const job of jobs) {
    first = Math.min(first, job.submitAtMs);
    last = Math.max(last, job.submitAtMs);
    const gpus = job.resources?.gpu ?? 0;
    if (gpus <= gpusPerNode) gpuMs += gpus * job.durationMs;
  }
  return gpuMs / Math.max(1, last - first);
}

if (!existsSync(TRACE)) {
  console.error(`replay.bench: ${TRACE} is absent; skipped`);
} else {
  const all = readPhilly(TRACE);
  const cases = [
    { name: '10% slice', jobs: all.slice(0, Math.round(all.length / 10)), nodes: 16 },
    { name: 'full trace', jobs: all, nodes: 48 },
  ];
  // One warm-up replay, then 5 timed ones (BENCH_REPLAY_RUNS to change it). simulate() is
  // deterministic: every replay must give the same schedule, and the benchmark fails if not.
  const warmup = 1;
  const runs = Number(process.env['BENCH_REPLAY_RUNS'] ?? 5);
  for (const { name, jobs, nodes } of cases) {
    const pool = phillyPool({ nodes });
    const offered = offeredGpus(jobs, 8);
    const seconds: number[] = [];
    let last: Awaited<ReturnType<typeof simulate>> | undefined;
    let schedule: string | undefined;
    for (let i = 0; i < warmup + runs; i++) {
      const start = performance.now();
      last = await simulate({ resources: pool, jobs });
      if (i >= warmup) seconds.push((performance.now() - start) / 1_000);
      const summary = JSON.stringify([last.counts, last.wait.overall, last.utilisation]);
      if (schedule !== undefined && summary !== schedule) {
        throw new Error(
          `replay.bench: replay ${i} of the ${name} gave another schedule:\n${summary}\n${schedule}`,
        );
      }
      schedule = summary;
    }
    const params = {
      trace: name,
      jobs: jobs.length,
      nodes,
      gpus: nodes * 8,
      offeredLoad: Number((offered / (nodes * 8)).toFixed(2)),
    };
    report({
      name: 'philly replay wall',
      params,
      unit: 's',
      runs,
      ...summarise(seconds),
    });
    if (last) {
      const schedule = (metric: string, value: number, unit: string) =>
        report({
          name: `philly replay ${metric}`,
          params,
          value,
          unit,
          min: value,
          max: value,
          runs: warmup + runs,
        });
      schedule('mean wait', last.wait.overall.mean / 60_000, 'min');
      schedule('p99 wait', last.wait.overall.p99 / 60_000, 'min');
      schedule('gpu utilisation', last.utilisation.gpu, 'fraction');
      schedule('completed', last.counts.completed, 'jobs');
      schedule('rejected', last.counts.rejected, 'jobs');
    }
  }
}
