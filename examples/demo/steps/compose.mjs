// Stands in for composing the upscaled photos into one collage.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { announce, work, workDir } from './lib.mjs';

announce('composing the collage');
const parts = ['beach', 'city', 'forest', 'harbour'].map((p) =>
  readFileSync(join(workDir, `${p}.x4.jpg`), 'utf8'),
);
const { faces } = JSON.parse(readFileSync(join(workDir, 'faces.txt'), 'utf8'));
await work(['layout', 'blend', 'encode'], 600);
writeFileSync(join(workDir, 'collage.txt'), `${parts.join('')}(${faces} faces kept in focus)\n`);
