/**
 * A pool that changes while the scheduler runs (issue 17: the leader's pool is the hosts that
 * registered): `scheduler.addNode` and `scheduler.retireNode`, their events, `stats().nodes` and
 * `nodes()`, and jobs that no node could hold (`unschedulable: 'wait'`, waitReason `noNode`).
 * Everything runs in virtual time.
 */
import { describe, expect, it, vi } from 'vitest';
import { ResourceLedger } from '../../src/core/ledger.js';
import {
  InvalidOptionError,
  InvalidPoolError,
  UnschedulableError,
  createScheduler,
  createVirtualClock,
  delay,
  type HandlerContext,
  type SchedulerEvent,
  type SchedulerOptions,
} from '../../src/index.js';
import { renderEventLine } from '../../src/cli/event-line.js';
import { MemoryStore } from '../helpers/memory-store.js';

const node = (id: string, gpus: number, cpu = 8) => ({
  id,
  cpu,
  memoryMb: 16_000,
  gpus: Array.from({ length: gpus }, () => ({ vramMb: 24_000 })),
});

/** A scheduler on `resources` whose `work` jobs take `payload.ms` of virtual time. */
function make(options: Partial<SchedulerOptions> & Pick<SchedulerOptions, 'resources'>) {
  const clock = createVirtualClock();
  const ranOn = new Map<string, string>();
  const handlers = {
    work: async ({ id, payload, signal, allocation }: HandlerContext<{ ms: number }>) => {
      ranOn.set(id, allocation.nodeId);
      await delay(clock, payload.ms, signal);
      return id;
    },
  };
  const scheduler = createScheduler({ clock, monitor: false, retry: { attempts: 1 }, ...options, handlers });
  const events: SchedulerEvent[] = [];
  scheduler.events$.subscribe((e) => events.push(e));
  /** The events of these types, as `type:subject` strings, in order. */
  const told = (...types: string[]) =>
    events
      .filter((e) => types.includes(e.type))
      .map((e) => {
        const subject = 'job' in e ? e.job.id : 'nodeId' in e ? e.nodeId : 'node' in e ? e.node.id : '';
        return `${e.type}:${subject}`;
      });
  return { clock, scheduler, events, told, ranOn };
}

const work = (id: string, ms: number, resources: { gpu?: number; cpu?: number }) => ({
  type: 'work' as const,
  id,
  payload: { ms },
  resources,
});

