import { jobMachine } from '../src/machines/job.machine.js';
import { resourceManagerMachine } from '../src/machines/resourceManager.machine.js';
import { schedulerMachine } from '../src/machines/scheduler.machine.js';
import { renderMachineDoc, toMermaid } from '../src/machines/diagram.js';

/** A generated file, or a generated region (between two marker comments) of a hand-written one. */
export type GeneratedPage =
  { path: string; content: string } | { path: string; region: string; content: string };

const JOB_INTRO = [
  'The statechart of one job (`src/machines/job.machine.ts`). The eight job states are the leaves,',
  'but for `running`, which has two: `working` and `stopping`. `allocated` groups the states that hold',
  'resources, and its exit action is the single place where an allocation is released, so every way',
  'out of `scheduled` and `running` releases exactly once. `done(handler)` and `error(handler)` are the',
  'outcomes of the invoked `runHandler` actor; `after(jobTimeout)`, `after(stopTimeout)` and',
  '`after(retryBackoff)` are named delays on the injected clock.',
  '',
  '## Stopping: resources are held until the work has stopped',
  '',
  'A running attempt that is told to stop — cancelled, timed out, or aborted by shutdown — does not',
  "leave `running` at once. It moves to `running.stopping`: its handler's `AbortSignal` is aborted, and",
  "the job keeps its allocation (GPUs, VRAM, CPU, memory, its concurrency slot) until the handler's",
  'promise settles, whatever it settles with. Only then does it go where it was told when it was',
  'told to stop: `cancelled`, `retrying` (a timeout with attempts left) or `failed`. A handler that',
  'honours its signal settles at once and nothing waits; one that ignores it (a CUDA kernel that',
  'cannot be interrupted, a process in its kill grace) keeps its GPU from the next job until it has',
  'really stopped. So a retry never overlaps its own earlier attempt.',
  '',
  "The state is visible: the job's snapshot says `state: 'running'` with",
  "`stopping: { reason: 'cancel' | 'timeout' | 'shutdown', outcome, since }`, `stats().stopping` counts",
  'such attempts, and `events$` tells `job.stopping` when one begins.',
  '',
  'A handler that never settles must not pin a GPU forever unseen: `stopTimeoutMs` (a scheduler',
  'option, and per job) bounds how long a stopping attempt may hold its resources. When it runs out',
  '(`after(stopTimeout)`), or when shutdown gives up waiting (`job.abandon`), the resources are',
  'force-released, the event `job.forceReleased` says so (the CLI prints a warning), and the job ends',
  '`failed` (or `cancelled`) without a retry, since the abandoned handler may still run. The default',
  'is to hold (`Infinity`): truth first.',
  '',
  'The runtime runs each job as an XState actor of this machine compiled to lean logic',
  '(`src/machines/job.logic.ts`): the structure below is read from the machine when the module',
  'loads and executed with the same guard and update functions, ~25× cheaper per job than the',
  'interpreter. Model-based and property tests replay both side by side and require identical',
  'states and contexts after every step.',
].join('\n');

const SCHEDULER_INTRO = [
  'The scheduler actor (`src/machines/scheduler.machine.ts`) decides *when* jobs may start. It is',
  '`starting` until the pool is known; then it runs the resource manager (its invoked child,',
  '`systemId: resourceManager`) and, while `active`, opens the dispatcher (`src/core/dispatcher.ts`:',
  'the queue, the slots and the choice of what starts) and emits `scheduler.round` whenever starts may',
  'have become possible — a `scheduler.tick` (an invoked RxJS interval on the injected clock, the',
  'safety net), a capacity change, a boost, a resume. Rounds also run without a message when a job',
  'queues or hands its allocation back: the runtime calls the dispatcher, which places jobs on the',
  'shared resource ledger synchronously, and tells each chosen job actor `job.allocated` then',
  '`job.start`. In `strict` mode only the head may start; in `backfill` a later job may start while',
  'the head waits, until the head has waited `reserveAfterMs`. `paused` and `closed` keep it shut.',
].join('\n');

const RESOURCE_INTRO = [
  'The resource-manager actor (`src/machines/resourceManager.machine.ts`) keeps the ledger and talks',
  'by messages. `resources.request` is answered to its `replyTo` with `resources.granted`,',
  '`resources.denied` (what is short, on which node) or `resources.rejected` (it can never fit);',
  '`resources.release` frees (a second release is reported as `resources.releaseIgnored`);',
  '`resources.setLimit` and `resources.measured` change what is admitted, never what is held.',
  'With a monitor configured it polls the host on the injected clock, as an invoked RxJS stream.',
  'The scheduler shares its ledger and places on it directly (a message round trip per start cost',
  '~20× more; see docs/performance.md), so the admission limits set here bind the scheduler at once.',
  '',
  "The pool may change while it runs (issue 17: the leader's pool is the hosts that registered).",
  '`ledger.addNode(spec)` adds a node whose capacity is free at once. `ledger.retireNode(id)` places',
  'nothing new on it and keeps what it holds held until released (a unit is held until the work on',
  'it has really stopped); its free amounts leave the free totals at once, and its capacity leaves',
  'the totals with its last release (at once when it holds nothing). Then its id may join again, as',
  'a new node. Positions stay dense (the last node takes the place of one that leaves) and the',
  'capacity index grows by doubling, so placement stays O(log nodes). The scheduler offers the same',
  'as `scheduler.addNode(spec)` and `scheduler.retireNode(id)` (events `node.added`, `node.retired`,',
  "`node.removed`; `stats().nodes`, `scheduler.nodes()`). With `unschedulable: 'wait'` a job that no",
  "node could hold is accepted and waits (`waitReason: 'noNode'`) apart from the queue, so that it",
  'holds up no one, until a node that can hold it joins; queued jobs that a retire leaves with no node',
  'that could hold them wait so in either mode — never cancelled, never placed on a retired node.',
].join('\n');

/** Every generated page and region, from the machines themselves. */
export function generatedDocs(): GeneratedPage[] {
  return [
    { path: 'docs/job-lifecycle.md', content: renderMachineDoc(jobMachine, 'Job lifecycle', JOB_INTRO) },
    {
      path: 'docs/scheduler.md',
      content: renderMachineDoc(schedulerMachine, 'Scheduler', SCHEDULER_INTRO),
    },
    {
      path: 'docs/resource-manager.md',
      content: renderMachineDoc(resourceManagerMachine, 'Resource manager', RESOURCE_INTRO),
    },
    {
      path: 'README.md',
      region: 'lifecycle',
      content: ['```mermaid', toMermaid(jobMachine), '```'].join('\n'),
    },
  ];
}

/** The whole file as it should be, given what is on disk now. */
export function expectedFile(page: GeneratedPage, current: string): string {
  if (!('region' in page)) return page.content;
  const start = `<!-- ${page.region}:start -->`;
  const end = `<!-- ${page.region}:end -->`;
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  if (from < 0 || to < from) throw new Error(`${page.path} has no ${start} … ${end} region`);
  return `${current.slice(0, from + start.length)}\n\n${page.content}\n\n${current.slice(to)}`;
}
