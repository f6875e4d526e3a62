/**
 * The distributed mode (issue 17), a first measurement: no-op jobs through one leader and four
 * agents (in this process, each with its own connections) on the PostgreSQL server of
 * AI_BATCH_BENCH_DB (default the test server), submitted by a client in batches of 1,000; the
 * time from the first submit until every job's result has settled, and the submit-to-start
 * latency of each job (its row's submission time to its attempt's creation, both on the
 * database's clock). A fresh schema per run, dropped after. BENCH_SIZES (default 1000,10000).
 * Without a server it says so and measures nothing. Not yet here: graphile-worker and pg-boss side
 * by side, failover time, lease-expiry recovery.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createAgent, createClient, createLeader, migratePostgres, type Agent } from '../src/index.js';
import { percentile, report, summarise } from './harness.js';

const url = process.env['AI_BATCH_BENCH_DB'] || 'postgres://postgres@127.0.0.1:5432/test';
const sizes = (process.env['BENCH_SIZES'] ?? '1000,10000').split(',').map(Number);
const AGENTS = 4;

async function reachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.end();
    return true;
  } catch (error) {
    console.error(`distributed bench skipped: no PostgreSQL at ${url} (${(error as Error).message})`);
    return false;
  }
}

async function run(jobs: number): Promise<{ seconds: number; startP50: number; startP99: number }> {
  const schema = `bench_${process.pid}_${jobs}_${Math.floor(Math.random() * 1e9)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await migratePostgres(admin, schema);
  const leader = createLeader({ db: url, schema, checkEveryMs: 200 });
  const agents: Agent[] = Array.from({ length: AGENTS }, (_, i) =>
    createAgent({
      db: url,
      schema,
      host: { id: `host-${i}`, leaseMs: 30_000 },
      resources: { cpu: 256, memoryMb: 1_048_576 },
      handlers: { noop: async () => null },
    }),
  );
  const client = await createClient({ db: url, schema });
  try {
    await leader.start();
    await Promise.all(agents.map((agent) => agent.start()));
    const start = performance.now();
    const handles = [];
    for (let i = 0; i < jobs; i += 1_000) {
      const batch = Array.from({ length: Math.min(1_000, jobs - i) }, (_, k) => ({
        id: `j${i + k}`,
        type: 'noop',
        resources: { cpu: 1 },
      }));
      handles.push(...(await client.submitAll(batch)));
    }
    await Promise.all(handles.map((h) => h.result));
    const seconds = (performance.now() - start) / 1_000;
    const { rows } = await admin.query<{ ms: number }>(
      `SELECT extract(epoch FROM a.created_at) * 1000 - j.submitted_at AS ms
       FROM "${schema}".attempts a JOIN "${schema}".jobs j ON j.id = a.job_id WHERE a.attempt = 1`,
    );
    const latencies = rows.map((r) => Number(r.ms));
    return { seconds, startP50: percentile(latencies, 50), startP99: percentile(latencies, 99) };
  } finally {
    await Promise.all(agents.map((agent) => agent.stop({ mode: 'cancel' })));
    await leader.stop();
    await client.close();
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await admin.end();
  }
}

if (await reachable()) {
  for (const jobs of sizes) {
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await run(jobs));
    report({
      name: 'distributed throughput (1 leader, 4 agents, PostgreSQL)',
      params: { jobs },
      unit: 'jobs/s',
      runs: results.length,
      ...summarise(results.map((r) => jobs / r.seconds)),
    });
    report({
      name: 'distributed submit-to-start p50',
      params: { jobs },
      unit: 'ms',
      runs: results.length,
      ...summarise(results.map((r) => r.startP50)),
    });
    report({
      name: 'distributed submit-to-start p99',
      params: { jobs },
      unit: 'ms',
      runs: results.length,
      ...summarise(results.map((r) => r.startP99)),
    });
  }
}
