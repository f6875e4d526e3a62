/**
 * The steps of the model-based runtime test: each does one thing to the scheduler, tells the
 * model what it did (before, when the runtime may react inside the call), and checks every
 * invariant once the promise work it started has settled.
 */
import type fc from 'fast-check';
import {
  PRIORITY_NAMES,
  type BoostSpec,
  type JobSnapshot,
  type JobState,
  type NodeSpec,
  type PriorityName,
  type ResourceRequest,
} from '../../../src/index.js';
import { toUnits } from '../../../src/core/pool.js';
import { canEverFit } from './oracle.js';
import { checkStep } from './checks.js';
import { ensure, FINAL, WAITING, type Behaviour, type ModelJob } from './types.js';
import { startShutdown, type World } from './world.js';

// ——— commands ———

export type Cmd = fc.AsyncCommand<World, World>;

export type SubmitPlan = {
  request: ResourceRequest;
  priority: PriorityName;
  group: string | undefined;
  deps: number[];
  policy: 'afterok' | 'afterany' | undefined;
  timeoutMs: number | undefined;
  attempts: number | undefined;
  plan: Behaviour[];
  progress: boolean;
  idKind: 'fresh' | 'generated' | 'duplicate' | 'unknownDep';
};

export class SubmitCommand implements Cmd {
  constructor(readonly p: SubmitPlan) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const p = this.p;
    const retained = [...w.retained()];
    // A duplicate id names no dependencies: depending on itself would be a cycle, reported first.
    const deps =
      retained.length === 0 || p.idKind === 'duplicate'
        ? []
        : [...new Set(p.deps.map((i) => retained[i % retained.length] as string))];
    if (p.idKind === 'unknownDep') deps.push('no-such-job');
    const id =
      p.idKind === 'duplicate' && retained.length > 0
        ? (retained[(p.deps[0] ?? 0) % retained.length] as string)
        : p.idKind === 'generated'
          ? undefined
          : w.newId();
    const before = w.scheduler.stats();
    const units = toUnits(p.request);
    let expected: string | undefined;
    if (w.closed) expected = 'SchedulerClosedError';
    else if (id !== undefined && w.retained().has(id)) expected = 'DuplicateJobError';
    else if (p.idKind === 'unknownDep') expected = 'UnknownDependencyError';
    else if (!canEverFit(w.cfg.nodes, units)) expected = 'UnschedulableError';
    // Only the jobs that wait take places (a running job that may retry takes none).
    else if (before.queue.size + 1 > w.cfg.maxQueueSize) expected = 'QueueFullError';
    w.draft = {
      base: PRIORITY_NAMES.indexOf(p.priority),
      request: p.request,
      units,
      group: p.group,
      deps,
      policy: p.policy ?? 'afterok',
      maxAttempts: p.attempts ?? w.cfg.attempts,
      timeoutMs: p.timeoutMs ?? w.cfg.defaultTimeoutMs,
      plan: p.plan,
    };
    let handle;
    try {
      handle = w.scheduler.submit({
        type: 'work',
        payload: { plan: p.plan, progress: p.progress },
        ...(id === undefined ? {} : { id }),
        priority: p.priority,
        resources: p.request,
        ...(p.group === undefined ? {} : { group: p.group }),
        ...(deps.length === 0 ? {} : { dependsOn: deps }),
        ...(p.policy === undefined ? {} : { dependencyPolicy: p.policy }),
        ...(p.timeoutMs === undefined ? {} : { timeoutMs: p.timeoutMs }),
        ...(p.attempts === undefined ? {} : { retry: { attempts: p.attempts } }),
      });
    } catch (error) {
      const name = (error as Error).name;
      ensure(
        name === expected,
        () => `submit threw ${name} (${(error as Error).message}); expected ${expected ?? 'acceptance'}`,
      );
      ensure(w.draft !== undefined, 'a refused submit emitted job.submitted');
      w.draft = undefined;
      const after = w.scheduler.stats();
      ensure(JSON.stringify(after.jobs) === JSON.stringify(before.jobs), 'a refused submit changed the jobs');
      await w.clock.flush();
      checkStep(w, this.toString());
      return;
    }
    ensure(expected === undefined, () => `submit accepted ${handle.id}; expected ${expected}`);
    ensure(w.draft === undefined, `submit accepted ${handle.id} without job.submitted`);
    const job = w.jobs.get(handle.id);
    ensure(job !== undefined && w.accepted.at(-1) === handle.id, `the handle names ${handle.id}`);
    ensure(id === undefined || handle.id === id, `submit named ${handle.id}, asked for ${id}`);
    handle.result.then(
      (value) => {
        job.result.settled++;
        job.result.ok = true;
        job.result.value = value;
      },
      (error: unknown) => {
        job.result.settled++;
        job.result.ok = false;
        job.result.value = error;
      },
    );
    await w.clock.flush();
    checkStep(w, this.toString());
  }
  toString = () => `submit(${JSON.stringify(this.p)})`;
}

