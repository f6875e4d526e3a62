// Shared by the demo steps: they stand in for AI work (download, face detection, upscaling…)
// by sleeping briefly and reporting progress the way a real script would, with lines such as
// `progress: 0.5 tile 2/4` on standard output, which ai-batch turns into live progress.
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';

/** Where the demo's "images" go: beside this run's logs, so a run never touches the repository. */
export const workDir = join(process.env.AI_BATCH_LOG_DIR ?? join(tmpdir(), 'ai-batch-demo'), 'work');
mkdirSync(workDir, { recursive: true });

/** Prints one line on standard output, where ai-batch reads progress lines. */
export function say(line) {
  process.stdout.write(`${line}\n`);
}

/** Says which GPUs the scheduler granted, as a CUDA program would see them. */
export function announce(what) {
  const gpus = process.env.CUDA_VISIBLE_DEVICES;
  say(`${what} (job ${process.env.AI_BATCH_JOB_ID}, attempt ${process.env.AI_BATCH_ATTEMPT})`);
  say(`CUDA_VISIBLE_DEVICES=${JSON.stringify(gpus ?? '')}${gpus ? '' : ' (no GPU: CPU only)'}`);
}

/** Works through `notes`, one progress line after each, spending about `totalMs` in all. */
export async function work(notes, totalMs) {
  for (const [i, note] of notes.entries()) {
    await sleep(totalMs / notes.length);
    say(`progress: ${((i + 1) / notes.length).toFixed(2)} ${note}`);
  }
}
