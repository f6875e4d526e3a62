/** The CLI's pure renderers: formatters, event lines, the live frame, summaries. */
import { describe, expect, it, vi } from 'vitest';
import { renderEventLine } from '../../src/cli/event-line.js';
import {
  fit,
  formatAllocation,
  formatDuration,
  formatMb,
  formatUsage,
  progressBar,
} from '../../src/cli/format.js';
import { queueOrder, renderFrame } from '../../src/cli/frame.js';
import { renderSummary, summarise } from '../../src/cli/summary.js';
import { MAX_LINE_LENGTH, parseProgressLine } from '../../src/cli/progress-line.js';
import {
  codePointWidth,
  fitColumns,
  fitLookahead,
  headOf,
  padEndColumns,
  printable,
  stringWidth,
} from '../../src/cli/text-width.js';
import type { ResourceTotals } from '../../src/core/resources.js';
import type { Allocation } from '../../src/core/types.js';
import type { JobSnapshot, SchedulerStats } from '../../src/runtime/types.js';

const T0 = 1_000_000;
const halfGpu: Allocation = {
  id: 'a1',
  nodeId: 'ws',
  cpu: 2,
  memoryMb: 4_096,
  gpus: [{ index: 1, share: 0.5, vramMb: 8_000 }],
  custom: {},
};

function job(id: string, fields: Partial<JobSnapshot> = {}): JobSnapshot {
  return {
    id,
    type: 'command',
    state: 'queued',
    priority: 'normal',
    effectivePriority: 'normal',
    attempt: 0,
    maxAttempts: 1,
    progress: { fraction: 0 },
    submittedAt: T0,
    ...fields,
  };
}

const totals = (fields: Partial<ResourceTotals>): ResourceTotals => ({
  cpu: 0,
  memoryMb: 0,
  gpu: 0,
  vramMb: 0,
  custom: {},
  ...fields,
});

describe('formatters', () => {
  it('formats durations from ms to days', () => {
    expect([850, 12_340, 125_000, 3_720_000, 273_600_000, -1].map(formatDuration)).toEqual([
      '850ms',
      '12.3s',
      '2m05s',
      '1h02m',
      '3d04h',
      '—',
    ]);
  });

  it('draws progress bars and cuts lines to a width', () => {
    expect(progressBar(0.5, 10)).toBe('[█████░░░░░]');
    expect(progressBar(2, 4)).toBe('[████]');
    expect(progressBar(Number.NaN, 4)).toBe('[░░░░]');
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(fit('abc', 4)).toBe('abc');
  });

  it('describes allocations and usage, leaving out what is zero', () => {
    expect(formatAllocation(halfGpu)).toBe('gpu 1 ×0.5 (7.8 GB) · cpu 2 · mem 4.0 GB');
    expect(
      formatAllocation({
        ...halfGpu,
        cpu: 0,
        memoryMb: 0,
        gpus: [0, 1].map((index) => ({ index, share: 1, vramMb: 0 })),
      }),
    ).toBe('gpu 0,1');
    expect(formatAllocation({ ...halfGpu, cpu: 0, memoryMb: 0, gpus: [], custom: { licence: 1 } })).toBe(
      'licence 1',
    );
    expect(formatMb(512)).toBe('512 MB');
    expect(
      formatUsage(
        totals({ gpu: 1.5, vramMb: 8_192, cpu: 3, memoryMb: 512, custom: {} }),
        totals({ gpu: 2, vramMb: 49_152, cpu: 16, memoryMb: 32_768, custom: { licence: 2 } }),
      ),
    ).toBe('gpu 1.5/2 · vram 8.0 GB/48.0 GB · cpu 3/16 · mem 512 MB/32.0 GB · licence 0/2');
  });
});