export class CancelCommand implements Cmd {
  constructor(
    readonly pick: number,
    /** Which jobs to pick from: queued ones (they block others), any not ended, or any at all. */
    readonly among: 'queued' | 'live' | 'any',
  ) {}
  check = (w: Readonly<World>) => w.accepted.length > 0;
  async run(w: World): Promise<void> {
    const live = w.accepted.filter((id) => w.jobs.get(id)?.finalState === undefined);
    const queued = live.filter((id) => w.jobs.get(id)?.seen === 'queued');
    const from =
      this.among === 'queued' && queued.length > 0
        ? queued
        : this.among !== 'any' && live.length > 0
          ? live
          : w.accepted;
    const id = from[this.pick % from.length] as string;
    const job = w.jobs.get(id) as ModelJob;
    const before = w.scheduler.get(id);
    const isLive = before !== undefined && !FINAL.has(before.state);
    if (isLive) job.cancelRequested = true;
    const ok = w.scheduler.cancel(id);
    ensure(ok === isLive, `cancel(${id}) said ${ok} for a job in ${before?.state}`);
    if (isLive) {
      const after = w.scheduler.get(id);
      // Cancelled — or, running, told to stop: it ends cancelled once its handler has settled.
      const stopping = after?.state === 'running' && after.stopping?.outcome === 'cancelled';
      ensure(
        after?.state === 'cancelled' || stopping,
        `cancel(${id}) from ${before.state} left it ${after?.state}`,
      );
      ensure(
        after?.error?.kind === 'cancelled' || w.closed,
        `cancel(${id}) gave error ${after?.error?.kind}`,
      );
    }
    await w.clock.flush();
    checkStep(w, this.toString());
  }
  toString = () => `cancel(#${this.pick} of the ${this.among} jobs)`;
}

export type BoostPlan = {
  target: { group: string } | { picks: number[]; unknown: boolean };
  spec: { to: PriorityName } | { by: number };
  forMs: number;
};

