/**
 * `ai-batch agent --db URL [--schema NAME] [--resources pool.yaml] [--id NAME] [--lease 15s]
 * [--logs DIR] [--json]`: this host's agent of a global scheduler (issue 17). It registers the
 * host (its detected resources, or the declared pool file's one node) for `command` jobs, runs the
 * shell commands the leader assigns to it in their own process groups (logs in DIR/<job-id>.log),
 * and reports each end. Ctrl-C (or SIGTERM): finish what runs, then leave; a second: stop what
 * runs (its process groups are ended), then leave; a third: kill them and exit at once.
 */
import nodePath from 'node:path';
import { createAgent, type AgentEvent } from '../distributed/agent.js';
import { agentMetrics } from '../metrics/agent-metrics.js';
import { serveMetrics } from '../metrics/http.js';
import { redactUrl } from '../pg/target.js';
import type { ResourcePool } from '../core/resources.js';
import { databaseUrl, type AgentArgs } from './args.js';
import { createCommandHandler } from './command-handler.js';
import { findLeftovers, endLeftovers } from './leftovers.js';
import { loadPoolFile } from './load-file.js';
import { ProcessRegistry } from './process-registry.js';
import type { Writers } from './reporter.js';
import { UsageError } from './usage-error.js';

/** One line for an agent event (or its JSON). */
export function agentEventLine(event: AgentEvent, json: boolean): string {
  if (json) return JSON.stringify(event);
  switch (event.type) {
    case 'agent.registered':
      return `registered (epoch ${event.epoch})`;
    case 'agent.heartbeat':
      return `heartbeat (epoch ${event.epoch}, ${event.live} attempt(s))`;
    case 'agent.fenced':
      return `fenced: its lease ran out (epoch ${event.epoch}); stopping ${event.stopping} attempt(s), then registering again`;
    case 'attempt.started':
      return `started ${event.jobId} (attempt ${event.attempt}, token ${event.token})`;
    case 'attempt.reported':
      return `${event.jobId}: ${event.outcome} (token ${event.token})`;
    case 'attempt.refused':
      return `${event.jobId}: report refused (${event.reason}; token ${event.token})`;
    case 'agent.error':
      return `error: ${event.message}`;
  }
}

/** Runs `ai-batch agent` until it is interrupted; returns the exit code. */
export async function agentCommand(
  args: AgentArgs,
  write: Writers,
  env: NodeJS.ProcessEnv = process.env,
  signals: Pick<NodeJS.Process, 'on' | 'off'> = process,
): Promise<number> {
  const db = databaseUrl(args.db, 'agent', env);
  let resources: ResourcePool | 'detect' = 'detect';
  if (args.resources !== undefined) {
    resources = loadPoolFile(args.resources);
    if ('nodes' in resources && resources.nodes.length !== 1)
      throw new UsageError(
        `--resources ${args.resources} must describe one node: an agent speaks for its own host`,
        'agent',
      );
  }
  const logDir = nodePath.resolve(args.logs ?? 'ai-batch-agent-logs');
  const registry = new ProcessRegistry();
  const agent = createAgent({
    db,
    schema: args.schema,
    resources,
    host: {
      ...(args.id === undefined ? {} : { id: args.id }),
      ...(args.leaseMs === undefined ? {} : { leaseMs: args.leaseMs }),
    },
    handlers: { command: createCommandHandler({ logDir, registry }) },
  });
  // Heartbeats are not printed (one every few seconds); /metrics tells their age.
  const subscription = agent.events$.subscribe((event) => {
    if (event.type !== 'agent.heartbeat') write.out(`${agentEventLine(event, args.json)}\n`);
  });
  const metrics = agentMetrics(agent);
  const server =
    args.metricsPort === undefined
      ? undefined
      : await serveMetrics(metrics.registry, { port: args.metricsPort });
  let interrupts = 0;
  let stopped: () => void = () => undefined;
  const untilStopped = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const onSignal = (): void => {
    interrupts++;
    if (interrupts === 1) {
      write.err(`ai-batch agent: finishing what runs, then leaving (again to stop it now)\n`);
      void agent.stop({ mode: 'drain' }).then(stopped);
    } else if (interrupts === 2) {
      write.err(`ai-batch agent: stopping what runs, then leaving (again to kill it and exit)\n`);
      void agent.stop({ mode: 'cancel' });
    } else {
      registry.killAll();
      process.exit(130);
    }
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    // An agent before this one (killed) may have left job processes running: they hold the
    // host's resources, so they are ended before this host offers any.
    const leftovers = findLeftovers(logDir, 'any');
    if (leftovers.length > 0) {
      const which = leftovers.map((l) => `job ${l.jobId} (pids ${l.pids.join(', ')})`).join(', ');
      write.err(`ai-batch agent: ending what the agent before left running: ${which}\n`);
      await endLeftovers(leftovers);
    }
    try {
      await agent.start();
    } catch (error) {
      write.err(`ai-batch: the agent could not start on ${redactUrl(db)}: ${(error as Error).message}\n`);
      await agent.stop({ mode: 'cancel' });
      return 1;
    }
    // Runs until a signal stops it (and it has left).
    await untilStopped;
    await registry.settled();
    return 0;
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
    subscription.unsubscribe();
    metrics.close();
    await server?.close();
    registry.killAll();
  }
}
