import { describe, expect, it } from 'vitest';
import { gpuPool } from '../../src/cli/simulate-command.js';
import { renderSimulationReport } from '../../src/cli/simulation-view.js';
import type { DurationStats, SimulationReport } from '../../src/runtime/simulation-types.js';

const stats = (mean: number, count: number): DurationStats => ({
  count,
  mean,
  p50: mean,
  p99: mean * 2,
  max: mean * 3,
});
const zero = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0, custom: {} };

describe('renderSimulationReport', () => {
  it('says what ran on what, how it ended, and waits and JCTs by priority', () => {
    const report: SimulationReport = {
      jobs: [],
      counts: {
        pending: 0,
        queued: 0,
        scheduled: 0,
        running: 0,
        retrying: 0,
        completed: 9,
        failed: 0,
        cancelled: 0,
        rejected: 1,
        unsubmitted: 0,
      },
      rejections: [
        {
          reason: 'asked for more GPUs than a node has (at most 8)',
          error: 'UnschedulableError',
          field: 'resources.gpu',
          count: 1,
          firstJob: 'big',
        },
      ],
      startMs: 0,
      endMs: 7_200_000,
      makespanMs: 7_200_000,
      utilisation: { cpu: 0.25, memoryMb: 0.1, gpu: 0.625, vramMb: 0 },
      wait: { overall: stats(60_000, 9), byPriority: { high: stats(1_000, 2), normal: stats(80_000, 7) } },
      jct: { overall: stats(600_000, 9), byPriority: {} },
      resources: { capacity: { ...zero, cpu: 32, memoryMb: 131_072, gpu: 8 }, allocatedAtEnd: zero },
    };
    expect(
      renderSimulationReport(report, {
        trace: 't.csv',
        format: 'philly',
        pool: '1 node(s), 8 GPU(s)',
        policy: 'backfill',
        skipped: 3,
      }),
    ).toEqual([
      'simulated 0 jobs of t.csv (philly) on 1 node(s), 8 GPU(s), backfill queue (3 trace rows skipped)',
      'jobs     completed 9 · rejected 1',
      'rejected 1 asked for more GPUs than a node has (at most 8)',
      'makespan 2h00m',
      'utilisation gpu 62.5% · cpu 25.0% · memory 10.0%',
      'wait  mean 1m00s · p50 1m00s · p99 2m00s · max 3m00s (9 jobs)',
      '  high       mean 1.0s · p50 1.0s · p99 2.0s (2)',
      '  normal     mean 1m20s · p50 1m20s · p99 2m40s (7)',
      'jct   mean 10m00s · p50 10m00s · p99 20m00s · max 30m00s (9 jobs)',
    ]);
  });
});

describe('rejections in the text report', () => {
  const group = (count: number, reason: string) => ({ reason, error: 'E', count, firstJob: 'x' });
  const report = (rejections: SimulationReport['rejections']): SimulationReport => ({
    jobs: [],
    counts: {
      pending: 0,
      queued: 0,
      scheduled: 0,
      running: 0,
      retrying: 0,
      completed: 0,
      failed: 0,
      cancelled: 0,
      rejected: rejections.reduce((n, g) => n + g.count, 0),
      unsubmitted: 0,
    },
    rejections,
    startMs: 0,
    endMs: 0,
    makespanMs: 0,
    utilisation: { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0 },
    wait: { overall: stats(0, 0), byPriority: {} },
    jct: { overall: stats(0, 0), byPriority: {} },
    resources: { capacity: zero, allocatedAtEnd: zero },
  });
  const heading = { trace: 't.csv', format: 'philly', pool: 'p', policy: 'backfill', skipped: 0 };

  it('says each reason on a line of its own, the counts aligned, under the jobs line', () => {
    const lines = renderSimulationReport(
      report([
        group(289, 'asked for more GPUs than a node has (at most 8)'),
        group(11, 'arrived when the queue was full (maxQueueSize 100)'),
        group(2, 'depended on a job that was rejected or never submitted'),
      ]),
      heading,
    );
    expect(lines.slice(1, 5)).toEqual([
      'jobs     rejected 302',
      'rejected 289 asked for more GPUs than a node has (at most 8)',
      '          11 arrived when the queue was full (maxQueueSize 100)',
      '           2 depended on a job that was rejected or never submitted',
    ]);
  });

  it('says nothing of rejections when there were none', () => {
    const lines = renderSimulationReport(report([]), heading);
    expect(lines.some((line) => line.startsWith('rejected'))).toBe(false);
    expect(lines[2]).toMatch(/^makespan /);
  });
});

describe('gpuPool', () => {
  it('makes nodes of 8 GPUs, the last one smaller', () => {
    const pool = gpuPool(20, 'philly');
    expect(pool.nodes.map((node) => node.gpus)).toEqual([8, 8, 4]);
    expect(pool.nodes[2]).toEqual({ id: 'node-2', cpu: 16, memoryMb: 65_536, gpus: 4 });
  });
});
