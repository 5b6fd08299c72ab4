// A blob hard-linked into a running action can be rewritten in place (same size,
// mtime put back) before the action's own check drops it. Until then the store
// must not serve it, another action must not copy it, and an action that linked it
// after the change must not be cached.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type BlobDigest } from '../../engine/digest';
import { GrpcError, Status } from '../../engine/grpc/status';
import { reapi } from '../../engine/proto';
import { BlobNotFoundError } from '../../engine/store/blob-store';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { LinkedBlobVerifier } from '../../engine/store/linked-blob-verifier';
import type { ExecutionOutcome, PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { command, putMessage, putTree, type Tree } from './tree-builder';

const root = mkdtempSync(join(tmpdir(), 'kiln-linked-serve-'));
let disk: DiskBlobStore;
let store: LinkedBlobVerifier;
let executor: LocalExecutor;
let seq = 0;

beforeAll(async () => {
  disk = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 1 << 30 });
  store = new LinkedBlobVerifier(disk);
  executor = await LocalExecutor.create({ store, buildRoot: join(root, 'build'), runner: new ProcessRunner() });
});
afterAll(async () => {
  await executor?.close();
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

const PATH = [{ name: 'PATH', value: '/usr/bin:/bin' }];
const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });

async function prepare(argv: string[], input: BlobDigest): Promise<PreparedAction> {
  const cmd = command(argv, { environmentVariables: PATH });
  const action = reapi.Action.create({ commandDigest: wire(await putMessage(store, reapi.Command, cmd)), inputRootDigest: wire(input) });
  const actionDigest = await putMessage(store, reapi.Action, action);
  const id = `linked-${++seq}`;
  mkdirSync(join(root, 'logs'), { recursive: true });
  return { id, instance: '', actionDigest, action, command: cmd, timeoutMs: 60_000, logs: { stdout: new FileLogSink(join(root, 'logs', `${id}.out`)), stderr: new FileLogSink(join(root, 'logs', `${id}.err`)) } };
}

/** Starts an action and resolves once its process runs. */
async function start(a: PreparedAction): Promise<{ done: Promise<ExecutionOutcome> }> {
  let running!: () => void;
  const started = new Promise<void>((res) => (running = res));
  const done = executor.run(a, new AbortController().signal, { onStage: (s) => s === 'running' && running() });
  await Promise.race([started, done]);
  return { done };
}

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((res) => setTimeout(res, 25));
}

/** An action that rewrites data.txt in place (same size, mtime put back), says so, and waits for `go`. */
async function startCorrupter(input: BlobDigest, evil: string) {
  const [changed, go] = ['changed', 'go'].map((n) => join(root, `${n}-${++seq}`));
  const a = await start(
    await prepare(['sh', '-c', `m=$(stat -c %y data.txt); printf ${evil} > data.txt; touch -d "$m" data.txt; touch ${changed}; while [ ! -e ${go} ]; do sleep 0.05; done`], input),
  );
  await waitFor(() => existsSync(changed));
  return { done: a.done, release: () => writeFileSync(go, '') };
}

const tree = (content: string, extra: Tree = {}) => putTree(store, { 'data.txt': content, ...extra });

describe('a blob changed in place through a running action\'s hard link', () => {
  it('is never served while the action runs: reads verify it, drop it and answer not found', async () => {
    const content = `precious ${++seq}`;
    const d = await digestOf(Buffer.from(content));
    const a = await startCorrupter(await tree(content), 'X'.repeat(content.length));

    await expect(store.readAll(d)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.read(d)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.has(d)).toBe(false);

    a.release();
    expect(await a.done).toMatchObject({ cacheable: false });
    expect(store.isHeld(d)).toBe(false);
  });

  it('is served, whole and in ranges, while held and unchanged', async () => {
    const content = `intact ${++seq}`;
    const d = await digestOf(Buffer.from(content));
    const go = join(root, `go-${++seq}`);
    const a = await start(await prepare(['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done`], await tree(content)));
    expect(store.isHeld(d)).toBe(true);
    expect((await store.readAll(d)).toString()).toBe(content);
    const chunks: Buffer[] = [];
    for await (const c of await store.read(d, { offset: 2, limit: 3 })) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe(content.slice(2, 5));
    writeFileSync(go, '');
    expect(await a.done).toMatchObject({ cacheable: true });
  });

  it('makes an action that linked it after the change, and finished first, not cacheable', async () => {
    const content = `shared ${++seq}`;
    const input = await tree(content);
    const a = await startCorrupter(input, 'Y'.repeat(content.length));
    // B's own before/after look the same: only the re-hash of an inode it shared at link time sees the change.
    const b = await executor.run(await prepare(['cat', 'data.txt'], input), new AbortController().signal);
    expect(b).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) data.txt' });
    a.release();
    await a.done;
  });

  it('is not copied into another action as an executable: that action is told the blob is missing', async () => {
    const content = `#!/bin/sh\necho ok ${++seq}\n`;
    const d = await digestOf(Buffer.from(content));
    // The same blob as a plain file (linked) and as an executable (copied) in the second action.
    const a = await startCorrupter(await tree(content), 'Z'.repeat(content.length));
    // Built by hand: storing the blob again would rename a fresh, intact inode into the store.
    const bInput = await putMessage(
      store,
      reapi.Directory,
      reapi.Directory.create({ files: [{ name: 'run.sh', digest: wire(d), isExecutable: true }] }),
    );
    let err: unknown;
    try {
      await executor.run(await prepare(['./run.sh'], bInput), new AbortController().signal);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(Status.FAILED_PRECONDITION);
    expect((err as GrpcError).message).toContain(d.hash);
    a.release();
    await a.done;
  });
});
