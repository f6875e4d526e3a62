/**
 * Extracts README.md's TypeScript examples into test/readme-examples/ (git-ignored) so that
 * `npm run typecheck` compiles them against the real API: the README cannot drift from the code.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}test/readme-examples/`;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const readme = readFileSync(`${root}README.md`, 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
blocks.forEach((block, i) => {
  const code = block.replaceAll("from 'ai-batch-scheduler'", "from '../../src/index.js'");
  const lines = code.split('\n');
  const imports = lines.filter((l) => l.startsWith('import '));
  const body = lines.filter((l) => !l.startsWith('import '));
  writeFileSync(
    `${out}example-${i + 1}.ts`,
    `// Generated from README.md by scripts/readme-examples.ts; do not edit.\n${imports.join('\n')}\nexport {};\n${body.join('\n')}`,
  );
});
console.log(`checked out ${blocks.length} README examples into test/readme-examples/`);