export class BoostCommand implements Cmd {
  constructor(readonly p: BoostPlan) {}
  check = () => true;
  async run(w: World): Promise<void> {
    const retained = [...w.retained()];
    let ids: string[];
    let target: { group: string } | { ids: string[] };
    if ('group' in this.p.target) {
      const g = this.p.target.group;
      target = { group: g };
      ids = retained.filter((id) => w.jobs.get(id)?.group === g);
    } else {
      ids =
        retained.length === 0
          ? []
          : [...new Set(this.p.target.picks.map((i) => retained[i % retained.length] as string))];
      target = { ids: this.p.target.unknown ? [...ids, 'no-such-job'] : ids };
    }
    const states = new Map(ids.map((id) => [id, (w.scheduler.get(id) as JobSnapshot).state]));
    const spec: BoostSpec =
      'to' in this.p.spec
        ? { to: this.p.spec.to, forMs: this.p.forMs }
        : { by: this.p.spec.by, forMs: this.p.forMs };
    const expectBoosted = ids.filter((id) => WAITING.has(states.get(id) as JobState));
    const expectIgnored = ids.filter((id) => !WAITING.has(states.get(id) as JobState));
    // Boosted jobs may start inside boost(): the model raises them first.
    const until = w.clock.now() + this.p.forMs;
    const boost =
      'to' in this.p.spec
        ? { toLevel: PRIORITY_NAMES.indexOf(this.p.spec.to), until }
        : { byLevels: this.p.spec.by, until };
    for (const id of expectBoosted) (w.jobs.get(id) as ModelJob).boost = boost;
    const report = w.scheduler.boost(target, spec);
    ensure(
      report.boosted.slice().sort().join() === expectBoosted.slice().sort().join() &&
        report.ignored
          .map((i) => i.id)
          .sort()
          .join() === expectIgnored.slice().sort().join(),
      () =>
        `boost report ${JSON.stringify(report)}; expected boosted ${expectBoosted}, ignored ${expectIgnored}`,
    );
    ensure(report.until === until, 'boost.until = now + forMs');
    if (report.boosted.length > 0) w.boostTimers.push(until);
    await w.clock.flush();
    checkStep(w, this.toString());
  }
  toString = () => `boost(${JSON.stringify(this.p)})`;
}

export class PauseCommand implements Cmd {
  constructor(readonly pause: boolean) {}
  check = () => true;
  async run(w: World): Promise<void> {
    // Jobs start inside resume(): the model must know it is no longer paused by then.
    if (this.pause) w.scheduler.pause();
    if (!w.closed) w.paused = this.pause;
    if (!this.pause) w.scheduler.resume();
    await w.clock.flush();
    checkStep(w, this.toString());
  }
  toString = () => (this.pause ? 'pause()' : 'resume()');
}

/** Memory and VRAM taken by something outside the scheduler on the host node (the monitor measures it). */
export class OutsideUseCommand implements Cmd {
  constructor(
    readonly memoryFraction: number,
    readonly vramFractions: number[],
  ) {}
  check = (w: Readonly<World>) => w.cfg.monitor;
  async run(w: World): Promise<void> {
    const host = w.cfg.nodes[0] as NodeSpec;
    w.outside.memoryMb = Math.floor(host.memoryMb * this.memoryFraction);
    const gpus = Array.isArray(host.gpus) ? host.gpus : [];
    w.outside.vramMb = gpus.map((g, i) => Math.floor(g.vramMb * (this.vramFractions[i] ?? 0)));
    await w.clock.flush();
    checkStep(w, this.toString());
  }
  toString = () => `outsideUse(mem ${this.memoryFraction}, vram ${JSON.stringify(this.vramFractions)})`;
}

export class AdvanceCommand implements Cmd {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(w: World): Promise<void> {
    await w.clock.advanceBy(this.ms);
    w.epoch++;
    checkStep(w, this.toString());
  }
  toString = () => `advance(${this.ms})`;
}

export class ShutdownCommand implements Cmd {
  constructor(
    readonly mode: 'drain' | 'cancel',
    readonly timeoutMs: number,
  ) {}
  /** Mid-run, once there is something to shut down; the run always ends with one anyway. */
  check = (w: Readonly<World>) => !w.closed && w.accepted.length >= 5;
  async run(w: World): Promise<void> {
    startShutdown(w, this.mode, this.timeoutMs);
    await w.clock.flush();
    checkStep(w, this.toString());
    for (const s of w.scheduler.list())
      ensure(!WAITING.has(s.state), `after ${this} ${s.id} is still ${s.state}`);
  }
  toString = () => `shutdown(${this.mode}, ${this.timeoutMs})`;
}
