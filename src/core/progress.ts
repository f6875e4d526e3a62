/** Progress of a running attempt: a fraction in [0, 1] and an optional note. */
export type Progress = { fraction: number; note?: string };

/** No progress yet: one frozen object shared by every job that has not reported any. */
export const NO_PROGRESS: Progress = Object.freeze({ fraction: 0 });

/**
 * Done, with no note: one frozen object shared by every job that completed without a note (a
 * finished job's record keeps its progress; a shared one costs no object per job).
 */
export const DONE_PROGRESS: Progress = Object.freeze({ fraction: 1 });

/**
 * Folds a progress report into the previous one: the fraction is clamped to [0, 1], and a
 * report that is not a finite number keeps the previous fraction (a handler's bad arithmetic
 * must not corrupt what observers see).
 */
export function nextProgress(previous: Progress, fraction: number, note: string | undefined): Progress {
  const value = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : previous.fraction;
  return note === undefined ? { fraction: value } : { fraction: value, note };
}
