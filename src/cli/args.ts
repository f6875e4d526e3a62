/**
 * The command line of `ai-batch`, parsed with `node:util` `parseArgs` into one typed command.
 * Pure: bad usage throws a `UsageError` naming the flag and the command.
 */
import { parseArgs } from 'node:util';
import { bareNumberAdvice, parseDuration } from './duration.js';
import { MAX_TIMEOUT_MS } from '../core/job-spec.js';
import { COMMANDS, type CommandName } from './help.js';
import { UsageError } from './usage-error.js';
import {
  DB_URL_ALLOWED,
  DEFAULT_POSTGRES_SCHEMA,
  redactUrl,
  SCHEMA_NAME_ALLOWED,
  validateDbUrl,
  validateSchemaName,
} from '../pg/target.js';

/** `ai-batch run`. */
export type RunArgs = {
  command: 'run';
  file: string;
  resources?: string;
  json: boolean;
  logs?: string;
  maxConcurrent?: number;
  /** @default 30_000 */
  drainTimeoutMs: number;
  /**
   * How long a job told to stop (timeout, cancel, Ctrl-C) keeps its resources while its processes
   * have not ended; then they are force-released. Absent: held until the processes are gone.
   */
  stopTimeoutMs?: number;
  /**
   * The state file (`--state PATH`), `'none'` for none (`--state none`, `--no-state`); absent:
   * beside `--logs`, else one per job file under `./ai-batch-logs/`.
   */
  state?: string;
  /** `--fresh`: forget what the state file holds and run every job. */
  fresh: boolean;
};

/** `ai-batch simulate`. */
export type SimulateArgs = {
  command: 'simulate';
  trace: string;
  format: 'philly' | 'alibaba';
  gpus?: number;
  nodes?: string;
  limit?: number;
  policy: 'backfill' | 'strict';
  json: boolean;
};

/** `ai-batch resources`. */
export type ResourcesArgs = { command: 'resources'; json: boolean };

/** `ai-batch diagram`. */
export type DiagramArgs = { command: 'diagram'; machine: 'job' | 'scheduler' | 'resources' };

/** `ai-batch migrate`. */
export type MigrateArgs = {
  command: 'migrate';
  /** `--db URL`; absent: the command reads `DATABASE_URL`. */
  db?: string;
  /** @default 'ai_batch' */
  schema: string;
  json: boolean;
};

/** What every command of the distributed mode takes: the database and its schema. */
type DatabaseArgs = {
  /** `--db URL`; absent: the command reads `DATABASE_URL`. */
  db?: string;
  /** @default 'ai_batch' */
  schema: string;
  json: boolean;
};

/** `ai-batch agent`: this host's agent of a global scheduler. */
export type AgentArgs = DatabaseArgs & {
  command: 'agent';
  /** A pool file of one node; absent: detected. */
  resources?: string;
  /** The host's id; absent: the host name. */
  id?: string;
  leaseMs?: number;
  /** Where job logs go. */
  logs?: string;
  /** Serves Prometheus metrics at http://127.0.0.1:<port>/metrics. */
  metricsPort?: number;
};

/** `ai-batch scheduler`: a global scheduler (a standby until it leads). */
export type SchedulerArgs = DatabaseArgs & { command: 'scheduler'; metricsPort?: number };

/** `ai-batch submit`: a job file's jobs, written to a global scheduler's database. */
export type SubmitArgs = DatabaseArgs & { command: 'submit'; file: string };

/** `ai-batch status`: jobs as the database holds them. */
export type StatusArgs = DatabaseArgs & { command: 'status'; ids: string[] };

/** `ai-batch cancel`: asks for jobs to be cancelled. */
export type CancelArgs = DatabaseArgs & { command: 'cancel'; ids: string[] };

/** `--help` (of a command, or in general) and `--version`. */
export type InfoArgs = { command: 'help'; topic?: CommandName } | { command: 'version' };

/** Any parsed command line. */
export type CliArgs =
  | RunArgs
  | SimulateArgs
  | ResourcesArgs
  | DiagramArgs
  | MigrateArgs
  | AgentArgs
  | SchedulerArgs
  | SubmitArgs
  | StatusArgs
  | CancelArgs
  | InfoArgs;

