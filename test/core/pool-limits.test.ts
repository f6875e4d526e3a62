/**
 * How large a pool may be (issue 15 §3): unbounded, `gpus: 1e6` took 11 s and 900 MB to build
 * and `gpus: 1e7` ran out of heap. Past a limit the pool is refused with an InvalidPoolError
 * naming the field and the range, before anything is made for it; at the limit it works.
 */
import { describe, expect, it } from 'vitest';
import { InvalidPoolError } from '../../src/core/errors.js';
import { normalisePool, POOL_LIMITS } from '../../src/core/pool.js';
import type { ResourcePool } from '../../src/core/resources.js';
import { createScheduler, createVirtualClock } from '../../src/index.js';
import { simulateCommand } from '../../src/cli/simulate-command.js';
import { UsageError } from '../../src/cli/usage-error.js';

/** The error `normalisePool` throws for `pool`. */
function refusal(pool: unknown): InvalidPoolError {
  try {
    normalisePool(pool as ResourcePool);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidPoolError);
    return error as InvalidPoolError;
  }
  throw new Error('accepted');
}

const node = (fields: Record<string, unknown> = {}) => ({ cpu: 8, memoryMb: 1_000, ...fields });

describe('pool limits', () => {
  const cases: Array<[name: string, pool: unknown, field: string, range: string]> = [
    ['gpus: 1e6', node({ gpus: 1e6 }), 'nodes[0].gpus', `[0, ${POOL_LIMITS.gpusPerNode}]`],
    ['gpus: 1e7', node({ gpus: 1e7 }), 'nodes[0].gpus', `[0, ${POOL_LIMITS.gpusPerNode}]`],
    [
      'an array of 1,025 GPUs',
      node({ gpus: Array.from({ length: 1_025 }, () => ({ vramMb: 1 })) }),
      'nodes[0].gpus.length',
      `at most ${POOL_LIMITS.gpusPerNode}`,
    ],
    [
      'a sparse array of 1e7 GPUs',
      node({ gpus: new Array(1e7) }),
      'nodes[0].gpus.length',
      `at most ${POOL_LIMITS.gpusPerNode}`,
    ],
    [
      '100,001 nodes',
      { nodes: Array.from({ length: POOL_LIMITS.nodes + 1 }, () => node()) },
      'nodes.length',
      `at most ${POOL_LIMITS.nodes}`,
    ],
    [
      '129 nodes of 1,024 GPUs',
      { nodes: Array.from({ length: 129 }, () => node({ gpus: 1_024 })) },
      'nodes[128].gpus',
      `keeps the pool within ${POOL_LIMITS.gpus} GPUs`,
    ],
    ['cpu: 1e300', node({ cpu: 1e300 }), 'nodes[0].cpu', `[0, ${POOL_LIMITS.cpu}]`],
    ['memoryMb: 1e300', node({ memoryMb: 1e300 }), 'nodes[0].memoryMb', `[0, ${POOL_LIMITS.memoryMb}]`],
    [
      'vramMb: 1e300',
      node({ gpus: [{ vramMb: 1e300 }] }),
      'nodes[0].gpus[0].vramMb',
      `[0, ${POOL_LIMITS.vramMb}]`,
    ],
    [
      'custom: 1e300',
      node({ custom: { tokens: 1e300 } }),
      'nodes[0].custom.tokens',
      `[0, ${POOL_LIMITS.custom}]`,
    ],
    ['cpu: Infinity', node({ cpu: Infinity }), 'nodes[0].cpu', 'a finite number'],
  ];
  it.each(cases.map(([name, pool, field, range]) => ({ name, pool, field, range })))(
    '$name is refused naming $field and the range',
    ({ pool, field, range }) => {
      const error = refusal(pool);
      expect(error.field).toBe(field);
      expect(error.allowed).toContain(range);
      expect(error.message).toContain(field);
      expect(error.message).toContain(range);
    },
  );

  it('every limit, exactly, is accepted', () => {
    const at = POOL_LIMITS;
    expect(normalisePool(node({ gpus: at.gpusPerNode }))[0]?.gpus).toHaveLength(at.gpusPerNode);
    expect(normalisePool({ nodes: Array.from({ length: at.nodes }, () => node()) })).toHaveLength(at.nodes);
    const [big] = normalisePool(
      node({ cpu: at.cpu, memoryMb: at.memoryMb, gpus: [{ vramMb: at.vramMb }], custom: { x: at.custom } }),
    );
    expect(big).toMatchObject({ cpu: at.cpu, memoryMb: at.memoryMb, custom: { x: at.custom } });
    expect(big?.gpus[0]?.vramMb).toBe(at.vramMb);
  });

  it('a scheduler on a node at the GPU limit runs a job asking all of its GPUs', async () => {
    const clock = createVirtualClock();
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: node({ gpus: POOL_LIMITS.gpusPerNode }),
      handlers: { work: async () => 'ok' },
    });
    const job = scheduler.submit({ type: 'work', resources: { gpu: POOL_LIMITS.gpusPerNode } });
    await clock.advanceBy(1);
    expect(await job.result).toBe('ok');
    await scheduler.shutdown();
  });

  it('a scheduler given a pool past a limit throws the InvalidPoolError', () => {
    expect(() =>
      createScheduler({
        clock: createVirtualClock(),
        monitor: false,
        resources: node({ gpus: 1e7 }),
        handlers: { work: async () => 'ok' },
      }),
    ).toThrow(InvalidPoolError);
  });

  it('ai-batch simulate --gpus past the limit is a usage error naming --gpus; at the limit (a pool of the most GPUs) it replays', async () => {
    const out: string[] = [];
    const write = { out: (t: string) => void out.push(t), err: (t: string) => void out.push(t) };
    const trace = 'examples/traces/philly-first-1000.csv';
    const args = { command: 'simulate', trace, format: 'philly', policy: 'backfill', json: true } as const;
    await expect(simulateCommand({ ...args, gpus: POOL_LIMITS.gpus + 1 }, write)).rejects.toThrow(
      new UsageError(
        `--gpus must be at most ${POOL_LIMITS.gpus} (the most GPUs a pool may have); got ${POOL_LIMITS.gpus + 1}`,
        'simulate',
      ),
    );
    expect(out).toEqual([]);
    await simulateCommand({ ...args, gpus: POOL_LIMITS.gpus, limit: 20 }, write);
    const report = JSON.parse(out.join('')) as { resources: { capacity: { gpu: number } } };
    expect(report.resources.capacity.gpu).toBe(POOL_LIMITS.gpus);
  });
});
