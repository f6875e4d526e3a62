/** The five priorities, lowest first; a priority's level is its position here. */
export const PRIORITY_NAMES = ['background', 'low', 'normal', 'high', 'critical'] as const;

/** A priority by name. */
export type PriorityName = (typeof PRIORITY_NAMES)[number];

/** Named constants for the priorities: `Priority.HIGH === 'high'`. */
export const Priority = {
  CRITICAL: 'critical',
  HIGH: 'high',
  NORMAL: 'normal',
  LOW: 'low',
  BACKGROUND: 'background',
} as const satisfies Record<string, PriorityName>;

/** The highest level (critical). */
export const MAX_LEVEL = PRIORITY_NAMES.length - 1;

/** 0 (background) … 4 (critical); -1 for anything that is not a priority name. */
export function levelOf(name: unknown): number {
  return PRIORITY_NAMES.indexOf(name as PriorityName);
}

/** The name of a level, clamped into range. */
export function nameOf(level: number): PriorityName {
  return PRIORITY_NAMES[Math.max(0, Math.min(MAX_LEVEL, Math.round(level)))] as PriorityName;
}
