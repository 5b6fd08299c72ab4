// The engine configuration the desktop app starts with: the user's config.yaml in the
// app's data folder if there is one, the engine's defaults otherwise, with the data
// directory under userData and the remembered execution switch on top.
import { join } from 'node:path';
import { defaultConfig, type KilnConfig } from '../engine/config';
import type { DesktopSettings } from './settings';

/**
 * Reads a config file over `base` (file values win). Resolves undefined when the file does
 * not exist; rejects when it exists but is invalid, so a typo is reported, not ignored.
 */
export type ConfigFileLoader = (path: string, base: KilnConfig) => Promise<KilnConfig | undefined>;

export function desktopConfigPath(userData: string): string {
  return join(userData, 'config.yaml');
}

export async function desktopEngineConfig(
  userData: string,
  settings: DesktopSettings,
  loadConfigFile: ConfigFileLoader,
): Promise<KilnConfig> {
  const base: KilnConfig = { ...defaultConfig(), dataDir: join(userData, 'data') };
  const config = (await loadConfigFile(desktopConfigPath(userData), base)) ?? base;
  return settings.executionEnabled === undefined ? config : { ...config, executionEnabled: settings.executionEnabled };
}
