import { describe, expect, it } from 'vitest';
import { ResourceLedger, type AllocateResult } from '../../src/core/ledger.js';
import type { ResourceRequest } from '../../src/core/resources.js';
import type { Allocation } from '../../src/core/types.js';

function grant(
  ledger: ResourceLedger,
  request: ResourceRequest,
  policy?: 'best-fit' | 'first-fit',
): Allocation {
  const result: AllocateResult = ledger.allocate(ledger.validate(request), policy);
  if (!result.ok) throw new Error(`denied: ${JSON.stringify(result.denial)}`);
  return result.allocation;
}

const gpus = (n: number, vramMb = 24_000) => Array.from({ length: n }, () => ({ vramMb }));

describe('placement', () => {
  it('best-fit sends a 1-GPU job to the node with the fewest free GPUs; first-fit to the first node', () => {
    const nodes = [
      { id: 'eight', cpu: 64, memoryMb: 256_000, gpus: gpus(8) },
      { id: 'two', cpu: 16, memoryMb: 64_000, gpus: gpus(2) },
    ];
    expect(grant(new ResourceLedger({ nodes }), { gpu: 1 }).nodeId).toBe('two');
    expect(grant(new ResourceLedger({ nodes }), { gpu: 1 }, 'first-fit').nodeId).toBe('eight');
    // So an 8-GPU job still fits after best-fit placed the small one.
    const ledger = new ResourceLedger({ nodes });
    grant(ledger, { gpu: 1 });
    expect(grant(ledger, { gpu: 8 }).nodeId).toBe('eight');
  });

  it('CPU-only work goes where it strands no GPU', () => {
    const ledger = new ResourceLedger({
      nodes: [
        { id: 'gpu-box', cpu: 32, memoryMb: 128_000, gpus: gpus(4) },
        { id: 'cpu-box', cpu: 32, memoryMb: 128_000 },
      ],
    });
    expect(grant(ledger, { cpu: 30 }).nodeId).toBe('cpu-box');
  });

  it('best-fit picks the GPU whose VRAM fits most tightly; whole GPUs take all their VRAM', () => {
    const ledger = new ResourceLedger({
      cpu: 16,
      memoryMb: 64_000,
      gpus: [{ vramMb: 80_000 }, { vramMb: 16_000 }, { vramMb: 24_000 }],
    });
    const a = grant(ledger, { gpu: 1, vramMb: 20_000 });
    expect(a.gpus).toEqual([{ index: 2, share: 1, vramMb: 24_000 }]);
    const b = grant(ledger, { gpu: 1, vramMb: 10_000 });
    expect(b.gpus).toEqual([{ index: 1, share: 1, vramMb: 16_000 }]);
  });

  it('packs shares onto a GPU that already carries shares, never past 1 or its VRAM', () => {
    const ledger = new ResourceLedger({ cpu: 16, memoryMb: 64_000, gpus: gpus(2, 24_000) });
    const first = grant(ledger, { gpu: 0.5, vramMb: 8_000 });
    const second = grant(ledger, { gpu: 0.25, vramMb: 8_000 });
    expect(second.gpus[0]?.index).toBe(first.gpus[0]?.index);
    // 0.25 share left on that GPU but only 8 GB; a third share needing 10 GB goes to the other GPU.
    const third = grant(ledger, { gpu: 0.25, vramMb: 10_000 });
    expect(third.gpus[0]?.index).not.toBe(first.gpus[0]?.index);
    // Shares of 1/3 fit three times on one GPU.
    const thirds = new ResourceLedger({ cpu: 4, memoryMb: 4_000, gpus: gpus(1, 30_000) });
    for (let i = 0; i < 3; i++) grant(thirds, { gpu: 1 / 3 });
    expect(thirds.allocate(thirds.validate({ gpu: 0.01 })).ok).toBe(false);
    // A share without vramMb takes its proportion of the device, rounded down: 3 × 9,999 MB.
    expect(thirds.totals().allocated.vramMb).toBe(29_997);
  });

  it('never gives a whole GPU that carries a share, nor a share of a GPU taken whole', () => {
    const ledger = new ResourceLedger({ cpu: 16, memoryMb: 64_000, gpus: gpus(1) });
    grant(ledger, { gpu: 0.1 });
    const denied = ledger.allocate(ledger.validate({ gpu: 1 }));
    expect(denied).toEqual({
      ok: false,
      denial: { short: [{ resource: 'gpu', nodeId: 'node-0', requested: 1, free: 0 }] },
    });
    const other = new ResourceLedger({ cpu: 16, memoryMb: 64_000, gpus: gpus(1) });
    grant(other, { gpu: 1 });
    expect(other.allocate(other.validate({ gpu: 0.1 })).ok).toBe(false);
  });

  it('a denial names what is short and on which node', () => {
    const ledger = new ResourceLedger({
      nodes: [
        { id: 'a', cpu: 4, memoryMb: 8_000, custom: { licence: 1 } },
        { id: 'b', cpu: 8, memoryMb: 16_000, gpus: gpus(1, 24_000) },
      ],
    });
    grant(ledger, { cpu: 3 });
    const cpuShort = ledger.allocate(ledger.validate({ cpu: 4, custom: { licence: 1 } }));
    expect(cpuShort).toEqual({
      ok: false,
      denial: { short: [{ resource: 'cpu', nodeId: 'a', requested: 4, free: 1 }] },
    });
    grant(ledger, { gpu: 0.5, vramMb: 20_000 });
    const vramShort = ledger.allocate(ledger.validate({ gpu: 0.25, vramMb: 8_000 }));
    expect(vramShort).toEqual({
      ok: false,
      denial: { short: [{ resource: 'vram', nodeId: 'b', requested: 8_000, free: 4_000 }] },
    });
    grant(ledger, { custom: { licence: 1 } });
    const customShort = ledger.allocate(ledger.validate({ custom: { licence: 1 } }));
    expect(customShort).toMatchObject({
      ok: false,
      denial: { short: [{ resource: 'custom:licence', nodeId: 'a' }] },
    });
  });
});

