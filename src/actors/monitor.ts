/**
 * The reconciliation monitor: a stream of host measurements on the injected clock. It polls at
 * once and then every `intervalMs`; a slow reading is never overlapped by the next one, and a
 * failing reading becomes a measurement with a warning instead of ending the stream.
 */
import { catchError, defer, exhaustMap, from, of, timer, type Observable } from 'rxjs';
import type { SchedulerClock } from '../runtime/clock.js';
import type { Measured } from './measure.js';

export type MonitorOptions = {
  clock: Pick<SchedulerClock, 'backgroundScheduler'>;
  /** @default 30_000 */
  intervalMs?: number;
  /** Takes one measurement (`readMeasured` in production). */
  read: () => Promise<Measured>;
};

/** Measurements, the first at once, then one per interval. */
export function measurements(options: MonitorOptions): Observable<Measured> {
  const intervalMs = options.intervalMs ?? 30_000;
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`monitorIntervalMs must be a finite number > 0; got ${intervalMs}`);
  }
  return timer(0, intervalMs, options.clock.backgroundScheduler).pipe(
    exhaustMap(() =>
      defer(() => from(options.read())).pipe(
        catchError((error: unknown) =>
          of<Measured>({
            warnings: [`measurement failed: ${error instanceof Error ? error.message : String(error)}`],
          }),
        ),
      ),
    ),
  );
}
