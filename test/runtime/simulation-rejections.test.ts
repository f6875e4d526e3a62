/**
 * The simulation report says why jobs were rejected: grouped by reason, in the report object
 * (and so its JSON) and in the CLI's text (issue 15 §4).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { simulateCommand } from '../../src/cli/simulate-command.js';
import { simulate } from '../../src/runtime/simulate.js';
import type { SimulationJob } from '../../src/runtime/simulation-types.js';

const PHILLY = fileURLToPath(new URL('../../examples/traces/philly-first-1000.csv', import.meta.url));

describe('rejections by reason', () => {
  it('groups a made-up run by reason, the largest group first', async () => {
    const at = (id: string, submitAtMs: number, rest: Partial<SimulationJob> = {}): SimulationJob => ({
      id,
      submitAtMs,
      durationMs: 1_000,
      ...rest,
    });
    const report = await simulate({
      resources: {
        nodes: [{ id: 'n', cpu: 4, memoryMb: 8_192, gpus: [{ vramMb: 16_000 }, { vramMb: 16_000 }] }],
      },
      jobs: [
        at('runs', 0, { resources: { gpu: 2 } }),
        at('waits', 1, { resources: { gpu: 2 } }),
        at('full-1', 2),
        at('gpus-1', 3, { resources: { gpu: 4 } }),
        at('gpus-2', 3, { resources: { gpu: 3, cpu: 64 } }), // GPUs are named before CPU
        at('gpus-3', 4, { resources: { gpu: 8 } }),
        at('vram', 5, { resources: { gpu: 1, vramMb: 40_000 } }),
        at('cpu', 5, { resources: { cpu: 5 } }),
        at('licence', 6, { resources: { custom: { licence: 1 } } }),
        at('orphan', 7, { dependsOn: ['gpus-1'] }),
        at('full-2', 8),
      ],
      options: { maxQueueSize: 1, retry: { attempts: 1 } },
    });
    expect(report.counts.rejected).toBe(9);
    expect(report.rejections).toEqual([
      {
        reason: 'asked for more GPUs than a node has (at most 2)',
        error: 'UnschedulableError',
        field: 'resources.gpu',
        count: 3,
        firstJob: 'gpus-1',
      },
      {
        reason: 'arrived when the queue was full (maxQueueSize 1)',
        error: 'QueueFullError',
        count: 2,
        firstJob: 'full-1',
      },
      {
        reason: 'asked for more VRAM than a GPU has (at most 16000 MB)',
        error: 'UnschedulableError',
        field: 'resources.vramMb',
        count: 1,
        firstJob: 'vram',
      },
      {
        reason: 'asked for more CPU cores than a node has (at most 4)',
        error: 'UnschedulableError',
        field: 'resources.cpu',
        count: 1,
        firstJob: 'cpu',
      },
      {
        reason: 'asked for "licence", which no node has',
        error: 'UnschedulableError',
        field: 'resources.custom.licence',
        count: 1,
        firstJob: 'licence',
      },
      {
        reason: 'depended on a job that was rejected or never submitted',
        error: 'UnknownDependencyError',
        field: 'dependsOn',
        count: 1,
        firstJob: 'orphan',
      },
    ]);
    // The counts add up, and each job still says its own error.
    expect(report.rejections.reduce((n, g) => n + g.count, 0)).toBe(report.counts.rejected);
    expect(report.jobs.find((j) => j.id === 'gpus-2')?.error).toMatch(
      /^UnschedulableError: resources\.gpu 3 /,
    );
    // In the JSON report as they are.
    expect(JSON.parse(JSON.stringify(report)).rejections).toEqual(report.rejections);
  });

  it('a run that rejects nothing has no groups', async () => {
    const report = await simulate({
      resources: { cpu: 1, memoryMb: 1_024 },
      jobs: [{ id: 'a', submitAtMs: 0, durationMs: 1 }],
    });
    expect(report.rejections).toEqual([]);
  });

  it('ai-batch simulate says why the Philly excerpt rejects jobs: 16-GPU jobs on nodes of 8', async () => {
    const out: string[] = [];
    const write = { out: (text: string) => out.push(text), err: (text: string) => out.push(text) };
    await simulateCommand(
      { command: 'simulate', trace: PHILLY, format: 'philly', policy: 'backfill', json: false },
      write,
    );
    const lines = out.join('').split('\n');
    expect(lines[1]).toBe('jobs     rejected 11 · completed 989');
    expect(lines[2]).toBe('rejected 11 asked for more GPUs than a node has (at most 8)');
    expect(lines[3]).toMatch(/^makespan /);

    // The JSON report of its first 100 jobs, which hold all 11.
    out.length = 0;
    await simulateCommand(
      { command: 'simulate', trace: PHILLY, format: 'philly', policy: 'backfill', json: true, limit: 100 },
      write,
    );
    const report = JSON.parse(out.join('')) as { rejections: unknown };
    expect(report.rejections).toEqual([
      {
        reason: 'asked for more GPUs than a node has (at most 8)',
        error: 'UnschedulableError',
        field: 'resources.gpu',
        count: 11,
        firstJob: expect.any(String),
      },
    ]);
  });
});
