/**
 * Allocate+release pairs per second on the resource ledger: one node with 8 GPUs, and pools of
 * 10 to 1,000 nodes × 8 GPUs, each half full (every other GPU taken, shares on some) so that
 * placement has real searching to do. The aim: over 1 M pairs/s on one node, and a cost that
 * grows no faster than log(nodes).
 */
import { ResourceLedger } from '../src/core/ledger.js';
import { opsPerSecond, report } from './harness.js';

function halfFullPool(nodes: number): ResourceLedger {
  const ledger = new ResourceLedger({
    nodes: Array.from({ length: nodes }, (_, i) => ({
      id: `n${i}`,
      cpu: 64,
      memoryMb: 512_000,
      gpus: Array.from({ length: 8 }, () => ({ vramMb: 81_920 })),
    })),
  });
  const whole = ledger.validate({ gpu: 1, cpu: 4, memoryMb: 16_000 });
  const share = ledger.validate({ gpu: 0.5, vramMb: 20_000, cpu: 1 });
  for (let i = 0; i < nodes * 3; i++) ledger.allocate(whole);
  for (let i = 0; i < nodes * 2; i++) ledger.allocate(share);
  return ledger;
}

const PAIRS = 200_000;
for (const nodes of [1, 10, 100, 1_000]) {
  for (const [kind, request] of [
    ['whole GPU', { gpu: 1, cpu: 2, memoryMb: 8_000 }],
    ['GPU share', { gpu: 0.25, vramMb: 10_000, cpu: 1 }],
    ['CPU only', { cpu: 2, memoryMb: 4_000 }],
  ] as const) {
    const ledger = halfFullPool(nodes);
    const units = ledger.validate(request);
    const pairs = () => {
      for (let i = 0; i < PAIRS; i++) {
        const result = ledger.allocate(units);
        if (!result.ok) throw new Error('the benchmark pool must have room');
        ledger.release(result.allocation.id);
      }
    };
    report(
      await opsPerSecond('ledger allocate+release', { nodes, gpusPerNode: 8, request: kind }, PAIRS, pairs, {
        warmup: 5,
      }),
    );
  }
}