describe('renderEventLine', () => {
  it('writes one line per job event, with the time since the run began', () => {
    const running = job('up', {
      state: 'running',
      attempt: 1,
      maxAttempts: 2,
      allocation: halfGpu,
      startedAt: T0 + 1_000,
    });
    expect(renderEventLine({ type: 'job.started', at: T0 + 1_000, job: running }, T0)).toBe(
      '[   1.0s] started    up attempt 1/2 on gpu 1 ×0.5 (7.8 GB) · cpu 2 · mem 4.0 GB',
    );
    expect(
      renderEventLine(
        {
          type: 'job.progress',
          at: T0 + 1_500,
          job: { ...running, progress: { fraction: 0.42, note: 'tile 3' } },
        },
        T0,
      ),
    ).toBe('[   1.5s] progress   up 42% tile 3');
    expect(
      renderEventLine(
        {
          type: 'job.retrying',
          at: T0 + 2_000,
          delayMs: 500,
          job: { ...running, error: { kind: 'error', message: 'exited with code 1' } },
        },
        T0,
      ),
    ).toBe('[   2.0s] retrying   up attempt 1/2 failed: exited with code 1; next try in 500ms');
    expect(
      renderEventLine(
        { type: 'job.completed', at: T0 + 3_500, output: null, job: { ...running, state: 'completed' } },
        T0,
      ),
    ).toBe('[   3.5s] completed  up in 2.5s');
    expect(
      renderEventLine(
        {
          type: 'job.cancelled',
          at: T0 + 4_000,
          job: job('x', {
            state: 'cancelled',
            error: { kind: 'dependency', message: 'dependency up was failed' },
          }),
        },
        T0,
      ),
    ).toBe('[   4.0s] cancelled  x: dependency up was failed');
  });

  it('says when a job is told to stop, and warns when its resources are force-released', () => {
    const running = job('up', { state: 'running', attempt: 1, maxAttempts: 1, startedAt: T0 });
    expect(
      renderEventLine({ type: 'job.stopping', at: T0 + 1_000, job: running, reason: 'timeout' }, T0),
    ).toBe(
      '[   1.0s] stopping   up (timeout): waiting for its processes to end; it keeps its resources until then',
    );
    expect(
      renderEventLine(
        {
          type: 'job.forceReleased',
          at: T0 + 6_000,
          job: { ...running, state: 'failed' },
          attempt: 1,
          reason: 'cancel',
          stoppingMs: 5_000,
        },
        T0,
      ),
    ).toBe(
      '[   6.0s] WARNING    up attempt 1: its resources were released 5.0s after it was told to stop (cancel), ' +
        'but its processes have not ended (stop timeout); they may still be using them',
    );
  });

  it('leaves out resources.changed, which every start and end already implies', () => {
    const resources = { capacity: totals({}), allocated: totals({}), free: totals({}) };
    expect(renderEventLine({ type: 'resources.changed', at: T0, resources }, T0)).toBeUndefined();
    expect(renderEventLine({ type: 'scheduler.idle', at: T0 + 10 }, T0)).toBe(
      '[   10ms] idle       nothing left to run',
    );
  });
});

