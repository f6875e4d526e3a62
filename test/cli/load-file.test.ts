import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import nodePath from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadJobFile, loadPoolFile } from '../../src/cli/load-file.js';

const dir = mkdtempSync(nodePath.join(tmpdir(), 'ai-batch-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = nodePath.join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('loadJobFile', () => {
  it('reads YAML and JSON job files', () => {
    const yaml = file('ok.yaml', 'jobs:\n  - id: a\n    command: [echo, hi]\n');
    expect(loadJobFile(yaml).jobs[0]).toMatchObject({ id: 'a', command: ['echo', 'hi'], cwd: dir });
    const json = file('ok.json', JSON.stringify({ jobs: [{ id: 'a', command: 'echo hi' }] }));
    expect(loadJobFile(json).jobs[0]?.command).toBe('echo hi');
  });

  it('names the file of a syntax error, a missing file, or a folder', () => {
    const yaml = file('bad.yaml', 'jobs:\n  - id: a\n    command: [echo\n');
    expect(() => loadJobFile(yaml)).toThrow(new RegExp(`^${yaml}: not valid YAML: .*line`));
    const dup = file('dup.yaml', 'jobs: []\njobs: []\n');
    expect(() => loadJobFile(dup)).toThrow(/not valid YAML: Map keys must be unique/);
    const json = file('bad.json', '{ "jobs": [ }');
    expect(() => loadJobFile(json)).toThrow(new RegExp(`^${json}: not valid JSON: `));
    expect(() => loadJobFile(nodePath.join(dir, 'none.yaml'))).toThrow(
      /none\.yaml: cannot read: no such file$/,
    );
    expect(() => loadJobFile(dir)).toThrow(/cannot read: is a folder$/);
  });

  it('refuses a job whose cwd is not an existing folder', () => {
    mkdirSync(nodePath.join(dir, 'work'), { recursive: true });
    const good = file('cwd.yaml', 'jobs:\n  - id: a\n    command: pwd\n    cwd: work\n');
    expect(loadJobFile(good).jobs[0]?.cwd).toBe(nodePath.join(dir, 'work'));
    const bad = file(
      'nocwd.yaml',
      'jobs:\n  - id: a\n    command: pwd\n  - id: b\n    command: pwd\n    cwd: nowhere\n',
    );
    expect(() => loadJobFile(bad)).toThrow(
      `${bad}: job "b" (jobs[1]): cwd ${JSON.stringify(nodePath.join(dir, 'nowhere'))} is not an existing folder`,
    );
  });
});

describe('loadPoolFile', () => {
  it('reads a pool and names the field of a bad one', () => {
    const good = file('pool.yaml', 'cpu: 8\nmemoryMb: 16000\ngpus: [{ vramMb: 24000 }]\n');
    expect(loadPoolFile(good)).toEqual({ cpu: 8, memoryMb: 16_000, gpus: [{ vramMb: 24_000 }] });
    const bad = file('badpool.json', JSON.stringify({ nodes: [{ cpu: 8, memoryMb: 1, gpus: -1 }] }));
    // The allowed range is the engine's (normalisePool); the CLI's part is the file and the field.
    expect(() => loadPoolFile(bad)).toThrow(new RegExp(`^${bad}: nodes\\[0\\]\\.gpus must be .+; got -1$`));
  });
});
