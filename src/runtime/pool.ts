/**
 * Where a scheduler's pool comes from: detected on this host (the default), given in the
 * options, or detected and then corrected by what the options say.
 */
import { applyOverrides, detectHost, type DetectHostOptions } from '../actors/host.js';
import type { NodeSpec, ResourcePool } from '../core/resources.js';

/** `'detect'`, a pool, or detection with overrides (e.g. `{ detect: true, override: { gpus: 0 } }`). */
export type PoolOption = 'detect' | ResourcePool | { detect: true; override: Partial<NodeSpec> };

/** The pool to schedule on, and what detection had to guess (empty for a declared pool). */
export async function resolvePool(
  option: PoolOption = 'detect',
  detect: DetectHostOptions = {},
): Promise<{ pool: ResourcePool; detected: boolean; warnings: string[] }> {
  if (option === 'detect' || 'detect' in option) {
    const { node, warnings } = await detectHost(detect);
    const pool = option === 'detect' ? node : applyOverrides(node, option.override);
    return { pool, detected: true, warnings };
  }
  return { pool: option, detected: false, warnings: [] };
}