describe('terminal columns', () => {
  it('counts CJK and fullwidth characters as two columns', () => {
    expect(stringWidth('abc')).toBe(3);
    expect(stringWidth('日本語')).toBe(6);
    expect(stringWidth('한국어 ok')).toBe(9);
    expect(stringWidth('ｆｕｌｌ')).toBe(8);
    expect(stringWidth('カタカナ・ひらがな')).toBe(18);
    expect(stringWidth('𠀋')).toBe(2); // outside the BMP (CJK Extension B)
  });

  it('counts an emoji as two columns, however many code points it is made of', () => {
    expect(stringWidth('🚀')).toBe(2);
    expect(stringWidth('👍🏽')).toBe(2); // with a skin tone
    expect(stringWidth('👨‍👩‍👧')).toBe(2); // a ZWJ sequence
    expect(stringWidth('🇯🇵')).toBe(2); // a flag
    expect(stringWidth('❤️')).toBe(2); // text-default heart + U+FE0F
    expect(stringWidth('1️⃣')).toBe(2); // a keycap
    expect(stringWidth('❤')).toBe(1); // without U+FE0F: text presentation
  });

  it('counts combining marks, joiners and variation selectors as nothing', () => {
    expect(stringWidth('e\u0301')).toBe(1);
    expect(stringWidth('Z\u0351\u0352\u0353')).toBe(1);
    expect(stringWidth('a\u200db')).toBe(2);
    expect(stringWidth('\u1100\u1161\u11a8')).toBe(2); // Hangul jamo: one syllable
    expect(stringWidth('…█░·×')).toBe(5); // ambiguous width: one column
  });

  it('cuts and pads by columns, never splitting a character', () => {
    expect(fitColumns('日本語テキスト', 7)).toBe('日本語…');
    expect(stringWidth(fitColumns('日本語テキスト', 8))).toBeLessThanOrEqual(8);
    expect(fitColumns('🚀🚀🚀🚀', 6)).toBe('🚀🚀…');
    expect(fitColumns('cafe\u0301 au lait', 5)).toBe('cafe\u0301…');
    expect(fitColumns('cafe\u0301 au lait', 4)).toBe('caf…');
    expect(fitColumns('cafe\u0301', 4)).toBe('cafe\u0301');
    expect(fitColumns('日本', 4)).toBe('日本');
    expect(padEndColumns('日本', 6)).toBe('日本  ');
    expect(padEndColumns('abc', 2)).toBe('abc');
  });

  it('shows control characters as visible text, so a note cannot move the cursor', () => {
    expect(fitColumns('a\x1b[2Jb\tc\rd', 40)).toBe('a?[2Jb c?d');
  });

  it('shows bidirectional embeddings, overrides and isolates as ?, so a note cannot reorder the line', () => {
    expect(printable('\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069')).toBe('?'.repeat(9));
    expect(fitColumns('job \u202edone\u202c ok \u2067x\u2069', 40)).toBe('job ?done? ok ?x?');
    expect(fitColumns('日本\u202e語', 40)).toBe('日本?語');
  });

  it('counts a soft hyphen as nothing, as other default-ignorable code points', () => {
    expect(codePointWidth(0xad)).toBe(0);
    expect(stringWidth('\u00ad')).toBe(0);
    expect(stringWidth('co\u00adop')).toBe(4);
    expect(codePointWidth(0xac)).toBe(1); // ¬, its neighbour, is one column
  });
});

