import type { AnyStateMachine } from 'xstate';

/**
 * Derives a transition table and a Mermaid `stateDiagram-v2` from a machine's own definition,
 * so that docs, the CLI's `diagram` command and the tests all read one source: the machine.
 */

/** One candidate transition of a leaf state, in the order the machine tries them. */
export type TransitionRow = {
  /** The leaf state's key, e.g. `running`. */
  state: string;
  /** The event type as the machine sees it, e.g. `job.cancel` or `xstate.done.actor.handler`. */
  event: string;
  /** A short label for people: `done(handler)`, `after(jobTimeout)`, or the event type. */
  label: string;
  /** The leaf state it leads to, or `null` when it does not change the state. */
  target: string | null;
  /** The guard, e.g. `canRetry`, `hasTimeout && hasAttemptsLeft`; absent when unguarded. */
  guard?: string;
  actions: string[];
  /** The state that declares it (an ancestor for inherited transitions). */
  declaredOn: string;
};

// The structural part of XState's StateNode that this module reads.
type GuardShape =
  string | { type?: string; guards?: GuardShape[]; name?: string } | ((...args: never[]) => unknown);
type TransitionShape = {
  eventType: string;
  target?: readonly NodeShape[] | undefined;
  guard?: GuardShape | undefined;
  actions: readonly unknown[];
};
type NodeShape = {
  key: string;
  id: string;
  type: string;
  parent?: NodeShape | undefined;
  initial?: { target: readonly NodeShape[] } | undefined;
  states: Record<string, NodeShape>;
  transitions: Map<string, TransitionShape[]>;
  always?: readonly TransitionShape[] | undefined;
  description?: string | undefined;
};

/** A node's transitions, eventless (`always`) ones under the label `always`. */
function transitionsOf(node: NodeShape): Array<[string, readonly TransitionShape[]]> {
  const out: Array<[string, readonly TransitionShape[]]> = [...node.transitions];
  if (node.always && node.always.length > 0) out.push(['always', node.always]);
  return out;
}

function rootOf(machine: AnyStateMachine): NodeShape {
  return machine.root as unknown as NodeShape;
}

function guardLabel(guard: GuardShape | undefined): string | undefined {
  if (guard === undefined) return undefined;
  if (typeof guard === 'string') return guard;
  const named = guard as { type?: string; guards?: GuardShape[]; name?: string };
  if (named.guards) {
    if (named.name === 'not') return named.guards.map((g) => `!${guardLabel(g)}`).join(' && ');
    const op = named.name === 'or' ? ' || ' : ' && ';
    return named.guards.map((g) => guardLabel(g)).join(op);
  }
  if (typeof named.type === 'string') {
    // Fixed params are part of the condition (`stoppingTo(cancelled)`); computed ones are not shown.
    const params = (guard as { params?: unknown }).params;
    if (typeof params === 'object' && params !== null)
      return `${named.type}(${Object.values(params).map(String).join(', ')})`;
    return named.type;
  }
  return named.name || 'inline';
}

function actionLabel(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'object' && action !== null && 'type' in action) return String(action.type);
  if (typeof action === 'function') return action.name || 'inline';
  return 'inline';
}

