/**
 * A store that keeps its journal in memory, for tests of the engine's durability in virtual time:
 * every call is one journal entry, and `contentsAt(k)` is what a store would hold had the process
 * died after the first `k` of them (a crash cut at any journal point). `fail` makes the next
 * write throw, as a full disk would. It implements the same port as the SQLite adapter.
 *
 * `grouped`: it groups commits as the SQLite adapter does (`sync`): updates, prunes and pauses
 * wait in `unsynced` (lost to a crash) until `sync` or the next `accept`; `ops` holds only what
 * is durable, and `syncs` counts the writes.
 */
import type { JobStore, StoreContents, StoredJob, StoredStatus } from '../../src/store/store.js';

export type JournalOp =
  | { op: 'accept'; entries: Array<{ job: StoredJob; status: StoredStatus }> }
  | { op: 'update'; id: string; status: StoredStatus }
  | { op: 'prune'; ids: string[] }
  | { op: 'paused'; paused: boolean };

/** Replays journal entries into what a store holds. */
export function replay(ops: readonly JournalOp[]): StoreContents {
  const jobs = new Map<string, { job: StoredJob; status: StoredStatus }>();
  let paused = false;
  for (const entry of ops) {
    switch (entry.op) {
      case 'accept':
        for (const e of entry.entries) jobs.set(e.job.id, clone(e));
        break;
      case 'update': {
        const job = jobs.get(entry.id);
        if (!job) throw new Error(`journal: update of unknown job ${entry.id}`);
        job.status = clone(entry.status);
        break;
      }
      case 'prune':
        for (const id of entry.ids) jobs.delete(id);
        break;
      case 'paused':
        paused = entry.paused;
        break;
    }
  }
  return { jobs: [...jobs.values()].sort((a, b) => a.job.seq - b.job.seq), paused };
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export class MemoryStore implements JobStore {
  readonly ops: JournalOp[];
  /** Throws from the next write (then writes again), as a full disk would. */
  fail: Error | undefined = undefined;
  opened = false;
  closed = false;
  private heldIds: Set<string> | undefined;

  private held(): Set<string> {
    return (this.heldIds ??= new Set(replay(this.ops).jobs.map((j) => j.job.id)));
  }

  /** Written and not yet durable (grouped only). */
  unsynced: JournalOp[] = [];
  /** Writes made durable: each accept, and each sync that had something to write. */
  syncs = 0;
  sync?: () => void;

  constructor(ops: readonly JournalOp[] = [], options: { grouped?: boolean } = {}) {
    this.ops = clone([...ops]);
    if (options.grouped === true)
      this.sync = () => {
        if (this.closed) throw new Error('MemoryStore: synced after close');
        if (this.unsynced.length === 0) return;
        this.ops.push(...this.unsynced);
        this.unsynced = [];
        this.syncs++;
      };
  }

  /** What a store would hold had the process died after the first `k` journal entries. */
  contentsAt(k = this.ops.length): StoreContents {
    return replay(this.ops.slice(0, k));
  }

  /** A store opened on what this one held after `k` entries (the next process, after a crash). */
  reopenedAt(k = this.ops.length): MemoryStore {
    return new MemoryStore(this.ops.slice(0, k));
  }

  open(): StoreContents {
    if (this.opened) throw new Error('MemoryStore opened twice');
    this.opened = true;
    return replay(this.ops);
  }

  accept(entries: ReadonlyArray<{ job: StoredJob; status: StoredStatus }>): void {
    this.write({ op: 'accept', entries: clone([...entries]) });
  }

  update(id: string, status: StoredStatus): void {
    this.write({ op: 'update', id, status: clone(status) });
  }

  prune(ids: readonly string[]): void {
    this.write({ op: 'prune', ids: [...ids] });
  }

  setPaused(paused: boolean): void {
    this.write({ op: 'paused', paused });
  }

  close(): void {
    this.closed = true;
  }

  private write(op: JournalOp): void {
    if (this.closed) throw new Error('MemoryStore: written after close');
    const failure = this.fail;
    if (failure) {
      this.fail = undefined;
      throw failure;
    }
    // Checked as a real store would: an update names a job it holds.
    if (op.op === 'update' && !this.held().has(op.id))
      throw new Error(`journal: update of unknown job ${op.id}`);
    if (op.op === 'accept') for (const e of op.entries) this.held().add(e.job.id);
    if (op.op === 'prune') for (const id of op.ids) this.held().delete(id);
    if (this.sync === undefined) this.ops.push(op);
    else if (op.op !== 'accept') this.unsynced.push(op);
    else {
      // One write: what was unsynced, then the accept.
      this.ops.push(...this.unsynced, op);
      this.unsynced = [];
      this.syncs++;
    }
  }
}
