/**
 * The job processes of one CLI run, so that the CLI can wait for every process tree to be gone
 * before it exits, and kill them all as a last resort. The command handler settles only once its
 * tree is gone, so the engine does not hand a stopped job's resources on before then; this
 * registry is what keeps the CLI itself from exiting before then.
 */
import { signalTrees, type ProcessTree } from './process-group.js';

/** Tracks live process trees and the work that ends each one. */
export class ProcessRegistry {
  private readonly live = new Map<number, { tree: ProcessTree; done: Promise<void> }>();

  /** Tracks a process tree (by its group) until `ended` settles. */
  track(tree: ProcessTree | number, ended: Promise<unknown>): void {
    const entry = {
      tree: typeof tree === 'number' ? { pgid: tree } : tree,
      done: ended.then(
        () => undefined,
        () => undefined,
      ),
    };
    this.live.set(entry.tree.pgid, entry);
    void entry.done.then(() => {
      if (this.live.get(entry.tree.pgid) === entry) this.live.delete(entry.tree.pgid);
    });
  }

  /** The process groups still tracked. */
  groups(): number[] {
    return [...this.live.keys()];
  }

  /** Resolves once every tracked process tree has ended (at once when none is left). */
  async settled(): Promise<void> {
    while (this.live.size > 0) await Promise.all([...this.live.values()].map((entry) => entry.done));
  }

  /**
   * SIGKILLs every tracked tree — its group, and the processes that left it carrying its token,
   * found in one pass over `/proc` for all the trees: the last resort of a third Ctrl-C, or of a
   * run that failed.
   */
  killAll(): void {
    signalTrees(
      [...this.live.values()].map((entry) => entry.tree),
      'SIGKILL',
    );
  }
}
