import { describe, expect, it } from 'vitest';
import { JobFileError } from '../../src/cli/job-file-error.js';
import { checkJobsFitPool, checkPool } from '../../src/cli/pool-file.js';

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof JobFileError) return error.message;
    throw error;
  }
  throw new Error('expected a JobFileError');
}

describe('checkPool', () => {
  it('accepts one node or a list of nodes, as written', () => {
    const node = { cpu: 8, memoryMb: 16_000, gpus: [{ vramMb: 24_000, model: 'x' }] };
    expect(checkPool(node, 'pool.yaml', '')).toBe(node);
    const nodes = { nodes: [node, { id: 'b', cpu: 2, memoryMb: 1_000, gpus: 2, custom: { licence: 1 } }] };
    expect(checkPool(nodes, 'pool.yaml', '')).toBe(nodes);
  });

  it('names the file and the field of a bad pool', () => {
    expect(messageOf(() => checkPool('big', 'pool.yaml', ''))).toBe(
      'pool.yaml: the pool must be a node { cpu, memoryMb, gpus } or { nodes: [ ... ] }; got "big"',
    );
    // The allowed range is the engine's (normalisePool); the CLI's part is the file and the field.
    expect(messageOf(() => checkPool({ cpu: 1 }, 'pool.yaml', ''))).toMatch(
      /^pool\.yaml: memoryMb must be a finite number .+; got nothing$/,
    );
    expect(messageOf(() => checkPool({ nodes: [] }, 'pool.yaml', ''))).toBe(
      'pool.yaml: nodes must be a non-empty list of nodes; got []',
    );
    expect(messageOf(() => checkPool({ nodes: [{ cpu: 1, memoryMb: 1 }, 3] }, 'pool.yaml', ''))).toMatch(
      /^pool\.yaml: nodes\[1\] must be a node/,
    );
    expect(messageOf(() => checkPool({ cpu: 1, memoryMb: 1, gpu: 2 }, 'f.yaml', 'resources'))).toBe(
      'f.yaml: unknown field "resources.gpu" (known: id, cpu, memoryMb, gpus, custom)',
    );
    expect(messageOf(() => checkPool({ cpu: 1, memoryMb: 1, gpus: [null] }, 'f.yaml', 'resources'))).toMatch(
      /^f\.yaml: resources\.gpus must be a count or a list/,
    );
    expect(
      messageOf(() =>
        checkPool(
          {
            nodes: [
              { id: 'a', cpu: 1, memoryMb: 1 },
              { id: 'a', cpu: 1, memoryMb: 1 },
            ],
          },
          'p.json',
          '',
        ),
      ),
    ).toBe('p.json: nodes[1].id must be unique within the pool; got "a"');
  });
});

describe('checkJobsFitPool', () => {
  const pool = { cpu: 4, memoryMb: 8_000, gpus: [{ vramMb: 16_000 }, { vramMb: 16_000 }] };

  it('accepts requests that fit some node', () => {
    expect(() =>
      checkJobsFitPool(
        'jobs.yaml',
        [{ id: 'a', index: 0, resources: { gpu: 2, vramMb: 16_000, cpu: 4 } }],
        pool,
        'p',
      ),
    ).not.toThrow();
  });

  it('names the job and the resource that can never fit, and where the pool came from', () => {
    const jobs = [
      { id: 'a', index: 0, resources: { gpu: 1 } },
      { id: 'b', index: 1, resources: { gpu: 1, vramMb: 20_000 } },
    ];
    expect(messageOf(() => checkJobsFitPool('jobs.yaml', jobs, pool, '--resources pool.yaml'))).toBe(
      'jobs.yaml: job "b" (jobs[1]): resources.vramMb 20000 can never fit: the largest GPU has 16000 MB of VRAM ' +
        '(pool: --resources pool.yaml)',
    );
  });
});
