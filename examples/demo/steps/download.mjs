// Stands in for fetching a batch of photos.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { announce, work, workDir } from './lib.mjs';

announce('downloading 4 photos');
const photos = ['beach', 'city', 'forest', 'harbour'];
await work(
  photos.map((photo) => `fetched ${photo}.jpg`),
  800,
);
for (const photo of photos) writeFileSync(join(workDir, `${photo}.jpg`), `a photo of a ${photo}\n`);
