import { describe, expect, it } from 'vitest';
import { InvalidJobError, InvalidPoolError, UnschedulableError } from '../../src/core/errors.js';
import { ResourceLedger } from '../../src/core/ledger.js';
import { toUnits } from '../../src/core/pool.js';
import type { ResourceRequest } from '../../src/core/resources.js';

const pool = {
  nodes: [
    {
      id: 'small',
      cpu: 8,
      memoryMb: 32_000,
      gpus: [{ vramMb: 24_000, model: 'RTX 4090' }],
      custom: { licence: 1 },
    },
    { id: 'big', cpu: 64, memoryMb: 512_000, gpus: Array.from({ length: 8 }, () => ({ vramMb: 81_920 })) },
  ],
};

function rejection(request: unknown): { name: string; field: string; message: string; max?: number } {
  const ledger = new ResourceLedger(pool);
  const before = JSON.stringify(ledger.totals());
  try {
    ledger.validate(request as ResourceRequest);
  } catch (error) {
    // Rejected at the door: nothing changed.
    expect(JSON.stringify(ledger.totals())).toBe(before);
    expect(ledger.active).toBe(0);
    return error as { name: string; field: string; message: string; max?: number };
  }
  throw new Error(`accepted ${JSON.stringify(request)}`);
}

describe('validation at the door', () => {
  it.each([
    [{ cpu: -1 }, 'resources.cpu'],
    [{ cpu: Number.NaN }, 'resources.cpu'],
    [{ memoryMb: Number.POSITIVE_INFINITY }, 'resources.memoryMb'],
    [{ memoryMb: '512' }, 'resources.memoryMb'],
    [{ gpu: -0.5 }, 'resources.gpu'],
    [{ gpu: 1.5 }, 'resources.gpu'],
    [{ gpu: Number.NaN }, 'resources.gpu'],
    [{ gpu: 0.9999999999 }, 'resources.gpu'],
    [{ gpu: 1, vramMb: -5 }, 'resources.vramMb'],
    [{ vramMb: 1_000 }, 'resources.vramMb'],
    [{ custom: { licence: -1 } }, 'resources.custom.licence'],
    [{ custom: 'licence' }, 'resources.custom'],
  ])('rejects %j as InvalidJobError naming %s', (request, field) => {
    const error = rejection(request);
    expect(error).toBeInstanceOf(InvalidJobError);
    expect(error.field).toBe(field);
    expect(error.message).toContain(field);
  });

  it.each([
    [{ gpu: 9 }, 'resources.gpu', 8],
    [{ gpu: 1, vramMb: 100_000 }, 'resources.vramMb', 81_920],
    [{ gpu: 0.5, vramMb: 100_000 }, 'resources.vramMb', 81_920],
    [{ cpu: 65 }, 'resources.cpu', 64],
    [{ memoryMb: 600_000 }, 'resources.memoryMb', 512_000],
    [{ custom: { tpu: 1 } }, 'resources.custom.tpu', 0],
    [{ custom: { licence: 2 } }, 'resources.custom.licence', 1],
  ])('rejects %j as UnschedulableError naming %s and the pool maximum %d', (request, field, max) => {
    const error = rejection(request);
    expect(error).toBeInstanceOf(UnschedulableError);
    expect(error.field).toBe(field);
    expect(error.max).toBe(max);
    expect(error.message).toContain(max > 0 ? String(max) : 'no node has');
  });

  it('rejects a request no single node can hold at once, though each part fits somewhere', () => {
    // The licence is only on the small node, the 2 GPUs only on the big one.
    const error = rejection({ gpu: 2, custom: { licence: 1 } });
    expect(error).toBeInstanceOf(UnschedulableError);
    expect(error.field).toBe('resources');
    expect(error.message).toMatch(/no single node/);
  });

  it('accepts what fits, including shares and fractional CPUs', () => {
    const ledger = new ResourceLedger(pool);
    expect(ledger.validate({ gpu: 0.5, vramMb: 10_000, cpu: 0.25 })).toMatchObject({
      share: 500_000,
      cpu: 250,
    });
    expect(ledger.validate({})).toMatchObject({ cpu: 0, memoryMb: 0, gpus: 0, share: 0 });
    expect(ledger.validate({ gpu: 8, vramMb: 80_000 })).toMatchObject({ gpus: 8 });
  });

  it('equal requests share one units object; different ones, and custom amounts, do not', () => {
    const a = toUnits({ cpu: 1 });
    expect(toUnits({ cpu: 1, memoryMb: 0 })).toBe(a);
    // Shared, so frozen: a caller of ledger.validate cannot change what other jobs hold.
    expect(Object.isFrozen(a)).toBe(true);
    expect(() => Object.assign(new ResourceLedger(pool).validate({ cpu: 1 }), { cpu: 3_000 })).toThrow(
      TypeError,
    );
    expect(toUnits({ cpu: 1 }).cpu).toBe(1_000);
    expect(toUnits({ cpu: 2 })).not.toBe(a);
    expect(toUnits({ cpu: 2 })).toEqual({
      cpu: 2_000,
      memoryMb: 0,
      gpus: 0,
      share: 0,
      vramMb: 0,
      custom: [],
    });
    // A share with no VRAM named (in proportion) and one with VRAM 0 differ.
    expect(toUnits({ gpu: 0.5 })).not.toBe(toUnits({ gpu: 0.5, vramMb: 0 }));
    expect(toUnits({ gpu: 0.5 }).vramMb).toBeUndefined();
    const licensed = toUnits({ cpu: 1, custom: { licence: 1 } });
    expect(licensed).not.toBe(toUnits({ cpu: 1, custom: { licence: 1 } }));
    expect(licensed.custom).toEqual([['licence', 1_000]]);
    // More shapes than are remembered: still correct, each equal to what it asks.
    for (let cpu = 1; cpu <= 20; cpu++) expect(toUnits({ cpu }).cpu).toBe(cpu * 1_000);
    expect(toUnits({ cpu: 1 })).toEqual(a);
  });
});

