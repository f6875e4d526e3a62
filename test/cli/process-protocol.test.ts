/** The small contracts between the CLI and a job's process: durations, progress lines, env. */
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/cli/duration.js';
import { cudaVisibleDevices, jobEnv } from '../../src/cli/job-env.js';
import {
  createLineSplitter,
  MAX_LINE_LENGTH,
  MAX_NOTE_LENGTH,
  parseProgressLine,
} from '../../src/cli/progress-line.js';
import type { Allocation } from '../../src/core/types.js';

describe('parseDuration', () => {
  it('reads strings with a unit', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration(' 2 h ')).toBe(7_200_000);
  });

  it('refuses what is not a duration, bare numbers included (never milliseconds silently)', () => {
    for (const value of [250, 0, '30', ' 30 ', 'soon', '1d', '-1s', '', Number.NaN, Infinity, null, {}]) {
      expect(parseDuration(value), String(value)).toBeUndefined();
    }
  });
});

describe('parseProgressLine', () => {
  it('reads a fraction or a percentage and an optional note', () => {
    expect(parseProgressLine('progress: 0.42 resizing tile 3')).toEqual({
      fraction: 0.42,
      note: 'resizing tile 3',
    });
    expect(parseProgressLine('progress: 1')).toEqual({ fraction: 1 });
    expect(parseProgressLine('  Progress:.5  half  ')).toEqual({ fraction: 0.5, note: 'half' });
    expect(parseProgressLine('progress: 80% nearly')).toEqual({ fraction: 0.8, note: 'nearly' });
  });

  it('reads a progress line with a long note and long trailing spaces', () => {
    const line = `progress: 0.5 a${' '.repeat(MAX_LINE_LENGTH)}b`;
    // The note is cut to MAX_NOTE_LENGTH, and what is left of it trimmed.
    expect(parseProgressLine(line)).toEqual({ fraction: 0.5, note: 'a' });
    expect(parseProgressLine(`progress: 0.5 a${' '.repeat(100)}b`)).toEqual({
      fraction: 0.5,
      note: `a${' '.repeat(100)}b`,
    });
    expect(parseProgressLine(`progress: 0.5${' '.repeat(MAX_LINE_LENGTH)}`)).toEqual({ fraction: 0.5 });
  });

  it('caps a note at MAX_NOTE_LENGTH, never splitting a surrogate pair', () => {
    // A 64 KiB note (the longest line the splitter keeps), redrawn by the live view on every frame.
    const cjk = parseProgressLine(`progress: 0.5 ${'日'.repeat(MAX_LINE_LENGTH - 14)}`);
    expect(cjk?.note).toBe('日'.repeat(MAX_NOTE_LENGTH));
    // 𠀋 is two code units; the 512th ends exactly at the cap, the next one would straddle it.
    const pairs = parseProgressLine(`progress: 0.5 ${'𠀋'.repeat(MAX_LINE_LENGTH / 2 - 8)}`);
    expect(pairs?.note).toBe('𠀋'.repeat(MAX_NOTE_LENGTH / 2));
    const shifted = parseProgressLine(`progress: 0.5 x${'𠀋'.repeat(MAX_LINE_LENGTH / 2 - 8)}`);
    expect(shifted?.note).toBe(`x${'𠀋'.repeat(MAX_NOTE_LENGTH / 2 - 1)}`);
    expect(shifted?.note?.length).toBe(MAX_NOTE_LENGTH - 1);
    expect(parseProgressLine(`progress: 1 ${'n'.repeat(MAX_NOTE_LENGTH)}`)?.note).toHaveLength(
      MAX_NOTE_LENGTH,
    );
  });

  it('leaves other lines alone', () => {
    for (const line of [
      '',
      'loading model',
      'progress:',
      'progress: high',
      'my progress: 0.5',
      'progress: -0.5',
      'progress: 0.5x',
      'progress: 50%x',
    ]) {
      expect(parseProgressLine(line), line).toBeUndefined();
    }
  });
});

