/**
 * `ai-batch diagram`: a statechart of the engine as a Mermaid `stateDiagram-v2`, derived from
 * the machine's own definition (the same generator as docs/), so it cannot drift from the code.
 */
import type { AnyStateMachine } from 'xstate';
import { toMermaid } from '../machines/diagram.js';
import { jobMachine } from '../machines/job.machine.js';
import { resourceManagerMachine } from '../machines/resourceManager.machine.js';
import { schedulerMachine } from '../machines/scheduler.machine.js';
import type { DiagramArgs } from './args.js';

const MACHINES: Readonly<Record<DiagramArgs['machine'], AnyStateMachine>> = {
  job: jobMachine,
  scheduler: schedulerMachine,
  resources: resourceManagerMachine,
};

/** The Mermaid text of one machine. */
export function diagramOf(machine: DiagramArgs['machine']): string {
  return toMermaid(MACHINES[machine]);
}
