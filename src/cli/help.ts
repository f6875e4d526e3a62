/** The usage text of `ai-batch` and of each of its commands. */

/** The commands of `ai-batch`. */
export const COMMANDS = [
  'run',
  'simulate',
  'resources',
  'diagram',
  'migrate',
  'agent',
  'scheduler',
  'submit',
  'status',
  'cancel',
] as const;

/** A command's name. */
export type CommandName = (typeof COMMANDS)[number];

const GENERAL = `ai-batch — run a batch of jobs on this machine's GPUs, VRAM, CPU and memory, never
over-allocating them; replay cluster traces through the same engine.

Usage:
  ai-batch run <jobs.yaml|jobs.json> [options]   run a job file of shell commands
  ai-batch simulate --trace <csv> --format philly|alibaba [options]
                                                 replay a cluster trace in virtual time
  ai-batch resources [--json]                    print this machine's detected pool
  ai-batch diagram [job|scheduler|resources]     print a statechart as Mermaid
  ai-batch migrate --db <url> [--schema <name>]  create or upgrade the PostgreSQL schema of the
                                                 distributed mode
  ai-batch scheduler --db <url> [options]        run a global scheduler (one leads, others stand by)
  ai-batch agent --db <url> [options]            run this host's agent of a global scheduler
  ai-batch submit <jobs.yaml> --db <url>         write a job file's jobs to a global scheduler
  ai-batch status [ids…] --db <url>              jobs as a global scheduler's database holds them
  ai-batch cancel <ids…> --db <url>              ask for jobs to be cancelled
  ai-batch <command> --help                      help on one command
  ai-batch --version

Exit codes: 0 every job completed; 1 a job failed or was cancelled; 2 bad usage or a bad file.`;

const RUN = `Usage: ai-batch run <jobs.yaml|jobs.json> [options]

Runs every job of the file as a process, in priority order, when its dependencies have completed
and the resources it asks for are free. Each process gets CUDA_VISIBLE_DEVICES for the GPUs it was
granted, AI_BATCH_ALLOCATION (the allocation as JSON), AI_BATCH_JOB_ID, AI_BATCH_ATTEMPT,
AI_BATCH_LOG_DIR and AI_BATCH_JOB_TOKEN (every process that carries it is ended with the job).
Lines it prints like "progress: 0.42 resizing" become progress.

Options:
  --resources <file>     the pool (YAML or JSON): { cpu, memoryMb, gpus } or { nodes: [...] };
                         default: the file's "resources", else this machine (detected)
  --json                 one JSON object per line per event, then a "run.summary" line
  --logs <dir>           where <job-id>.log files go; default ./ai-batch-logs/<timestamp>
  --max-concurrent <n>   jobs running at once (default 4)
  --drain-timeout <t>    how long the first Ctrl-C waits for running jobs (default 30s)
  --stop-timeout <t>     how long a job told to stop (timeout, Ctrl-C) keeps its resources while
                         its processes have not ended; then they go to other jobs, with a
                         warning (default: kept until the processes are gone)
  --state <file>         where the run keeps its state, to resume after a crash (default:
                         <logs>/ai-batch-state.db with --logs, else
                         ./ai-batch-logs/<job file name>-<hash of its path>.state.db);
                         "none" (or --no-state): in memory only
  --fresh                forget the state file's jobs and run every job from the start
  -h, --help             this help

Ctrl-C once: start nothing new, let running jobs finish (up to --drain-timeout), then stop.
Ctrl-C twice: stop running jobs now (each job's whole process tree). SIGTERM and SIGHUP (the
terminal closed) stop them too. Exit code 1 if any job did not complete.

Resuming: the same command again, after a crash or a run that did not complete, skips the jobs
that completed and runs the others again (an interrupted job's log says so). A completed job
whose command, env, cwd, resources or dependsOn changed in the file is refused (exit 2); jobs
added to the file run, jobs removed are forgotten. The state is deleted when every job completed.

Job file:
  resources:                       # optional pool, e.g. two 24 GB GPUs
    cpu: 16
    memoryMb: 65536
    gpus: [{ vramMb: 24576 }, { vramMb: 24576 }]
  jobs:
    - id: upscale-1                # letters, digits, . _ - (also the log file's name)
      command: [python, upscale.py, a.png]   # argv list, or a shell string
      resources: { gpu: 0.5, vramMb: 8000, cpu: 2, memoryMb: 4096 }
      priority: high               # critical | high | normal | low | background
      timeout: 10m                 # per attempt (or timeoutMs: 600000); durations need a
                                   # unit (500ms, 30s, 5m, 2h): a bare 30 is refused
      stopTimeout: 30s             # see --stop-timeout, for this job
      retries: 2                   # extra tries after the first (default 0: runs once)
      retryDelay: 5s               # fixed delay between tries (default: exponential from 1s)
      dependsOn: [download]        # runs once these completed
      dependencyPolicy: afterok    # or afterany: once they ended, whatever the outcome
      group: batch-42
      env: { MODEL: x4 }
      cwd: work                    # relative to the job file's folder (the default)`;

