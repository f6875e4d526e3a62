/**
 * The package as users install it. A copy of the repository without node_modules, dist or git
 * (a clean clone) is packed with `npm pack`, whose `prepack` builds it; the tarball is unpacked
 * into a throw-away project beside its dependencies, and that project loads it by name with
 * `require()` and `import()`, runs its CLI and runs the README's quick example. The child
 * processes are bounded in time and the folders removed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};

/** What a clean clone lacks: installed, built, generated or local-only. */
const NOT_IN_A_CLONE = new Set(['node_modules', 'dist', '.git', 'coverage', 'ai-batch-logs']);

/** Runs node with `args` in `cwd`, bounded in time; its standard output. */
function node(args: readonly string[], cwd: string): string {
  return execFileSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 30_000, stdio: 'pipe' });
}

describe('the package as users install it', () => {
  let work = '';
  /** The unpacked package, as `npm install` would place it. */
  let installed = '';
  /** A user's project: the package and its dependencies in its node_modules. */
  let project = '';
  let packed: string[] = [];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ai-batch-package-'));
    const clone = join(work, 'clone');
    cpSync(ROOT, clone, {
      recursive: true,
      filter: (source) => {
        const path = relative(ROOT, source).split(/[\\/]/);
        return !NOT_IN_A_CLONE.has(path[0] ?? '') && path.join('/') !== 'test/readme-examples';
      },
    });
    symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'), 'dir');
    const out = join(work, 'out');
    mkdirSync(out);
    // `prepack` builds dist/ in the clone (~10–20 s); npm writes the scripts' output on stderr.
    const report = execFileSync('npm', ['pack', '--json', '--pack-destination', out], {
      cwd: clone,
      encoding: 'utf8',
      timeout: 150_000,
      stdio: 'pipe',
    });
    const [pack] = JSON.parse(report) as Array<{ filename: string; files: Array<{ path: string }> }>;
    if (!pack) throw new Error(`npm pack reported nothing: ${report}`);
    packed = pack.files.map((f) => f.path);
    project = join(work, 'project');
    const modules = join(project, 'node_modules');
    mkdirSync(modules, { recursive: true });
    execFileSync('tar', ['-xzf', join(out, pack.filename), '-C', modules], { timeout: 30_000 });
    installed = join(modules, manifest.name);
    cpSync(join(modules, 'package'), installed, { recursive: true });
    rmSync(join(modules, 'package'), { recursive: true });
    // Only the declared dependencies sit beside it (theirs resolve from where they really are).
    for (const dependency of Object.keys(manifest.dependencies))
      symlinkSync(join(ROOT, 'node_modules', dependency), join(modules, dependency), 'dir');
  }, 180_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('npm pack ships the built JavaScript, its types, the CLI, LICENSE and README, and no tests', () => {
    const bin = posix.normalize(Object.values(manifest.bin)[0] ?? '');
    for (const file of [
      'package.json',
      'LICENSE',
      'README.md',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      bin,
    ])
      expect(packed, `${file} is not in the package`).toContain(file);
    expect(packed.filter((f) => /^(test|bench|scripts|examples|src)\/|\.test\.|^tsconfig/.test(f))).toEqual(
      [],
    );
    expect(readFileSync(join(installed, bin), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).toContain(
      'Copyright (c) 2026 ai-batch-scheduler contributors',
    );
    const shipped = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(shipped).toMatchObject({
      license: 'MIT',
      repository: { type: 'git', url: expect.stringMatching(/^git\+https:\/\//) },
      bugs: { url: expect.stringMatching(/^https:\/\//) },
      homepage: expect.stringMatching(/^https:\/\//),
    });
  });

  it('every shipped source map works: its sources are shipped or inlined', () => {
    const maps = packed.filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const broken: string[] = [];
    for (const file of maps) {
      const map = JSON.parse(readFileSync(join(installed, file), 'utf8')) as {
        sources: string[];
        sourcesContent?: Array<string | null>;
      };
      map.sources.forEach((source, i) => {
        const shipped = existsSync(join(installed, dirname(file), source));
        if (!shipped && typeof map.sourcesContent?.[i] !== 'string') broken.push(`${file} → ${source}`);
      });
    }
    expect(broken).toEqual([]);
  });

  it('shipped code and types point to no file the package lacks (tests, benchmarks, design notes)', () => {
    const pointers =
      /\b(?:test|bench|scripts|examples|\.ci)\/[\w./-]+|\b(?:DESIGN|STYLE)\.md\b|\.\.\/shared\b|(?<![\w/])src\/[\w./-]+\.ts\b|\bdocs\/[\w.-]+\.md\b/g;
    const found: string[] = [];
    const code = packed.filter((f) => /\.(js|d\.ts)$/.test(f));
    expect(code.length).toBeGreaterThan(0);
    for (const file of code) {
      const text = readFileSync(join(installed, file), 'utf8');
      for (const match of text.matchAll(pointers)) {
        const target = match[0];
        // docs/ ships: a page that exists is a fine pointer.
        if (target.startsWith('docs/') && packed.includes(target)) continue;
        found.push(`${file}: ${target}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('require() loads it by name (Node ≥ 20.19: no top-level await anywhere in its graph) and runs a job', () => {
    // require(esm) throws ERR_REQUIRE_ASYNC_MODULE if any module it loads has top-level await,
    // and ERR_PACKAGE_PATH_NOT_EXPORTED if `exports` offers no condition for require.
    const script = `
      const lib = require(${JSON.stringify(manifest.name)});
      const scheduler = lib.createScheduler({
        resources: { cpu: 2, memoryMb: 1024 },
        handlers: { echo: async ({ payload }) => payload },
      });
      scheduler.submit({ type: 'echo', payload: 42, resources: { cpu: 1 } }).result.then(async (result) => {
        await scheduler.shutdown();
        const imported = await import(${JSON.stringify(manifest.name)});
        console.log(JSON.stringify({ result, sameModule: imported === lib, exports: Object.keys(lib).length }));
      });`;
    const out = JSON.parse(node(['-e', script], project)) as Record<string, unknown>;
    expect(out).toEqual({ result: 42, sameModule: true, exports: expect.any(Number) });
    expect(out['exports']).toBeGreaterThan(10);
  });

  it('import() loads it by name, and its CLI answers --help', () => {
    const script = `import(${JSON.stringify(manifest.name)}).then((lib) => console.log(typeof lib.createScheduler, typeof lib.simulate))`;
    expect(node(['-e', script], project).trim()).toBe('function function');
    const help = node([join(installed, Object.values(manifest.bin)[0] ?? ''), '--help'], project);
    expect(help).toMatch(/^Usage:/m);
    expect(help).toContain('ai-batch run');
  });

  it('the quick example (examples/quick-start.mjs) runs against it and hears every event of the job', () => {
    cpSync(join(ROOT, 'examples/quick-start.mjs'), join(project, 'quick-start.mjs'));
    const lines = node(['quick-start.mjs'], project).trim().split('\n');
    const result = lines.indexOf('a.png upscaled on GPU 0 (aborted: false)');
    expect(result, lines.join('\n')).toBeGreaterThan(0);
    // Subscribed before submitting: it hears the job from its submission to its end.
    expect(lines.slice(0, result)).toEqual(
      expect.arrayContaining(['job.submitted', 'job.queued', 'job.started', 'job.progress', 'job.completed']),
    );
    expect(lines.indexOf('job.submitted')).toBe(0);
    expect(lines.at(-1)).toBe('scheduler.shutdown');
  });
});

describe("the README's quick example", () => {
  /** A program without its types, blank lines or leading comments, as TypeScript prints it. */
  function program(source: string): string {
    const code = source.replace(/^(\/\/.*\n)+/, '');
    return ts
      .transpileModule(code, {
        compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
      })
      .outputText.trim();
  }

  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick example'));
  const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1] ?? '';

  it('is examples/quick-start.mjs with the types taken out', () => {
    expect(block).toContain('createScheduler(');
    const twin = readFileSync(join(ROOT, 'examples/quick-start.mjs'), 'utf8');
    expect(program(twin)).toBe(program(block));
  });

  it('subscribes to events$ before it submits (events$ does not replay what came before)', () => {
    const subscribed = block.indexOf('events$.subscribe(');
    expect(subscribed).toBeGreaterThan(0);
    expect(subscribed).toBeLessThan(block.indexOf('.submit('));
  });
});