describe('terminal columns of long text', () => {
  /** Code units handed to Intl.Segmenter while `run` runs: what measuring looked at. */
  function segmented(run: () => void): { total: number; longest: number } {
    const spy = vi.spyOn(Intl.Segmenter.prototype, 'segment');
    try {
      run();
      const lengths = spy.mock.calls.map(([text]) => text.length);
      return { total: lengths.reduce((a, b) => a + b, 0), longest: Math.max(0, ...lengths) };
    } finally {
      spy.mockRestore();
    }
  }

  it('cuts a line of 60,000 CJK characters by looking at no more than a bounded prefix of it', () => {
    const long = `j1 ${'日'.repeat(60_000)}`;
    let cut = '';
    const work = segmented(() => (cut = fitColumns(long, 120)));
    expect(cut).toBe(`j1 ${'日'.repeat(58)}…`);
    expect(stringWidth(cut)).toBeLessThanOrEqual(120);
    // What it measured is bounded by the width, not the line: the same as for a line of 1,000.
    expect(work.total).toBeLessThanOrEqual(3 * fitLookahead(120));
    expect(work).toEqual(segmented(() => fitColumns(`j1 ${'日'.repeat(1_000)}`, 120)));
    expect(fitColumns(long, 120)).toBe(fitColumns(long.slice(0, fitLookahead(120)), 120));
  });

  it('does not measure the rest of a long ASCII line for a character past the edge', () => {
    const work = segmented(() =>
      expect(fitColumns(`${'x'.repeat(10_000)}é`, 100)).toBe(`${'x'.repeat(99)}…`),
    );
    expect(work.total).toBe(0);
  });

  it('cuts a line longer than its look-ahead even where what it read would fit (zero-width marks)', () => {
    const marks = `e${'\u0301'.repeat(fitLookahead(10) - 1)}`;
    expect(fitColumns(marks, 10)).toBe(marks);
    expect(fitColumns(`${marks}\u0301`, 10).endsWith('…')).toBe(true);
  });

  it('never splits a surrogate pair at the edge of the look-ahead', () => {
    for (const lead of ['', 'x']) {
      const line = `${lead}${'𠀋'.repeat(1_000)}`;
      const head = headOf(line, fitLookahead(20));
      expect(head.length).toBe(lead ? fitLookahead(20) - 1 : fitLookahead(20));
      expect(head.at(-1)).not.toMatch(/[\ud800-\udbff]/);
      expect(fitColumns(line, 20)).toBe(`${lead}${'𠀋'.repeat(9)}…`);
    }
  });

  it('measures a long text a window at a time, each code unit about once (linear, not quadratic)', () => {
    let width = 0;
    const cjk = segmented(() => (width = stringWidth('日'.repeat(60_000))));
    expect(width).toBe(120_000);
    expect(cjk.longest).toBeLessThanOrEqual(512);
    expect(cjk.total).toBeLessThanOrEqual(2 * 60_000);
    // One cluster longer than a window (a letter with 5,000 combining marks) is still one cluster.
    expect(stringWidth(`Z${'\u0351'.repeat(5_000)}日`)).toBe(3);
    // Clusters that straddle a window's edge are measured whole: ZWJ emoji, flags, skin tones.
    for (const unit of ['👨‍👩‍👧', '🇯🇵', '👍🏽', 'e\u0301', '\u1100\u1161\u11a8']) {
      for (const pad of ['', 'a', 'ab', 'abc']) {
        const text = pad + unit.repeat(400);
        expect(stringWidth(text), `${pad}${unit}`).toBe(
          pad.length + 2 * 400 - (unit === 'e\u0301' ? 400 : 0),
        );
      }
    }
  });

  it('redraws a frame with a 64 KiB progress note by measuring a bounded part of it', () => {
    const note = parseProgressLine(`progress: 0.5 ${'日'.repeat(MAX_LINE_LENGTH - 14)}`)?.note ?? '';
    const running = job('j1', { state: 'running', startedAt: T0, progress: { fraction: 0.5, note } });
    const none = totals({});
    const counts = {
      pending: 0,
      queued: 0,
      scheduled: 0,
      running: 1,
      retrying: 0,
      completed: 0,
      failed: 0,
      cancelled: 0,
    };
    const stats: SchedulerStats = {
      jobs: counts,
      queue: { size: 0, max: 100 },
      stopping: 0,
      resources: { capacity: none, allocated: none, free: none },
    };
    let frame: string[] = [];
    const work = segmented(
      () => (frame = renderFrame({ jobs: [running], stats, now: T0, startAt: T0, width: 120 })),
    );
    for (const line of frame) expect(stringWidth(line)).toBeLessThanOrEqual(120);
    expect(frame[2]).toMatch(/日…$/);
    expect(work.total).toBeLessThanOrEqual(frame.length * 3 * fitLookahead(120));
  });
});

