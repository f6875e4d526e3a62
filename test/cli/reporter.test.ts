/** How a run reports: JSON lines, plain lines, and the live terminal view. */
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { renderFrame } from '../../src/cli/frame.js';
import { liveView } from '../../src/cli/live-view.js';
import {
  jsonReporter,
  lenientWriter,
  lineReporter,
  type Notice,
  type RunStarted,
} from '../../src/cli/reporter.js';
import { summarise } from '../../src/cli/summary.js';
import type { JobSnapshot, SchedulerEvent, SchedulerStats } from '../../src/runtime/types.js';

const T0 = 5_000;
const started: RunStarted = {
  type: 'run.started',
  at: T0,
  file: 'jobs.yaml',
  jobs: 1,
  pool: 'p',
  logDir: '/logs',
};
const snapshot: JobSnapshot = {
  id: 'a',
  type: 'command',
  state: 'completed',
  priority: 'normal',
  effectivePriority: 'normal',
  attempt: 1,
  maxAttempts: 1,
  progress: { fraction: 1 },
  submittedAt: T0,
  startedAt: T0,
};
const completed: SchedulerEvent = {
  type: 'job.completed',
  at: T0 + 2_000,
  job: snapshot,
  output: { exitCode: 0 },
};
const notice: Notice = { type: 'run.interrupted', at: T0, action: 'drain', message: 'draining' };
const zero = { cpu: 0, memoryMb: 0, gpu: 0, vramMb: 0, custom: {} };
const stats: SchedulerStats = {
  jobs: {
    pending: 0,
    queued: 0,
    scheduled: 0,
    running: 0,
    retrying: 0,
    completed: 1,
    failed: 0,
    cancelled: 0,
  },
  queue: { size: 0, max: 100 },
  stopping: 0,
  resources: { capacity: { ...zero, cpu: 4 }, allocated: zero, free: zero },
};

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, write: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) } };
}

describe('jsonReporter', () => {
  it('writes every event as one JSON line, then the summary; notices also go to stderr', () => {
    const { out, err, write } = capture();
    const reporter = jsonReporter(write);
    reporter.start(started);
    reporter.event(completed);
    reporter.notice(notice);
    reporter.finish(summarise([snapshot], '/logs', 2_000));
    const lines = out
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { type: string });
    expect(lines.map((line) => line.type)).toEqual([
      'run.started',
      'job.completed',
      'run.interrupted',
      'run.summary',
    ]);
    expect(lines[1]).toEqual(completed);
    expect(err.join('')).toBe('ai-batch: draining\n');
  });

  it('also warns on stderr when a job’s resources are force-released', () => {
    const { out, err, write } = capture();
    const reporter = jsonReporter(write, T0);
    const forced: SchedulerEvent = {
      type: 'job.forceReleased',
      at: T0 + 3_000,
      job: { ...snapshot, state: 'failed' },
      attempt: 1,
      reason: 'timeout',
      stoppingMs: 2_000,
    };
    reporter.event(forced);
    expect(JSON.parse(out.join(''))).toEqual(forced);
    expect(err.join('')).toMatch(
      /^ai-batch: \[ {3}3\.0s\] WARNING {4}a attempt 1: its resources were released 2\.0s after .*\n$/,
    );
  });
});

describe('lineReporter', () => {
  it('writes a line per event for people, then the summary', () => {
    const { out, write } = capture();
    const reporter = lineReporter(write, T0);
    reporter.start(started);
    reporter.event(completed);
    reporter.event({ type: 'resources.changed', at: T0, resources: stats.resources });
    reporter.notice(notice);
    reporter.finish(summarise([snapshot], '/logs', 2_000));
    expect(out.join('')).toBe(
      [
        'ai-batch: 1 job(s) from jobs.yaml on p; logs in /logs',
        '[   2.0s] completed  a in 2.0s',
        'ai-batch: draining',
        'done: 1/1 completed, 0 failed, 0 cancelled in 2.0s',
        'logs: /logs',
        '',
      ].join('\n'),
    );
  });
});

describe('liveView', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('redraws the frame in place, at most once per throttle interval, and ends with the summary', () => {
    vi.useFakeTimers();
    const { out, write } = capture();
    const snapshotFn = vi.fn(() => ({ jobs: [snapshot], stats }));
    const view = liveView({
      write,
      columns: () => 80,
      snapshot: snapshotFn,
      now: () => T0 + 1_000,
      startAt: T0,
      throttleMs: 100,
    });
    expect(out.join('')).toBe('\x1b[?25l');
    view.start(started);
    view.event(completed);
    view.event(completed);
    expect(snapshotFn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(100);
    expect(snapshotFn).toHaveBeenCalledTimes(1);
    const first = out.slice(1).join('');
    // Lines that stay (the start, the completed job) come above the frame.
    expect(first.startsWith('ai-batch: 1 job(s) from jobs.yaml')).toBe(true);
    expect(first).toContain('[   2.0s] completed  a in 2.0s\n');
    expect(first).toContain('ai-batch  1.0s  running 0');
    const height = renderFrame({ jobs: [snapshot], stats, now: T0 + 1_000, startAt: T0, width: 80 }).length;

    view.notice(notice);
    vi.advanceTimersByTime(100);
    const second = out.at(-1) ?? '';
    expect(second.startsWith(`\x1b[${height}F\x1b[J`)).toBe(true);
    expect(second.trimEnd().endsWith('draining')).toBe(true);

    view.finish(summarise([snapshot], '/logs', 2_000));
    const last = out.at(-1) ?? '';
    expect(last).toMatch(/done: 1\/1 completed/);
    expect(last.endsWith('\x1b[?25h')).toBe(true);
    const calls = snapshotFn.mock.calls.length;
    view.event(completed);
    vi.advanceTimersByTime(5_000);
    expect(snapshotFn.mock.calls.length).toBe(calls);
  });
});

describe('lenientWriter', () => {
  it('drops what a closed stream cannot take (EPIPE, EIO) instead of crashing the run', async () => {
    const written: string[] = [];
    let fail = false;
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        if (fail) {
          done(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
        } else {
          written.push(chunk.toString());
          done();
        }
      },
    });
    const write = lenientWriter(stream);
    write('one\n');
    fail = true;
    write('two\n');
    // The stream reports the failure as an error event; without a listener it would be thrown.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(stream.destroyed).toBe(true);
    expect(() => write('three\n')).not.toThrow();
    expect(written).toEqual(['one\n']);
  });
});
