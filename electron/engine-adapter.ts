// The one place the shell meets the real engine: Engine → EngineHandle, and the
// engine's config loader → ConfigFileLoader.
import { existsSync } from 'node:fs';
import type { KilnConfig } from '../engine/config';
import { loadConfig } from '../engine/config-load';
import { Engine } from '../engine/engine';
import type { ConfigFileLoader } from './desktop-config';
import { combineDeskSignals, defaultDeskSignals } from '../engine/governor/desk-signals';
import type { EngineExtras, EngineHandle } from './engine-handle';

export async function startEngine(
  config: KilnConfig,
  log: (line: string) => void = (l) => console.error(l),
  extras: EngineExtras = {},
): Promise<EngineHandle> {
  // The machine's own readings first; the desktop's (idle, lock, battery) fill in and win.
  const deskSignals = extras.deskSignals && combineDeskSignals(defaultDeskSignals(), extras.deskSignals);
  // Engine satisfies EngineHandle structurally; tsc checks it here.
  const engine: EngineHandle = await Engine.start({ config, log, deskSignals });
  return engine;
}

/** config.yaml in userData, read by the same loader (and with the same errors) as `kiln serve --config`. */
export const loadConfigFile: ConfigFileLoader = async (path, base) =>
  existsSync(path) ? loadConfig({ configFile: path, base }) : undefined;