describe('renderFrame', () => {
  const stats: SchedulerStats = {
    jobs: {
      pending: 1,
      queued: 2,
      scheduled: 0,
      running: 1,
      retrying: 0,
      completed: 3,
      failed: 1,
      cancelled: 0,
    },
    queue: { size: 3, max: 100 },
    stopping: 0,
    resources: {
      capacity: totals({ gpu: 2, vramMb: 49_152, cpu: 8, memoryMb: 16_384 }),
      allocated: totals({ gpu: 0.5, vramMb: 8_000, cpu: 2, memoryMb: 4_096 }),
      free: totals({}),
    },
  };
  const jobs = [
    job('done', { state: 'completed' }),
    job('upscale', {
      state: 'running',
      attempt: 2,
      maxAttempts: 3,
      allocation: halfGpu,
      startedAt: T0 + 2_000,
      progress: { fraction: 0.5, note: 'tile 2/4' },
    }),
    job('late-normal', { submittedAt: T0 + 5, waitReason: 'resources' }),
    job('urgent', {
      priority: 'low',
      effectivePriority: 'critical',
      submittedAt: T0 + 9,
      waitReason: 'concurrency',
    }),
    job('compose', { state: 'pending', waitReason: 'dependencies' }),
  ];

  it('shows counts, a bar per running job, the queue by priority and the resources', () => {
    expect(renderFrame({ jobs, stats, now: T0 + 6_000, startAt: T0, width: 200 })).toEqual([
      'ai-batch  6.0s  running 1 · waiting 3 · done 3 · failed 1 · cancelled 0',
      'running',
      '  upscale     [██████████░░░░░░░░░░]  50%   4.0s (try 2/3)  tile 2/4  gpu 1 ×0.5 (7.8 GB) · cpu 2 · mem 4.0 GB',
      'queue (3)',
      '  critical   urgent      waiting for concurrency (from low)',
      '  normal     compose     waiting for dependencies',
      '  normal     late-normal waiting for resources',
      'resources  gpu 0.5/2 · vram 7.8 GB/48.0 GB · cpu 2/8 · mem 4.0 GB/16.0 GB',
    ]);
  });

  it('fits every line to the terminal, shortens a long queue and shows a status line', () => {
    const many = Array.from({ length: 12 }, (_, i) => job(`j${i}`, { submittedAt: T0 + i }));
    const frame = renderFrame({
      jobs: many,
      stats,
      now: T0,
      startAt: T0,
      width: 30,
      maxQueueRows: 3,
      status: 'draining',
    });
    expect(frame.every((line) => [...line].length <= 30)).toBe(true);
    expect(frame).toContain('  … 9 more');
    expect(frame.at(-1)).toBe('draining');
    expect(frame).toContain('  (none)');
  });

  it('shows a job told to stop, and how long it has been stopping, in its row and the header', () => {
    const stopping = job('up', {
      state: 'running',
      attempt: 1,
      startedAt: T0,
      progress: { fraction: 0.5, note: 'tile 2/4' },
      stopping: { reason: 'timeout', outcome: 'failed', since: T0 + 1_000 },
    });
    const frame = renderFrame({
      jobs: [stopping],
      stats: { ...stats, stopping: 1 },
      now: T0 + 3_500,
      startAt: T0,
      width: 200,
    });
    expect(frame[0]).toMatch(/running 1 \(1 stopping\) · waiting/);
    expect(frame[2]).toMatch(/ 50% +3\.5s {2}stopping \(timeout\) for 2\.5s, holding its resources$/);
  });

  it('fits lines with CJK, emoji and combining notes to the terminal’s columns', () => {
    const notes = [
      '画像を拡大しています（タイル 3/8）',
      '🚀🔥 upscaling 👨‍👩‍👧 family.png',
      'Zalgo Z\u0351\u0352 e\u0301',
    ];
    const running = notes.map((note, i) =>
      job(`j${i}`, { state: 'running', startedAt: T0, progress: { fraction: 0.5, note } }),
    );
    for (const width of [20, 41, 60, 200]) {
      const frame = renderFrame({
        jobs: running,
        stats,
        now: T0,
        startAt: T0,
        width,
        status: '停止中：もう一度 Ctrl-C',
      });
      for (const line of frame) expect(stringWidth(line), `${width}: ${line}`).toBeLessThanOrEqual(width);
    }
    const wide = renderFrame({ jobs: running, stats, now: T0, startAt: T0, width: 200 });
    expect(wide.find((line) => line.includes('画像'))).toMatch(/画像を拡大しています（タイル 3\/8）$/);
  });

  it('orders the queue by effective priority, then submission', () => {
    expect(queueOrder(jobs).map((j) => j.id)).toEqual(['urgent', 'compose', 'late-normal']);
  });
});

describe('summarise', () => {
  it('counts final states and lists what did not complete; exit code 1 unless all completed', () => {
    const summary = summarise(
      [
        job('a', { state: 'completed' }),
        job('b', { state: 'failed', error: { kind: 'timeout', message: 'attempt timed out after 500 ms' } }),
        job('c', { state: 'cancelled', error: { kind: 'shutdown', message: 'scheduler shut down' } }),
      ],
      '/logs',
      1_500,
    );
    expect(summary).toMatchObject({
      type: 'run.summary',
      exitCode: 1,
      total: 3,
      completed: 1,
      failed: 1,
      cancelled: 1,
    });
    expect(renderSummary(summary)).toEqual([
      'finished with problems: 1/3 completed, 1 failed, 1 cancelled in 1.5s',
      '  failed    b: attempt timed out after 500 ms',
      '  cancelled c: scheduler shut down',
      'logs: /logs',
    ]);
    expect(summarise([job('a', { state: 'completed' })], '/logs', 10).exitCode).toBe(0);
  });
});
