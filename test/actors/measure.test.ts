import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Systeminformation } from 'systeminformation';
import {
  NVIDIA_SMI_FREE_VRAM_ARGS,
  execNvidiaSmi,
  isMissingCommand,
  parseNvidiaSmiCsv,
  readMeasured,
  withTimeout,
} from '../../src/actors/measure.js';

const MB = 1_048_576;

// `available` counts reclaimable page cache as free; `free` does not. Values from this machine.
const mem: Systeminformation.MemData = {
  total: 25276063744,
  free: 25066618880,
  used: 209444864,
  active: 265265152,
  available: 25010798592,
  buffers: 1163264,
  cached: 101617664,
  slab: 61042688,
  buffcache: 163823616,
  reclaimable: 40144896,
  swaptotal: 0,
  swapused: 0,
  swapfree: 0,
  writeback: 0,
  dirty: 94208,
};
const si = { mem: () => Promise.resolve(mem) };
const enoent = () =>
  Object.assign(new Error('spawn nvidia-smi ENOENT'), {
    errno: -2,
    code: 'ENOENT',
    syscall: 'spawn nvidia-smi',
    path: 'nvidia-smi',
  });

// nvidia-smi --query-gpu=index,memory.free,memory.total --format=csv,noheader,nounits
const oneGpu = '0, 23770, 24564\n';
const eightGpus = [
  '0, 81042, 81920',
  '1, 1250, 81920',
  '2, 81042, 81920',
  '3, 40210, 81920',
  '4, 81042, 81920',
  '5, 81042, 81920',
  '6, 0, 81920',
  '7, 81042, 81920',
  '',
].join('\n');

afterEach(() => vi.useRealTimers());