const SIMULATE = `Usage: ai-batch simulate --trace <csv> --format philly|alibaba [options]

Replays a cluster trace through the real scheduler in virtual time and prints the report:
makespan, utilisation per resource, wait and job completion time (mean, p50, p99, by priority).

Options:
  --trace <csv>          the trace: Philly CSV, or Alibaba v2023 pod list
  --format <name>        philly | alibaba
  --gpus <n>             the pool: nodes of 8 GPUs, n GPUs in all (Philly; default 64)
  --nodes <csv>          the pool: the Alibaba node list CSV
  --limit <n>            replay only the first n jobs of the trace
  --policy <name>        backfill (default) | strict
  --json                 print the report as JSON
  -h, --help             this help`;

const RESOURCES = `Usage: ai-batch resources [--json]

Detects this machine's CPU cores, memory and GPUs (with their VRAM) and prints them as a pool
file that "ai-batch run --resources" accepts. What detection had to guess goes to standard error.

Options:
  --json                 print { node, warnings } as JSON
  -h, --help             this help`;

const DIAGRAM = `Usage: ai-batch diagram [job|scheduler|resources]

Prints a statechart of the engine as a Mermaid stateDiagram (paste it into a Markdown file or
mermaid.live): the job lifecycle (default), the scheduler, or the resource manager.

Options:
  -h, --help             this help`;

const MIGRATE = `Usage: ai-batch migrate --db <url> [--schema <name>] [--json]

Creates or upgrades the PostgreSQL schema that the distributed mode (schedulers, agents, clients)
keeps its state in, in one transaction: concurrent runs wait for each other, and a second run
finds nothing to do. Processes never migrate a schema themselves: they refuse one that is missing
or older and say to run this. A schema of a newer version, or one that holds tables that are not
ai-batch's, is refused (exit 1) and nothing is written.

Options:
  --db <url>             postgres://user[:password]@host[:port]/database
                         (default: the DATABASE_URL environment variable)
  --schema <name>        the schema (default ai_batch): a lower-case identifier, letters,
                         digits and _, at most 63 characters, not starting with pg_
  --json                 print { schema, from, to, migrated } as JSON
  -h, --help             this help

Exit codes: 0 migrated, or nothing to do; 1 refused or the database could not be reached;
2 bad usage.`;

const DATABASE_OPTIONS = `  --db <url>             postgres://user[:password]@host[:port]/database
                         (default: the DATABASE_URL environment variable)
  --schema <name>        the schema (default ai_batch), as given to ai-batch migrate`;

