// Starts a real Engine on 127.0.0.1 port 0 with a temp data dir, and tears it
// down (engine, clients, directory) in one call.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock, IdSource } from '../../engine/clock';
import { defaultConfig, type KilnConfig } from '../../engine/config';
import { Engine, type EngineOptions } from '../../engine/engine';
import type { ActionCacheStore } from '../../engine/store/action-cache-store';
import type { BlobStore } from '../../engine/store/blob-store';
import type { Executor } from '../../engine/execution/executor';
import { connectClients, type KilnClients } from './clients';

export interface TestEngineOptions {
  config?: Partial<KilnConfig>;
  blobStore?: BlobStore;
  actionCache?: ActionCacheStore;
  clock?: Clock;
  ids?: IdSource;
  /** Runs actions in place of the configured executor (the engine still decorates it). */
  executor?: Executor;
  /** Where the sandbox finds its native helpers (EngineOptions.sandboxHelpers). */
  sandboxHelpers?: EngineOptions['sandboxHelpers'];
}

export interface TestEngine {
  engine: Engine;
  clients: KilnClients;
  dataDir: string;
  /** Stops the engine, closes the clients and removes the data dir. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startTestEngine(opts: TestEngineOptions = {}): Promise<TestEngine> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kiln-test-'));
  const config: KilnConfig = {
    ...defaultConfig(),
    host: '127.0.0.1',
    port: 0,
    httpPort: 0,
    dataDir,
    cacheSizeBytes: 1024 ** 3,
    concurrency: 2,
    ...opts.config,
  };
  let engine: Engine;
  try {
    engine = await Engine.start({ ...opts, config });
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const clients = connectClients(`127.0.0.1:${engine.grpcPort}`);
  let stopped: Promise<void> | undefined;
  return {
    engine,
    clients,
    dataDir,
    stop: () =>
      (stopped ??= (async () => {
        clients.close();
        await engine.stop({ drainMs: 2_000 });
        await rm(dataDir, { recursive: true, force: true });
      })()),
  };
}