describe('parseNvidiaSmiCsv', () => {
  it('reads one GPU', () => {
    expect(parseNvidiaSmiCsv(oneGpu)).toEqual({
      gpus: [{ index: 0, freeVramMb: 23770, totalVramMb: 24564 }],
      warnings: [],
    });
  });

  it('reads eight GPUs in order', () => {
    const { gpus, warnings } = parseNvidiaSmiCsv(eightGpus);
    expect(gpus.map((gpu) => gpu.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(gpus[1]).toEqual({ index: 1, freeVramMb: 1250, totalVramMb: 81920 });
    expect(gpus[6]).toEqual({ index: 6, freeVramMb: 0, totalVramMb: 81920 });
    expect(warnings).toEqual([]);
  });

  it('tolerates CRLF, padding and blank lines', () => {
    expect(parseNvidiaSmiCsv('\r\n  0 ,  100 , 200  \r\n\r\n1,300,400\r\n').gpus).toEqual([
      { index: 0, freeVramMb: 100, totalVramMb: 200 },
      { index: 1, freeVramMb: 300, totalVramMb: 400 },
    ]);
  });

  it('skips [N/A] readings with a warning naming the GPU', () => {
    const { gpus, warnings } = parseNvidiaSmiCsv('0, 81042, 81920\n1, [N/A], [N/A]\n');
    expect(gpus).toEqual([{ index: 0, freeVramMb: 81042, totalVramMb: 81920 }]);
    expect(warnings).toEqual(['nvidia-smi: skipped GPU 1, unreadable: "1, [N/A], [N/A]"']);
  });

  it('skips garbage: driver messages, missing and extra fields, negative values, repeats', () => {
    const text = [
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
      'No devices were found',
      '0, , 81920',
      '0, 1, 2, 3',
      '-1, 5, 10',
      '2, 10, 20',
      '2, 11, 20',
    ].join('\n');
    const { gpus, warnings } = parseNvidiaSmiCsv(text);
    expect(gpus).toEqual([{ index: 2, freeVramMb: 10, totalVramMb: 20 }]);
    expect(warnings).toHaveLength(6);
    expect(warnings.at(-1)).toBe('nvidia-smi: skipped a second line for GPU 2');
  });

  it('reads nothing from nothing', () => {
    expect(parseNvidiaSmiCsv('')).toEqual({ gpus: [], warnings: [] });
  });
});

describe('readMeasured', () => {
  it('reports available (not free) memory and each GPU', async () => {
    const result = await readMeasured({ si, runNvidiaSmi: () => Promise.resolve(eightGpus) });
    expect(result.freeMemoryMb).toBe(Math.floor(mem.available / MB));
    expect(result.freeMemoryMb).toBe(23852);
    expect(result.gpus).toHaveLength(8);
    expect(result.warnings).toEqual([]);
  });

  it('leaves gpus out with a quiet note when nvidia-smi is not installed', async () => {
    const result = await readMeasured({ si, runNvidiaSmi: () => Promise.reject(enoent()) });
    expect(result).toEqual({
      freeMemoryMb: 23852,
      warnings: ['free VRAM not measured: nvidia-smi is not installed'],
    });
  });

  it('recognises ENOENT wrapped as the cause, as execNvidiaSmi reports it', () => {
    const wrapped = new Error('nvidia-smi is not installed', { cause: enoent() });
    expect(isMissingCommand(wrapped)).toBe(true);
    expect(isMissingCommand(new Error('exit 9'))).toBe(false);
  });

  it('names any other nvidia-smi failure', async () => {
    const failure = new Error('nvidia-smi failed (exit 9): NVIDIA-SMI has failed');
    const result = await readMeasured({ si, runNvidiaSmi: () => Promise.reject(failure) });
    expect(result.gpus).toBeUndefined();
    expect(result.warnings).toEqual(['free VRAM unknown: nvidia-smi failed (exit 9): NVIDIA-SMI has failed']);
  });

  it('keeps the GPUs it could read and warns about the rest', async () => {
    const result = await readMeasured({
      si,
      runNvidiaSmi: () => Promise.resolve('0, 5, 10\n1, [N/A], 10\n'),
    });
    expect(result.gpus).toEqual([{ index: 0, freeVramMb: 5, totalVramMb: 10 }]);
    expect(result.warnings).toHaveLength(1);
  });

  it('leaves memory out when si.mem() fails or answers nonsense', async () => {
    const failing = { mem: () => Promise.reject(new Error('/proc/meminfo unreadable')) };
    const nvidia = () => Promise.resolve(oneGpu);
    expect(await readMeasured({ si: failing, runNvidiaSmi: nvidia })).toEqual({
      gpus: [{ index: 0, freeVramMb: 23770, totalVramMb: 24564 }],
      warnings: ['free memory unknown: /proc/meminfo unreadable'],
    });
    const nonsense = { mem: () => Promise.resolve({ ...mem, available: -1 }) };
    expect((await readMeasured({ si: nonsense, runNvidiaSmi: nvidia })).warnings).toEqual([
      'free memory unknown: si.mem() gave available = -1',
    ]);
  });

  it('gives up on readings that never answer', async () => {
    vi.useFakeTimers();
    const never = () => new Promise<never>(() => {});
    const reading = readMeasured({ si: { mem: never }, runNvidiaSmi: never, timeoutMs: 2_000 });
    await vi.advanceTimersByTimeAsync(2_000);
    expect(await reading).toEqual({
      warnings: [
        'free memory unknown: si.mem() timed out after 2000 ms',
        'free VRAM unknown: nvidia-smi timed out after 2000 ms',
      ],
    });
  });

  it('reads this machine without rejecting', { timeout: 30_000 }, async () => {
    const result = await readMeasured();
    expect(result.freeMemoryMb).toBeGreaterThan(0);
    if (result.gpus === undefined) expect(result.warnings.length).toBeGreaterThan(0);
  });
});

describe('withTimeout', () => {
  it('does not keep the process alive while it waits', () => {
    const spy = vi.spyOn(globalThis, 'setTimeout');
    void withTimeout(new Promise(() => {}), 60_000, 'test').catch(() => {});
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    clearTimeout(timer);
    spy.mockRestore();
  });

  it('clears its timer once the work settles', async () => {
    vi.useFakeTimers();
    await expect(withTimeout(Promise.resolve(1), 1_000, 'test')).resolves.toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});

// A stand-in nvidia-smi on PATH exercises the real child-process path without a GPU.
describe.skipIf(process.platform === 'win32')('execNvidiaSmi', () => {
  function withFakeNvidiaSmi(script: string): () => void {
    const dir = mkdtempSync(join(tmpdir(), 'fake-nvidia-smi-'));
    writeFileSync(join(dir, 'nvidia-smi'), `#!/bin/sh\n${script}\n`);
    chmodSync(join(dir, 'nvidia-smi'), 0o755);
    const path = process.env['PATH'];
    process.env['PATH'] = `${dir}${delimiter}${path ?? ''}`;
    return () => {
      process.env['PATH'] = path;
      rmSync(dir, { recursive: true, force: true });
    };
  }

  it('passes the query and returns standard output', async () => {
    const restore = withFakeNvidiaSmi('echo "$1 $2"; printf "0, 23770, 24564\\n"');
    try {
      const output = await execNvidiaSmi(NVIDIA_SMI_FREE_VRAM_ARGS);
      expect(output).toBe(`${NVIDIA_SMI_FREE_VRAM_ARGS.join(' ')}\n0, 23770, 24564\n`);
    } finally {
      restore();
    }
  });

  it('reports the exit code and the first line nvidia-smi printed', async () => {
    const restore = withFakeNvidiaSmi(
      'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."; exit 9',
    );
    try {
      await expect(execNvidiaSmi(NVIDIA_SMI_FREE_VRAM_ARGS)).rejects.toThrow(
        "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate",
      );
    } finally {
      restore();
    }
  });

  it('says it is not installed when it is not on PATH', async () => {
    const path = process.env['PATH'];
    process.env['PATH'] = mkdtempSync(join(tmpdir(), 'empty-path-'));
    try {
      const failure: unknown = await execNvidiaSmi(NVIDIA_SMI_FREE_VRAM_ARGS).catch(
        (error: unknown) => error,
      );
      expect(isMissingCommand(failure)).toBe(true);
      expect(String(failure)).toContain('nvidia-smi is not installed');
    } finally {
      process.env['PATH'] = path;
    }
  });
});
