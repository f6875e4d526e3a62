import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectedFile, generatedDocs } from '../scripts/docs-pages.js';

describe('generated docs', () => {
  for (const page of generatedDocs()) {
    it(`${page.path} matches what the machines generate (run npm run docs to refresh)`, () => {
      const committed = readFileSync(new URL(`../${page.path}`, import.meta.url), 'utf8');
      expect(committed).toBe(expectedFile(page, committed));
    });
  }

  it('the lifecycle diagram draws every job state, the start and the three final arrows', () => {
    const page = generatedDocs().find((p) => p.path === 'docs/job-lifecycle.md');
    const mermaid = /```mermaid\n([\s\S]*?)```/.exec(page?.content ?? '')?.[1] ?? '';
    expect(mermaid.startsWith('stateDiagram-v2')).toBe(true);
    for (const s of [
      'pending',
      'queued',
      'scheduled',
      'running',
      'retrying',
      'completed',
      'failed',
      'cancelled',
    ]) {
      expect(mermaid).toMatch(new RegExp(`\\b${s}\\b`));
    }
    for (const s of ['completed', 'failed', 'cancelled']) expect(mermaid).toContain(`${s} --> [*]`);
    expect(mermaid).toContain('[*] --> pending');
  });

  it('a region marker that is missing is reported, not silently skipped', () => {
    const region = generatedDocs().find((p) => 'region' in p);
    expect(region).toBeDefined();
    if (region)
      expect(() => expectedFile(region, '# no markers here')).toThrow(/no <!-- lifecycle:start -->/);
  });
});
