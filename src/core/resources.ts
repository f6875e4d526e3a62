/**
 * The resource vocabulary: pools of nodes, requests, totals. Plain data only.
 */

/** One GPU of a node. */
export type GpuSpec = {
  /** The device index (what `CUDA_VISIBLE_DEVICES` names). @default its position */
  index?: number;
  /** Total VRAM in MB. */
  vramMb: number;
  /** The model name, e.g. `NVIDIA A100-SXM4-80GB`. */
  model?: string;
};

/** One machine: CPU cores (fractions allowed), memory, GPUs and custom countable resources. */
export type NodeSpec = {
  /** @default `node-<position>` */
  id?: string;
  cpu: number;
  memoryMb: number;
  /** A count of GPUs whose VRAM is not tracked (0 MB each), or each GPU with its VRAM. @default 0 */
  gpus?: number | GpuSpec[];
  /** Custom countable resources, e.g. `{ licence: 2 }`. */
  custom?: Record<string, number>;
};

/** One machine, or several. */
export type ResourcePool = NodeSpec | { nodes: NodeSpec[] };

/** What a job asks for. Every field defaults to 0. */
export type ResourceRequest = {
  cpu?: number;
  memoryMb?: number;
  /** Whole GPUs on one node (an integer ≥ 1), or a share `0 < gpu < 1` of one GPU. */
  gpu?: number;
  /** VRAM needed on each GPU, in MB. */
  vramMb?: number;
  custom?: Record<string, number>;
};

/** Amounts of every kind of resource, summed over a pool. */
export type ResourceTotals = {
  cpu: number;
  memoryMb: number;
  gpu: number;
  vramMb: number;
  custom: Record<string, number>;
};

/** A pool after validation: every node with an id and indexed GPUs. */
export type NormalisedNode = {
  id: string;
  cpu: number;
  memoryMb: number;
  gpus: Array<{ index: number; vramMb: number; model: string }>;
  custom: Record<string, number>;
};

/** What a resource kind is called in denials: `gpu`, `vram`, `cpu`, `memory` or `custom:<name>`. */
export type ResourceKind = 'gpu' | 'vram' | 'cpu' | 'memory' | `custom:${string}`;

/** One resource that was short on one node. */
export type Shortage = {
  resource: ResourceKind;
  nodeId: string;
  requested: number;
  free: number;
};

/** Why a request could not be granted now. */
export type Denial = {
  /** What is short, on the node that came closest to fitting. */
  short: Shortage[];
};

/** Admission limits a monitor may impose on a node below its capacity (never revoking). */
export type AdmissionLimit = {
  /** Memory that may be allocated in total on the node, in MB. */
  memoryMb?: number;
  /** Per GPU index: VRAM that may be allocated in total on that GPU, in MB. */
  vramMb?: Record<number, number>;
};

/** How a request is placed when several nodes or GPUs could take it. */
export type PlacementPolicy = 'best-fit' | 'first-fit';
