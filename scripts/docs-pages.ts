import { jobMachine } from '../src/machines/job.machine.js';
import { resourceManagerMachine } from '../src/machines/resourceManager.machine.js';
import { schedulerMachine } from '../src/machines/scheduler.machine.js';
import { renderMachineDoc, toMermaid } from '../src/machines/diagram.js';

/** A generated file, or a generated region (between two marker comments) of a hand-written one. */
export type GeneratedPage =
  { path: string; content: string } | { path: string; region: string; content: string };

const JOB_INTRO = [
  'The statechart of one job (`src/machines/job.machine.ts`). The eight job states are the leaves;',
  '`allocated` groups the two states that hold resources, and its exit action is the single place',
  'where an allocation is released, so every way out of `scheduled` and `running` releases exactly once.',
  '`done(handler)` and `error(handler)` are the outcomes of the invoked `runHandler` actor;',
  '`after(jobTimeout)` and `after(retryBackoff)` are named delays on the injected clock.',
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
