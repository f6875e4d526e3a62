import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { handleInterrupts, type InterruptTarget } from '../../src/cli/interrupts.js';
import type { Notice } from '../../src/cli/reporter.js';
import type { JobSnapshot } from '../../src/runtime/types.js';

function setup(stopTimeoutMs?: number) {
  const jobs = [
    { id: 'a', state: 'running' },
    { id: 'b', state: 'scheduled' },
    { id: 'c', state: 'queued' },
  ] as JobSnapshot[];
  const notices: Notice[] = [];
  const target = {
    scheduler: {
      shutdown: vi.fn(() => new Promise<never>(() => undefined)),
      cancel: vi.fn(() => true),
      list: vi.fn(() => jobs),
    },
    registry: { killAll: vi.fn() },
    notice: (notice: Notice) => void notices.push(notice),
    drainTimeoutMs: 30_000,
    ...(stopTimeoutMs === undefined ? {} : { stopTimeoutMs }),
    now: () => 7,
    exit: vi.fn(),
  } satisfies InterruptTarget;
  const signals = new EventEmitter();
  const stop = handleInterrupts(target, signals as unknown as NodeJS.Process);
  return { target, signals, notices, stop };
}

describe('handleInterrupts', () => {
  it('drains on the first SIGINT, cancels running jobs on the second, kills and exits on the third', () => {
    const { target, signals, notices } = setup();
    signals.emit('SIGINT');
    // Stopped jobs keep their resources until their processes are gone (no stop timeout given).
    expect(target.scheduler.shutdown).toHaveBeenCalledWith({
      mode: 'drain',
      timeoutMs: 30_000,
      stopTimeoutMs: Number.POSITIVE_INFINITY,
    });
    expect(target.scheduler.cancel).not.toHaveBeenCalled();
    expect(notices[0]).toMatchObject({ type: 'run.interrupted', action: 'drain', at: 7 });
    expect(notices[0]?.message).toMatch(
      /waiting up to 30\.0s for 2 running job\(s\); Ctrl-C again to stop them/,
    );

    signals.emit('SIGINT');
    expect(target.scheduler.cancel.mock.calls).toEqual([['a'], ['b']]);
    expect(notices[1]).toMatchObject({
      action: 'cancel',
      message: 'Ctrl-C again: stopping 2 running job(s) (a, b)',
    });
    expect(target.exit).not.toHaveBeenCalled();

    signals.emit('SIGINT');
    expect(target.registry.killAll).toHaveBeenCalledOnce();
    expect(target.exit).toHaveBeenCalledWith(130);
    expect(notices[2]?.action).toBe('kill');
  });

  it('cancels at once on SIGTERM', () => {
    const { target, signals, notices } = setup();
    signals.emit('SIGTERM');
    expect(target.scheduler.shutdown).toHaveBeenCalledWith({
      mode: 'cancel',
      stopTimeoutMs: Number.POSITIVE_INFINITY,
    });
    expect(target.scheduler.cancel).toHaveBeenCalledTimes(2);
    expect(notices[0]?.message).toMatch(/^SIGTERM: stopping 2 running job/);
  });

  it('cancels at once on SIGHUP (the terminal was closed), as on SIGTERM', () => {
    const { target, signals, notices } = setup();
    signals.emit('SIGHUP');
    expect(target.scheduler.shutdown).toHaveBeenCalledWith({
      mode: 'cancel',
      stopTimeoutMs: Number.POSITIVE_INFINITY,
    });
    expect(target.scheduler.cancel.mock.calls).toEqual([['a'], ['b']]);
    expect(notices[0]).toMatchObject({
      action: 'cancel',
      message: 'SIGHUP: stopping 2 running job(s) (a, b)',
    });
    expect(target.exit).not.toHaveBeenCalled();
  });

  it('gives shutdown the stop timeout it was given (--stop-timeout)', () => {
    const { target, signals } = setup(5_000);
    signals.emit('SIGINT');
    signals.emit('SIGINT');
    expect(target.scheduler.shutdown.mock.calls).toEqual([
      [{ mode: 'drain', timeoutMs: 30_000, stopTimeoutMs: 5_000 }],
      [{ mode: 'cancel', stopTimeoutMs: 5_000 }],
    ]);
  });

  it('stops listening when told', () => {
    const { signals, stop } = setup();
    expect(signals.listenerCount('SIGINT')).toBe(1);
    expect(signals.listenerCount('SIGHUP')).toBe(1);
    stop();
    expect(signals.listenerCount('SIGINT')).toBe(0);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
    expect(signals.listenerCount('SIGHUP')).toBe(0);
  });
});
