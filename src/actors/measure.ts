/**
 * What is actually free on this machine right now — memory and, through nvidia-smi, VRAM — for the
 * reconciliation monitor that compares the ledger with reality. I/O lives here, decisions do not.
 */
import { execFile } from 'node:child_process';
import si from 'systeminformation';
import type { SystemInformationLike } from './host.js';

/** Free and total VRAM of one GPU, as nvidia-smi reports them. */
export type MeasuredGpu = {
  /** nvidia-smi's index: what `CUDA_VISIBLE_DEVICES` names. */
  index: number;
  freeVramMb: number;
  totalVramMb: number;
};

/** One reading of free resources. A field is absent when it could not be measured. */
export type Measured = {
  /** Memory the kernel can hand out without swapping (`MemAvailable`), in MB. */
  freeMemoryMb?: number;
  /** One entry per GPU that nvidia-smi described; absent when nvidia-smi did not run. */
  gpus?: MeasuredGpu[];
  /** What could not be read, in words; empty when everything was read. */
  warnings: string[];
};

/** Options of {@link readMeasured}. */
export type ReadMeasuredOptions = {
  /** Where memory comes from. @default the `systeminformation` package */
  si?: Pick<SystemInformationLike, 'mem'>;
  /**
   * Runs `nvidia-smi` with {@link NVIDIA_SMI_FREE_VRAM_ARGS} and resolves with its standard output.
   * @default {@link execNvidiaSmi} with those arguments
   */
  runNvidiaSmi?: () => Promise<string>;
  /** How long each reading may take before it is given up, in ms. @default 10_000 */
  timeoutMs?: number;
};

/** The arguments that make nvidia-smi print `index, free MiB, total MiB`, one GPU a line. */
export const NVIDIA_SMI_FREE_VRAM_ARGS: readonly string[] = [
  '--query-gpu=index,memory.free,memory.total',
  '--format=csv,noheader,nounits',
];

/** How long a reading of the host may take by default, in ms. */
export const DEFAULT_READ_TIMEOUT_MS = 10_000;

const MB = 1_048_576;

/**
 * Reads free memory and free VRAM. Never rejects for a failed reading: whatever could not be read
 * is left out and named in `warnings`. A machine without nvidia-smi gets no `gpus` and a quiet note.
 *
 * @example
 * const { freeMemoryMb, gpus, warnings } = await readMeasured();
 */
export async function readMeasured(options: ReadMeasuredOptions = {}): Promise<Measured> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  assertTimeout(timeoutMs, 'timeoutMs');
  const source = options.si ?? si;
  const runNvidiaSmi = options.runNvidiaSmi ?? (() => execNvidiaSmi(NVIDIA_SMI_FREE_VRAM_ARGS, timeoutMs));
  const warnings: string[] = [];
  const [memory, smi] = await Promise.allSettled([
    withTimeout(
      attempt(() => source.mem()),
      timeoutMs,
      'si.mem()',
    ),
    withTimeout(attempt(runNvidiaSmi), timeoutMs, 'nvidia-smi'),
  ]);

  let freeMemoryMb: number | undefined;
  if (memory.status === 'rejected') {
    warnings.push(`free memory unknown: ${describeError(memory.reason)}`);
  } else if (isNonNegative(memory.value.available)) {
    freeMemoryMb = Math.floor(memory.value.available / MB);
  } else {
    warnings.push(`free memory unknown: si.mem() gave available = ${String(memory.value.available)}`);
  }

  let gpus: MeasuredGpu[] | undefined;
  if (smi.status === 'fulfilled') {
    const parsed = parseNvidiaSmiCsv(smi.value);
    gpus = parsed.gpus;
    warnings.push(...parsed.warnings);
  } else if (isMissingCommand(smi.reason)) {
    warnings.push('free VRAM not measured: nvidia-smi is not installed');
  } else {
    warnings.push(`free VRAM unknown: ${describeError(smi.reason)}`);
  }

  return {
    ...(freeMemoryMb !== undefined && { freeMemoryMb }),
    ...(gpus !== undefined && { gpus }),
    warnings,
  };
}

