// The engine configuration the desktop app starts with: the user's config.yaml in the
// app's settings folder if there is one, the engine's defaults otherwise, the
// dashboard's saved LAN switch, and the remembered execution switch on top. The data
// folder is `kiln serve`'s (defaultDataDir()), so the app and the CLI share one cache,
// one token store and one CA.
import { join } from 'node:path';
import { defaultConfig, defaultDataDir, type KilnConfig } from '../engine/config';
import { applySavedSettings } from '../engine/config-load';
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
  dataDir: string = defaultDataDir(),
): Promise<KilnConfig> {
  // On a desktop the person at it comes first: polite unless config.yaml or the tray says otherwise.
  const base: KilnConfig = { ...defaultConfig(), dataDir, mode: 'polite' };
  let config = await loadConfigFile(desktopConfigPath(userData), base);
  if (!config) {
    // No config file, so no host was chosen: the dashboard's LAN switch decides, as for
    // `kiln serve`. (With a file, the engine's loader has applied it already unless the file names a host.)
    config = { ...base };
    applySavedSettings(config);
  }
  return settings.executionEnabled === undefined ? config : { ...config, executionEnabled: settings.executionEnabled };
}
