/**
 * `npm run bench`: compiles src/ and bench/ with tsc (benchmarks measure the JavaScript users
 * run, not a TypeScript loader's), then runs every bench file in a fresh process (so one
 * benchmark's garbage and JIT state do not colour the next), prints a table and writes
 * bench/results.json. `npm run bench -- job` runs only the files whose name contains "job".
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { BenchResult } from './harness.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
// Compiled (dist/bench/run.js) runs .bench.js files; run through tsx, the .bench.ts sources.
const extension = import.meta.url.endsWith('.ts') ? '.bench.ts' : '.bench.js';
const filter = process.argv[2] ?? '';
const files = readdirSync(dir)
  .filter((f) => f.endsWith(extension) && f.includes(filter))
  .sort();

const results: Array<BenchResult & { file: string }> = [];
for (const file of files) {
  const loader = extension === '.bench.ts' ? ['--import', 'tsx'] : [];
  const out = execFileSync(process.execPath, ['--expose-gc', ...loader, `${dir}${file}`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const line of out.split('\n')) {
    if (line.startsWith('BENCH ')) results.push({ file, ...(JSON.parse(line.slice(6)) as BenchResult) });
  }
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toPrecision(3));
console.log(`node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'} × ${cpus().length}`);
console.table(
  results.map((r) => ({
    benchmark: r.name,
    params: JSON.stringify(r.params),
    median: `${fmt(r.value)} ${r.unit}`,
    spread: `${fmt(r.min)} … ${fmt(r.max)}`,
    runs: r.runs,
    'vs p-queue': r.ratio === undefined ? '' : `${r.ratio.toFixed(3)}×`,
  })),
);
const outFile = `${process.cwd()}/bench/results.json`;
writeFileSync(
  outFile,
  `${JSON.stringify({ node: process.version, cpu: cpus()[0]?.model, cores: cpus().length, results }, null, 2)}\n`,
);
console.log(`wrote ${outFile}`);
