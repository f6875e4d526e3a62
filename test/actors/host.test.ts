import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Systeminformation } from 'systeminformation';
import {
  applyOverrides,
  detectHost,
  resetHostDetectionCache,
  type OsLike,
  type SystemInformationLike,
} from '../../src/actors/host.js';

// Fixtures carry systeminformation's own types, so they keep the shape the real package returns.
type Cpu = Systeminformation.CpuData;
type Mem = Systeminformation.MemData;
type Controller = Systeminformation.GraphicsControllerData;
type Graphics = Systeminformation.GraphicsData;

const cpuOf = (over: Partial<Cpu>): Cpu => ({
  manufacturer: 'AMD',
  brand: 'EPYC 7742 64-Core Processor',
  vendor: 'AuthenticAMD',
  family: '23',
  model: '49',
  stepping: '0',
  revision: '',
  voltage: '',
  speed: 2.25,
  speedMin: 1.5,
  speedMax: 3.4,
  governor: 'performance',
  cores: 256,
  physicalCores: 128,
  performanceCores: 256,
  efficiencyCores: 0,
  processors: 2,
  socket: '',
  flags: 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr',
  virtualization: true,
  cache: { l1d: 4194304, l1i: 4194304, l2: 67108864, l3: 536870912 },
  ...over,
});

const memOf = (total: number): Mem => ({
  total,
  free: Math.floor(total * 0.6),
  used: Math.floor(total * 0.4),
  active: Math.floor(total * 0.3),
  available: Math.floor(total * 0.7),
  buffcache: Math.floor(total * 0.1),
  buffers: 1163264,
  cached: Math.floor(total * 0.09),
  slab: 61042688,
  reclaimable: 40144896,
  swaptotal: 0,
  swapused: 0,
  swapfree: 0,
  writeback: 0,
  dirty: 94208,
});

const display: Systeminformation.GraphicsDisplayData = {
  vendor: '',
  vendorId: null,
  model: 'DELL U2720Q',
  productionYear: null,
  serial: null,
  deviceName: null,
  displayId: null,
  main: true,
  builtin: false,
  connection: 'DP-1',
  sizeX: null,
  sizeY: null,
  pixelDepth: 24,
  resolutionX: 3840,
  resolutionY: 2160,
  currentResX: 3840,
  currentResY: 2160,
  positionX: 0,
  positionY: 0,
  currentRefreshRate: 60,
};

// A BMC's video chip sits on the PCI bus of every GPU server; it is no place for jobs.
const aspeed: Controller = {
  vendor: 'ASPEED Technology, Inc.',
  model: 'ASPEED Graphics Family',
  bus: 'Onboard',
  busAddress: '03:00.0',
  vram: 64,
  vramDynamic: false,
  pciID: '',
};

