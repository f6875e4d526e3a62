/**
 * simulate() on the Philly trace: the earliest 1,000 and 10,000 jobs (from ../shared/traces/,
 * relative to the project root) on a Philly-like pool sized for about 0.6–0.7 offered GPU load,
 * with the simulation's default tick (the aging interval) and event-driven only. Jobs/s of
 * virtual-time replay, wall clock. Skipped, with a message, where the trace is absent.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { simulate } from '../src/runtime/simulate.js';
import { phillyPool, readPhilly } from '../src/traces/philly.js';
import { opsPerSecond, report } from './harness.js';

const TRACE = resolve(process.cwd(), '../shared/traces/philly.csv');

if (!existsSync(TRACE)) {
  console.error(`simulate.bench: ${TRACE} is absent; skipped`);
} else {
  const all = readPhilly(TRACE);
  const cases = [
    { jobs: 1_000, nodes: 32 },
    { jobs: 10_000, nodes: 64 },
  ];
  for (const { jobs, nodes } of cases) {
    for (const tick of ['default', 'event-driven'] as const) {
      const options = tick === 'default' ? {} : { schedulingIntervalMs: 2 ** 31 - 1 };
      const slice = all.slice(0, jobs);
      const pool = phillyPool({ nodes });
      report(
        await opsPerSecond(
          'simulate philly',
          { jobs, nodes, gpus: nodes * 8, tick },
          jobs,
          () => simulate({ resources: pool, jobs: slice, options }),
          { warmup: 1, runs: 5 },
        ),
      );
    }
  }
}
