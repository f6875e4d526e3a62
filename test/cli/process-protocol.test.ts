/** The small contracts between the CLI and a job's process: durations, progress lines, env. */
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/cli/duration.js';
import { cudaVisibleDevices, jobEnv } from '../../src/cli/job-env.js';
import { createLineSplitter, parseProgressLine } from '../../src/cli/progress-line.js';
import type { Allocation } from '../../src/core/types.js';

describe('parseDuration', () => {
  it('reads numbers as ms and strings with a unit', () => {
    expect(parseDuration(250)).toBe(250);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration(' 2 h ')).toBe(7_200_000);
  });

  it('refuses what is not a duration', () => {
    for (const value of ['30', 'soon', '1d', '-1s', '', Number.NaN, Infinity, null, {}]) {
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

  it('leaves other lines alone', () => {
    for (const line of [
      '',
      'loading model',
      'progress:',
      'progress: high',
      'my progress: 0.5',
      'progress: -0.5',
    ]) {
      expect(parseProgressLine(line), line).toBeUndefined();
    }
  });
});

describe('createLineSplitter', () => {
  it('joins lines split across chunks and hands back the last partial line on flush', () => {
    const lines: string[] = [];
    const splitter = createLineSplitter((line) => lines.push(line));
    splitter.push('progress: 0.');
    splitter.push('5 half\r\nnext');
    expect(lines).toEqual(['progress: 0.5 half']);
    splitter.push(' line\nlast');
    splitter.flush();
    expect(lines).toEqual(['progress: 0.5 half', 'next line', 'last']);
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
});
