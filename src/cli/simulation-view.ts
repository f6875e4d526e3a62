/**
 * A simulation report as text for people: what was replayed on what, how the jobs ended, why
 * jobs were rejected, the makespan, utilisation per resource, and waits and job completion times
 * by priority. Pure.
 */
import { PRIORITY_NAMES } from '../core/priority.js';
import type { DurationBreakdown, SimulationReport } from '../runtime/simulation-types.js';
import { formatDuration } from './format.js';

/** What the report was a replay of, for its heading. */
export type SimulationHeading = {
  trace: string;
  format: string;
  /** The pool in words, e.g. `8 nodes, 64 GPUs`. */
  pool: string;
  policy: string;
  /** Trace rows that did not become jobs (e.g. never-scheduled pods). */
  skipped: number;
};

function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}

function breakdown(label: string, stats: DurationBreakdown): string[] {
  const o = stats.overall;
  const lines = [
    `${label.padEnd(5)} mean ${formatDuration(o.mean)} · p50 ${formatDuration(o.p50)} · ` +
      `p99 ${formatDuration(o.p99)} · max ${formatDuration(o.max)} (${o.count} jobs)`,
  ];
  // Highest priority first, as people read a priority table.
  for (const name of [...PRIORITY_NAMES].reverse()) {
    const s = stats.byPriority[name];
    if (s === undefined) continue;
    lines.push(
      `  ${name.padEnd(10)} mean ${formatDuration(s.mean)} · p50 ${formatDuration(s.p50)} · ` +
        `p99 ${formatDuration(s.p99)} (${s.count})`,
    );
  }
  return lines;
}

/**
 * Why jobs were rejected, a line per reason under one label, the counts aligned:
 * `rejected 289 asked for more GPUs than a node has (at most 8)`.
 */
function rejections(report: SimulationReport): string[] {
  const groups = report.rejections;
  const width = Math.max(0, ...groups.map((g) => String(g.count).length));
  return groups.map(
    (g, i) => `${i === 0 ? 'rejected' : ''.padEnd(8)} ${String(g.count).padStart(width)} ${g.reason}`,
  );
}

/** The report's lines. */
export function renderSimulationReport(report: SimulationReport, heading: SimulationHeading): string[] {
  const counts = Object.entries(report.counts)
    .filter(([, n]) => n > 0)
    .map(([state, n]) => `${state} ${n}`)
    .join(' · ');
  const u = report.utilisation;
  const capacity = report.resources.capacity;
  const used = [
    capacity.gpu > 0 ? `gpu ${percent(u.gpu)}` : undefined,
    capacity.vramMb > 0 ? `vram ${percent(u.vramMb)}` : undefined,
    capacity.cpu > 0 ? `cpu ${percent(u.cpu)}` : undefined,
    capacity.memoryMb > 0 ? `memory ${percent(u.memoryMb)}` : undefined,
  ].filter((part): part is string => part !== undefined);
  return [
    `simulated ${report.jobs.length} jobs of ${heading.trace} (${heading.format}) on ${heading.pool}, ` +
      `${heading.policy} queue${heading.skipped > 0 ? ` (${heading.skipped} trace rows skipped)` : ''}`,
    `jobs     ${counts || 'none'}`,
    ...rejections(report),
    `makespan ${formatDuration(report.makespanMs)}`,
    `utilisation ${used.join(' · ') || '—'}`,
    ...breakdown('wait', report.wait),
    ...breakdown('jct', report.jct),
  ];
}
