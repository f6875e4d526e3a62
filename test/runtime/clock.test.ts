import { afterEach, describe, expect, it, vi } from 'vitest';
import { interval, take, timer, toArray, firstValueFrom } from 'rxjs';
import { createActor, setup } from 'xstate';
import { createRealClock, createVirtualClock } from '../../src/runtime/clock.js';

describe('virtual clock', () => {
  it('runs due timers in time order, same-time timers in the order they were set', async () => {
    const clock = createVirtualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 20);
    const cancelled = clock.setTimeout(() => fired.push('never'), 5);
    clock.clearTimeout(cancelled);
    await clock.advanceBy(15);
    expect(fired).toEqual(['a@10']);
    expect(clock.now()).toBe(15);
    await clock.advanceBy(5);
    expect(fired).toEqual(['a@10', 'b@20', 'c@20']);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('runs the promise work a timer starts, and timers that work sets within the window', async () => {
    const clock = createVirtualClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      void Promise.resolve().then(() => clock.setTimeout(() => fired.push(clock.now()), 30));
    }, 10);
    await clock.advanceBy(40);
    expect(fired).toEqual([40]);
  });

  it('serves RxJS: interval and timer tick in virtual time, and unsubscribing clears their timers', async () => {
    const clock = createVirtualClock();
    const ticks = firstValueFrom(interval(1_000, clock.backgroundScheduler).pipe(take(3), toArray()));
    const at: number[] = [];
    const sub = timer(500, clock.scheduler).subscribe(() => at.push(clock.now()));
    await clock.advanceBy(3_000);
    expect(await ticks).toEqual([0, 1, 2]);
    expect(at).toEqual([500]);
    sub.unsubscribe();
    const forever = interval(10, clock.scheduler).subscribe();
    expect(clock.pendingTimers()).toBe(1);
    forever.unsubscribe();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('serves XState: delayed transitions fire when virtual time reaches them', async () => {
    const clock = createVirtualClock();
    const machine = setup({}).createMachine({
      initial: 'waiting',
      states: { waiting: { after: { 5_000: 'done' } }, done: { type: 'final' } },
    });
    const actor = createActor(machine, { clock }).start();
    await clock.advanceBy(4_999);
    expect(actor.getSnapshot().value).toBe('waiting');
    await clock.advanceBy(1);
    expect(actor.getSnapshot().value).toBe('done');
  });

  it('runUntilIdle runs foreground timers and lets background ones only fire along the way', async () => {
    const clock = createVirtualClock();
    let polls = 0;
    const poll = interval(100, clock.backgroundScheduler).subscribe(() => polls++);
    let done = false;
    clock.setTimeout(() => (done = true), 1_050);
    await clock.runUntilIdle();
    expect(done).toBe(true);
    expect(clock.now()).toBe(1_050);
    expect(polls).toBe(10);
    poll.unsubscribe();
    // A foreground timer that re-arms itself forever is reported, not spun on silently.
    const rearm = () => clock.setTimeout(rearm, 1);
    rearm();
    await expect(clock.runUntilIdle({ maxTimers: 100 })).rejects.toThrow(/still busy after 100 timers/);
  });

  it('rejects a negative or non-finite advance', async () => {
    const clock = createVirtualClock({ startAt: 1_000 });
    await expect(clock.advanceBy(-1)).rejects.toThrow(RangeError);
    await expect(clock.advanceBy(Number.NaN)).rejects.toThrow(/finite/);
    expect(clock.now()).toBe(1_000);
  });

  it('compacts cancelled timers so that a long run does not keep them all', async () => {
    const clock = createVirtualClock();
    for (let i = 0; i < 10_000; i++) clock.clearTimeout(clock.setTimeout(() => undefined, 1e9));
    expect(clock.pendingTimers()).toBe(0);
    let fired = false;
    clock.setTimeout(() => (fired = true), 10);
    await clock.advanceBy(10);
    expect(fired).toBe(true);
  });
});

describe('real clock (driven by fake timers, never the wall clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('chains delays longer than Node accepts and cancels them', () => {
    vi.useFakeTimers();
    const clock = createRealClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('long'), 2 ** 31 + 1_000);
    const cancelled = clock.setTimeout(() => fired.push('cancelled'), 2 ** 31 + 1_000);
    clock.clearTimeout(cancelled);
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1_001);
    expect(fired).toEqual(['long']);
  });

  it('reads the epoch clock and serves RxJS', () => {
    vi.useFakeTimers({ now: 1_700_000_000_000 });
    const clock = createRealClock();
    expect(clock.now()).toBe(1_700_000_000_000);
    const seen: number[] = [];
    const sub = interval(1_000, clock.backgroundScheduler).subscribe((n) => seen.push(n));
    vi.advanceTimersByTime(3_000);
    sub.unsubscribe();
    expect(seen).toEqual([0, 1, 2]);
  });
});
