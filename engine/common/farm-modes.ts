// The words of the polite farm: how hard Kiln may use this machine (the mode),
// why it runs the number of slots it does (the reason), the signals a person
// may send a running action, and the health problems it names. Pure
// declarations: the engine, the HTTP API, the dashboard and the tray share them.

/**
 * polite: background priority, slots follow the machine (busy CPUs, the user at
 * the desk, battery); normal: the configured slots at normal priority;
 * all-out: one slot per core at normal priority.
 */
export const FARM_MODES = ['polite', 'normal', 'all-out'] as const;
export type FarmMode = (typeof FARM_MODES)[number];

export function isFarmMode(value: unknown): value is FarmMode {
  return typeof value === 'string' && (FARM_MODES as readonly string[]).includes(value);
}

/** Why the farm runs the slots it runs, in words the dashboard and tray show as they are. */
export const SLOT_REASONS = {
  fixed: 'fixed slots (normal mode)',
  allCores: 'every core (all-out mode)',
  machineFree: 'machine free',
  othersBusy: 'other programs keep the CPUs busy',
  userActive: 'user active',
  onBattery: 'on battery',
  batteryLow: 'battery low',
  paused: 'paused',
} as const;
export type SlotReason = (typeof SLOT_REASONS)[keyof typeof SLOT_REASONS];

/** "2 of 8 slots: on battery" */
export function describeSlots(slots: number, maxSlots: number, reason: string): string {
  return `${slots} of ${maxSlots} slot${maxSlots === 1 ? '' : 's'}: ${reason}`;
}

/** Signals a person may send a running action (and its process group). STOP/CONT pause and resume it. */
export const ACTION_SIGNALS = ['STOP', 'CONT', 'TERM', 'INT', 'KILL'] as const;
export type ActionSignal = (typeof ACTION_SIGNALS)[number];

export function isActionSignal(value: unknown): value is ActionSignal {
  return typeof value === 'string' && (ACTION_SIGNALS as readonly string[]).includes(value);
}

/** What the machine looked like at the governor's last decision (absent fields: no source for them). */
export interface DeskSnapshot {
  at: number;
  /** Fraction [0, 1] of all CPUs busy with programs other than Kiln's background actions. */
  othersBusy?: number;
  onBattery?: boolean;
  /** 0 to 100. */
  batteryPercent?: number;
  /** Since the person last touched keyboard or mouse (the desktop app only). */
  userIdleMs?: number;
  /** The screen is locked (the desktop app only). */
  locked?: boolean;
}

/** A point of the slots-over-time chart. */
export interface SlotPoint {
  at: number;
  slots: number;
}

/** GET /api/mode, ApiStatus.farm and the `farm` SSE event. */
export interface FarmStatus {
  mode: FarmMode;
  /** Slots taking new work now (0 while paused). */
  slots: number;
  /** The most the mode may use: the configured slots (polite, normal) or every core (all-out). */
  maxSlots: number;
  reason: string;
  /** "2 of 8 slots: on battery" */
  summary: string;
  /** Present while paused; `until` absent means until resumed. */
  paused?: { since: number; until?: number };
  /** Actions of the polite mode run at the lowest CPU and I/O priority the runner can give. */
  background: boolean;
  desk?: DeskSnapshot;
  /** Slots over the last hour or so, oldest first (GET /api/status and /api/mode only). */
  history?: SlotPoint[];
}

/** PUT /api/mode body. */
export interface ModeRequest {
  mode: FarmMode;
}

/** POST /api/pause body: minutes, or none (or null) to pause until resumed. */
export interface PauseRequest {
  minutes?: number | null;
}

/** POST /api/actions/{id}/signal body. */
export interface SignalRequest {
  signal: ActionSignal;
}

/** POST /api/actions/{id}/signal and /cancel response. */
export interface ActionControlResponse {
  id: string;
  done: string;
}

export const HEALTH_SEVERITIES = ['error', 'warning', 'info'] as const;
export type HealthSeverity = (typeof HEALTH_SEVERITIES)[number];

/** One named problem, with a sentence a person can act on. */
export interface HealthProblem {
  /** Stable name, e.g. "execution-off", "queue-backlog", "disk-nearly-full". */
  id: string;
  severity: HealthSeverity;
  /** A few words for the tray icon and the banner title. */
  title: string;
  /** What is wrong and what to do about it. */
  message: string;
  /** When the condition was first seen. */
  since: number;
}

/** GET /api/health and the `health` SSE event: worst first; empty when all is well. */
export interface HealthReport {
  at: number;
  problems: HealthProblem[];
}

/** Orders problems worst first (errors, then warnings, then notes; older first within one). */
export function worstFirst(a: HealthProblem, b: HealthProblem): number {
  return HEALTH_SEVERITIES.indexOf(a.severity) - HEALTH_SEVERITIES.indexOf(b.severity) || a.since - b.since;
}