describe('createLineSplitter', () => {
  function collect() {
    const lines: string[] = [];
    const splitter = createLineSplitter((line) => lines.push(line));
    return { lines, splitter };
  }

  it('joins lines split across chunks and hands back the last partial line on flush', () => {
    const { lines, splitter } = collect();
    splitter.push('progress: 0.');
    splitter.push('5 half\r\nnext');
    expect(lines).toEqual(['progress: 0.5 half']);
    splitter.push(' line\nlast');
    splitter.flush();
    expect(lines).toEqual(['progress: 0.5 half', 'next line', 'last']);
  });

  it('ends a line at a lone \\r, as a progress bar redrawing its line does', () => {
    const { lines, splitter } = collect();
    splitter.push('progress: 0.1 a\rprogress: 0.');
    splitter.push('2 b\rdone\n');
    expect(lines).toEqual(['progress: 0.1 a', 'progress: 0.2 b', 'done']);
    expect(lines.map((line) => parseProgressLine(line)?.fraction)).toEqual([0.1, 0.2, undefined]);
  });

  it('reads \\r\\n split across two chunks as one line end, not two', () => {
    const { lines, splitter } = collect();
    splitter.push('one\r');
    splitter.push('\ntwo\r');
    splitter.push('');
    splitter.push('\n\nthree');
    splitter.flush();
    expect(lines).toEqual(['one', 'two', '', 'three']);
  });

  it('keeps at most MAX_LINE_LENGTH of a line without an end, and reads on after it', () => {
    const { lines, splitter } = collect();
    const chunk = 'x'.repeat(4_096);
    // 16 MiB of output without a line end (binary output, or a bar that never says \n).
    for (let i = 0; i < 4_096; i++) {
      splitter.push(chunk);
      expect(splitter.buffered).toBeLessThanOrEqual(MAX_LINE_LENGTH);
    }
    expect(splitter.buffered).toBe(MAX_LINE_LENGTH);
    splitter.push('tail\nprogress: 0.');
    splitter.push('42 note\n');
    expect(lines.map((line) => line.length)).toEqual([MAX_LINE_LENGTH, 'progress: 0.42 note'.length]);
    expect(parseProgressLine(lines[1] ?? '')).toEqual({ fraction: 0.42, note: 'note' });
    expect(splitter.buffered).toBe(0);
  });

  it('searches each character once, however long the unfinished line grows (linear time)', () => {
    const { lines, splitter } = collect();
    let pushed = 0;
    // One byte at a time: the old splitter searched the whole held line again for every byte.
    for (let i = 0; i < 50_000; i++) {
      splitter.push(i % 10_000 === 9_999 ? '\n' : 'y');
      pushed++;
    }
    for (let i = 0; i < 100; i++) {
      const chunk = `${'z'.repeat(1_000)}\r${'z'.repeat(500)}`;
      splitter.push(chunk);
      pushed += chunk.length;
    }
    expect(splitter.scanned).toBe(pushed);
    expect(lines).toHaveLength(5 + 100);
  });
});

describe('jobEnv', () => {
  const allocation: Allocation = {
    id: 'alloc-1',
    nodeId: 'ws',
    cpu: 2,
    memoryMb: 1_024,
    gpus: [
      { index: 3, share: 1, vramMb: 24_000 },
      { index: 1, share: 1, vramMb: 24_000 },
    ],
    custom: {},
  };

  it('names the granted GPUs in CUDA_VISIBLE_DEVICES, none as an empty string', () => {
    expect(cudaVisibleDevices(allocation)).toBe('3,1');
    expect(cudaVisibleDevices({ ...allocation, gpus: [] })).toBe('');
  });

  it('layers the CLI’s environment, the job’s env and what the scheduler granted', () => {
    const env = jobEnv(
      { PATH: '/bin', CUDA_VISIBLE_DEVICES: '0,1,2,3', KEEP: 'me' },
      { MODEL: 'x4', AI_BATCH_JOB_ID: 'spoofed' },
      { jobId: 'up', attempt: 2, allocation, logDir: '/logs' },
    );
    expect(env).toEqual({
      PATH: '/bin',
      KEEP: 'me',
      MODEL: 'x4',
      CUDA_VISIBLE_DEVICES: '3,1',
      AI_BATCH_ALLOCATION: JSON.stringify(allocation),
      AI_BATCH_JOB_ID: 'up',
      AI_BATCH_ATTEMPT: '2',
      AI_BATCH_LOG_DIR: '/logs',
    });
  });

  it('marks every process of an attempt with its token, which the job’s env cannot override', () => {
    const env = jobEnv(
      { AI_BATCH_JOB_TOKEN: 'outer-run' },
      { AI_BATCH_JOB_TOKEN: 'spoofed' },
      { jobId: 'up', attempt: 1, allocation, logDir: '/logs', token: 't-1' },
    );
    expect(env['AI_BATCH_JOB_TOKEN']).toBe('t-1');
  });
});