// lspci -vvv merged with nvidia-smi, as systeminformation does on Linux (no `index` field).
const a100 = (position: number): Controller => ({
  vendor: 'NVIDIA Corporation',
  subVendor: 'NVIDIA Corporation',
  model: 'GA100 [A100 SXM4 80GB]',
  bus: 'Onboard',
  busAddress: `${(0x07 + position * 0x10).toString(16).padStart(2, '0')}:00.0`,
  vram: 81920,
  vramDynamic: false,
  pciID: '',
  driverVersion: '535.129.03',
  subDeviceId: '0x147E10DE',
  name: 'NVIDIA A100-SXM4-80GB',
  pciBus: `00000000:${(0x07 + position * 0x10).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
  memoryTotal: 81920,
  memoryUsed: 1,
  memoryFree: 81042,
  temperatureGpu: 31,
  powerDraw: 61.5,
  powerLimit: 400,
  clockCore: 210,
  clockMemory: 1593,
});

const workstation: Graphics = {
  controllers: [
    {
      vendor: 'Intel Corporation',
      subVendor: 'ASUSTeK Computer Inc.',
      model: 'Raptor Lake-S GT1 [UHD Graphics 770]',
      bus: 'Onboard',
      busAddress: '00:02.0',
      vram: 256,
      vramDynamic: false,
      pciID: '',
    },
    {
      vendor: 'NVIDIA Corporation',
      subVendor: 'ASUSTeK Computer Inc.',
      model: 'AD102 [GeForce RTX 4090]',
      bus: 'Onboard',
      busAddress: '01:00.0',
      vram: 24564,
      vramDynamic: false,
      pciID: '',
      driverVersion: '550.54.14',
      subDeviceId: '0x88E21043',
      name: 'NVIDIA GeForce RTX 4090',
      pciBus: '00000000:01:00.0',
      fanSpeed: 30,
      memoryTotal: 24564,
      memoryUsed: 403,
      memoryFree: 23770,
      utilizationGpu: 3,
      temperatureGpu: 42,
      powerDraw: 24.5,
      powerLimit: 450,
    },
  ],
  displays: [display],
};

const vm: Graphics = {
  controllers: [
    { vendor: 'VMware', model: 'SVGA II Adapter', bus: 'PCI', vram: 16, vramDynamic: false },
    // lspci's "Cirrus Logic GD 5446" has no "Corporation"/"Inc." for systeminformation to split on.
    { vendor: '', model: '', bus: '', busAddress: '00:02.0', vram: null, vramDynamic: false },
  ],
  displays: [],
};

type Fake = { si: SystemInformationLike; calls: { cpu: number; mem: number; graphics: number } };

/** A fake systeminformation; each reading is a value or a function returning the promise. */
function fakeSi(answers: {
  cpu?: Cpu | (() => Promise<Cpu>);
  mem?: Mem | (() => Promise<Mem>);
  graphics?: Graphics | (() => Promise<Graphics>);
}): Fake {
  const calls = { cpu: 0, mem: 0, graphics: 0 };
  const answer = <T>(value: T | (() => Promise<T>)) =>
    typeof value === 'function' ? (value as () => Promise<T>)() : Promise.resolve(value);
  const si: SystemInformationLike = {
    cpu: () => (calls.cpu++, answer(answers.cpu ?? cpuOf({ cores: 4, physicalCores: 4 }))),
    mem: () => (calls.mem++, answer(answers.mem ?? memOf(16765386752))),
    graphics: () => (calls.graphics++, answer(answers.graphics ?? vm)),
  };
  return { si, calls };
}

const os: OsLike = {
  availableParallelism: () => 6,
  cpus: () => [],
  totalmem: () => 8 * 1_048_576 * 1024,
  hostname: () => 'gpu-box',
};
const missing = () => Promise.reject(Object.assign(new Error('spawn nvidia-smi ENOENT'), { code: 'ENOENT' }));
const never = <T>() => new Promise<T>(() => {});

beforeEach(() => resetHostDetectionCache());
afterEach(() => vi.useRealTimers());

describe('detectHost on real-shaped systeminformation answers', () => {
  it('a VM with only virtual VGA adapters has no GPU and nothing to warn about', async () => {
    const { si } = fakeSi({ graphics: vm });
    const result = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(result).toEqual({
      node: { id: 'gpu-box', cpu: 4, memoryMb: 15988, gpus: [], custom: {} },
      warnings: [],
    });
  });

  it('a workstation keeps its RTX 4090 and drops the integrated Intel GPU', async () => {
    const { si } = fakeSi({
      cpu: cpuOf({ manufacturer: 'Intel', brand: 'Core™ i9-13900K', cores: 32, physicalCores: 24 }),
      mem: memOf(67174379520),
      graphics: workstation,
    });
    const { node, warnings } = await detectHost({ si, os, id: 'ws', runNvidiaSmi: missing });
    expect(node).toEqual({
      id: 'ws',
      cpu: 32,
      memoryMb: 64062,
      gpus: [{ index: 0, vramMb: 24564, model: 'NVIDIA GeForce RTX 4090' }],
      custom: {},
    });
    expect(warnings).toEqual([]);
  });

  it('an 8× A100 server numbers its GPUs 0..7 in bus order, skipping the BMC adapter', async () => {
    const controllers = [aspeed, ...Array.from({ length: 8 }, (_, i) => a100(i))];
    const { si } = fakeSi({
      cpu: cpuOf({}),
      mem: memOf(1081965039616),
      graphics: { controllers, displays: [] },
    });
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node.cpu).toBe(256);
    expect(node.memoryMb).toBe(1031842);
    expect(node.gpus).toEqual(
      Array.from({ length: 8 }, (_, index) => ({ index, vramMb: 81920, model: 'NVIDIA A100-SXM4-80GB' })),
    );
    expect(warnings).toEqual([]);
  });

  it('honours an index given with each controller (nvidia-smi order)', async () => {
    const controllers = [7, 6, 5, 4, 3, 2, 1, 0].map((index) => ({ ...a100(index), index }));
    const { si } = fakeSi({ graphics: { controllers, displays: [] } });
    const { node } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node.gpus.map((gpu) => gpu.index)).toEqual([7, 6, 5, 4, 3, 2, 1, 0]);
  });

  it('prefers memoryTotal over vram and the nvidia-smi name over the lspci model', async () => {
    const controllers = [{ ...a100(0), vram: 256 }];
    const { si } = fakeSi({ graphics: { controllers, displays: [] } });
    const { node } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node.gpus).toEqual([{ index: 0, vramMb: 81920, model: 'NVIDIA A100-SXM4-80GB' }]);
  });

  it('keeps an AMD GPU without a driver-reported size but warns that the size is a guess', async () => {
    const amd: Controller = {
      vendor: 'Advanced Micro Devices, Inc. [AMD/ATI]',
      model: 'Navi 31 [Radeon RX 7900 XT/7900 XTX]',
      bus: 'Onboard',
      vram: 256,
      vramDynamic: false,
    };
    const { si } = fakeSi({ graphics: { controllers: [amd], displays: [] } });
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node.gpus).toEqual([{ index: 0, vramMb: 256, model: amd.model }]);
    expect(warnings).toEqual([
      expect.stringContaining('256 MB as systeminformation read it (OpenCL or the PCI memory window)'),
    ]);
  });

  it('skips GPUs that share system memory (Apple, integrated with dynamic VRAM)', async () => {
    const apple: Controller = {
      vendor: 'Apple',
      model: 'Apple M2 Max',
      bus: 'Built-In',
      vram: null,
      vramDynamic: true,
    };
    const apu: Controller = {
      vendor: 'AMD',
      model: 'Radeon 780M',
      bus: 'Onboard',
      vram: 512,
      vramDynamic: true,
    };
    const { si } = fakeSi({ graphics: { controllers: [apple, apu], displays: [] } });
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node.gpus).toEqual([]);
    expect(warnings).toEqual([]);
  });
});

describe('detectHost when systeminformation finds no GPU', () => {
  it('asks nvidia-smi (containers without lspci hide GPUs from systeminformation)', async () => {
    const { si } = fakeSi({ graphics: { controllers: [], displays: [] } });
    const runNvidiaSmi = () =>
      Promise.resolve('0, 81559, NVIDIA H100 80GB HBM3\n1, 81559, NVIDIA H100 80GB HBM3\n');
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi });
    expect(node.gpus).toEqual([
      { index: 0, vramMb: 81559, model: 'NVIDIA H100 80GB HBM3' },
      { index: 1, vramMb: 81559, model: 'NVIDIA H100 80GB HBM3' },
    ]);
    expect(warnings).toEqual([]);
  });

  it('names a broken nvidia-smi and skips its unreadable lines', async () => {
    const { si } = fakeSi({ graphics: { controllers: [], displays: [] } });
    const broken = () => Promise.reject(new Error('nvidia-smi failed (exit 9): NVIDIA-SMI has failed'));
    expect((await detectHost({ si, os, runNvidiaSmi: broken })).warnings).toEqual([
      'GPUs: nvidia-smi failed (exit 9): NVIDIA-SMI has failed',
    ]);
    const partial = () => Promise.resolve('0, 81559, NVIDIA H100\n1, [N/A], NVIDIA H100\n');
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi: partial });
    expect(node.gpus).toEqual([{ index: 0, vramMb: 81559, model: 'NVIDIA H100' }]);
    expect(warnings).toEqual([expect.stringContaining('1, [N/A], NVIDIA H100')]);
  });
});

describe('detectHost when a reading fails', () => {
  const boom = () => Promise.reject(new Error('boom'));

  it.each([
    ['cpu', { cpu: boom }, { cpu: 6 }, 'CPU: boom; using 6 from node:os'],
    ['mem', { mem: boom }, { memoryMb: 8192 }, 'memory: boom; using 8192 MB from node:os'],
    ['graphics', { graphics: boom }, { gpus: [] }, 'GPUs: boom'],
  ] as const)('si.%s() rejecting falls back with a warning', async (_name, answers, expected, warning) => {
    const { node, warnings } = await detectHost({ si: fakeSi(answers).si, os, runNvidiaSmi: missing });
    expect(node).toMatchObject(expected);
    expect(warnings).toEqual([warning]);
  });

  it.each([
    ['cpu', { cpu: never<Cpu> }, { cpu: 6 }, 'CPU: si.cpu() timed out after 10000 ms; using 6 from node:os'],
    [
      'mem',
      { mem: never<Mem> },
      { memoryMb: 8192 },
      'memory: si.mem() timed out after 10000 ms; using 8192 MB from node:os',
    ],
    ['graphics', { graphics: never<Graphics> }, { gpus: [] }, 'GPUs: si.graphics() timed out after 10000 ms'],
  ] as const)('si.%s() never answering times out after 10 s', async (_name, answers, expected, warning) => {
    vi.useFakeTimers();
    const detection = detectHost({ si: fakeSi(answers).si, os, runNvidiaSmi: missing });
    await vi.advanceTimersByTimeAsync(10_000);
    const { node, warnings } = await detection;
    expect(node).toMatchObject(expected);
    expect(warnings).toEqual([warning]);
  });

  it('uses a configured timeout', async () => {
    vi.useFakeTimers();
    const detection = detectHost({
      si: fakeSi({ mem: never<Mem> }).si,
      os,
      timeoutMs: 500,
      runNvidiaSmi: missing,
    });
    await vi.advanceTimersByTimeAsync(500);
    expect((await detection).warnings).toEqual([expect.stringContaining('si.mem() timed out after 500 ms')]);
  });

  it('survives a reading that throws instead of rejecting, and answers that make no sense', async () => {
    const si = fakeSi({ cpu: cpuOf({ cores: 0 }), mem: memOf(Number.NaN) }).si;
    si.graphics = () => {
      throw new TypeError('lspci output unreadable');
    };
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node).toEqual({ id: 'gpu-box', cpu: 6, memoryMb: 8192, gpus: [], custom: {} });
    expect(warnings).toEqual([
      'CPU: si.cpu() gave cores = 0; using 6 from node:os',
      'memory: si.mem() gave total = NaN; using 8192 MB from node:os',
      'GPUs: lspci output unreadable',
    ]);
  });

  it('treats a graphics answer without a controller list as no GPU (BSD resolves null)', async () => {
    const si = fakeSi({}).si;
    si.graphics = () => Promise.resolve(null as unknown as Graphics);
    const { node, warnings } = await detectHost({ si, os, runNvidiaSmi: missing });
    expect(node.gpus).toEqual([]);
    expect(warnings).toEqual(['GPUs: si.graphics() gave no controller list']);
  });

  it('rejects a timeout that is not a positive number, naming it', async () => {
    await expect(detectHost({ si: fakeSi({}).si, timeoutMs: 0 })).rejects.toThrow(/timeoutMs .* got 0/);
  });
});

describe('CPU reading cache', () => {
  it('calls si.cpu() once across two detections, and again after a reset', async () => {
    const { si, calls } = fakeSi({});
    await detectHost({ si, os, runNvidiaSmi: missing });
    await detectHost({ si, os, runNvidiaSmi: missing });
    expect(calls).toEqual({ cpu: 1, mem: 2, graphics: 2 });
    resetHostDetectionCache();
    await detectHost({ si, os, runNvidiaSmi: missing });
    expect(calls.cpu).toBe(2);
  });

  it('does not keep a failure: the next detection asks again', async () => {
    let fail = true;
    const { si, calls } = fakeSi({
      cpu: () => (fail ? Promise.reject(new Error('lscpu missing')) : Promise.resolve(cpuOf({ cores: 12 }))),
    });
    expect((await detectHost({ si, os, runNvidiaSmi: missing })).node.cpu).toBe(6);
    fail = false;
    expect((await detectHost({ si, os, runNvidiaSmi: missing })).node.cpu).toBe(12);
    expect(calls.cpu).toBe(2);
  });
});

describe('applyOverrides', () => {
  const detected = {
    id: 'gpu-box',
    cpu: 32,
    memoryMb: 64062,
    gpus: [{ index: 0, vramMb: 24564 }],
    custom: {},
  };

  it('replaces each field given and keeps the rest', () => {
    expect(applyOverrides(detected, { memoryMb: 32_000, gpus: 0, custom: { licence: 2 } })).toEqual({
      id: 'gpu-box',
      cpu: 32,
      memoryMb: 32_000,
      gpus: 0,
      custom: { licence: 2 },
    });
  });

  it('returns a copy of the detected node when nothing is overridden', () => {
    const result = applyOverrides(detected);
    expect(result).toEqual(detected);
    expect(result).not.toBe(detected);
  });
});

describe('detectHost on this machine (real systeminformation)', () => {
  it('completes with a usable node', { timeout: 60_000 }, async () => {
    const { node, warnings } = await detectHost();
    expect(node.cpu).toBeGreaterThanOrEqual(1);
    expect(node.memoryMb).toBeGreaterThan(0);
    expect(Array.isArray(node.gpus)).toBe(true);
    expect(node.id).not.toBe('');
    expect(Array.isArray(warnings)).toBe(true);
  });
});
