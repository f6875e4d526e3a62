// Writes a short report of the batch.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { announce, say, work, workDir } from './lib.mjs';

announce('writing the report');
await work(['summarising'], 200);
const report = `# ${process.env.REPORT_TITLE ?? 'Report'}\n\n${readFileSync(join(workDir, 'collage.txt'), 'utf8')}`;
writeFileSync(join(workDir, 'report.txt'), report);
say(`report written to ${join(workDir, 'report.txt')}`);
