/**
 * Reconciliation policy: from what the host really has free to what the ledger may admit.
 * A new allocation must fit into what is measured free, keeping a headroom; what is already
 * allocated stays allocated (limits never revoke). Memory that our own jobs reserved but do
 * not use yet counts as free in a measurement, so this protects against memory held outside
 * the scheduler, not against jobs that exceed their own reservations.
 */
import type { AdmissionLimit } from './resources.js';
import type { NodeState } from './node-state.js';

/** Free amounts as measured on the host (see `readMeasured`). */
export type MeasuredFree = {
  freeMemoryMb?: number;
  gpus?: Array<{ index: number; freeVramMb: number }>;
};

/** How much to keep free beyond what is measured, in MB. */
export type Headroom = { memoryMb: number; vramMb: number };

/** One resource that is admitted below its capacity because of outside use. */
export type Pressure = {
  resource: 'memory' | 'vram';
  /** For VRAM: the GPU's index. */
  gpuIndex?: number;
  capacityMb: number;
  /** What may be allocated in total now. */
  limitMb: number;
  measuredFreeMb: number;
};

/** The admission limit a measurement implies for a node, and the pressures behind it. */
export function admissionFromMeasurement(
  node: Readonly<NodeState>,
  measured: MeasuredFree,
  headroom: Headroom,
): { limit: AdmissionLimit; pressures: Pressure[] } {
  const limit: AdmissionLimit = {};
  const pressures: Pressure[] = [];
  if (measured.freeMemoryMb !== undefined && Number.isFinite(measured.freeMemoryMb)) {
    const admissible = Math.floor(node.usedMemoryMb + measured.freeMemoryMb - headroom.memoryMb);
    const limitMb = Math.max(0, Math.min(node.memoryMb, admissible));
    if (limitMb < node.memoryMb) {
      limit.memoryMb = limitMb;
      pressures.push({
        resource: 'memory',
        capacityMb: node.memoryMb,
        limitMb,
        measuredFreeMb: measured.freeMemoryMb,
      });
    }
  }
  const vram: Record<number, number> = {};
  for (const reading of measured.gpus ?? []) {
    const gpu = node.gpus.find((g) => g.index === reading.index);
    if (!gpu || !Number.isFinite(reading.freeVramMb)) continue;
    const limitMb = Math.max(
      0,
      Math.min(gpu.vramMb, Math.floor(gpu.usedVramMb + reading.freeVramMb - headroom.vramMb)),
    );
    if (limitMb < gpu.vramMb) {
      vram[gpu.index] = limitMb;
      pressures.push({
        resource: 'vram',
        gpuIndex: gpu.index,
        capacityMb: gpu.vramMb,
        limitMb,
        measuredFreeMb: reading.freeVramMb,
      });
    }
  }
  if (Object.keys(vram).length > 0) limit.vramMb = vram;
  return { limit, pressures };
}

/** A stable key for a pressure, so that changes can be told apart from repeats. */
export function pressureKey(p: Pick<Pressure, 'resource' | 'gpuIndex'>): string {
  return p.gpuIndex === undefined ? p.resource : `${p.resource}:${p.gpuIndex}`;
}
