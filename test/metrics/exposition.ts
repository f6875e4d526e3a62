/**
 * Reads Prometheus's text exposition format (what `registry.metrics()` writes) back into numbers,
 * so tests assert values rather than names: every sample by its name and labels, and every
 * metric family's declared type.
 */
export type Sample = { name: string; labels: Record<string, string>; value: number };

export type Exposition = {
  samples: Sample[];
  /** `# TYPE` lines: family name → type. */
  types: Map<string, string>;
  /** The value of the one sample of `name` whose labels are exactly `labels` (throws if none). */
  value(name: string, labels?: Record<string, string>): number;
  /** Whether there is a sample of `name` with exactly `labels`. */
  has(name: string, labels?: Record<string, string>): boolean;
  /** Every sample of `name`. */
  all(name: string): Sample[];
};

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) types.set(type[1] as string, type[2] as string);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL))
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const raw = m[3] as string;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw);
    samples.push({ name: m[1] as string, labels, value });
  }
  const find = (name: string, labels: Record<string, string>) =>
    samples.filter((s) => s.name === name && sameLabels(s.labels, labels));
  return {
    samples,
    types,
    value(name, labels = {}) {
      const found = find(name, labels);
      if (found.length !== 1)
        throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)} (want 1)`);
      return (found[0] as Sample).value;
    },
    has: (name, labels = {}) => find(name, labels).length > 0,
    all: (name) => samples.filter((s) => s.name === name),
  };
}
