/**
 * Type tests of handlers and submissions: `npm run typecheck` compiles this file, and every
 * `@ts-expect-error` below must really be an error, or the build fails. The jobs also run, so
 * vitest checks that what type-checks works.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { createScheduler, createVirtualClock, type HandlerContext } from '../../src/index.js';

type Image = { image: string; scale: number };

describe('handler and payload types', () => {
  it('an inline handler without a type takes any payload, as unknown; a typed one only its own', async () => {
    const clock = createVirtualClock();
    const scheduler = createScheduler({
      clock,
      monitor: false,
      resources: { cpu: 2, memoryMb: 1_024 },
      handlers: {
        // Written inline, as DESIGN.md's example does: the payload is `unknown`, to be checked.
        echo: async ({ payload, attempt }) => {
          expectTypeOf(payload).toBeUnknown();
          expectTypeOf(attempt).toBeNumber();
          return payload;
        },
        upscale: async ({ payload }: HandlerContext<Image>) => `${payload.image}@${payload.scale}x`,
      },
    });
    const echoed = scheduler.submit<unknown>({ type: 'echo', payload: { image: 'a.png' } });
    const upscaled = scheduler.submit<string>({ type: 'upscale', payload: { image: 'b.png', scale: 2 } });
    scheduler.submit({ type: 'echo' });

    // Compiled, never run: each must fail to type-check.
    const never = (): void => {
      // @ts-expect-error: upscale's payload is an Image
      scheduler.submit({ type: 'upscale', payload: { image: 'c.png' } });
      // @ts-expect-error: no handler of that type
      scheduler.submit({ type: 'resize', payload: {} });
    };
    void never;

    await clock.advanceBy(0);
    await expect(echoed.result).resolves.toEqual({ image: 'a.png' });
    await expect(upscaled.result).resolves.toBe('b.png@2x');
    await scheduler.shutdown();
  });
});
