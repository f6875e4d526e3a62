/**
 * The CLI's distributed-mode commands end to end as real processes on the PostgreSQL test server
 * (issue 17): `ai-batch submit` writes a job file's jobs, `ai-batch agent` registers its declared
 * node and runs the commands the leader (played by the test through a PgLeaseStore) assigns to it,
 * `ai-batch status` and `cancel` read and ask; SIGTERM makes the agent finish and leave. Waits
 * are on output lines and process exits, never on a clock.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { parseCli } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { PgLeaseStore } from '../../src/distributed/pg-leases.js';
import { createClient, migratePostgres } from '../../src/index.js';
import { describePg } from '../helpers/pg.js';
import { endLeftovers, findLeftovers } from '../../src/cli/leftovers.js';
import { jsonEvent, processGone, runCli, startCli } from './helpers/cli-process.js';

const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-distributed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describePg('ai-batch agent, submit, status, cancel', (db) => {
  it('parses their command lines, refusing bad flags as usage errors', () => {
    expect(
      parseCli(['agent', '--db', db.url, '--id', 'box1', '--lease', '30s', '--resources', 'p.yaml']),
    ).toEqual({
      command: 'agent',
      db: db.url,
      schema: 'ai_batch',
      json: false,
      id: 'box1',
      leaseMs: 30_000,
      resources: 'p.yaml',
    });
    expect(parseCli(['scheduler', '--db', db.url, '--metrics-port', '9464'])).toEqual({
      command: 'scheduler',
      db: db.url,
      schema: 'ai_batch',
      json: false,
      metricsPort: 9464,
    });
    expect(() => parseCli(['scheduler', '--metrics-port', '70000'])).toThrow(UsageError);
    expect(parseCli(['submit', 'jobs.yaml', '--schema', 's1'])).toEqual({
      command: 'submit',
      schema: 's1',
      json: false,
      file: 'jobs.yaml',
    });
    expect(parseCli(['status', 'a', 'b', '--json'])).toEqual({
      command: 'status',
      schema: 'ai_batch',
      json: true,
      ids: ['a', 'b'],
    });
    for (const argv of [
      ['agent', '--lease', '10ms'],
      ['agent', '--schema', 'Bad'],
      ['submit'],
      ['cancel'],
      ['status', '--db', 'mysql://x/y'],
    ])
      expect(() => parseCli(argv), argv.join(' ')).toThrow(UsageError);
  });

  it('submit writes the file; the agent runs what is assigned to it; status and cancel read and ask; SIGTERM: it leaves', async () => {
    await migratePostgres(db.client, db.schema);
    const common = ['--db', db.url, '--schema', db.schema];
    writeFileSync(nodePath.join(dir, 'pool.yaml'), 'cpu: 4\nmemoryMb: 8192\ngpus:\n  - vramMb: 16000\n');
    writeFileSync(
      nodePath.join(dir, 'jobs.yaml'),
      [
        'jobs:',
        '  - id: hello',
        '    command: echo "hello from $AI_BATCH_JOB_ID on GPU $CUDA_VISIBLE_DEVICES" > hello.txt',
        '    resources: { gpu: 1, vramMb: 8000 }',
        '  - id: later',
        '    command: "true"',
        '    dependsOn: [hello]',
        '',
      ].join('\n'),
    );
    const submitted = await runCli(['submit', 'jobs.yaml', ...common, '--json'], { cwd: dir });
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    expect(JSON.parse(submitted.stdout)).toEqual({ submitted: ['hello', 'later'] });
    // The same file again: its ids are taken; nothing more is written.
    const again = await runCli(['submit', 'jobs.yaml', ...common], { cwd: dir });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');

    const agent = startCli(
      ['agent', ...common, '--id', 'box1', '--resources', 'pool.yaml', '--logs', 'logs', '--json'],
      { cwd: dir },
    );
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    try {
      const registered = JSON.parse(await agent.waitForLine(jsonEvent('agent.registered'))) as {
        epoch: number;
      };
      const leader = new PgLeaseStore({ pool, schema: db.schema });
      expect(await leader.hosts()).toMatchObject([
        { id: 'box1', state: 'alive', types: ['command'], pool: { cpu: 4, memoryMb: 8192 } },
      ]);
      const assigned = await leader.assign({
        jobId: 'hello',
        attempt: 1,
        hostId: 'box1',
        epoch: registered.epoch,
        allocation: {
          id: 'a1',
          nodeId: 'box1',
          cpu: 0,
          memoryMb: 0,
          gpus: [{ index: 0, share: 1, vramMb: 8000 }],
          custom: {},
        },
      });
      if (!assigned.ok) throw new Error(`assign refused: ${assigned.reason}`);
      await agent.waitForLine((line) => line.includes('"attempt.reported"') && line.includes('"hello"'));
      expect(readFileSync(nodePath.join(dir, 'hello.txt'), 'utf8')).toBe('hello from hello on GPU 0\n');
      expect(await leader.attempt(assigned.token)).toMatchObject({
        state: 'ended',
        outcome: { kind: 'completed', output: { exitCode: 0 } },
      });

      const status = await runCli(['status', 'hello', 'later', 'ghost', ...common, '--json'], { cwd: dir });
      expect(status.code).toBe(1);
      const read = JSON.parse(status.stdout) as {
        jobs: Array<{ id: string; state: string }>;
        unknown: string[];
      };
      expect(read.jobs.map((j) => j.id)).toEqual(['hello', 'later']);
      expect(read.unknown).toEqual(['ghost']);

      // Not taken by a scheduler yet: cancelled at once.
      const cancel = await runCli(['cancel', 'later', 'ghost', ...common, '--json'], { cwd: dir });
      expect(cancel.code).toBe(1);
      expect(JSON.parse(cancel.stdout)).toEqual({ cancelled: ['later'], notCancelled: ['ghost'] });
      const after = await runCli(['status', 'later', ...common], { cwd: dir });
      expect(after.stdout).toMatch(/^later {2}cancelled {2}attempt 0 {2}command/);

      agent.child.kill('SIGTERM');
      const exit = await agent.exited;
      expect(exit.code).toBe(0);
      expect((await leader.hosts())[0]).toMatchObject({ id: 'box1', state: 'left' });
    } finally {
      if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
      await agent.exited;
      await pool.end();
    }
  });

  it('an agent killed with SIGKILL leaves its job running; the next agent on the host ends it before it registers', async () => {
    const schema = db.newSchema();
    await migratePostgres(db.client, schema);
    const common = ['--db', db.url, '--schema', schema];
    writeFileSync(nodePath.join(dir, 'long.yaml'), 'jobs:\n  - id: long\n    command: exec sleep 600\n');
    expect((await runCli(['submit', 'long.yaml', ...common], { cwd: dir })).code).toBe(0);
    const flags = [...common, '--id', 'box2', '--resources', 'pool.yaml', '--logs', 'logs2', '--json'];
    const logDir = nodePath.join(dir, 'logs2');
    const pool = new pg.Pool({ connectionString: db.url, max: 2 });
    const first = startCli(['agent', ...flags], { cwd: dir });
    let second: ReturnType<typeof startCli> | undefined;
    try {
      const { epoch } = JSON.parse(await first.waitForLine(jsonEvent('agent.registered'))) as {
        epoch: number;
      };
      const leader = new PgLeaseStore({ pool, schema });
      const assigned = await leader.assign({
        jobId: 'long',
        attempt: 1,
        hostId: 'box2',
        epoch,
        allocation: { id: 'a1', nodeId: 'box2', cpu: 1, memoryMb: 0, gpus: [], custom: {} },
      });
      if (!assigned.ok) throw new Error(`assign refused: ${assigned.reason}`);
      await first.waitForLine(jsonEvent('attempt.started'));
      // Its process is up (a bounded loop of event-loop turns, no timer).
      let left = findLeftovers(logDir, 'any');
      for (let i = 0; i < 200_000 && left.length === 0; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        left = findLeftovers(logDir, new Set(['long']));
      }
      expect(left.map((l) => l.jobId)).toEqual(['long']);
      const pids = left.flatMap((l) => l.pids);
      first.child.kill('SIGKILL');
      await first.exited;
      expect(pids.every((pid) => !processGone(pid))).toBe(true);

      second = startCli(['agent', ...flags], { cwd: dir });
      const registered = JSON.parse(await second.waitForLine(jsonEvent('agent.registered'))) as {
        epoch: number;
      };
      expect(registered.epoch).toBeGreaterThan(epoch);
      // Ended before it registered: the host offers nothing while they run.
      expect(pids.every((pid) => processGone(pid))).toBe(true);
      // Re-registering expired the old epoch's attempt (the leader retries it by its policy).
      expect(await leader.attempt(assigned.token)).toMatchObject({
        state: 'expired',
        outcome: { kind: 'interrupted' },
      });
      second.child.kill('SIGTERM');
      expect((await second.exited).stderr).toContain('ending what the agent before left running: job long');
    } finally {
      for (const cli of [first, second]) if (cli && cli.child.exitCode === null) cli.child.kill('SIGKILL');
      await endLeftovers(findLeftovers(logDir, 'any'));
      await pool.end();
    }
  });

  it('ai-batch scheduler: one leads, a standby waits; the leader killed (SIGKILL), the standby takes over and the job runs to the end once', async () => {
    const schema = db.newSchema();
    await migratePostgres(db.client, schema);
    const common = ['--db', db.url, '--schema', schema];
    const go = nodePath.join(dir, 'go-failover');
    writeFileSync(
      nodePath.join(dir, 'failover.yaml'),
      [
        'jobs:',
        '  - id: first',
        '    command: "true"',
        '  - id: long',
        // Runs until the test creates the file (the job waits, not the test).
        `    command: while [ ! -f ${go} ]; do sleep 0.05; done`,
        '    retries: 1',
        '    dependsOn: [first]',
        '',
      ].join('\n'),
    );
    const leader = startCli(['scheduler', ...common, '--json'], { cwd: dir });
    const standby = startCli(['scheduler', ...common, '--json'], { cwd: dir });
    const agent = startCli(
      ['agent', ...common, '--id', 'box3', '--resources', 'pool.yaml', '--logs', 'logs3', '--json'],
      {
        cwd: dir,
      },
    );
    const client = await createClient({ db: db.url, schema });
    try {
      // Whichever takes the lock first leads; the other stands by.
      const [one, two] = await Promise.race([
        leader.waitForLine(jsonEvent('leader.elected')).then(() => [leader, standby] as const),
        standby.waitForLine(jsonEvent('leader.elected')).then(() => [standby, leader] as const),
      ]);
      await two.waitForLine(jsonEvent('leader.standby'));
      await agent.waitForLine(jsonEvent('agent.registered'));
      expect((await runCli(['submit', 'failover.yaml', ...common], { cwd: dir })).code).toBe(0);
      await agent.waitForLine((line) => line.includes('"attempt.started"') && line.includes('"long"'));
      one.child.kill('SIGKILL');
      await one.exited;
      const elected = JSON.parse(await two.waitForLine(jsonEvent('leader.elected'))) as { stopping: number };
      expect(elected.stopping).toBe(1);
      // The attempt that ran under the dead leader is stopped on its host, then run again.
      await agent.waitForLine(
        (line) =>
          line.includes('"attempt.started"') && line.includes('"long"') && line.includes('"attempt":2'),
      );
      writeFileSync(go, '');
      await expect((await client.handle('long'))?.result).resolves.toMatchObject({ exitCode: 0 });
      expect(await client.get('first')).toMatchObject({ state: 'completed', attempt: 1 });
      const { rows } = await db.client.query(
        `SELECT job_id, attempt, outcome->>'kind' AS kind FROM "${schema}".attempts ORDER BY token`,
      );
      expect(rows).toEqual([
        { job_id: 'first', attempt: 1, kind: 'completed' },
        { job_id: 'long', attempt: 1, kind: 'cancelled' },
        { job_id: 'long', attempt: 2, kind: 'completed' },
      ]);
      two.child.kill('SIGTERM');
      expect((await two.exited).code).toBe(0);
      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
    } finally {
      for (const cli of [leader, standby, agent]) if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
      await Promise.all([leader.exited, standby.exited, agent.exited]);
      await endLeftovers(findLeftovers(nodePath.join(dir, 'logs3'), 'any'));
      await client.close();
    }
  });

  it('an agent on a schema not migrated exits 1 saying to run ai-batch migrate', async () => {
    const result = await runCli(
      ['agent', '--db', db.url, '--schema', db.newSchema(), '--resources', 'pool.yaml'],
      {
        cwd: dir,
      },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('ai-batch migrate');
  });
});
