// A real gRPC server on 127.0.0.1 port 0 with the CAS, action cache, Execution
// and Operations services over in-memory stores and an injected Executor.
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../engine/clock';
import { toWireDigest, type BlobDigest } from '../../engine/digest';
import { EventBus, type KilnEvent } from '../../engine/events/event-bus';
import { ActionCacheService, ContentAddressableStorageService, ExecutionService, OperationsService } from '../../engine/grpc/services';
import { durationFromMs, longrunning, reapi, unpackAny } from '../../engine/proto';
import { createActionCacheService } from '../../engine/reapi/action-cache';
import { createCasService } from '../../engine/reapi/cas';
import { createExecutionService } from '../../engine/reapi/execution';
import { createOperationsService } from '../../engine/reapi/operations';
import { Scheduler, logPathsIn } from '../../engine/scheduler/scheduler';
import { MemoryActionCacheStore } from '../../engine/store/action-cache-store';
import { MemoryBlobStore } from '../../engine/store/memory-store';
import type { Executor } from '../../engine/execution/executor';
import { decorateExecutor } from '../../engine/executor-factory';
import { connectClients, type KilnClients } from '../helpers/clients';
import { uploadBlob, uploadProto } from '../helpers/blobs';

export interface ExecutionServer {
  clients: KilnClients;
  scheduler: Scheduler;
  store: MemoryBlobStore;
  actionCache: MemoryActionCacheStore;
  events: KilnEvent[];
  dataDir: string;
  stop(): Promise<void>;
}

export interface ExecutionServerOptions {
  /** An executor, or a factory given the server's CAS (for a real executor). */
  executor: Executor | ((store: MemoryBlobStore, dataDir: string) => Executor | Promise<Executor>);
  concurrency?: number;
  queueSize?: number;
  operationRetentionMs?: number;
  maxActionTimeoutMs?: number;
  clock?: Clock;
  /** Execute's hold on stage updates; 0 here (every stage sent at once) unless a test asks for the engine's default. */
  stageUpdateHoldMs?: number;
}

