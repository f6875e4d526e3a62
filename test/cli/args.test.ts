import { describe, expect, it } from 'vitest';
import { DEFAULT_DRAIN_TIMEOUT_MS, parseCli } from '../../src/cli/args.js';
import { helpText } from '../../src/cli/help.js';
import { UsageError } from '../../src/cli/usage-error.js';

function usageError(argv: string[]): UsageError {
  try {
    parseCli(argv);
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
  throw new Error('expected a UsageError');
}

describe('parseCli', () => {
  it('parses run with its defaults and every flag', () => {
    expect(parseCli(['run', 'jobs.yaml'])).toEqual({
      command: 'run',
      file: 'jobs.yaml',
      json: false,
      drainTimeoutMs: DEFAULT_DRAIN_TIMEOUT_MS,
      fresh: false,
    });
    expect(
      parseCli([
        'run',
        '--json',
        'jobs.json',
        '--resources',
        'pool.yaml',
        '--logs',
        'out',
        '--max-concurrent',
        '2',
        '--drain-timeout',
        '5s',
      ]),
    ).toEqual({
      command: 'run',
      file: 'jobs.json',
      json: true,
      resources: 'pool.yaml',
      logs: 'out',
      maxConcurrent: 2,
      drainTimeoutMs: 5_000,
      fresh: false,
    });
    expect(parseCli(['run', 'j.yaml', '--drain-timeout', '2500ms'])).toMatchObject({ drainTimeoutMs: 2_500 });
    expect(parseCli(['run', 'j.yaml', '--state', 's.db', '--fresh'])).toMatchObject({
      state: 's.db',
      fresh: true,
    });
    expect(parseCli(['run', 'j.yaml', '--no-state'])).toMatchObject({ state: 'none', fresh: false });
    expect(parseCli(['run', 'j.yaml', '--state', 'none'])).toMatchObject({ state: 'none' });
    expect(parseCli(['run', 'j.yaml'])).not.toHaveProperty('state');
    expect(parseCli(['run', 'j.yaml', '--drain-timeout', '0s'])).toMatchObject({ drainTimeoutMs: 0 });
    expect(parseCli(['run', 'j.yaml', '--stop-timeout', '1m'])).toMatchObject({ stopTimeoutMs: 60_000 });
    // Without --stop-timeout a stopped job's resources are held until its processes are gone.
    expect('stopTimeoutMs' in parseCli(['run', 'j.yaml'])).toBe(false);
  });

  it('parses simulate, resources and diagram', () => {
    expect(
      parseCli(['simulate', '--trace', 't.csv', '--format', 'alibaba', '--nodes', 'n.csv', '--json']),
    ).toEqual({
      command: 'simulate',
      trace: 't.csv',
      format: 'alibaba',
      nodes: 'n.csv',
      policy: 'backfill',
      json: true,
    });
    expect(
      parseCli([
        'simulate',
        '--trace',
        't.csv',
        '--format',
        'philly',
        '--gpus',
        '32',
        '--limit',
        '10',
        '--policy',
        'strict',
      ]),
    ).toMatchObject({ gpus: 32, limit: 10, policy: 'strict', json: false });
    expect(parseCli(['resources'])).toEqual({ command: 'resources', json: false });
    expect(parseCli(['resources', '--json'])).toEqual({ command: 'resources', json: true });
    expect(parseCli(['diagram'])).toEqual({ command: 'diagram', machine: 'job' });
    expect(parseCli(['diagram', 'resources'])).toEqual({ command: 'diagram', machine: 'resources' });
  });

  it('answers --help for every command, and in general', () => {
    expect(parseCli([])).toEqual({ command: 'help' });
    expect(parseCli(['--help'])).toEqual({ command: 'help' });
    expect(parseCli(['help', 'run'])).toEqual({ command: 'help', topic: 'run' });
    for (const command of ['run', 'simulate', 'resources', 'diagram', 'migrate'] as const) {
      expect(parseCli([command, '--help'])).toEqual({ command: 'help', topic: command });
      expect(parseCli([command, '-h'])).toEqual({ command: 'help', topic: command });
      expect(helpText(command)).toMatch(new RegExp(`^Usage: ai-batch ${command}`));
    }
    expect(parseCli(['--version'])).toEqual({ command: 'version' });
  });

  it('refuses bad usage, naming the flag and the command', () => {
    const cases: Array<[string[], RegExp, string | undefined]> = [
      [
        ['launch'],
        /unknown command "launch" \(commands: run, simulate, resources, diagram, migrate, agent, scheduler, submit, status, cancel\)/,
        undefined,
      ],
      [['help', 'launch'], /unknown command "launch"/, undefined],
      [['run'], /missing the job file/, 'run'],
      [['run', 'a.yaml', 'b.yaml'], /unexpected argument "b\.yaml"/, 'run'],
      [['run', 'a.yaml', '--frobnicate'], /Unknown option '--frobnicate'/, 'run'],
      [
        ['run', 'a.yaml', '--max-concurrent', '0'],
        /--max-concurrent must be a whole number ≥ 1; got "0"/,
        'run',
      ],
      [['run', 'a.yaml', '--max-concurrent', '1.5'], /--max-concurrent must be a whole number/, 'run'],
      [
        ['run', 'a.yaml', '--drain-timeout', 'soon'],
        /^--drain-timeout must be a duration with a unit, such as 30s, 2m or 500ms, at most 2147483647 ms; got "soon"$/,
        'run',
      ],
      [
        // A bare number is refused: it used to mean milliseconds, without a word.
        ['run', 'a.yaml', '--drain-timeout', '30'],
        /--drain-timeout must be a duration with a unit.*; got "30" \(a bare number has no unit: write "30s" for seconds or "30ms" for milliseconds\)$/,
        'run',
      ],
      [['run', 'a.yaml', '--drain-timeout', '30d'], /--drain-timeout must be a duration/, 'run'],
      [
        ['run', 'a.yaml', '--stop-timeout', '10'],
        /^--stop-timeout must be a duration with a unit.*; got "10" \(a bare number has no unit: write "10s" for seconds or "10ms" for milliseconds\)$/,
        'run',
      ],
      [['run', 'a.yaml', '--drain-timeout', '999999h'], /at most 2147483647 ms; got "999999h"$/, 'run'],
      [['run', 'a.yaml', '--logs'], /--logs/, 'run'],
      [['run', 'a.yaml', '--state', ''], /--state must be a file path, or none/, 'run'],
      [['run', 'a.yaml', '--state', 's.db', '--no-state'], /give --state or --no-state, not both/, 'run'],
      [['run', 'a.yaml', '--no-state', '--fresh'], /--fresh starts over from a state file/, 'run'],
      [['simulate', '--format', 'philly'], /missing --trace <csv>/, 'simulate'],
      [['simulate', '--trace', 't.csv'], /--format must be philly or alibaba; got null/, 'simulate'],
      [
        ['simulate', '--trace', 't', '--format', 'slurm'],
        /--format must be philly or alibaba; got "slurm"/,
        'simulate',
      ],
      [
        ['simulate', '--trace', 't', '--format', 'philly', '--gpus', '8', '--nodes', 'n'],
        /--gpus or --nodes, not both/,
        'simulate',
      ],
      [
        ['simulate', '--trace', 't', '--format', 'philly', '--policy', 'fifo'],
        /--policy must be backfill or strict/,
        'simulate',
      ],
      [['diagram', 'queue'], /the machine must be job, scheduler or resources; got "queue"/, 'diagram'],
      [['resources', 'extra'], /unexpected argument "extra"/, 'resources'],
    ];
    for (const [argv, message, command] of cases) {
      const error = usageError(argv);
      expect(error.message, argv.join(' ')).toMatch(message);
      expect(error.command, argv.join(' ')).toBe(command);
    }
  });
});