describe("unschedulable: 'wait'", () => {
  it('accepts a job no node can hold; it waits (noNode) without holding up the queue, and runs when a node that can hold it joins', async () => {
    const { clock, scheduler, told, ranOn } = make({
      resources: { nodes: [node('small', 1)] },
      unschedulable: 'wait',
      queuePolicy: 'strict',
    });
    const big = scheduler.submit(work('big', 100, { gpu: 4 }));
    scheduler.submit(work('small-job', 100, { gpu: 1 }));
    await clock.advanceBy(0);
    expect(scheduler.get('big')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    // Strict order, and yet the job behind it started: a job no node can hold holds up nobody.
    expect(scheduler.get('small-job')?.state).toBe('running');
    await clock.advanceBy(1_000);
    expect(scheduler.get('small-job')?.state).toBe('completed');
    expect(scheduler.get('big')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    // A node too small for it changes nothing.
    scheduler.addNode(node('two', 2));
    expect(scheduler.get('big')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    const added = scheduler.addNode(node('large', 4));
    expect(added).toMatchObject({ id: 'large', gpus: [{}, {}, {}, {}] });
    // Started at once, in the call.
    expect(scheduler.get('big')?.state).toBe('running');
    await clock.runUntilIdle();
    // Settled (never awaited blind: a job that does not run fails here, it does not hang).
    expect(scheduler.get(big.id)?.state).toBe('completed');
    await expect(big.result).resolves.toBe('big');
    expect(ranOn.get('big')).toBe('large');
    expect(told('node.added', 'job.started')).toEqual([
      'job.started:small-job',
      'node.added:two',
      'node.added:large',
      'job.started:big',
    ]);
    expect(scheduler.stats().nodes).toEqual({ active: 3, retired: 0 });
  });

  it('starts from an empty pool: jobs wait for the first host; an empty pool needs the option', async () => {
    expect(() => createScheduler({ handlers: {}, monitor: false, resources: { nodes: [] } })).toThrow(
      InvalidPoolError,
    );
    const { clock, scheduler } = make({ resources: { nodes: [] }, unschedulable: 'wait' });
    const job = scheduler.submit(work('a', 10, { cpu: 1 }));
    await clock.advanceBy(100);
    expect(scheduler.get('a')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    expect(scheduler.stats().resources.capacity.cpu).toBe(0);
    scheduler.addNode(node('h1', 0, 2));
    await clock.runUntilIdle();
    // Settled (never awaited blind: a job that does not run fails here, it does not hang).
    expect(scheduler.get(job.id)?.state).toBe('completed');
    await expect(job.result).resolves.toBe('a');
  });

  it('a cancelled job that waits for a node is gone: a node that joins later does not start it', async () => {
    const { clock, scheduler, ranOn } = make({
      resources: { nodes: [node('small', 1)] },
      unschedulable: 'wait',
    });
    const job = scheduler.submit(work('big', 10, { gpu: 2 }));
    await clock.advanceBy(0);
    expect(scheduler.cancel('big')).toBe(true);
    await expect(job.result).rejects.toThrow(/cancel/);
    // Not even placed (and handed back) when a node that could hold it joins.
    const tryAllocate = vi.spyOn(ResourceLedger.prototype, 'tryAllocate');
    scheduler.addNode(node('large', 2));
    await clock.advanceBy(100);
    expect(tryAllocate).not.toHaveBeenCalled();
    tryAllocate.mockRestore();
    expect(ranOn.has('big')).toBe(false);
    expect(scheduler.stats().jobs.cancelled).toBe(1);
    expect(scheduler.stats().queue.size).toBe(0);
  });

  it('waits in priority order: when a node joins, the waiting jobs it can hold start highest first', async () => {
    const { clock, scheduler, told } = make({
      resources: { nodes: [node('small', 1)] },
      unschedulable: 'wait',
      maxConcurrentJobs: 1,
    });
    scheduler.submit({ ...work('low', 10, { gpu: 2 }), priority: 'low' });
    scheduler.submit({ ...work('high', 10, { gpu: 2 }), priority: 'high' });
    await clock.advanceBy(0);
    scheduler.addNode(node('large', 2));
    await clock.advanceBy(100);
    expect(told('job.started')).toEqual(['job.started:high', 'job.started:low']);
  });

  it('a boost given while it waits for a node counts once it queues', async () => {
    const { clock, scheduler, told } = make({
      resources: { nodes: [node('small', 1)] },
      unschedulable: 'wait',
      maxConcurrentJobs: 1,
    });
    scheduler.submit(work('first', 10, { gpu: 2 }));
    scheduler.submit(work('second', 10, { gpu: 2 }));
    await clock.advanceBy(0);
    expect(scheduler.boost({ ids: ['second'] }, { to: 'critical', forMs: 60_000 }).boosted).toEqual([
      'second',
    ]);
    scheduler.addNode(node('large', 2));
    await clock.advanceBy(100);
    expect(told('job.started')).toEqual(['job.started:second', 'job.started:first']);
  });

  it('refuses a bad option value, naming it', () => {
    let error: unknown;
    try {
      createScheduler({
        handlers: {},
        monitor: false,
        resources: node('a', 1),
        unschedulable: 'sometimes' as never,
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).field).toBe('unschedulable');
  });
});

describe("unschedulable: 'reject' (the default)", () => {
  it('submit throws UnschedulableError as before; once a node that can hold it joined, it is accepted', async () => {
    const { clock, scheduler } = make({ resources: { nodes: [node('small', 1)] } });
    expect(() => scheduler.submit(work('big', 10, { gpu: 4 }))).toThrow(UnschedulableError);
    expect(scheduler.get('big')).toBeUndefined();
    scheduler.addNode(node('large', 4));
    const job = scheduler.submit(work('big', 10, { gpu: 4 }));
    await clock.runUntilIdle();
    // Settled (never awaited blind: a job that does not run fails here, it does not hang).
    expect(scheduler.get(job.id)?.state).toBe('completed');
    await expect(job.result).resolves.toBe('big');
    scheduler.retireNode('large');
    expect(() => scheduler.submit(work('big2', 10, { gpu: 4 }))).toThrow(UnschedulableError);
    await clock.advanceBy(0);
  });
});

describe('retireNode', () => {
  it('jobs running on a retired node finish and release it; nothing new starts there; then node.removed', async () => {
    const { clock, scheduler, told, ranOn, events } = make({
      resources: { nodes: [node('a', 2), node('b', 1)] },
    });
    scheduler.submit(work('j1', 1_000, { gpu: 2 }));
    scheduler.submit(work('j2', 2_000, { gpu: 1 }));
    await clock.advanceBy(0);
    expect([ranOn.get('j1'), ranOn.get('j2')]).toEqual(['a', 'b']);
    const retired = scheduler.retireNode('a');
    expect(retired).toEqual({ nodeId: 'a', jobIds: ['j1'], removed: false });
    expect(scheduler.nodes().map((n) => [n.node.id, n.state, n.jobIds])).toEqual([
      ['a', 'retired', ['j1']],
      ['b', 'active', ['j2']],
    ]);
    expect(scheduler.stats().nodes).toEqual({ active: 1, retired: 1 });
    // Its units stay held: still in the capacity and allocated, none of it free.
    expect(scheduler.stats().resources).toMatchObject({
      capacity: { gpu: 3 },
      allocated: { gpu: 3 },
      free: { gpu: 0 },
    });
    // A job that fits only a free GPU of a does not go there.
    scheduler.submit(work('j3', 100, { gpu: 1 }));
    await clock.advanceBy(999);
    expect(scheduler.get('j1')?.state).toBe('running');
    expect(scheduler.get('j3')).toMatchObject({ state: 'queued', waitReason: 'resources' });
    await clock.advanceBy(1);
    expect(scheduler.get('j1')?.state).toBe('completed');
    // a left with j1's end; j3 still waits for b (never placed on a).
    expect(scheduler.stats().resources.capacity.gpu).toBe(1);
    expect(scheduler.nodes().map((n) => n.node.id)).toEqual(['b']);
    expect(scheduler.get('j3')?.state).toBe('queued');
    await clock.advanceBy(1_000);
    expect(scheduler.get('j3')?.state).toBe('running');
    expect(ranOn.get('j3')).toBe('b');
    expect(told('node.retired', 'node.removed', 'job.completed')).toEqual([
      'node.retired:a',
      'job.completed:j1',
      'node.removed:a',
      'job.completed:j2',
    ]);
    const retiredEvent = events.find((e) => e.type === 'node.retired');
    expect(retiredEvent).toMatchObject({ jobIds: ['j1'] });
  });

  it('a node holding nothing leaves at once; its id may join again, fresh', async () => {
    const { clock, scheduler, told } = make({ resources: { nodes: [node('a', 1), node('b', 1)] } });
    expect(scheduler.retireNode('b')).toEqual({ nodeId: 'b', jobIds: [], removed: true });
    expect(told('node.retired', 'node.removed')).toEqual(['node.retired:b', 'node.removed:b']);
    expect(scheduler.stats().nodes).toEqual({ active: 1, retired: 0 });
    scheduler.addNode(node('b', 2));
    const job = scheduler.submit(work('two', 10, { gpu: 2 }));
    await clock.runUntilIdle();
    // Settled (never awaited blind: a job that does not run fails here, it does not hang).
    expect(scheduler.get(job.id)?.state).toBe('completed');
    await expect(job.result).resolves.toBe('two');
    await clock.advanceBy(0);
  });

  it('retiring again says what it holds and changes nothing; an unknown node or an early call is a typed error', async () => {
    const { clock, scheduler, events } = make({ resources: { nodes: [node('a', 1), node('b', 1)] } });
    scheduler.submit(work('j', 100, { gpu: 1 }));
    await clock.advanceBy(0);
    const on = scheduler.nodes().find((n) => n.jobIds.includes('j'))?.node.id as string;
    scheduler.retireNode(on);
    const count = events.length;
    expect(scheduler.retireNode(on)).toEqual({ nodeId: on, jobIds: ['j'], removed: false });
    expect(events.length).toBe(count);
    let error: unknown;
    try {
      scheduler.retireNode('nope');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidPoolError);
    expect((error as InvalidPoolError).field).toBe('nodeId');
    expect(() => scheduler.addNode(node('a', 1))).toThrow(/node\.id must be an id not in the pool/);
    try {
      scheduler.addNode({ id: 'c', cpu: -1, memoryMb: 1 });
    } catch (e) {
      error = e;
    }
    expect((error as InvalidPoolError).field).toBe('node.cpu');
    expect(scheduler.stats().nodes).toEqual({ active: 1, retired: 1 });
    // Before a detected pool is known there is nothing to change.
    const early = createScheduler({
      handlers: {},
      monitor: false,
      detect: { si: {} as never, os: {} as never, runNvidiaSmi: () => new Promise<never>(() => undefined) },
    });
    expect(() => early.addNode(node('x', 1))).toThrow(InvalidPoolError);
    expect(early.stats().nodes).toEqual({ active: 0, retired: 0 });
    expect(early.nodes()).toEqual([]);
  });

  it('queued jobs that only the retired node could hold wait for a node (never cancelled), without holding up others', async () => {
    const { clock, scheduler } = make({
      resources: { nodes: [node('big', 4), node('small', 1)] },
      queuePolicy: 'strict',
      maxConcurrentJobs: 10,
    });
    // big is busy; a 4-GPU job waits for it at the head, a 1-GPU job behind it.
    scheduler.submit(work('hog', 1_000, { gpu: 4 }));
    await clock.advanceBy(0);
    scheduler.submit(work('wide', 100, { gpu: 4 }));
    scheduler.submit(work('narrow', 100, { gpu: 1 }));
    await clock.advanceBy(0);
    // Strict: the head waits for resources and narrow waits behind it.
    expect(scheduler.get('wide')).toMatchObject({ state: 'queued', waitReason: 'resources' });
    expect(scheduler.get('narrow')?.state).toBe('queued');
    scheduler.retireNode('big');
    // wide can fit no node now: it waits for one, and narrow, no longer behind it, starts.
    expect(scheduler.get('wide')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    expect(scheduler.get('narrow')?.state).toBe('running');
    await clock.advanceBy(2_000);
    expect(scheduler.get('hog')?.state).toBe('completed');
    expect(scheduler.get('wide')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    // The host comes back (registers again: a new node of the same id).
    scheduler.addNode(node('big', 4));
    await clock.advanceBy(100);
    expect(scheduler.get('wide')?.state).toBe('completed');
  });

  it('a job that queues again after its node retired waits for a node it fits (a retry)', async () => {
    const clock = createVirtualClock();
    let tries = 0;
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { nodes: [node('big', 2), node('small', 1)] },
      retry: { attempts: 2, backoff: { type: 'fixed', delayMs: 100 } },
      handlers: {
        flaky: async () => {
          tries++;
          if (tries === 1) throw new Error('first try fails');
          return 'ok';
        },
      },
    });
    const job = scheduler.submit({ type: 'flaky', id: 'f', payload: null, resources: { gpu: 2 } });
    await clock.advanceBy(0);
    scheduler.retireNode('big');
    await clock.advanceBy(200);
    expect(tries).toBe(1);
    expect(scheduler.get('f')).toMatchObject({ state: 'queued', waitReason: 'noNode', attempt: 1 });
    scheduler.addNode(node('big2', 2));
    await clock.runUntilIdle();
    // Settled (never awaited blind: a job that does not run fails here, it does not hang).
    expect(scheduler.get(job.id)?.state).toBe('completed');
    await expect(job.result).resolves.toBe('ok');
    expect(tries).toBe(2);
  });
});

describe('with nobody listening (jobs queue with no actor until they start)', () => {
  it('a job no node can hold, and queued jobs a retire leaves with no node, wait apart and start when one joins', async () => {
    const clock = createVirtualClock();
    const ranOn = new Map<string, string>();
    const scheduler = createScheduler({
      clock,
      monitor: false,
      unschedulable: 'wait',
      queuePolicy: 'strict',
      maxConcurrentJobs: 10,
      resources: { nodes: [node('big', 2), node('small', 1)] },
      handlers: {
        work: async ({ id, payload, signal, allocation }: HandlerContext<{ ms: number }>) => {
          ranOn.set(id, allocation.nodeId);
          await delay(clock, payload.ms, signal);
          return id;
        },
      },
    });
    scheduler.submit(work('hog', 1_000, { gpu: 2 }));
    scheduler.submit(work('huge', 100, { gpu: 8 }));
    scheduler.submit(work('wide', 100, { gpu: 2 }));
    scheduler.submit(work('narrow', 100, { gpu: 1 }));
    await clock.advanceBy(0);
    // huge fits no node: it waits apart; wide waits for big at the head (strict) and narrow
    // behind it.
    expect(scheduler.get('huge')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    expect(scheduler.get('wide')).toMatchObject({ state: 'queued', waitReason: 'resources' });
    expect(scheduler.get('narrow')?.state).toBe('queued');
    await clock.advanceBy(300);
    scheduler.retireNode('big');
    expect(scheduler.get('wide')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    expect(scheduler.get('narrow')?.state).toBe('running');
    await clock.advanceBy(300);
    scheduler.addNode(node('large', 8));
    await clock.runUntilIdle();
    expect(scheduler.list().map((j) => [j.id, j.state])).toEqual([
      ['hog', 'completed'],
      ['huge', 'completed'],
      ['wide', 'completed'],
      ['narrow', 'completed'],
    ]);
    // Each as submitted at 0, whatever waited apart from the queue.
    expect(scheduler.list().map((j) => j.submittedAt)).toEqual([0, 0, 0, 0]);
    expect(scheduler.get('huge')?.startedAt).toBe(600);
    expect(scheduler.get('wide')?.startedAt).toBe(700);
    expect([ranOn.get('hog'), ranOn.get('huge'), ranOn.get('wide'), ranOn.get('narrow')]).toEqual([
      'big',
      'large',
      'large',
      'small',
    ]);
    expect(scheduler.stats().nodes).toEqual({ active: 2, retired: 0 });
  });
});

describe('a durable scheduler', () => {
  it('recovers a job that waits for a node as one (noNode), and runs it when a node that can hold it joins', async () => {
    let store = new MemoryStore();
    const open = () => {
      const clock = createVirtualClock();
      const scheduler = createScheduler({
        clock,
        monitor: false,
        store,
        unschedulable: 'wait',
        queuePolicy: 'strict',
        resources: { nodes: [node('small', 1)] },
        handlers: {
          work: async ({ id, payload, signal }: HandlerContext<{ ms: number }>) => {
            await delay(clock, payload.ms, signal);
            return id;
          },
        },
      });
      return { clock, scheduler };
    };
    const first = open();
    first.scheduler.submit(work('big', 10, { gpu: 2 }));
    await first.clock.advanceBy(0);
    expect(first.scheduler.get('big')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    // The process dies; a new one opens the store (with nobody listening yet).
    store = store.reopenedAt();
    const second = open();
    second.scheduler.submit(work('small-job', 10, { gpu: 1 }));
    expect(second.scheduler.get('big')).toMatchObject({ state: 'queued', waitReason: 'noNode' });
    // Strict order, yet the recovered job no node can hold holds up nobody.
    expect(second.scheduler.get('small-job')?.state).toBe('running');
    second.scheduler.addNode(node('large', 2));
    await second.clock.runUntilIdle();
    expect(second.scheduler.get('big')?.state).toBe('completed');
    await second.scheduler.shutdown();
  });
});

describe('the CLI event lines', () => {
  it('names each node event', () => {
    const n = { id: 'h1', cpu: 8, memoryMb: 16_384, gpus: [{ index: 0, vramMb: 1, model: 'x' }], custom: {} };
    expect(renderEventLine({ type: 'node.added', at: 1_000, node: n }, 0)).toMatch(
      /node +h1 joined: 1 GPU · cpu 8 · 16/,
    );
    expect(renderEventLine({ type: 'node.retired', at: 0, nodeId: 'h1', jobIds: ['a', 'b'] }, 0)).toMatch(
      /node +h1 retired: nothing new starts on it; still running a, b$/,
    );
    expect(renderEventLine({ type: 'node.removed', at: 0, nodeId: 'h1' }, 0)).toMatch(
      /node +h1 left the pool$/,
    );
  });
});
