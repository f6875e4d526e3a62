/**
 * How many runs a property test makes: `FC_NUM_RUNS` scales every property test at once, so CI
 * and a long local soak run the same tests (e.g. `FC_NUM_RUNS=100000 npm run test:unit`).
 */
export function numRuns(ciDefault: number): number {
  const fromEnv = Number(process.env['FC_NUM_RUNS']);
  return Number.isFinite(fromEnv) && fromEnv > 0 ? Math.max(ciDefault, Math.floor(fromEnv)) : ciDefault;
}
