/**
 * Writes the generated docs from the machines themselves.
 * `npm run docs` writes them; `npm run docs -- --check` exits 1 when a committed page is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expectedFile, generatedDocs } from './docs-pages.js';

const check = process.argv.includes('--check');
const root = fileURLToPath(new URL('..', import.meta.url));
let stale = 0;
for (const page of generatedDocs()) {
  const path = `${root}${page.path}`;
  let current: string;
  try {
    current = readFileSync(path, 'utf8');
  } catch {
    current = ''; // not written yet
  }
  const wanted = expectedFile(page, current);
  if (current === wanted) continue;
  if (check) {
    console.error(`${page.path} is out of date: run npm run docs`);
    stale++;
  } else {
    writeFileSync(path, wanted);
    console.log(`wrote ${page.path}`);
  }
}
process.exitCode = stale > 0 ? 1 : 0;