describe('pool validation', () => {
  it.each([
    [{ nodes: [] }, 'nodes'],
    [{ cpu: -1, memoryMb: 1 }, 'nodes[0].cpu'],
    [{ cpu: 1, memoryMb: Number.NaN }, 'nodes[0].memoryMb'],
    [{ cpu: 1, memoryMb: 1, gpus: 1.5 }, 'nodes[0].gpus'],
    [{ cpu: 1, memoryMb: 1, gpus: [{ vramMb: -1 }] }, 'nodes[0].gpus[0].vramMb'],
    [
      {
        cpu: 1,
        memoryMb: 1,
        gpus: [
          { vramMb: 1, index: 0 },
          { vramMb: 1, index: 0 },
        ],
      },
      'nodes[0].gpus[1].index',
    ],
    [
      {
        nodes: [
          { id: 'a', cpu: 1, memoryMb: 1 },
          { id: 'a', cpu: 1, memoryMb: 1 },
        ],
      },
      'nodes[1].id',
    ],
    [{ cpu: 1, memoryMb: 1, custom: { x: -2 } }, 'nodes[0].custom.x'],
  ])('rejects %j naming %s', (bad, field) => {
    expect(() => new ResourceLedger(bad as never)).toThrow(InvalidPoolError);
    try {
      new ResourceLedger(bad as never);
    } catch (error) {
      expect((error as InvalidPoolError).field).toBe(field);
    }
  });

  it('numbers GPUs, names nodes, and treats a GPU count as GPUs with untracked VRAM', () => {
    const ledger = new ResourceLedger({ cpu: 4, memoryMb: 8_000, gpus: 2 });
    expect(ledger.nodes[0]).toEqual({
      id: 'node-0',
      cpu: 4,
      memoryMb: 8_000,
      gpus: [
        { index: 0, vramMb: 0, model: 'unknown' },
        { index: 1, vramMb: 0, model: 'unknown' },
      ],
      custom: {},
    });
    expect(ledger.totals().capacity).toEqual({ cpu: 4, memoryMb: 8_000, gpu: 2, vramMb: 0, custom: {} });
  });
});
