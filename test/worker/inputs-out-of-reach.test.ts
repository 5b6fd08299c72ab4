// When the runner starts actions as a user that cannot write or chmod Kiln's
// files (Runner.inputsOutOfReach: the action user), inputs hard-linked from
// the CAS cannot change, so the executor neither holds them for verified
// reads nor re-hashes them after the run; when it runs them as Kiln's own
// user it still does both. The fake runner here runs as Kiln's user either
// way and only *says* whether inputs are out of reach, so an in-place rewrite
// shows which checks ran.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, type BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { LinkedBlobVerifier } from '../../engine/store/linked-blob-verifier';
import type { PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { command, putMessage, putTree } from './tree-builder';
import { SayingRunner } from './saying-runner';

const root = mkdtempSync(join(tmpdir(), 'kiln-out-of-reach-'));
let disk: DiskBlobStore;
let store: LinkedBlobVerifier;
let seq = 0;


beforeAll(async () => {
  disk = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 1 << 30 });
  store = new LinkedBlobVerifier(disk);
});
afterAll(async () => {
  await store?.close();
  rmSync(root, { recursive: true, force: true });
});

const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });

async function prepare(argv: string[], input: BlobDigest): Promise<PreparedAction> {
  const cmd = command(argv, { environmentVariables: [{ name: 'PATH', value: '/usr/bin:/bin' }] });
  const action = reapi.Action.create({ commandDigest: wire(await putMessage(store, reapi.Command, cmd)), inputRootDigest: wire(input) });
  const actionDigest = await putMessage(store, reapi.Action, action);
  const id = `reach-${++seq}`;
  mkdirSync(join(root, 'logs'), { recursive: true });
  return { id, instance: '', actionDigest, action, command: cmd, timeoutMs: 60_000, logs: { stdout: new FileLogSink(join(root, 'logs', `${id}.out`)), stderr: new FileLogSink(join(root, 'logs', `${id}.err`)) } };
}

describe.each([
  { outOfReach: false, checks: 'holds and re-hashes' },
  { outOfReach: true, checks: 'skips the hold and the re-hash' },
])('inputs out of the action\'s reach: $outOfReach', ({ outOfReach, checks }) => {
  it(`${checks} for a hard-linked input`, async () => {
    const executor = await LocalExecutor.create({ store, buildRoot: join(root, `build-${outOfReach}`), runner: new SayingRunner(new ProcessRunner(), outOfReach) });
    try {
      const content = `shared input ${outOfReach} ${++seq}`;
      const digest = await digestOf(Buffer.from(content));
      const input = await putTree(store, { 'data.txt': content });
      const [seen, go] = ['seen', 'go'].map((n) => join(root, `${n}-${seq}`));
      // Rewrites its input in place, same size and mtime put back: only a re-hash can tell.
      const script = `m=$(stat -c %y data.txt); chmod u+w data.txt; printf '${'Y'.repeat(content.length)}' > data.txt; chmod a-w data.txt; touch -d "$m" data.txt; touch ${seen}; while [ ! -e ${go} ]; do sleep 0.05; done`;
      const done = executor.run(await prepare(['sh', '-c', script], input), new AbortController().signal);
      for (let i = 0; i < 400 && !existsSync(seen); i++) await new Promise((r) => setTimeout(r, 25));
      expect(existsSync(seen)).toBe(true);
      // Held for verified reads only where the action could have reached it.
      expect(store.isHeld(digest)).toBe(!outOfReach);
      writeFileSync(go, '');
      const outcome = await done;
      expect(outcome.result.exitCode).toBe(0);
      // Re-hashed: the change is found, the blob dropped and the result not cached; skipped: neither.
      expect(outcome.cacheable).toBe(outOfReach);
      expect(await disk.has(digest)).toBe(outOfReach);
    } finally {
      await executor.close();
    }
  }, 60_000);
});
