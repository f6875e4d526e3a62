import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ResourcePool } from '../../src/core/resources.js';
import { simulate } from '../../src/runtime/simulate.js';
import type { SimulationJob } from '../../src/runtime/simulation-types.js';
import {
  parseAlibabaNodes,
  parseAlibabaPods,
  readAlibabaNodes,
  readAlibabaPods,
} from '../../src/traces/alibaba.js';
import { watchAllocations } from '../helpers/allocation-watch.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const PODS = here('../../examples/traces/alibaba-pods-first-500.csv');
const NODES = here('../../examples/traces/alibaba-nodes-every-120th.csv');
const FULL_PODS = here('../../../shared/traces/alibaba_openb_pod_list_default.csv');
const FULL_NODES = here('../../../shared/traces/alibaba_openb_node_list_gpu_node.csv');
const MAX_TICK_MS = 2 ** 31 - 1;

const POD_HEADER =
  'name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n';
const pods = [
  'p-whole,12000,16384,1,1000,,LS,Running,100,1100,100',
  'p-share,6000,12288,1,460,,BE,Succeeded,150,400,200',
  'p-eight,32000,65536,8,1000,,Guaranteed,Failed,200,260,250',
  'p-cpu,2500,1024,0,0,,Burstable,Succeeded,300,310,305',
  'p-pending,1000,1024,1,1000,,BE,Pending,350,500,',
].join('\n');

/** Simulates jobs on a pool while watching every allocation. */
async function watchedRun(pool: ResourcePool, jobs: SimulationJob[]) {
  const watch = watchAllocations(pool);
  // Event-driven only: the excerpt spans months, and each safety-net tick retries the queue.
  const options = { schedulingIntervalMs: MAX_TICK_MS };
  const report = await simulate({ resources: pool, jobs, options, observe: (s) => watch.observe(s) });
  return { report, watch };
}

describe('Alibaba pod reader', () => {
  it('maps times, CPU, memory, whole GPUs, GPU shares and qos', () => {
    const { jobs, skipped } = parseAlibabaPods(POD_HEADER + pods);
    expect(jobs).toEqual([
      {
        id: 'p-whole',
        submitAtMs: 0,
        durationMs: 1_000_000,
        resources: { cpu: 12, memoryMb: 16_384, gpu: 1 },
        priority: 'high',
      },
      {
        id: 'p-share',
        submitAtMs: 50_000,
        durationMs: 200_000,
        resources: { cpu: 6, memoryMb: 12_288, gpu: 0.46 },
        priority: 'background',
      },
      {
        id: 'p-eight',
        submitAtMs: 100_000,
        durationMs: 10_000,
        resources: { cpu: 32, memoryMb: 65_536, gpu: 8 },
        priority: 'critical',
      },
      {
        id: 'p-cpu',
        submitAtMs: 200_000,
        durationMs: 5_000,
        resources: { cpu: 2.5, memoryMb: 1_024 },
        priority: 'normal',
      },
    ]);
    expect(skipped).toEqual([{ id: 'p-pending', line: 6, reason: 'never scheduled (pending)' }]);
  });

  it('can include pending pods, fail failed ones, and remap qos', () => {
    const { jobs, skipped } = parseAlibabaPods(POD_HEADER + pods, {
      pending: 'include',
      failFailed: true,
      qosPriority: { BE: 'low' },
    });
    expect(skipped).toEqual([]);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    expect(byId.get('p-pending')).toMatchObject({
      submitAtMs: 250_000,
      durationMs: 150_000,
      priority: 'low',
    });
    expect(byId.get('p-eight')?.fails).toBe(true);
    expect(byId.get('p-whole')?.fails).toBeUndefined();
  });

  it('names the line and column of what it cannot map', () => {
    expect(() => parseAlibabaPods(`${POD_HEADER}p,1000,1,1,1000,,Gold,Running,0,1,0\n`)).toThrow(
      /line 2, qos/,
    );
    expect(() => parseAlibabaPods(`${POD_HEADER}p,1000,1,1,1000,,LS,Running,0,5,10\n`)).toThrow(
      /line 2, deletion_time/,
    );
    expect(() => parseAlibabaPods(`${POD_HEADER}p,x,1,1,1000,,LS,Running,0,5,0\n`)).toThrow(
      /line 2, cpu_milli/,
    );
  });
});

