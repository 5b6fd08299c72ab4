// Settings changed from the dashboard, kept in {dataDir}/settings.json. They
// sit under the config file and flags (which always win) and are used when
// Kiln next starts, so a change made in the UI survives restarts. (Concurrency
// and the cache budget also apply at once: Engine.updateSettings.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCacheBudget, checkConcurrency, checkInvocationHistory, checkInvocationHistoryDays } from './common/settings-limits';
import { FARM_MODES, isFarmMode, type FarmMode } from './common/farm-modes';
import { writeFileAtomicSync } from './util/atomic-file';

export const SETTINGS_FILE = 'settings.json';

export interface SavedSettings {
  /** Serve the LAN (listen on 0.0.0.0) unless a host is given by flag or config file. */
  lan?: boolean;
  /** Worker slots, unless a flag or the config file sets concurrency. */
  concurrency?: number;
  /** CAS budget in bytes, unless a flag or the config file sets cache-size. */
  cacheSizeBytes?: number;
  /** The farm's mode (tray or dashboard), unless a flag or the config file sets mode. */
  mode?: FarmMode;
  /** Invocations kept, unless a flag or the config file sets invocation-history. */
  invocationHistory?: number;
  /** Days they are kept, unless a flag or the config file sets invocation-history-days. */
  invocationHistoryDays?: number;
}

export class SettingsError extends Error {}

export function settingsPath(dataDir: string): string {
  return join(dataDir, SETTINGS_FILE);
}

/** The saved settings; {} when none were saved. A damaged file is an error, not silently dropped. */
export function readSettings(dataDir: string): SavedSettings {
  const path = settingsPath(dataDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new SettingsError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new SettingsError(`${path} is not valid JSON; fix or delete it (it holds settings saved from the dashboard)`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new SettingsError(`${path} must be a JSON object like {"lan": true}`);
  }
  const { lan, concurrency, cacheSizeBytes, mode, invocationHistory, invocationHistoryDays } = data as Record<string, unknown>;
  if (lan !== undefined && typeof lan !== 'boolean') throw new SettingsError(`${path}: "lan" must be true or false`);
  if (mode !== undefined && !isFarmMode(mode)) throw new SettingsError(`${path}: "mode" must be one of ${FARM_MODES.join(', ')}`);
  const settings: SavedSettings = {};
  if (mode !== undefined) settings.mode = mode;
  if (lan !== undefined) settings.lan = lan;
  try {
    if (concurrency !== undefined) settings.concurrency = checkConcurrency(concurrency);
    if (cacheSizeBytes !== undefined) settings.cacheSizeBytes = checkCacheBudget(cacheSizeBytes);
    if (invocationHistory !== undefined) settings.invocationHistory = checkInvocationHistory(invocationHistory);
    if (invocationHistoryDays !== undefined) settings.invocationHistoryDays = checkInvocationHistoryDays(invocationHistoryDays);
  } catch (err) {
    throw new SettingsError(`${path}: ${(err as Error).message}`);
  }
  return settings;
}

/** Merges `patch` into the saved settings, written atomically. */
export function saveSettings(dataDir: string, patch: SavedSettings): SavedSettings {
  const next = { ...readSettings(dataDir), ...patch };
  writeFileAtomicSync(settingsPath(dataDir), JSON.stringify(next, null, 2) + '\n', 0o600);
  return next;
}
