/**
 * The crash tests' vocabulary, shared by the test and its child program: a batch of jobs (made
 * from a seed), and the JSON lines the child writes.
 */
import type { ResourceRequest } from '../../../src/index.js';
import { nextRandom } from '../../../src/core/random.js';

/** What a job of the batch does: waits `ms` real milliseconds; its attempts up to `failUntil` throw. */
export type CrashPayload = { ms: number; failUntil: number; value: number };

export type CrashJob = {
  id: string;
  payload: CrashPayload;
  resources: ResourceRequest;
  dependsOn: string[];
  attempts: number;
};

export type CrashBatch = { cpu: number; gpus: number; jobs: CrashJob[] };

/** A job's output: what its handler returns. */
export type CrashOutput = { id: string; attempt: number; value: number };

export type JobSummary = {
  id: string;
  state: string;
  attempt: number;
  error?: { kind: string; message: string };
};

export type ChildLine =
  | { type: 'opened'; pid: number; jobs: JobSummary[] }
  | { type: 'accepted'; ids: string[] }
  | {
      type: 'start';
      id: string;
      attempt: number;
      pid: number;
      cpu: number;
      gpus: Array<{ index: number; share: number }>;
    }
  | { type: 'end'; id: string; attempt: number; ok: false }
  | { type: 'end'; id: string; attempt: number; ok: true; output: CrashOutput }
  | { type: 'idle'; jobs: JobSummary[]; outputs: Record<string, CrashOutput> }
  | { type: 'closed' };

/** The engine's seeded generator (mulberry32) as a function: the same seed, the same batch and kill points. */
export function random(seed: number): () => number {
  let state = seed | 0;
  return () => {
    const [value, next] = nextRandom(state);
    state = next;
    return value;
  };
}

/**
 * A mixed batch: 1–2 GPUs, jobs of a GPU, half a GPU or none, of 2–40 ms, some failing their
 * first attempts, some with dependencies on earlier jobs (so a kill finds some done, some running,
 * some waiting).
 */
export function makeBatch(rand: () => number, size: number): CrashBatch {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const gpus = int(1, 2);
  const jobs: CrashJob[] = [];
  for (let i = 0; i < size; i++) {
    const kind = rand();
    const resources: ResourceRequest =
      kind < 0.35 ? { cpu: 1, gpu: 0.5 } : kind < 0.65 ? { cpu: 1, gpu: 1 } : { cpu: 1 };
    const dependsOn: string[] = [];
    if (i > 0 && rand() < 0.4) dependsOn.push(`j${int(0, i - 1)}`);
    if (i > 1 && rand() < 0.15) {
      const other = `j${int(0, i - 1)}`;
      if (!dependsOn.includes(other)) dependsOn.push(other);
    }
    const failUntil = rand() < 0.3 ? int(1, 2) : 0;
    jobs.push({
      id: `j${i}`,
      payload: { ms: int(2, 40), failUntil, value: int(0, 1_000_000) },
      resources,
      dependsOn,
      attempts: int(2, 4),
    });
  }
  return { cpu: 4, gpus, jobs };
}
