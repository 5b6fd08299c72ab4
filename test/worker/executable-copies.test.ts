// Executable inputs are hard links to one shared read-only executable copy per
// blob, not a copy per action; the store's own file stays 0444, and an action
// that changes its executable input loses that copy, never the blob.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { DiskBlobStore } from '../../engine/store/disk-store';
import type { PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import { ExecutableCopies } from '../../engine/worker/executable-copies';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { command, putMessage, putTree } from './tree-builder';

const root = mkdtempSync(join(tmpdir(), 'kiln-exec-copies-'));
let store: DiskBlobStore;
let executor: LocalExecutor;
let seq = 0;

beforeAll(async () => {
  store = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 1 << 30 });
  executor = await LocalExecutor.create({ store, buildRoot: join(root, 'build'), runner: new ProcessRunner() });
});
afterAll(async () => {
  await executor?.close();
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

const PATH = [{ name: 'PATH', value: '/usr/bin:/bin' }];
const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });

async function run(argv: string[], input: BlobDigest) {
  const cmd = command(argv, { environmentVariables: PATH, outputPaths: ['out.txt'] });
  const action = reapi.Action.create({ commandDigest: wire(await putMessage(store, reapi.Command, cmd)), inputRootDigest: wire(input) });
  const id = `xcopy-${++seq}`;
  mkdirSync(join(root, 'logs'), { recursive: true });
  const prepared: PreparedAction = {
    id,
    instance: '',
    actionDigest: await putMessage(store, reapi.Action, action),
    action,
    command: cmd,
    timeoutMs: 60_000,
    logs: { stdout: new FileLogSink(join(root, 'logs', `${id}.out`)), stderr: new FileLogSink(join(root, 'logs', `${id}.err`)) },
  };
  const outcome = await executor.run(prepared, new AbortController().signal);
  const out = outcome.result.outputFiles.find((f) => f.path === 'out.txt');
  const text = out ? (await store.readAll({ fn: 'sha256', hash: out.digest!.hash!, size: Number(out.digest!.sizeBytes) })).toString() : '';
  return { outcome, text };
}

describe('executable inputs', () => {
  it('are hard links to one executable copy shared by actions, and the store keeps its file read-only', async () => {
    const n = ++seq;
    const script = `#!/bin/sh\necho hello ${n}\n`;
    const input = await putTree(store, { 'run.sh': { content: script, executable: true } });
    // Inode, link count and mode of the input as the action sees it, and it runs.
    const probe = ['sh', '-c', 'stat -c "%i %h %a" run.sh > out.txt && ./run.sh >> out.txt'];
    const a = await run(probe, input);
    const b = await run(probe, input);
    expect(a.outcome.result.exitCode).toBe(0);
    const [inoA, linksA, modeA, ...restA] = a.text.split(/\s+/);
    const [inoB, , modeB] = b.text.split(/\s+/);
    expect(modeA).toBe('555');
    expect(modeB).toBe('555');
    expect(inoB).toBe(inoA); // the same copy, linked again
    expect(Number(linksA)).toBeGreaterThanOrEqual(2); // the shared copy and this exec root's link
    expect(restA.join(' ').trim()).toBe(`hello ${n}`);

    const blob = await digestOf(Buffer.from(script));
    const storeFile = await store.localPath(blob);
    expect(statSync(storeFile!).mode & 0o777).toBe(0o444);
    expect(String(statSync(storeFile!).ino)).not.toBe(inoA);
  });

  it('changed by an action: that action is not cacheable, the copy is dropped, the blob stays intact', async () => {
    const n = ++seq;
    const script = `#!/bin/sh\necho intact ${n}\n`;
    const blob = await digestOf(Buffer.from(script));
    const input = await putTree(store, { 'run.sh': { content: script, executable: true } });
    // Runs as Kiln's own user here (ProcessRunner), so it can make its link writable and rewrite it.
    const evil = await run(['sh', '-c', 'chmod u+w run.sh && printf "#!/bin/sh\\necho evil\\n" > run.sh && ./run.sh > out.txt'], input);
    expect(evil.text.trim()).toBe('evil');
    expect(evil.outcome).toMatchObject({ cacheable: false, notCacheableReason: 'the action modified its input(s) run.sh' });

    expect((await store.readAll(blob)).toString()).toBe(script);
    const after = await run(['sh', '-c', './run.sh > out.txt'], input);
    expect(after.text.trim()).toBe(`intact ${n}`);
    expect(after.outcome.cacheable).toBe(true);
  });
});

describe('ExecutableCopies', () => {
  const blob = (n: number): BlobDigest => ({ fn: 'sha256', hash: String(n).padStart(64, '0'), size: 1 });
  const writer = (calls: string[]) => async (d: BlobDigest, to: string) => {
    calls.push(d.hash);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(to, 'x');
  };

  it('makes one copy for concurrent requests of a blob, executable and read-only', async () => {
    const copies = new ExecutableCopies(join(root, 'unit-1'));
    const calls: string[] = [];
    const [p1, p2] = await Promise.all([copies.pathFor(blob(1), writer(calls)), copies.pathFor(blob(1), writer(calls))]);
    expect(p1).toBe(p2);
    expect(calls).toHaveLength(1);
    expect(statSync(p1).mode & 0o777).toBe(0o555);
    await copies.clear();
    expect(existsSync(join(root, 'unit-1'))).toBe(false);
  });

  it('keeps at most its bound, removing the least recently used copy', async () => {
    const dir = join(root, 'unit-2');
    const copies = new ExecutableCopies(dir, 2);
    const calls: string[] = [];
    const first = await copies.pathFor(blob(1), writer(calls));
    await copies.pathFor(blob(2), writer(calls));
    await copies.pathFor(blob(1), writer(calls)); // used again: now the most recent
    await copies.pathFor(blob(3), writer(calls)); // pushes out blob 2
    expect(calls).toHaveLength(3);
    expect(existsSync(first)).toBe(true);
    expect(readdirSync(dir)).toHaveLength(2);
  });

  it('leaves nothing behind when a copy fails, and tries again next time', async () => {
    const dir = join(root, 'unit-3');
    const copies = new ExecutableCopies(dir);
    const failing = async (_d: BlobDigest, to: string) => {
      const { writeFile } = await import('node:fs/promises');
      await writeFile(to, 'partial');
      throw new Error('disk gone');
    };
    await expect(copies.pathFor(blob(4), failing)).rejects.toThrow('disk gone');
    expect(readdirSync(dir)).toEqual([]);
    const calls: string[] = [];
    await copies.pathFor(blob(4), writer(calls));
    expect(calls).toHaveLength(1);
  });
});
