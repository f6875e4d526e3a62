/**
 * `ai-batch scheduler --db URL [--schema NAME] [--metrics-port N] [--json]`: a global scheduler
 * (issue 17). It waits on the schema's leader lock as a standby, leads once it holds it (any
 * number of these may run: one leads, the others take over when it goes), and prints what it does.
 * Ctrl-C or SIGTERM: it stops leading and exits 0 (running attempts go on on their hosts; a
 * standby takes over).
 */
import { createLeader, type LeaderEvent } from '../distributed/leader.js';
import { leaderMetrics } from '../metrics/leader-metrics.js';
import { serveMetrics, type MetricsServer } from '../metrics/http.js';
import { redactUrl } from '../pg/target.js';
import { databaseUrl, type SchedulerArgs } from './args.js';
import type { Writers } from './reporter.js';

/** One line for a leader event (or its JSON). */
export function leaderEventLine(event: LeaderEvent, json: boolean): string {
  if (json) return JSON.stringify(event);
  switch (event.type) {
    case 'leader.standby':
      return `standby: waiting for the leader lock (${event.name})`;
    case 'leader.elected':
      return `leading (${event.name}): ${event.jobs} job(s) recovered, ${event.hosts} host(s), ${event.stopping} attempt(s) of the leader before being stopped`;
    case 'leader.lost':
      return `no longer leading: ${event.message}`;
    case 'host.joined':
      return `host ${event.hostId} joined (epoch ${event.epoch})`;
    case 'host.lost':
      return `host ${event.hostId} lost (its lease ran out): ${event.interrupted} attempt(s) interrupted`;
    case 'host.left':
      return `host ${event.hostId} left`;
    case 'leader.error':
      return `error: ${event.message}`;
  }
}

/** Runs `ai-batch scheduler` until it is interrupted (or loses the lead); returns the exit code. */
export async function schedulerCommand(
  args: SchedulerArgs,
  write: Writers,
  env: NodeJS.ProcessEnv = process.env,
  signals: Pick<NodeJS.Process, 'on' | 'off'> = process,
): Promise<number> {
  const db = databaseUrl(args.db, 'scheduler', env);
  const leader = createLeader({ db, schema: args.schema });
  let lost = false;
  let ended: () => void = () => undefined;
  const untilEnded = new Promise<void>((resolve) => {
    ended = resolve;
  });
  const subscription = leader.events$.subscribe({
    next: (event) => {
      write.out(`${leaderEventLine(event, args.json)}\n`);
      if (event.type === 'leader.lost') lost = true;
    },
    complete: () => ended(),
  });
  const metrics = leaderMetrics(leader);
  let server: MetricsServer | undefined;
  const onSignal = (): void => {
    write.err('ai-batch scheduler: stopping (a standby takes over)\n');
    void leader.stop();
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    if (args.metricsPort !== undefined)
      server = await serveMetrics(metrics.registry, { port: args.metricsPort });
    try {
      await leader.start();
    } catch (error) {
      // Stopped by a signal while it waited as a standby.
      if (leader.state === 'stopped' && !lost) return 0;
      write.err(`ai-batch: the scheduler could not start on ${redactUrl(db)}: ${(error as Error).message}\n`);
      await leader.stop();
      return 1;
    }
    await untilEnded;
    return lost ? 1 : 0;
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
    subscription.unsubscribe();
    metrics.close();
    await server?.close();
  }
}
