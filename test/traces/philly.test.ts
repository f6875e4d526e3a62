import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidPoolError } from '../../src/core/errors.js';
import { PRIORITY_NAMES, type PriorityName } from '../../src/core/priority.js';
import { simulate } from '../../src/runtime/simulate.js';
import type { SimulationJob } from '../../src/runtime/simulation-types.js';
import { TraceFormatError } from '../../src/traces/csv.js';
import { parsePhilly, phillyPool, phillyPriority, readPhilly } from '../../src/traces/philly.js';
import { watchAllocations } from '../helpers/allocation-watch.js';

const EXCERPT = fileURLToPath(new URL('../../examples/traces/philly-first-1000.csv', import.meta.url));
const FULL = fileURLToPath(new URL('../../../shared/traces/philly.csv', import.meta.url));
const MAX_TICK_MS = 2 ** 31 - 1;
const HEADER = 'timestamp,duration,num_gpus,gpu_time,cluster\n';

const shares = (jobs: readonly SimulationJob[]) => {
  const counts = Object.fromEntries(PRIORITY_NAMES.map((p) => [p, 0])) as Record<PriorityName, number>;
  for (const job of jobs) counts[job.priority ?? 'normal']++;
  return Object.fromEntries(PRIORITY_NAMES.map((p) => [p, counts[p] / jobs.length]));
};

/** Simulates jobs on a pool while watching every allocation; returns the report and the watch. */
async function watchedRun(jobs: SimulationJob[], nodes: number) {
  const pool = phillyPool({ nodes });
  const watch = watchAllocations(pool);
  // Event-driven only: with a long queue each safety-net tick retries up to backfillDepth jobs,
  // which over months of virtual time costs more than the run itself (docs/simulation.md).
  const options = { schedulingIntervalMs: MAX_TICK_MS };
  const report = await simulate({ resources: pool, jobs, options, observe: (s) => watch.observe(s) });
  return { report, watch };
}

describe('Philly reader', () => {
  it('sorts by submit time, counts from the earliest, and synthesises CPU and memory per GPU', () => {
    const text = `${HEADER}2017-10-09 07:01:55,66.0,1,66.0,11cb48\n2017-10-09 06:13:03,2951.0,2,5902.0,6214e9\n2017-10-09 06:13:03,10.5,1,10.5,6214e9\n`;
    const jobs = parsePhilly(text);
    expect(jobs.map((j) => [j.id, j.submitAtMs, j.durationMs])).toEqual([
      ['philly-3', 0, 2_951_000],
      ['philly-4', 0, 10_500],
      ['philly-2', 2_932_000, 66_000],
    ]);
    expect(jobs[0]).toMatchObject({ resources: { gpu: 2, cpu: 8, memoryMb: 32_768 }, group: '6214e9' });
    const custom = parsePhilly(text, { cpuPerGpu: 1, memoryMbPerGpu: 1_000, priority: () => 'critical' });
    expect(custom[0]).toMatchObject({ resources: { gpu: 2, cpu: 2, memoryMb: 2_000 }, priority: 'critical' });
  });

  it('synthesises priority from the row content: stable, and about 10/60/20/10 high/normal/low/background', () => {
    const rows = Array.from({ length: 5_000 }, (_, i) => {
      const s = String(i % 60).padStart(2, '0');
      return `2017-10-${String(1 + (i % 28)).padStart(2, '0')} 0${i % 10}:${s}:${s},${i + 1}.0,1,${i + 1}.0,c${i % 15}`;
    });
    const jobs = parsePhilly(HEADER + rows.join('\n'));
    const s = shares(jobs);
    expect(s['critical']).toBe(0);
    expect(s['high']).toBeCloseTo(0.1, 1);
    expect(s['normal']).toBeCloseTo(0.6, 1);
    expect(s['low']).toBeCloseTo(0.2, 1);
    expect(s['background']).toBeCloseTo(0.1, 1);
    // The same row keeps its priority wherever it sits in the file.
    const reversed = parsePhilly(HEADER + [...rows].reverse().join('\n'));
    const byContent = (list: SimulationJob[]) =>
      list.map((j) => `${j.submitAtMs}/${j.durationMs}/${j.priority}`).sort();
    expect(byContent(reversed)).toEqual(byContent(jobs));
    const row = {
      line: 2,
      timestamp: '2017-10-09 07:01:55',
      submittedAtMs: 0,
      durationS: 66,
      numGpus: 1,
      cluster: 'x',
    };
    expect(phillyPriority(row)).toBe(phillyPriority({ ...row, line: 99 }));
  });

  it('names the line and column of a malformed row', () => {
    expect(() => parsePhilly(`${HEADER}2017-13-09 7:01,66.0,1,66.0,a\n`)).toThrow(/line 2, timestamp/);
    expect(() => parsePhilly(`${HEADER}2017-10-09 07:01:55,66.0,0,0,a\n`)).toThrow(/line 2, num_gpus/);
    expect(() => parsePhilly(`${HEADER}2017-10-09 07:01:55,-1,1,66.0,a\n`)).toThrow(TraceFormatError);
    expect(() => parsePhilly('time,duration\n')).toThrow(/line 1, header/);
  });

  it('builds homogeneous pools', () => {
    const pool = phillyPool({ nodes: 2, gpusPerNode: 4, vramMbPerGpu: 24_000 });
    expect(pool.nodes).toHaveLength(2);
    expect(pool.nodes[1]).toMatchObject({ id: 'philly-node-1', cpu: 32, memoryMb: 131_072 });
    expect(pool.nodes[1]?.gpus).toEqual(Array.from({ length: 4 }, () => ({ vramMb: 24_000 })));
    expect(() => phillyPool({ nodes: 0 })).toThrow(InvalidPoolError);
  });
});

