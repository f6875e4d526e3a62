/**
 * One handler attempt's stop signal. The job machine makes one per attempt (in the invoked
 * handler's input) and aborts it when the attempt is told to stop — cancel, timeout, shutdown —
 * while the handler itself runs on until it settles: the attempt's resources are held until
 * then. The AbortSignal is made on first read: a handler that never looks at it costs none.
 */

/**
 * An attempt's abort signal, made when first read; `onAbort`, where present, is a cheaper way
 * for the engine's own handlers to hear of the abort (no AbortController).
 */
export type AttemptSignal = { readonly signal: AbortSignal; onAbort?: (listener: () => void) => void };

/** One handler run: told to stop by `abort()`; `settled` once its handler's promise settled. */
export class Attempt implements AttemptSignal {
  settled = false;
  private controller: AbortController | undefined;
  private aborted = false;
  private listeners: Array<() => void> | undefined;

  /** Whether it was told to stop. */
  get stopping(): boolean {
    return this.aborted;
  }

  onAbort(listener: () => void): void {
    if (this.aborted) listener();
    else (this.listeners ??= []).push(listener);
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
    }
    return this.controller.signal;
  }

  /** Tells the handler to stop (once; later calls change nothing). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.controller?.abort();
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
  }
}

/** Aborts `attempt` when `signal` aborts (XState's own signal of an invoked promise actor). */
export function abortWith(signal: AbortSignal, attempt: Attempt): void {
  if (signal.aborted) attempt.abort();
  else signal.addEventListener('abort', () => attempt.abort(), { once: true });
}
