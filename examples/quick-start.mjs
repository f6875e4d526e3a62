// The README's quick example in plain JavaScript: `npm install ai-batch-scheduler`, then
// `node quick-start.mjs`. A test runs it against the packed package and checks that it is the
// README's example with the types taken out.
import { createScheduler, Priority, UnrecoverableError } from 'ai-batch-scheduler';

const scheduler = createScheduler({
  resources: { cpu: 16, memoryMb: 64_000, gpus: [{ vramMb: 24_576 }, { vramMb: 24_576 }] }, // or 'detect'
  maxConcurrentJobs: 4,
  handlers: {
    upscale: async ({ payload, allocation, signal, progress }) => {
      if (!payload.image.endsWith('.png')) throw new UnrecoverableError('not a PNG'); // no retries
      progress(0.5, 'halfway');
      return `${payload.image} upscaled on GPU ${allocation.gpus[0]?.index} (aborted: ${signal.aborted})`;
    },
  },
});

// events$ is live: it tells what happens from now on, so subscribe before submitting.
scheduler.events$.subscribe((event) => console.log(event.type));

const job = scheduler.submit({
  type: 'upscale',
  payload: { image: 'a.png' },
  priority: Priority.HIGH,
  resources: { gpu: 1, vramMb: 8_000, cpu: 2, memoryMb: 4_096 },
  timeoutMs: 60_000,
  retry: { attempts: 5 },
  group: 'batch-42',
});
console.log(await job.result);
await scheduler.shutdown({ mode: 'drain', timeoutMs: 10_000 });
