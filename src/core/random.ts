/**
 * A tiny seeded pseudo-random generator (mulberry32) as a pure step function, so that jitter
 * is reproducible: the same seed gives the same sequence, and the state is plain data that a
 * statechart's context can hold.
 */

/** Returns a value in [0, 1) and the generator's next state. */
export function nextRandom(state: number): [value: number, nextState: number] {
  const next = (state + 0x6d2b79f5) | 0;
  let t = next;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const value = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  return [value, next];
}

/** Derives a well-mixed 32-bit seed from a string (FNV-1a), e.g. from a job id. */
export function seedFromString(text: string, salt = 0): number {
  let hash = 0x811c9dc5 ^ salt;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}
