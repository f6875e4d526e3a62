/**
 * "Did you mean …": the known name nearest to a misspelt one, for unknown-field errors. Pure.
 */

/**
 * The optimal-string-alignment distance (Damerau–Levenshtein without repeated edits of one
 * substring): insertions, deletions, substitutions and swaps of two neighbours cost 1 each.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  // Three rows of the table: the one before last (for swaps), the last, and this one.
  let before = new Array<number>(b.length + 1).fill(0);
  let last = Array.from({ length: b.length + 1 }, (_, j) => j);
  let row = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((last[j] as number) + 1, (row[j - 1] as number) + 1, (last[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, (before[j - 2] as number) + 1);
      row[j] = d;
    }
    [before, last, row] = [last, row, before];
  }
  return last[b.length] as number;
}

/**
 * The name of `known` nearest to `name` (letter case ignored), if it is close: at most a third of
 * `name`'s length in edits (at least 1), or `name` begins it (`maxQueue` → `maxQueueSize`, from
 * 3 letters). Of equally near names, the one sharing the longest beginning with `name` wins
 * (`gpu` → `gpus`, not `cpu`), then the first; undefined when none is close.
 */
export function nearestName(name: string, known: Iterable<string>): string | undefined {
  const lower = name.toLowerCase();
  const limit = Math.max(1, Math.ceil(lower.length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  let bestPrefix = -1;
  for (const candidate of known) {
    const other = candidate.toLowerCase();
    const distance = editDistance(lower, other);
    if (distance > limit && !(lower.length >= 3 && other.startsWith(lower))) continue;
    const prefix = commonPrefix(lower, other);
    if (distance < bestDistance || (distance === bestDistance && prefix > bestPrefix)) {
      best = candidate;
      bestDistance = distance;
      bestPrefix = prefix;
    }
  }
  return best;
}

function commonPrefix(a: string, b: string): number {
  let n = 0;
  while (n < a.length && a[n] === b[n]) n++;
  return n;
}
