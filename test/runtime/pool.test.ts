import { describe, expect, it } from 'vitest';
import { resolvePool } from '../../src/runtime/pool.js';
import type { SystemInformationLike } from '../../src/actors/host.js';

const fakeHost: SystemInformationLike = {
  cpu: async () => ({ cores: 16 }),
  mem: async () => ({ total: 64 * 1024 ** 3, available: 60 * 1024 ** 3 }),
  graphics: async () => ({
    controllers: [
      { vendor: 'NVIDIA Corporation', model: 'NVIDIA GeForce RTX 4090', vram: 24_564, memoryTotal: 24_564 },
    ],
  }),
};
const detect = { si: fakeHost, id: 'workstation', runNvidiaSmi: async () => '' };

describe('resolvePool', () => {
  it('detects this host by default', async () => {
    const { pool, detected, warnings } = await resolvePool('detect', detect);
    expect(detected).toBe(true);
    expect(warnings).toEqual([]);
    expect(pool).toMatchObject({
      id: 'workstation',
      cpu: 16,
      memoryMb: 65_536,
      gpus: [{ index: 0, vramMb: 24_564 }],
    });
  });

  it('lets the options override what detection found', async () => {
    const { pool } = await resolvePool({ detect: true, override: { gpus: 0, memoryMb: 32_000 } }, detect);
    expect(pool).toMatchObject({ id: 'workstation', cpu: 16, memoryMb: 32_000, gpus: 0 });
  });

  it('uses a declared pool as it is, detecting nothing', async () => {
    const declared = { nodes: [{ id: 'a', cpu: 2, memoryMb: 1_000 }] };
    expect(await resolvePool(declared, detect)).toEqual({ pool: declared, detected: false, warnings: [] });
  });
});
