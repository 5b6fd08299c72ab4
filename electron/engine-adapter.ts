// The one place the shell meets the real engine: Engine → EngineHandle, and the
// engine's config loader → ConfigFileLoader.
import { existsSync } from 'node:fs';
import type { KilnConfig } from '../engine/config';
import { loadConfig } from '../engine/config-load';
import { Engine } from '../engine/engine';
import type { ConfigFileLoader } from './desktop-config';
import type { EngineHandle } from './engine-handle';

export async function startEngine(config: KilnConfig, log: (line: string) => void = (l) => console.error(l)): Promise<EngineHandle> {
  // Engine satisfies EngineHandle structurally; tsc checks it here.
  const engine: EngineHandle = await Engine.start({ config, log });
  return engine;
}

/** config.yaml in userData, read by the same loader (and with the same errors) as `kiln serve --config`. */
export const loadConfigFile: ConfigFileLoader = async (path, base) =>
  existsSync(path) ? loadConfig({ configFile: path, base }) : undefined;
