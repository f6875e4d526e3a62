/**
 * DESIGN.md's "one clock": every timer of the engine runs on the injected clock, and no test
 * sleeps on the wall clock. This reads the sources: a real-time call (`setTimeout`,
 * `setInterval`, `setImmediate`, `Date.now()`, `performance.now()`, `new Date()`, the timers
 * module) anywhere but the places listed here, each with its reason, fails the test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

/** Where real time is the point, by file, with the calls each may make. */
const ALLOWED: Record<string, { calls: string[]; why: string }> = {
  'src/runtime/clock.ts': {
    calls: ['setTimeout', 'setImmediate', 'Date.now'],
    why: 'the real clock itself, and the virtual clock letting promise work settle between timers',
  },
  'src/actors/measure.ts': {
    calls: ['setTimeout'],
    why: 'an unref’d guard on a systeminformation / nvidia-smi read that hangs (I/O, not scheduling)',
  },
  'src/cli/run-command.ts': {
    calls: ['Date.now', 'new Date'],
    why: 'the CLI runs real processes on the real clock, and names its log folder by the date',
  },
  'src/cli/live-view.ts': { calls: ['setTimeout', 'setInterval'], why: 'redraws the terminal view' },
  'src/cli/command-handler.ts': {
    calls: ['new Date', 'node:timers'],
    why: 'stamps a job log with the date, and gives a killed process a grace period for its pipes',
  },
  'src/store/sqlite.ts': {
    calls: ['setImmediate', 'Date.now'],
    why: 'hands written log records to its worker thread at the next turn, and bounds its waits for that thread (I/O, not scheduling)',
  },
  'src/store/sqlite-worker.ts': {
    calls: ['setTimeout'],
    why: 'the SQLite worker thread tries again, a little later, a batch the database refused (a full disk)',
  },
  'src/distributed/leader.ts': {
    calls: ['setImmediate'],
    why: 'lets the engine react to the attempt ends it was told of (a turn of the event loop, no time) before it marks them applied',
  },
  'src/cli/process-group.ts': {
    calls: ['node:timers', 'performance.now'],
    why: 'waits for a killed process group to go, on the real clock: polls, a kill grace measured in elapsed time, and a pass over /proc that yields to the event loop',
  },
};

const CALLS: Array<[string, RegExp]> = [
  // A call of the global, not a clock's method (`clock.setTimeout(…)`) nor a declaration of one.
  ['setTimeout', /(?<![.\w])setTimeout\s*\(/],
  ['setInterval', /(?<![.\w])setInterval\s*\(/],
  ['setImmediate', /(?<![.\w])setImmediate\s*\(/],
  ['Date.now', /\bDate\.now\s*\(/],
  ['performance.now', /\bperformance\.now\s*\(/],
  ['new Date', /\bnew Date\s*\(/],
  ['node:timers', /from\s+['"](node:)?timers(\/promises)?['"]/],
];

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/**
 * The real-time calls a file makes, comments left out (`// …` and `/* … *\/`), and so are the
 * declarations of a clock's own methods (`setTimeout(fn: () => void, ms: number): TimerId {`).
 */
function realTimeCalls(file: string): Set<string> {
  const code = readFileSync(join(ROOT, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1')
    .replace(/^\s*(setTimeout|setInterval|setImmediate)\s*\(.*\)\s*:\s*[\w<>|[\] ]+\s*[;{]\s*$/gm, '');
  // Shell snippets in strings (a child process's own script) are not the engine's timers.
  const withoutStrings = code.replace(/"(?:[^"\\\n]|\\.)*"/g, '""');
  return new Set(CALLS.filter(([, re]) => re.test(withoutStrings)).map(([name]) => name));
}

describe('one clock', () => {
  it('the engine (core, machines, actors, runtime) and the CLI use real time only where listed', () => {
    const found: Record<string, string[]> = {};
    for (const file of sources('src')) {
      const calls = [...realTimeCalls(file)].filter((c) => !ALLOWED[file]?.calls.includes(c));
      if (calls.length > 0) found[file] = calls;
    }
    expect(found).toEqual({});
    // The list stays honest: every allowance is still used.
    for (const [file, { calls }] of Object.entries(ALLOWED)) {
      const used = realTimeCalls(file);
      expect(
        calls.filter((c) => !used.has(c)),
        file,
      ).toEqual([]);
    }
  });

  it('no test waits on the wall clock', () => {
    // A test may yield a turn of the event loop (`setImmediate`) — that waits for no time — but
    // not sleep, poll or read the time.
    const found: Record<string, string[]> = {};
    for (const file of sources('test')) {
      const calls = [...realTimeCalls(file)].filter((c) => c !== 'setImmediate' && c !== 'new Date');
      if (calls.length > 0) found[file] = calls;
    }
    expect(found).toEqual({});
  });

  it('the scan finds a real-time call where one is', () => {
    // The detector itself: each pattern matches a call and not a clock's method of that name.
    for (const [name, re] of CALLS) {
      const call =
        name === 'node:timers'
          ? "import { setTimeout } from 'node:timers/promises'"
          : `${name === 'new Date' ? 'new Date' : name}(1)`;
      expect(re.test(call), name).toBe(true);
      if (name.startsWith('set')) expect(re.test(`clock.${name}(1)`), `clock.${name}`).toBe(false);
    }
  });
});