const AGENT = `Usage: ai-batch agent --db <url> [--schema <name>] [--resources pool.yaml] [--id <name>]
                      [--lease 15s] [--logs <dir>] [--json]

Runs this host's agent of a global scheduler (distributed mode, on PostgreSQL): registers the
host's resources (detected, or the one node of a pool file) for command jobs, runs the commands the
scheduler assigns to it in their own process groups (logs in <dir>/<job-id>.log; the command runs
in the folder the job file gave, which must exist on this host), and reports each end. It takes no
work by itself: the scheduler places every attempt. If its heartbeats cannot reach the database
for longer than its lease, the scheduler hands its work to other hosts; the agent then stops
everything it runs, and registers again once all of it has stopped.

Ctrl-C or SIGTERM: finish what runs, then leave; a second: stop what runs, then leave; a third:
kill it and exit.

Options:
${DATABASE_OPTIONS}
  --resources <file>     a pool file of one node (default: detected)
  --id <name>            this host's id among hosts (default: the host name)
  --lease <duration>     how long its attempts stay its own without a heartbeat (default 15s)
  --logs <dir>           where job logs go (default ./ai-batch-agent-logs)
  --json                 print events as JSON lines
  --metrics-port <port>  serve Prometheus metrics at http://127.0.0.1:<port>/metrics
  -h, --help             this help

Exit codes: 0 it left after a signal; 1 it could not start (no database, a schema to migrate);
2 bad usage.`;

const SCHEDULER = `Usage: ai-batch scheduler --db <url> [--schema <name>] [--metrics-port <port>] [--json]

Runs a global scheduler of the distributed mode (on PostgreSQL). Any number may run: the one that
holds the schema's leader lock leads, the others wait as standbys and one takes over within
moments when the leader's process ends. The leader places every job on the hosts whose agents
registered (by resources and by the job types each serves), with priorities, aging, backfill,
dependencies, retries and timeouts across all of them; a host whose heartbeats stop for longer
than its lease loses its attempts (retried elsewhere by their policy) until it registers again.

Ctrl-C or SIGTERM: it stops leading and exits (running attempts go on; a standby takes over).

Options:
${DATABASE_OPTIONS}
  --metrics-port <port>  serve Prometheus metrics at http://127.0.0.1:<port>/metrics
  --json                 print events as JSON lines
  -h, --help             this help

Exit codes: 0 stopped by a signal; 1 it could not start, or lost the lead (its database connection
failed); 2 bad usage.`;

const SUBMIT = `Usage: ai-batch submit <jobs.yaml|jobs.json> --db <url> [--schema <name>] [--json]

Checks a job file (as ai-batch run does) and writes its jobs to a global scheduler's database, all
or none, in the file's order. They run on the hosts whose agents serve command jobs, when the
scheduler places them; a job's folder (cwd) must exist on the host that runs it.

Options:
${DATABASE_OPTIONS}
  --json                 print { submitted: [ids] } as JSON
  -h, --help             this help

Exit codes: 0 submitted; 1 the database refused (a job id already there, an unknown dependency,
no database); 2 bad usage or a bad file (nothing was written).`;

const STATUS = `Usage: ai-batch status [ids…] --db <url> [--schema <name>] [--json]

Prints jobs as a global scheduler's database holds them (state, attempts, last error): the ones
named, or every job in submission order (the first 1,000).

Options:
${DATABASE_OPTIONS}
  --json                 print the jobs as JSON
  -h, --help             this help

Exit codes: 0 printed; 1 a named job is unknown, or no database; 2 bad usage.`;

const CANCEL = `Usage: ai-batch cancel <ids…> --db <url> [--schema <name>] [--json]

Asks for jobs to be cancelled: one no scheduler has taken yet is cancelled at once; a running one
is stopped on its host (its resources are freed once its processes are gone).

Options:
${DATABASE_OPTIONS}
  --json                 print { cancelled: [ids], notCancelled: [ids] } as JSON
  -h, --help             this help

Exit codes: 0 every job named was asked to stop; 1 one was unknown or had ended; 2 bad usage.`;

/** The help text of a command, or the general one. */
export function helpText(command?: CommandName): string {
  switch (command) {
    case 'run':
      return RUN;
    case 'simulate':
      return SIMULATE;
    case 'resources':
      return RESOURCES;
    case 'diagram':
      return DIAGRAM;
    case 'migrate':
      return MIGRATE;
    case 'agent':
      return AGENT;
    case 'scheduler':
      return SCHEDULER;
    case 'submit':
      return SUBMIT;
    case 'status':
      return STATUS;
    case 'cancel':
      return CANCEL;
    default:
      return GENERAL;
  }
}