/** The drain timeout when `--drain-timeout` is not given. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

function parse<O extends Options>(command: CommandName, args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...options, ...HELP }, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs explains well ("Unknown option '--foo'"); only its advice about `--` is noise here.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    throw new UsageError(message, command);
  }
}

function wholeNumber(
  command: CommandName,
  flag: string,
  value: string | undefined,
  min: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${flag} must be a whole number ≥ ${min}; got ${JSON.stringify(value)}`, command);
  }
  return n;
}

/** The ms of a duration flag (`30s`, `2m`, `500ms`), or undefined when absent; a bare number is refused. */
function durationFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms > MAX_TIMEOUT_MS) {
    throw new UsageError(
      `${flag} must be a duration with a unit, such as 30s, 2m or 500ms, at most ${MAX_TIMEOUT_MS} ms; ` +
        `got ${JSON.stringify(value)}${bareNumberAdvice(value)}`,
      'run',
    );
  }
  return ms;
}

function noMorePositionals(command: CommandName, positionals: string[], allowed: number): void {
  if (positionals.length > allowed) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[allowed])}`, command);
  }
}

/**
 * Parses `process.argv.slice(2)`.
 *
 * @example
 * parseCli(['run', 'jobs.yaml', '--json']); // { command: 'run', file: 'jobs.yaml', json: true, ... }
 */
export function parseCli(argv: readonly string[]): CliArgs {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic !== undefined && !COMMANDS.includes(topic as CommandName)) {
      throw new UsageError(`unknown command ${JSON.stringify(topic)}`);
    }
    return topic === undefined ? { command: 'help' } : { command: 'help', topic: topic as CommandName };
  }
  if (first === '--version' || first === '-v') return { command: 'version' };
  if (!COMMANDS.includes(first as CommandName)) {
    throw new UsageError(`unknown command ${JSON.stringify(first)} (commands: ${COMMANDS.join(', ')})`);
  }
  const command = first as CommandName;
  switch (command) {
    case 'run':
      return parseRun(rest);
    case 'simulate':
      return parseSimulate(rest);
    case 'resources': {
      const { values, positionals } = parse('resources', rest, { json: { type: 'boolean' } });
      if (values.help) return { command: 'help', topic: 'resources' };
      noMorePositionals('resources', positionals, 0);
      return { command: 'resources', json: values.json === true };
    }
    case 'diagram': {
      const { values, positionals } = parse('diagram', rest, {});
      if (values.help) return { command: 'help', topic: 'diagram' };
      noMorePositionals('diagram', positionals, 1);
      const machine = positionals[0] ?? 'job';
      if (machine !== 'job' && machine !== 'scheduler' && machine !== 'resources') {
        throw new UsageError(
          `the machine must be job, scheduler or resources; got ${JSON.stringify(machine)}`,
          'diagram',
        );
      }
      return { command: 'diagram', machine };
    }
    case 'migrate':
      return parseMigrate(rest);
    case 'agent':
      return parseAgent(rest);
    case 'scheduler': {
      const { values, positionals } = parse('scheduler', rest, {
        ...DATABASE_FLAGS,
        'metrics-port': { type: 'string' },
      });
      if (values.help) return { command: 'help', topic: 'scheduler' };
      noMorePositionals('scheduler', positionals, 0);
      const metricsPort = portFlag('scheduler', values['metrics-port']);
      return {
        command: 'scheduler',
        ...databaseArgs('scheduler', values),
        ...(metricsPort === undefined ? {} : { metricsPort }),
      };
    }
    case 'submit':
    case 'status':
    case 'cancel':
      return parseClientCommand(command, rest);
  }
}

const DATABASE_FLAGS = {
  db: { type: 'string' },
  schema: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function databaseArgs(
  command: CommandName,
  values: { db?: string | undefined; schema?: string | undefined; json?: boolean | undefined },
): DatabaseArgs {
  return {
    ...(values.db === undefined ? {} : { db: dbUrlFlag(values.db, '--db', command) }),
    schema: schemaFlag(values.schema ?? DEFAULT_POSTGRES_SCHEMA, command),
    json: values.json === true,
  };
}

function parseAgent(args: string[]): AgentArgs | InfoArgs {
  const { values, positionals } = parse('agent', args, {
    ...DATABASE_FLAGS,
    resources: { type: 'string' },
    id: { type: 'string' },
    lease: { type: 'string' },
    logs: { type: 'string' },
    'metrics-port': { type: 'string' },
  });
  if (values.help) return { command: 'help', topic: 'agent' };
  noMorePositionals('agent', positionals, 0);
  const metricsPort = portFlag('agent', values['metrics-port']);
  const leaseMs = durationFlag('--lease', values.lease);
  if (leaseMs !== undefined && (leaseMs < 100 || leaseMs > 3_600_000))
    throw new UsageError(
      `--lease must be between 100ms and 1h; got ${JSON.stringify(values.lease)}`,
      'agent',
    );
  if (values.id !== undefined && (values.id.length === 0 || values.id.length > 256))
    throw new UsageError(`--id must be 1 to 256 characters; got ${JSON.stringify(values.id)}`, 'agent');
  return {
    command: 'agent',
    ...databaseArgs('agent', values),
    ...(values.resources === undefined ? {} : { resources: values.resources }),
    ...(values.id === undefined ? {} : { id: values.id }),
    ...(leaseMs === undefined ? {} : { leaseMs }),
    ...(values.logs === undefined ? {} : { logs: values.logs }),
    ...(metricsPort === undefined ? {} : { metricsPort }),
  };
}

/** A `--metrics-port` value: a TCP port in [1, 65535]. */
function portFlag(command: CommandName, value: string | undefined): number | undefined {
  const port = wholeNumber(command, '--metrics-port', value, 1);
  if (port !== undefined && port > 65_535)
    throw new UsageError(
      `--metrics-port must be a TCP port in [1, 65535]; got ${JSON.stringify(value)}`,
      command,
    );
  return port;
}

function parseClientCommand(
  command: 'submit' | 'status' | 'cancel',
  args: string[],
): SubmitArgs | StatusArgs | CancelArgs | InfoArgs {
  const { values, positionals } = parse(command, args, DATABASE_FLAGS);
  if (values.help) return { command: 'help', topic: command };
  const database = databaseArgs(command, values);
  if (command === 'submit') {
    const file = positionals[0];
    if (file === undefined) throw new UsageError('missing the job file (jobs.yaml or jobs.json)', 'submit');
    noMorePositionals('submit', positionals, 1);
    return { command, ...database, file };
  }
  if (command === 'cancel' && positionals.length === 0)
    throw new UsageError('name the job ids to cancel', 'cancel');
  return { command, ...database, ids: positionals };
}

function parseMigrate(args: string[]): MigrateArgs | InfoArgs {
  const { values, positionals } = parse('migrate', args, {
    db: { type: 'string' },
    schema: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'migrate' };
  noMorePositionals('migrate', positionals, 0);
  return {
    command: 'migrate',
    ...(values.db === undefined ? {} : { db: dbUrlFlag(values.db) }),
    schema: schemaFlag(values.schema ?? DEFAULT_POSTGRES_SCHEMA),
    json: values.json === true,
  };
}

/** A `--schema` value, or a `UsageError` saying the form it must have. */
function schemaFlag(value: string, command: CommandName = 'migrate'): string {
  try {
    return validateSchemaName(value);
  } catch {
    throw new UsageError(`--schema must be ${SCHEMA_NAME_ALLOWED}; got ${JSON.stringify(value)}`, command);
  }
}

/**
 * The database a distributed-mode command talks to: `--db`, else `DATABASE_URL`; a `UsageError`
 * when there is neither (or `DATABASE_URL` is not a PostgreSQL URL).
 */
export function databaseUrl(db: string | undefined, command: CommandName, env: NodeJS.ProcessEnv): string {
  if (db !== undefined) return db;
  const fromEnv = env['DATABASE_URL'];
  if (fromEnv === undefined || fromEnv === '')
    throw new UsageError('missing --db <url> (or set DATABASE_URL)', command);
  return dbUrlFlag(fromEnv, 'DATABASE_URL', command);
}

/** A `--db` value (or `DATABASE_URL`'s), or a `UsageError` (its password not printed). */
export function dbUrlFlag(value: string, flag = '--db', command: CommandName = 'migrate'): string {
  try {
    return validateDbUrl(value);
  } catch {
    throw new UsageError(
      `${flag} must be ${DB_URL_ALLOWED}; got ${JSON.stringify(redactUrl(value))}`,
      command,
    );
  }
}

function parseRun(args: string[]): RunArgs | InfoArgs {
  const { values, positionals } = parse('run', args, {
    resources: { type: 'string' },
    json: { type: 'boolean' },
    logs: { type: 'string' },
    'max-concurrent': { type: 'string' },
    'drain-timeout': { type: 'string' },
    'stop-timeout': { type: 'string' },
    state: { type: 'string' },
    'no-state': { type: 'boolean' },
    fresh: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'run' };
  const file = positionals[0];
  if (file === undefined) throw new UsageError('missing the job file (jobs.yaml or jobs.json)', 'run');
  noMorePositionals('run', positionals, 1);
  const maxConcurrent = wholeNumber('run', '--max-concurrent', values['max-concurrent'], 1);
  const drainTimeoutMs = durationFlag('--drain-timeout', values['drain-timeout']) ?? DEFAULT_DRAIN_TIMEOUT_MS;
  const stopTimeoutMs = durationFlag('--stop-timeout', values['stop-timeout']);
  if (values.state === '') throw new UsageError('--state must be a file path, or none', 'run');
  if (values['no-state'] === true && values.state !== undefined && values.state !== 'none') {
    throw new UsageError('give --state or --no-state, not both', 'run');
  }
  const state = values['no-state'] === true ? 'none' : values.state;
  const fresh = values.fresh === true;
  if (fresh && state === 'none') {
    throw new UsageError('--fresh starts over from a state file; there is none with --state none', 'run');
  }
  return {
    command: 'run',
    file,
    json: values.json === true,
    drainTimeoutMs,
    fresh,
    ...(state === undefined ? {} : { state }),
    ...(values.resources === undefined ? {} : { resources: values.resources }),
    ...(values.logs === undefined ? {} : { logs: values.logs }),
    ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
    ...(stopTimeoutMs === undefined ? {} : { stopTimeoutMs }),
  };
}

function parseSimulate(args: string[]): SimulateArgs | InfoArgs {
  const { values, positionals } = parse('simulate', args, {
    trace: { type: 'string' },
    format: { type: 'string' },
    gpus: { type: 'string' },
    nodes: { type: 'string' },
    limit: { type: 'string' },
    policy: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) return { command: 'help', topic: 'simulate' };
  noMorePositionals('simulate', positionals, 0);
  if (values.trace === undefined) throw new UsageError('missing --trace <csv>', 'simulate');
  const format = values.format;
  if (format !== 'philly' && format !== 'alibaba') {
    throw new UsageError(
      `--format must be philly or alibaba; got ${JSON.stringify(format ?? null)}`,
      'simulate',
    );
  }
  if (values.gpus !== undefined && values.nodes !== undefined) {
    throw new UsageError('give --gpus or --nodes, not both', 'simulate');
  }
  const policy = values.policy ?? 'backfill';
  if (policy !== 'backfill' && policy !== 'strict') {
    throw new UsageError(`--policy must be backfill or strict; got ${JSON.stringify(policy)}`, 'simulate');
  }
  const gpus = wholeNumber('simulate', '--gpus', values.gpus, 1);
  const limit = wholeNumber('simulate', '--limit', values.limit, 1);
  return {
    command: 'simulate',
    trace: values.trace,
    format,
    policy,
    json: values.json === true,
    ...(gpus === undefined ? {} : { gpus }),
    ...(values.nodes === undefined ? {} : { nodes: values.nodes }),
    ...(limit === undefined ? {} : { limit }),
  };
}
