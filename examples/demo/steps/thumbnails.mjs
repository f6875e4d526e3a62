// Background work that fills a GPU share whenever nothing more urgent needs it.
import { announce, work } from './lib.mjs';

announce('rendering thumbnails of the archive');
await work(['batch 1/3', 'batch 2/3', 'batch 3/3'], 900);