export async function startExecutionServer(opts: ExecutionServerOptions): Promise<ExecutionServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'kiln-exec-'));
  const store = new MemoryBlobStore();
  const actionCache = new MemoryActionCacheStore();
  const bus = new EventBus();
  const events: KilnEvent[] = [];
  bus.subscribe((e) => events.push(e));
  const inner = typeof opts.executor === 'function' ? await opts.executor(store, dataDir) : opts.executor;
  // The decorators the engine adds to every executor (caching, metadata, result shaping).
  const executor = decorateExecutor(inner, { actionCache, log: () => {} });
  const scheduler = new Scheduler({
    executor,
    concurrency: opts.concurrency ?? 1,
    queueSize: opts.queueSize ?? 100,
    operationRetentionMs: opts.operationRetentionMs ?? 600_000,
    logPathsFor: logPathsIn(dataDir),
    streamNamesFor: (id) => ({ stdout: `logs/${id}/stdout`, stderr: `logs/${id}/stderr` }),
    events: bus,
    clock: opts.clock,
  });
  const server = new grpc.Server();
  server.addService(ContentAddressableStorageService, createCasService({ store, maxBatchTotalSizeBytes: 4 * 1024 * 1024 }));
  server.addService(ActionCacheService, createActionCacheService({ store, actionCache, events: bus }));
  server.addService(
    ExecutionService,
    createExecutionService({
      scheduler,
      store,
      actionCache,
      executor,
      defaultActionTimeoutMs: 60_000,
      maxActionTimeoutMs: opts.maxActionTimeoutMs ?? 3_600_000,
      events: bus,
      clock: opts.clock,
      stageUpdateHoldMs: opts.stageUpdateHoldMs ?? 0,
    }),
  );
  server.addService(OperationsService, createOperationsService({ scheduler, clock: opts.clock }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const clients = connectClients(`127.0.0.1:${port}`);
  return {
    clients,
    scheduler,
    store,
    actionCache,
    events,
    dataDir,
    async stop() {
      clients.close();
      await scheduler.stop(1_000);
      await executor.close();
      server.forceShutdown();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ActionSpec {
  argv: string[];
  outputPaths?: string[];
  /** Files of the input root: path → content (one level deep). */
  inputs?: Record<string, string | Uint8Array>;
  timeoutMs?: number;
  doNotCache?: boolean;
  /** Makes otherwise identical specs distinct actions. */
  salt?: string;
  env?: Record<string, string>;
  /** The Command's platform properties. */
  platform?: Record<string, string>;
}

/** Uploads the input root, Command and Action; returns the Action's digest. */
export async function uploadAction(clients: KilnClients, spec: ActionSpec): Promise<BlobDigest> {
  const files = await Promise.all(
    Object.entries(spec.inputs ?? {})
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(async ([name, content]) => ({
        name,
        digest: toWireDigest(await uploadBlob(clients, Buffer.from(content))),
        isExecutable: false,
      })),
  );
  const root = await uploadProto(clients, reapi.Directory, reapi.Directory.create({ files }));
  const env = Object.entries({ PATH: '/usr/bin:/bin', ...spec.env, ...(spec.salt ? { KILN_TEST_SALT: spec.salt } : {}) })
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, value]) => ({ name, value }));
  const command = await uploadProto(
    clients,
    reapi.Command,
    reapi.Command.create({
      arguments: spec.argv,
      outputPaths: spec.outputPaths ?? [],
      environmentVariables: env,
      ...(spec.platform
        ? { platform: { properties: Object.entries(spec.platform).sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, value]) => ({ name, value })) } }
        : {}),
    }),
  );
  const action = await uploadProto(
    clients,
    reapi.Action,
    reapi.Action.create({
      commandDigest: toWireDigest(command.digest),
      inputRootDigest: toWireDigest(root.digest),
      doNotCache: !!spec.doNotCache,
      ...(spec.timeoutMs !== undefined ? { timeout: durationFromMs(spec.timeoutMs) } : {}),
    }),
  );
  return action.digest;
}

export function executeRequest(digest: BlobDigest, over: reapi.ExecuteRequest.$Properties = {}): reapi.ExecuteRequest.$Properties {
  return { instanceName: '', actionDigest: toWireDigest(digest), digestFunction: reapi.DigestFunction.Value.SHA256, ...over };
}

export function metadataOf(op: longrunning.Operation): reapi.ExecuteOperationMetadata {
  const m = unpackAny(reapi.ExecuteOperationMetadata, op.metadata);
  if (!m) throw new Error(`operation ${op.name} carries no ExecuteOperationMetadata`);
  return m;
}

export function responseOf(op: longrunning.Operation): reapi.ExecuteResponse {
  const r = unpackAny(reapi.ExecuteResponse, op.response);
  if (!r) throw new Error(`operation ${op.name} carries no ExecuteResponse`);
  return r;
}

/** What a script run as an action (`/bin/bash -c script`) ended with: Execute's status, the exit code, stdout, stderr. */
export interface ScriptRun {
  code: number;
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `script` as an uncacheable action through Execute (`salt` keeps each run's digest its own). */
export async function runScript(clients: KilnClients, script: string, salt: string, over: Partial<ActionSpec> = {}): Promise<ScriptRun> {
  const digest = await uploadAction(clients, { argv: ['/bin/bash', '-c', script], doNotCache: true, salt, ...over });
  const ops = await clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
  const response = responseOf(ops.at(-1)!);
  return {
    code: response.status?.code ?? 0,
    exitCode: response.result?.exitCode ?? -1,
    stdout: Buffer.from(response.result?.stdoutRaw ?? []).toString(),
    stderr: Buffer.from(response.result?.stderrRaw ?? []).toString(),
  };
}

export const stageName = (op: longrunning.Operation) => reapi.ExecutionStage.Value[metadataOf(op).stage];
