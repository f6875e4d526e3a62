/**
 * The measuring side of the benchmarks: warm up, take several timed runs, report the median
 * and the spread. Each benchmark file prints one JSON line per result for bench/run.ts.
 */
import { performance } from 'node:perf_hooks';

export type BenchResult = {
  name: string;
  params: Record<string, unknown>;
  /** The median over the runs. */
  value: number;
  unit: string;
  /** Smallest and largest run, same unit. */
  min: number;
  max: number;
  runs: number;
  /** For paired benchmarks: p-queue's value measured in the same run, and ours / theirs. */
  pQueue?: number;
  ratio?: number;
};

/** The median of several runs' values, and the smallest and largest (the spread). */
export function summarise(values: readonly number[]): { value: number; min: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { value: sorted[Math.floor(sorted.length / 2)] ?? 0, min: sorted[0] ?? 0, max: sorted.at(-1) ?? 0 };
}

/**
 * Runs `fn` (which performs `ops` operations) `warmup + runs` times and reports operations per
 * second, median and spread. `fn` may be async.
 */
export async function opsPerSecond(
  name: string,
  params: Record<string, unknown>,
  ops: number,
  fn: () => unknown,
  { warmup = 2, runs = 5 }: { warmup?: number; runs?: number } = {},
): Promise<BenchResult> {
  for (let i = 0; i < warmup; i++) await fn();
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await fn();
    const seconds = (performance.now() - start) / 1_000;
    rates.push(ops / seconds);
  }
  return { name, params, unit: 'ops/s', runs, ...summarise(rates) };
}

/** Prints a result as the one-line JSON that bench/run.ts collects. */
export function report(result: BenchResult): void {
  console.log(`BENCH ${JSON.stringify(result)}`);
}

/** The p-th percentile (nearest rank) of samples, in any order; 0 where there are none. */
export function percentile(samples: readonly number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}
