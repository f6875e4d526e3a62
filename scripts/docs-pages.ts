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
].join('\n');

const SCHEDULER_INTRO = [
  'The scheduler actor (`src/machines/scheduler.machine.ts`) holds the bounded queue and decides what',
  'starts. Scheduling is event-driven — `scheduler.enqueue`, `scheduler.released`, `scheduler.boost`,',
  '`scheduler.capacityChanged`, `scheduler.resume` — with a periodic `scheduler.tick` (an invoked RxJS',
  'interval on the injected clock) as a safety net. It asks the resource manager (its invoked child,',
  '`systemId: resourceManager`) for one job at a time by message, and on `resources.granted` tells the',
  'job actor `job.allocated` then `job.start`. In `strict` mode only the head may start; in `backfill`',
  'a later job may start while the head waits, until the head has waited `reserveAfterMs`.',
].join('\n');

const RESOURCE_INTRO = [
  'The resource-manager actor (`src/machines/resourceManager.machine.ts`) owns the ledger and talks',
  'by messages only. `resources.request` is answered to its `replyTo` with `resources.granted`,',
  '`resources.denied` (what is short, on which node) or `resources.rejected` (it can never fit);',
  '`resources.release` frees (a second release is reported as `resources.releaseIgnored`);',
  '`resources.setLimit` and `resources.measured` change what is admitted, never what is held.',
  'With a monitor configured it polls the host on the injected clock, as an invoked RxJS stream.',
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
