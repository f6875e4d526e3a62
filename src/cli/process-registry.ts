/**
 * The job processes of one CLI run, so that the CLI can wait for every process tree to be gone
 * before it exits. The engine frees a job's resources as soon as an attempt ends — including a
 * timeout or a cancel, while the process tree may still be on its way down — so the CLI, not the
 * engine, is what must not leave processes behind.
 */
import { signalGroup } from './process-group.js';

/** Tracks live process groups and the work that ends each one. */
export class ProcessRegistry {
  private readonly live = new Map<number, Promise<void>>();

  /** Tracks a process group until `ended` settles. */
  track(pgid: number, ended: Promise<unknown>): void {
    const done = ended.then(
      () => undefined,
      () => undefined,
    );
    this.live.set(pgid, done);
    void done.then(() => {
      if (this.live.get(pgid) === done) this.live.delete(pgid);
    });
  }

  /** The process groups still tracked. */
  groups(): number[] {
    return [...this.live.keys()];
  }

  /** Resolves once every tracked process group has ended (at once when none is left). */
  async settled(): Promise<void> {
    while (this.live.size > 0) await Promise.all(this.live.values());
  }

  /** SIGKILLs every tracked group: the last resort of a third Ctrl-C. */
  killAll(): void {
    for (const pgid of this.live.keys()) signalGroup(pgid, 'SIGKILL');
  }
}
