import type { ResourceLedger } from '../../src/core/ledger.js';

/** Grants and releases seen on a ledger; `releaseIgnored`: releases of nothing held. */
export type LedgerCounts = { grants: number; releases: number; releaseIgnored: number };

/**
 * Counts every grant and release on the ledger itself, from now on. The scheduler places on
 * the ledger directly, so this is where a double release (or a grant never released) shows: the
 * resource manager's `resources.releaseIgnored` event never fires for the scheduler's own calls.
 */
export function countOnLedger(ledger: ResourceLedger): LedgerCounts {
  const counts: LedgerCounts = { grants: 0, releases: 0, releaseIgnored: 0 };
  const { tryAllocate, release } = ledger;
  ledger.tryAllocate = (...args) => {
    const allocation = tryAllocate.apply(ledger, args);
    if (allocation) counts.grants++;
    return allocation;
  };
  ledger.release = (id) => {
    const result = release.call(ledger, id);
    if (result.released) counts.releases++;
    else counts.releaseIgnored++;
    return result;
  };
  return counts;
}