/** `xstate.done.actor.handler` → `done(handler)`, `xstate.after.jobTimeout.job.x` → `after(jobTimeout)`. */
export function eventLabel(eventType: string): string {
  const done = /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return `done(${done[1]})`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(eventType);
  if (error) return `error(${error[1]})`;
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after(${after[1]})`;
  return eventType;
}

/** Follows initial states down to a leaf. */
function leafOf(node: NodeShape): NodeShape {
  let current = node;
  while (current.initial && current.initial.target[0]) current = current.initial.target[0];
  return current;
}

/** Every leaf (atomic or final) state of a machine, in declaration order. */
function leaves(node: NodeShape): NodeShape[] {
  const children = Object.values(node.states);
  if (children.length === 0) return [node];
  return children.flatMap(leaves);
}

/** The leaf state keys of a machine, in declaration order. */
export function leafStates(machine: AnyStateMachine): string[] {
  return leaves(rootOf(machine)).map((n) => n.key);
}

/**
 * The machine's transition relation per leaf state: its own candidates first, then those it
 * inherits from its ancestors, each in the order XState tries them.
 */
export function transitionTable(machine: AnyStateMachine): TransitionRow[] {
  const rows: TransitionRow[] = [];
  for (const leaf of leaves(rootOf(machine))) {
    // Past an unguarded candidate (its own or an ancestor's) an event never gets: not listed.
    const settled = new Set<string>();
    for (let node: NodeShape | undefined = leaf; node; node = node.parent) {
      for (const [event, candidates] of transitionsOf(node)) {
        for (const t of candidates) {
          if (settled.has(event)) continue;
          if (t.guard === undefined) settled.add(event);
          const targetNode = t.target?.[0];
          const guard = guardLabel(t.guard);
          rows.push({
            state: leaf.key,
            event,
            label: eventLabel(event),
            target: targetNode ? leafOf(targetNode).key : null,
            ...(guard === undefined ? {} : { guard }),
            actions: t.actions.map(actionLabel),
            declaredOn: node.key,
          });
        }
      }
    }
  }
  return rows;
}

function mermaidLabel(event: string, guard: string | undefined): string {
  const text = guard ? `${eventLabel(event)} [${guard}]` : eventLabel(event);
  return text.replace(/:/g, '#58;');
}

function isWithin(node: NodeShape, ancestor: NodeShape): boolean {
  for (let n: NodeShape | undefined = node; n; n = n.parent) if (n === ancestor) return true;
  return false;
}

/** Every node below `node`, depth first. */
function descendants(node: NodeShape): NodeShape[] {
  return Object.values(node.states).flatMap((child) => [child, ...descendants(child)]);
}

/**
 * Writes a composite's body: its initial arrow, nested composites, then each transition whose
 * source and target both lie inside it (Mermaid would otherwise re-declare an outside target as
 * an inner state). Transitions that leave a composite are written at the level that holds both ends.
 */
function emitNode(node: NodeShape, indent: string, lines: string[]): void {
  const first = node.initial?.target[0];
  if (first) lines.push(`${indent}[*] --> ${first.key}`);
  for (const child of Object.values(node.states)) {
    if (Object.keys(child.states).length > 0) {
      lines.push(`${indent}state ${child.key} {`);
      emitNode(child, `${indent}  `, lines);
      lines.push(`${indent}}`);
    }
  }
  for (const source of descendants(node)) {
    for (const [event, candidates] of transitionsOf(source)) {
      for (const t of candidates) {
        // A composite's targetless transitions are listed in its note, not drawn as loops.
        if (!t.target?.[0] && Object.keys(source.states).length > 0) continue;
        const target = t.target?.[0] ?? source;
        // Place the arrow in the innermost composite that holds both ends.
        let home: NodeShape | undefined = source.parent;
        while (home && !isWithin(target, home)) home = home.parent;
        if (home !== node) continue;
        lines.push(`${indent}${source.key} --> ${target.key}: ${mermaidLabel(event, guardLabel(t.guard))}`);
      }
    }
  }
  for (const child of Object.values(node.states)) {
    if (child.type === 'final') lines.push(`${indent}${child.key} --> [*]`);
  }
  // Events a composite (or the machine) handles in every state without moving: one note.
  const everywhere = transitionsOf(node)
    .filter(([, candidates]) => candidates.every((t) => !t.target || t.target.length === 0))
    .map(([event]) => eventLabel(event));
  const last = Object.values(node.states).at(-1);
  if (everywhere.length > 0 && last) {
    lines.push(
      `${indent}note right of ${last.key}`,
      `${indent}  in every state: ${everywhere.join(', ')}`,
      `${indent}end note`,
    );
  }
}

/** A Mermaid `stateDiagram-v2` of the machine, compound states drawn as composites. */
export function toMermaid(machine: AnyStateMachine): string {
  const lines = ['stateDiagram-v2'];
  emitNode(rootOf(machine), '  ', lines);
  return lines.join('\n');
}

/** The state descriptions of every node of the machine, keyed by state key. */
export function stateDescriptions(machine: AnyStateMachine): Array<{ state: string; description: string }> {
  const out: Array<{ state: string; description: string }> = [];
  const visit = (node: NodeShape): void => {
    for (const child of Object.values(node.states)) {
      out.push({ state: child.key, description: child.description ?? '' });
      visit(child);
    }
  };
  visit(rootOf(machine));
  return out;
}

/**
 * A Markdown page for a machine: the Mermaid diagram, its states and the full transition table.
 * Generated by `npm run docs`; a test fails when the committed page differs.
 */
export function renderMachineDoc(machine: AnyStateMachine, title: string, intro: string): string {
  const table = transitionTable(machine)
    .map(
      (r) =>
        `| ${r.state} | \`${r.label}\` | ${r.target ?? '_(stays)_'} | ${r.guard ? `\`${r.guard}\`` : ''} | ${r.actions.map((a) => `\`${a}\``).join(', ')} |`,
    )
    .join('\n');
  const states = stateDescriptions(machine)
    .map((s) => `| ${s.state} | ${s.description} |`)
    .join('\n');
  return [
    `<!-- Generated by \`npm run docs\` from src/machines; do not edit by hand. -->`,
    `# ${title}`,
    '',
    intro,
    '',
    '```mermaid',
    toMermaid(machine),
    '```',
    '',
    '## States',
    '',
    '| state | meaning |',
    '| --- | --- |',
    states,
    '',
    '## Transitions',
    '',
    'Each leaf state with every event it accepts, in the order the machine tries the candidates.',
    'An event that is not listed for a state is ignored by that state. Final states accept nothing.',
    '',
    '| state | event | target | guard | actions |',
    '| --- | --- | --- | --- | --- |',
    table,
    '',
  ].join('\n');
}