describe('release and admission limits', () => {
  it('release is idempotent and restores exactly', () => {
    const ledger = new ResourceLedger({ cpu: 3, memoryMb: 1_000, gpus: gpus(1) });
    const empty = ledger.totals();
    const a = grant(ledger, { cpu: 0.1, memoryMb: 333, gpu: 1 / 3 });
    const b = grant(ledger, { cpu: 0.2, memoryMb: 333, gpu: 1 / 3 });
    expect(ledger.release(a.id)).toEqual({ released: true, allocation: a });
    expect(ledger.release(a.id)).toEqual({ released: false, reason: 'already-released' });
    expect(ledger.release(b.id)).toEqual({ released: true, allocation: b });
    expect(ledger.release('alloc-99')).toEqual({ released: false, reason: 'unknown' });
    expect(ledger.totals()).toEqual(empty);
  });

  it('a lowered memory limit admits less but never revokes; lifting it restores capacity', () => {
    const ledger = new ResourceLedger({ id: 'host', cpu: 8, memoryMb: 10_000 });
    const running = grant(ledger, { memoryMb: 6_000 });
    ledger.setAdmissionLimit('host', { memoryMb: 5_000 });
    expect(ledger.holds(running.id)).toBe(true);
    expect(ledger.totals().free.memoryMb).toBe(0);
    expect(ledger.allocate(ledger.validate({ memoryMb: 100 })).ok).toBe(false);
    ledger.release(running.id);
    expect(ledger.totals().free.memoryMb).toBe(5_000);
    expect(ledger.allocate(ledger.validate({ memoryMb: 5_001 })).ok).toBe(false);
    ledger.setAdmissionLimit('host', undefined);
    expect(ledger.allocate(ledger.validate({ memoryMb: 9_000 })).ok).toBe(true);
    expect(() => ledger.setAdmissionLimit('nope', {})).toThrow(/unknown node/);
  });

  it('a lowered VRAM limit keeps shares off a GPU whose memory is used elsewhere', () => {
    const ledger = new ResourceLedger({ id: 'host', cpu: 8, memoryMb: 10_000, gpus: gpus(2, 24_000) });
    ledger.setAdmissionLimit('host', { vramMb: { 0: 2_000 } });
    expect(grant(ledger, { gpu: 0.5, vramMb: 4_000 }).gpus[0]?.index).toBe(1);
    expect(ledger.totals().free.vramMb).toBe(2_000 + 20_000);
  });
});

describe('scale', () => {
  it('places on 1,000 nodes × 8 GPUs and finds the last free GPU', () => {
    const nodes = Array.from({ length: 1_000 }, (_, i) => ({
      id: `n${i}`,
      cpu: 64,
      memoryMb: 512_000,
      gpus: gpus(8, 80_000),
    }));
    const ledger = new ResourceLedger({ nodes });
    const request = ledger.validate({ gpu: 1, cpu: 1 });
    for (let i = 0; i < 7_999; i++) expect(ledger.allocate(request).ok).toBe(true);
    const last = ledger.allocate(request);
    expect(last.ok).toBe(true);
    expect(ledger.allocate(request).ok).toBe(false);
    expect(ledger.totals().free.gpu).toBe(0);
  });
});

describe('tryAllocate', () => {
  it('places exactly as allocate does, and says only "no" where allocate would explain a denial', () => {
    const pool = {
      nodes: [0, 1, 2].map((i) => ({ id: `n${i}`, cpu: 8, memoryMb: 32_768, gpus: gpus(2 + i) })),
    };
    const explained = new ResourceLedger(pool);
    const terse = new ResourceLedger(pool);
    const requests: ResourceRequest[] = [
      { gpu: 2, cpu: 2 },
      { gpu: 0.5, vramMb: 8_000 },
      { gpu: 4, cpu: 4 },
      { gpu: 1, cpu: 1, memoryMb: 4_096 },
      { gpu: 4 },
      { cpu: 8 },
      { gpu: 0.5, vramMb: 12_000 },
      { gpu: 2 },
      { gpu: 1, memoryMb: 30_000 },
      { cpu: 4, memoryMb: 20_000 },
    ];
    let denials = 0;
    for (const request of requests) {
      const a = explained.allocate(explained.validate(request));
      const b = terse.tryAllocate(terse.validate(request));
      if (a.ok) expect(b).toEqual(a.allocation);
      else {
        denials++;
        expect(a.denial.short.length).toBeGreaterThan(0);
        expect(b).toBeUndefined();
      }
      expect(terse.totals()).toEqual(explained.totals());
    }
    expect(denials).toBeGreaterThan(0);
  });
});
