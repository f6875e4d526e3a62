/** End to end: the commands besides `run` — help, diagram, resources, simulate. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli-process.js';
import { toMermaid } from '../../src/machines/diagram.js';
import { schedulerMachine } from '../../src/machines/scheduler.machine.js';

describe('ai-batch commands', () => {
  it('prints help for a command and exits 0', async () => {
    const result = await runCli(['run', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: ai-batch run <jobs\.yaml\|jobs\.json>/);
  });

  it('prints a machine as Mermaid', async () => {
    const result = await runCli(['diagram', 'scheduler']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(toMermaid(schedulerMachine));
  });

  it('prints the detected pool as JSON', async () => {
    const result = await runCli(['resources', '--json']);
    expect(result.code).toBe(0);
    const detection = JSON.parse(result.stdout) as {
      node: { cpu: number; memoryMb: number; gpus: unknown[] };
    };
    expect(detection.node.cpu).toBeGreaterThan(0);
    expect(detection.node.memoryMb).toBeGreaterThan(0);
    expect(Array.isArray(detection.node.gpus)).toBe(true);
  });

  it('replays a Philly trace in virtual time and prints the report as JSON', async () => {
    const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-sim-'));
    try {
      const rows = [
        'timestamp,duration,num_gpus,gpu_time,cluster',
        '2017-10-09 07:00:00,600.0,8,4800.0,c1',
        '2017-10-09 07:01:00,300.0,8,2400.0,c1',
        '2017-10-09 07:02:00,60.0,1,60.0,c2',
      ];
      writeFileSync(nodePath.join(dir, 'trace.csv'), `${rows.join('\n')}\n`);
      const result = await runCli(
        ['simulate', '--trace', 'trace.csv', '--format', 'philly', '--gpus', '8', '--json'],
        {
          cwd: dir,
        },
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const report = JSON.parse(result.stdout) as { jobs: Array<{ state: string }>; makespanMs: number };
      expect(report.jobs.map((job) => job.state)).toEqual(['completed', 'completed', 'completed']);
      // One 8-GPU node: the two 8-GPU jobs cannot overlap (600 s + 300 s from 07:00).
      expect(report.makespanMs).toBeGreaterThanOrEqual(900_000);

      writeFileSync(nodePath.join(dir, 'bad.csv'), 'timestamp,duration\n2017-10-09 07:00:00,soon\n');
      const bad = await runCli(['simulate', '--trace', 'bad.csv', '--format', 'philly'], { cwd: dir });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/^ai-batch: bad\.csv: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