/**
 * Parses the output of `nvidia-smi` run with {@link NVIDIA_SMI_FREE_VRAM_ARGS}. Lines that cannot be
 * read (a `[N/A]` value, a driver message, a repeated index) are skipped and named in `warnings`.
 *
 * @example
 * parseNvidiaSmiCsv('0, 24000, 24564\n'); // { gpus: [{ index: 0, freeVramMb: 24000, totalVramMb: 24564 }], warnings: [] }
 */
export function parseNvidiaSmiCsv(text: string): { gpus: MeasuredGpu[]; warnings: string[] } {
  const gpus: MeasuredGpu[] = [];
  const warnings: string[] = [];
  const seen = new Set<number>();
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    const fields = line.split(',').map((field) => field.trim());
    const [index, free, total] = fields.map(toNumber);
    const readable = fields.length === 3 && isIndex(index) && isNonNegative(free) && isNonNegative(total);
    if (!readable) {
      const what = isIndex(index) && fields.length === 3 ? `GPU ${index}` : 'a line';
      warnings.push(`nvidia-smi: skipped ${what}, unreadable: "${shorten(line.trim())}"`);
      continue;
    }
    if (seen.has(index)) {
      warnings.push(`nvidia-smi: skipped a second line for GPU ${index}`);
      continue;
    }
    seen.add(index);
    gpus.push({ index, freeVramMb: free, totalVramMb: total });
  }
  return { gpus, warnings };
}

/**
 * Runs nvidia-smi without blocking the event loop and resolves with its standard output. Rejects
 * with an error whose `cause` is the child-process error (its `code` is `ENOENT` when nvidia-smi is
 * not installed). The timeout kills the process; a second timer covers a child stuck in the driver
 * that no signal can end.
 */
export function execNvidiaSmi(
  args: readonly string[],
  timeoutMs: number = DEFAULT_READ_TIMEOUT_MS,
): Promise<string> {
  const run = new Promise<string>((resolve, reject) => {
    execFile(
      'nvidia-smi',
      args,
      { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', windowsHide: true, maxBuffer: MB },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        const output = firstLine(stdout) || firstLine(stderr);
        const reason =
          error.code === 'ENOENT'
            ? 'is not installed'
            : error.killed
              ? `was killed after ${timeoutMs} ms`
              : `failed (exit ${String(error.code ?? error.signal)})${output ? `: ${output}` : ''}`;
        reject(new Error(`nvidia-smi ${reason}`, { cause: error }));
      },
    );
  });
  return withTimeout(run, timeoutMs + 1_000, 'nvidia-smi');
}

/**
 * Settles like `work`, or rejects once `timeoutMs` have passed. The timer is unref'd so that a
 * reading still in flight never keeps the process alive.
 */
export function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Calls `read`, turning a synchronous throw into a rejection so that one path handles both. */
export function attempt<T>(read: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve) => resolve(read()));
}

/** True when `error` (or an error in its `cause` chain) says a command is not installed. */
export function isMissingCommand(error: unknown): boolean {
  for (let current = error, depth = 0; isObject(current) && depth < 5; depth += 1) {
    if (current['code'] === 'ENOENT') return true;
    current = current['cause'];
  }
  return false;
}

/** A failure in one line, for a warning. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Rejects a timeout that is not a positive finite number: a programmer mistake, so it throws. */
export function assertTimeout(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `${name} must be a positive finite number of ms, got ${String(value)} (${typeof value})`,
    );
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Plain decimals only: `Number('')` is 0, and `[N/A]` must not pass for a reading. */
function toNumber(field: string): number {
  return /^\d+(\.\d+)?$/.test(field) ? Number(field) : Number.NaN;
}

function isIndex(value: number | undefined): value is number {
  return value !== undefined && Number.isInteger(value) && value >= 0;
}

function isNonNegative(value: number | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function firstLine(text: string): string {
  return shorten(text.trim().split(/\r?\n/)[0] ?? '');
}

function shorten(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
