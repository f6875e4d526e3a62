/**
 * Small pure formatters shared by the CLI's views: durations, progress bars, allocations and
 * resource totals, each as short text for one terminal line.
 */
import type { ResourceTotals } from '../core/resources.js';
import type { Allocation } from '../core/types.js';
import { fitColumns } from './text-width.js';

/** `850ms`, `12.3s`, `2m05s`, `1h02m`, `3d04h` (trace replays run for months). */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const s = Math.floor(ms / 1_000);
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3_600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${pad(Math.floor((s % 3_600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3_600))}h`;
}

/** A bar of `width` cells for a fraction in [0, 1]: `[█████░░░░░]`. */
export function progressBar(fraction: number, width: number): string {
  const cells = Math.max(1, width);
  const clamped = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : 0;
  const full = Math.round(clamped * cells);
  return `[${'█'.repeat(full)}${'░'.repeat(cells - full)}]`;
}

/** `42%` */
export function formatPercent(fraction: number): string {
  return `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`;
}

function trimNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(2)));
}

/** MB as people read them: `512 MB`, `7.8 GB`. */
export function formatMb(mb: number): string {
  return mb < 1_024 ? `${trimNumber(mb)} MB` : `${(mb / 1_024).toFixed(1)} GB`;
}

/**
 * What a job holds, e.g. `gpu 0 ×0.5 (8000 MB) · cpu 2 · 4.0 GB` — GPUs by index, shares with
 * `×`, VRAM per GPU; only what is non-zero (empty for a job that holds nothing but its slot).
 */
export function formatAllocation(allocation: Allocation): string {
  const parts: string[] = [];
  if (allocation.gpus.length > 0) {
    const indexes = allocation.gpus.map((g) =>
      g.share < 1 ? `${g.index} ×${trimNumber(g.share)}` : g.index,
    );
    const vram = allocation.gpus[0]?.vramMb ?? 0;
    parts.push(`gpu ${indexes.join(',')}${vram > 0 ? ` (${formatMb(vram)})` : ''}`);
  }
  if (allocation.cpu > 0) parts.push(`cpu ${trimNumber(allocation.cpu)}`);
  if (allocation.memoryMb > 0) parts.push(`mem ${formatMb(allocation.memoryMb)}`);
  for (const [name, amount] of Object.entries(allocation.custom)) parts.push(`${name} ${trimNumber(amount)}`);
  return parts.join(' · ');
}

/**
 * Resources in use against capacity, e.g. `gpu 1.5/2 · vram 12.0 GB/48.0 GB · cpu 3/16 ·
 * mem 6.0 GB/32.0 GB`, leaving out kinds the pool does not have.
 */
export function formatUsage(allocated: ResourceTotals, capacity: ResourceTotals): string {
  const parts: string[] = [];
  if (capacity.gpu > 0) parts.push(`gpu ${trimNumber(allocated.gpu)}/${trimNumber(capacity.gpu)}`);
  if (capacity.vramMb > 0) parts.push(`vram ${formatMb(allocated.vramMb)}/${formatMb(capacity.vramMb)}`);
  if (capacity.cpu > 0) parts.push(`cpu ${trimNumber(allocated.cpu)}/${trimNumber(capacity.cpu)}`);
  if (capacity.memoryMb > 0) parts.push(`mem ${formatMb(allocated.memoryMb)}/${formatMb(capacity.memoryMb)}`);
  for (const [name, total] of Object.entries(capacity.custom)) {
    parts.push(`${name} ${trimNumber(allocated.custom[name] ?? 0)}/${trimNumber(total)}`);
  }
  return parts.join(' · ');
}

/**
 * Cuts a line to `width` terminal columns (a CJK character or an emoji takes two, a combining
 * mark none), marking the cut with `…`; control characters are shown as `?` (see text-width.ts).
 */
export function fit(line: string, width: number): string {
  return fitColumns(line, width);
}
