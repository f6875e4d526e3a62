#!/usr/bin/env node
/**
 * The `ai-batch` binary: parses the command line, runs one command, and exits with its code —
 * 0 when every job completed, 1 when a job failed or was cancelled, 2 for bad usage or a bad file.
 */
import { readFileSync } from 'node:fs';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCli, type CliArgs } from './args.js';
import { agentCommand } from './agent-command.js';
import { schedulerCommand } from './scheduler-command.js';
import { clientCommand } from './client-commands.js';
import { diagramOf } from './diagram-command.js';
import { helpText } from './help.js';
import { JobFileError } from './job-file-error.js';
import { migrateCommand } from './migrate-command.js';
import { lenientWriter, type Writers } from './reporter.js';
import { resourcesCommand } from './resources-command.js';
import { runCommand } from './run-command.js';
import { simulateCommand } from './simulate-command.js';
import { UsageError } from './usage-error.js';

/** Exit code of bad usage or a bad input file. */
const EXIT_USAGE = 2;

/** The package version, from the package.json above this file (in src/ or in dist/src/). */
function version(): string {
  let dir = nodePath.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(nodePath.join(dir, 'package.json'), 'utf8')) as {
        version?: string;
      };
      if (typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here; look one folder up.
    }
    const parent = nodePath.dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

async function dispatch(args: CliArgs, write: Writers): Promise<number> {
  switch (args.command) {
    case 'help':
      write.out(`${helpText(args.topic)}\n`);
      return 0;
    case 'version':
      write.out(`${version()}\n`);
      return 0;
    case 'run':
      return runCommand(args, write);
    case 'simulate':
      return simulateCommand(args, write);
    case 'resources':
      return resourcesCommand(args, write);
    case 'diagram':
      write.out(`${diagramOf(args.machine)}\n`);
      return 0;
    case 'migrate':
      return migrateCommand(args, write);
    case 'agent':
      return agentCommand(args, write);
    case 'scheduler':
      return schedulerCommand(args, write);
    case 'submit':
    case 'status':
    case 'cancel':
      return clientCommand(args, write);
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const write: Writers = { out: lenientWriter(process.stdout), err: lenientWriter(process.stderr) };
  try {
    return await dispatch(parseCli(argv), write);
  } catch (error) {
    if (error instanceof UsageError) {
      const more = error.command ? `ai-batch ${error.command} --help` : 'ai-batch --help';
      write.err(`ai-batch: ${error.message}\nSee "${more}".\n`);
      return EXIT_USAGE;
    }
    if (error instanceof JobFileError) {
      write.err(`ai-batch: ${error.message}\nNothing was run.\n`);
      return EXIT_USAGE;
    }
    write.err(`ai-batch: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

/**
 * Resolves once everything written to a stream has been handed to the OS (pipes are async on
 * macOS), or at once when the stream can take nothing more (its reader has gone).
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed || !stream.writable) return Promise.resolve();
  return new Promise((resolve) => stream.write('', () => resolve()));
}

const code = await main(process.argv.slice(2));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
// Exiting explicitly ends what nothing needs any more (e.g. a host detection still timing out).
process.exit(code);
