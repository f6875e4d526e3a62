/**
 * `ai-batch resources`: what this machine offers, as the scheduler would detect it, printed as a
 * pool file that `ai-batch run --resources` accepts (or as JSON). Detection never fails; what it
 * had to guess goes to standard error as warnings.
 */
import { stringify as toYaml } from 'yaml';
import { detectHost, type HostDetection } from '../actors/host.js';
import type { ResourcesArgs } from './args.js';
import type { Writers } from './reporter.js';

/** The detected node as a pool file's text. */
export function renderPoolYaml(detection: HostDetection): string {
  const { node } = detection;
  const pool = {
    id: node.id,
    cpu: node.cpu,
    memoryMb: node.memoryMb,
    gpus: node.gpus.map((gpu) => ({ index: gpu.index, vramMb: gpu.vramMb, model: gpu.model })),
    ...(Object.keys(node.custom).length > 0 ? { custom: node.custom } : {}),
  };
  return (
    `# This machine as ai-batch detects it. Save it, edit it, and run with --resources <file>.\n` +
    toYaml(pool)
  );
}

/** Prints the detected pool; returns the exit code (always 0). */
export async function resourcesCommand(
  args: ResourcesArgs,
  write: Writers,
  detect: () => Promise<HostDetection> = () => detectHost(),
): Promise<0> {
  const detection = await detect();
  if (args.json) {
    write.out(`${JSON.stringify(detection, null, 2)}\n`);
  } else {
    write.out(renderPoolYaml(detection));
    for (const warning of detection.warnings) write.err(`ai-batch: warning: ${warning}\n`);
  }
  return 0;
}