describe('Alibaba node reader', () => {
  it('builds a pool with each GPU model’s VRAM (0, untracked, for the anonymised G2 and G3)', () => {
    const text =
      'sn,cpu_milli,memory_mib,gpu,model\nn1,64000,262144,2,P100\nn2,96000,393216,1,G2\nn3,8000,32768,1,V100M32\n';
    const { nodes } = parseAlibabaNodes(text);
    expect(nodes).toEqual([
      {
        id: 'n1',
        cpu: 64,
        memoryMb: 262_144,
        gpus: [
          { vramMb: 16_384, model: 'P100' },
          { vramMb: 16_384, model: 'P100' },
        ],
      },
      { id: 'n2', cpu: 96, memoryMb: 393_216, gpus: [{ vramMb: 0, model: 'G2' }] },
      { id: 'n3', cpu: 8, memoryMb: 32_768, gpus: [{ vramMb: 32_768, model: 'V100M32' }] },
    ]);
    const guessed = parseAlibabaNodes(text, { vramMbByModel: { G2: 24_576 } });
    expect(guessed.nodes[1]?.gpus).toEqual([{ vramMb: 24_576, model: 'G2' }]);
  });
});

describe('the shipped Alibaba excerpt', () => {
  it('replays 500 pods on 11 nodes: no over-allocation, every job accounted for, deterministic', async () => {
    const { jobs, skipped } = readAlibabaPods(PODS);
    const pool = readAlibabaNodes(NODES);
    expect(jobs.length + skipped.length).toBe(500);
    expect(pool.nodes).toHaveLength(11);
    const [a, b] = await Promise.all([watchedRun(pool, jobs), watchedRun(pool, jobs)]);
    expect(a.watch.violations).toEqual([]);
    expect(a.watch.checks).toBeGreaterThanOrEqual(2 * jobs.length);
    expect(a.report.counts.completed).toBe(jobs.length);
    expect(a.report.jobs.map((j) => j.id)).toEqual(jobs.map((j) => j.id));
    // Shares let several pods use one GPU; the small pool makes some of them wait.
    expect(a.report.jobs.some((j) => (j.allocation?.gpus[0]?.share ?? 1) < 1)).toBe(true);
    expect(a.report.wait.overall.max).toBeGreaterThan(0);
    expect(a.report).toEqual(b.report);
  });
});

describe.skipIf(!existsSync(FULL_PODS) || !existsSync(FULL_NODES))(
  'the full Alibaba trace in ../shared/traces/ (skipped where that folder is absent)',
  () => {
    it('reads all 8,152 pods and 1,213 nodes with the counts the trace README gives', () => {
      const { jobs, skipped } = readAlibabaPods(FULL_PODS);
      expect(jobs.length + skipped.length).toBe(8_152);
      expect(skipped).toHaveLength(897); // the Pending pods
      const shares = jobs.filter((j) => (j.resources?.gpu ?? 0) > 0 && (j.resources?.gpu ?? 0) < 1);
      expect(shares.length).toBeGreaterThan(2_500);
      const pool = readAlibabaNodes(FULL_NODES);
      expect(pool.nodes).toHaveLength(1_213);
      const gpus = pool.nodes.reduce((n, node) => n + (Array.isArray(node.gpus) ? node.gpus.length : 0), 0);
      expect(gpus).toBe(6_212);
    });

    it('replays the first 150 pods on the full cluster without over-allocating', async () => {
      const { jobs } = readAlibabaPods(FULL_PODS);
      const { report, watch } = await watchedRun(readAlibabaNodes(FULL_NODES), jobs.slice(0, 150));
      expect(watch.violations).toEqual([]);
      expect(report.counts.completed).toBe(150);
    });
  },
);
