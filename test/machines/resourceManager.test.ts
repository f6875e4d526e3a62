import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, type AnyActorRef } from 'xstate';
import {
  resourceManagerMachine,
  type ResourceManagerEmitted,
  type ResourceManagerInput,
  type ResourceReply,
} from '../../src/machines/resourceManager.machine.js';
import type { Measured } from '../../src/actors/measure.js';
import { createVirtualClock } from '../../src/runtime/clock.js';

/** An actor that only collects the replies it is sent. */
function inbox() {
  const replies: ResourceReply[] = [];
  const ref: AnyActorRef = createActor(
    fromCallback(({ receive }) => {
      receive((event) => replies.push(event as ResourceReply));
    }),
  ).start();
  return { ref, replies };
}

function start(input: ResourceManagerInput) {
  const actor = createActor(resourceManagerMachine, { input }).start();
  const emitted: ResourceManagerEmitted[] = [];
  for (const type of [
    'resources.changed',
    'resources.pressure',
    'resources.pressureEnded',
    'resources.releaseIgnored',
  ] as const) {
    actor.on(type, (e) => emitted.push(e));
  }
  return { actor, emitted };
}

const pool = { id: 'host', cpu: 8, memoryMb: 16_000, gpus: [{ vramMb: 24_000 }, { vramMb: 24_000 }] };

describe('resource manager actor', () => {
  it('answers a request with a grant, a denial or a rejection, by message', () => {
    const { actor, emitted } = start({ pool });
    const box = inbox();
    actor.send({ type: 'resources.request', requestId: 'r1', request: { gpu: 2, cpu: 4 }, replyTo: box.ref });
    actor.send({ type: 'resources.request', requestId: 'r2', request: { gpu: 1 }, replyTo: box.ref });
    actor.send({ type: 'resources.request', requestId: 'r3', request: { gpu: 3 }, replyTo: box.ref });
    actor.send({ type: 'resources.request', requestId: 'r4', request: { cpu: -1 }, replyTo: box.ref });
    expect(box.replies.map((r) => [r.type, r.requestId])).toEqual([
      ['resources.granted', 'r1'],
      ['resources.denied', 'r2'],
      ['resources.rejected', 'r3'],
      ['resources.rejected', 'r4'],
    ]);
    expect(box.replies[1]).toMatchObject({
      denial: { short: [{ resource: 'gpu', nodeId: 'host', requested: 1, free: 0 }] },
    });
    expect(box.replies[2]).toMatchObject({ error: { name: 'UnschedulableError', field: 'resources.gpu' } });
    expect(box.replies[3]).toMatchObject({ error: { name: 'InvalidJobError', field: 'resources.cpu' } });
    const stats = actor.getSnapshot().context.stats;
    expect(stats.allocated).toMatchObject({ gpu: 2, cpu: 4, vramMb: 48_000 });
    expect(stats.free).toMatchObject({ gpu: 0, cpu: 4 });
    expect(emitted.filter((e) => e.type === 'resources.changed')).toHaveLength(1);
    expect(actor.getSnapshot().value).toBe('serving');
  });

  it('frees on release and reports a second release without applying it', () => {
    const { actor, emitted } = start({ pool });
    const box = inbox();
    actor.send({
      type: 'resources.request',
      requestId: 'r1',
      request: { memoryMb: 4_000 },
      replyTo: box.ref,
    });
    const granted = box.replies[0];
    if (granted?.type !== 'resources.granted') throw new Error('expected a grant');
    actor.send({ type: 'resources.release', allocationId: granted.allocation.id });
    actor.send({ type: 'resources.release', allocationId: granted.allocation.id });
    actor.send({ type: 'resources.release', allocationId: 'nope' });
    expect(actor.getSnapshot().context.stats.allocated.memoryMb).toBe(0);
    expect(emitted.filter((e) => e.type === 'resources.releaseIgnored')).toEqual([
      { type: 'resources.releaseIgnored', allocationId: granted.allocation.id, reason: 'already-released' },
      { type: 'resources.releaseIgnored', allocationId: 'nope', reason: 'unknown' },
    ]);
  });

  it('a capacity change updates what can be admitted', () => {
    const { actor } = start({ pool });
    const box = inbox();
    actor.send({ type: 'resources.setLimit', nodeId: 'host', limit: { memoryMb: 1_000 } });
    expect(actor.getSnapshot().context.stats.free.memoryMb).toBe(1_000);
    actor.send({
      type: 'resources.request',
      requestId: 'big',
      request: { memoryMb: 2_000 },
      replyTo: box.ref,
    });
    actor.send({ type: 'resources.setLimit', nodeId: 'host', limit: undefined });
    actor.send({
      type: 'resources.request',
      requestId: 'again',
      request: { memoryMb: 2_000 },
      replyTo: box.ref,
    });
    expect(box.replies.map((r) => r.type)).toEqual(['resources.denied', 'resources.granted']);
  });
});