describe('the shipped Philly excerpt', () => {
  it('reads 1,000 jobs and replays a slice: no over-allocation, every job accounted for, deterministic', async () => {
    const jobs = readPhilly(EXCERPT);
    expect(jobs).toHaveLength(1_000);
    expect(jobs[0]?.submitAtMs).toBe(0);
    const slice = jobs.slice(0, 200);
    const [a, b] = await Promise.all([watchedRun(slice, 6), watchedRun(slice, 6)]);
    expect(a.watch.violations).toEqual([]);
    expect(a.watch.checks).toBeGreaterThan(300);
    // 6 nodes × 8 GPUs: jobs of 16+ GPUs can never fit; every other job completes.
    const tooWide = slice.filter((j) => (j.resources?.gpu ?? 0) > 8).length;
    expect(a.report.counts).toMatchObject({ rejected: tooWide, completed: slice.length - tooWide });
    expect(a.report.jobs.map((j) => j.id)).toEqual(slice.map((j) => j.id));
    expect(a.report.wait.overall.count).toBe(slice.length - tooWide);
    expect(a.report.utilisation.gpu).toBeGreaterThan(0);
    expect(a.report.utilisation.gpu).toBeLessThanOrEqual(1);
    expect(a.report).toEqual(b.report);
  });
});

describe.skipIf(!existsSync(FULL))(
  'the full Philly trace in ../shared/traces/ (skipped where that folder is absent)',
  () => {
    let cached: SimulationJob[] | undefined;
    const full = () => (cached ??= readPhilly(FULL));

    it('reads all 82,247 jobs with the GPU mix the trace README gives', () => {
      const jobs = full();
      expect(jobs).toHaveLength(82_247);
      const gpus = new Map<number, number>();
      for (const j of jobs) gpus.set(j.resources?.gpu ?? 0, (gpus.get(j.resources?.gpu ?? 0) ?? 0) + 1);
      expect(Object.fromEntries(gpus)).toEqual({
        1: 76_627,
        2: 1_818,
        4: 1_870,
        8: 1_643,
        12: 7,
        16: 199,
        24: 7,
        32: 67,
        64: 6,
        128: 3,
      });
      const last = Date.UTC(2017, 11, 22, 8, 2, 11) - Date.UTC(2017, 8, 4, 10, 30, 41);
      expect([jobs[0]?.submitAtMs, jobs.at(-1)?.submitAtMs]).toEqual([0, last]);
      const s = shares(jobs);
      expect(s['normal']).toBeCloseTo(0.6, 1);
      // The excerpt's jobs are the earliest of the full trace, with the same priorities.
      const excerpt = readPhilly(EXCERPT);
      const key = (j: SimulationJob) =>
        `${j.submitAtMs}/${j.durationMs}/${j.resources?.gpu}/${j.group}/${j.priority}`;
      expect(excerpt.map(key)).toEqual(jobs.slice(0, 1_000).map(key));
    });

    it('replays a slice of the full trace without over-allocating', async () => {
      const slice = full().slice(20_000, 20_150);
      const { report, watch } = await watchedRun(
        slice.map((j) => ({ ...j, submitAtMs: j.submitAtMs - (slice[0]?.submitAtMs ?? 0) })),
        4,
      );
      expect(watch.violations).toEqual([]);
      expect(report.counts.completed + report.counts.rejected).toBe(150);
    });
  },
);
