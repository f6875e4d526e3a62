// Stands in for a ×4 super-resolution model on one GPU. With --flaky, the first attempt runs
// out of GPU memory half way, the way a real job sometimes does, and the retry succeeds.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import process from 'node:process';
import { announce, say, work, workDir } from './lib.mjs';

const photo = process.argv[2] ?? 'beach';
const flaky = process.argv.includes('--flaky');
announce(`upscaling ${photo}.jpg ×4`);
const input = readFileSync(join(workDir, `${photo}.jpg`), 'utf8');
if (flaky && process.env.AI_BATCH_ATTEMPT === '1') {
  say('progress: 0.25 tile 1/4');
  await sleep(300);
  process.stderr.write('RuntimeError: CUDA out of memory (simulated). Tried to allocate 2.00 GiB\n');
  process.exit(1);
}
await work(['tile 1/4', 'tile 2/4', 'tile 3/4', 'tile 4/4'], 1_000);
writeFileSync(join(workDir, `${photo}.x4.jpg`), `${input.trim()}, four times larger\n`);