describe('reconciliation monitor', () => {
  it('lowers admission under outside memory pressure, never revokes, and restores when it ends', async () => {
    const clock = createVirtualClock();
    const readings: Measured[] = [
      { freeMemoryMb: 15_500, warnings: [] },
      { freeMemoryMb: 4_000, warnings: [] }, // something outside took ~11 GB
      { freeMemoryMb: 4_000, warnings: [] },
      { freeMemoryMb: 15_000, warnings: [] },
    ];
    let reads = 0;
    const read = async () => readings[Math.min(reads++, readings.length - 1)] as Measured;
    const { actor, emitted } = start({
      pool,
      monitor: { clock, intervalMs: 30_000, read, headroom: { memoryMb: 500 } },
    });
    const box = inbox();
    await clock.advanceBy(0); // the first poll is due at once
    expect(actor.getSnapshot().value).toBe('monitored');
    expect(reads).toBe(1);
    // 15.5 GB free of 16 GB, minus 500 MB headroom: 15 GB admissible.
    expect(actor.getSnapshot().context.stats).toMatchObject({
      free: { memoryMb: 15_000 },
      measured: { memoryMb: 15_500 },
    });
    actor.send({
      type: 'resources.request',
      requestId: 'job',
      request: { memoryMb: 3_000 },
      replyTo: box.ref,
    });
    await clock.advanceBy(30_000);
    expect(reads).toBe(2);
    // 3 GB held by us + 4 GB free − 0.5 GB headroom = 6.5 GB admissible in all: 3.5 GB more.
    expect(actor.getSnapshot().context.stats.free.memoryMb).toBe(3_500);
    expect(actor.getSnapshot().context.stats.allocated.memoryMb).toBe(3_000);
    const pressure = emitted.filter((e) => e.type === 'resources.pressure');
    expect(pressure.at(-1)).toMatchObject({
      nodeId: 'host',
      pressure: { resource: 'memory', limitMb: 6_500 },
    });
    actor.send({
      type: 'resources.request',
      requestId: 'too-big',
      request: { memoryMb: 4_000 },
      replyTo: box.ref,
    });
    expect(box.replies.map((r) => r.type)).toEqual(['resources.granted', 'resources.denied']);
    await clock.advanceBy(30_000);
    expect(emitted.filter((e) => e.type === 'resources.pressure')).toHaveLength(pressure.length); // no repeat
    await clock.advanceBy(30_000);
    expect(emitted.at(-2)).toEqual({ type: 'resources.pressureEnded', nodeId: 'host', resource: 'memory' });
    expect(actor.getSnapshot().context.stats.free.memoryMb).toBe(13_000);
    actor.stop();
    expect(clock.pendingTimers()).toBe(0);
  });

  it('lowers a GPU’s VRAM admission from nvidia-smi readings and survives a failing read', async () => {
    const clock = createVirtualClock();
    let calls = 0;
    const read = async (): Promise<Measured> => {
      calls++;
      if (calls === 2) throw new Error('nvidia-smi hung');
      return { gpus: [{ index: 1, freeVramMb: 4_000, totalVramMb: 24_000 }], warnings: [] };
    };
    const { actor, emitted } = start({ pool, monitor: { clock, read, headroom: { vramMb: 0 } } });
    await clock.advanceBy(0); // the first poll is due at once
    expect(emitted.find((e) => e.type === 'resources.pressure')).toMatchObject({
      pressure: { resource: 'vram', gpuIndex: 1, limitMb: 4_000 },
    });
    const box = inbox();
    actor.send({
      type: 'resources.request',
      requestId: 's',
      request: { gpu: 0.5, vramMb: 8_000 },
      replyTo: box.ref,
    });
    expect(box.replies[0]).toMatchObject({ allocation: { gpus: [{ index: 0 }] } });
    await clock.advanceBy(30_000);
    expect(actor.getSnapshot().status).toBe('active');
    await clock.advanceBy(30_000);
    expect(calls).toBe(3);
    actor.stop();
  });
});
