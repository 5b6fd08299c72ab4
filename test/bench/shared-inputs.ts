// The engine's CPU per action for actions that share hard-linked inputs
// (headers every compile reads), with and without the post-run re-hash that
// Runner.inputsOutOfReach lets the executor skip when actions run as the
// action user. In-process (LocalExecutor over the disk store and the linked
// blob verifier, the real launcher), alternating rounds; CPU of this process
// only (the actions' own processes excluded), so it stays meaningful on a
// loaded machine.
//   tsx test/bench/shared-inputs.ts [--files 200] [--kib 16] [--n 100] [--in-flight 4] [--rounds 3]
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlobDigest } from '../../engine/digest';
import type { PreparedAction } from '../../engine/execution/executor';
import { FileLogSink } from '../../engine/execution/log-sink';
import { reapi } from '../../engine/proto';
import { DiskBlobStore } from '../../engine/store/disk-store';
import { LinkedBlobVerifier } from '../../engine/store/linked-blob-verifier';
import { LocalExecutor } from '../../engine/worker/local-executor';
import { ProcessRunner } from '../../engine/worker/process-runner';
import { command, putMessage, putTree, type Tree } from '../worker/tree-builder';
import { SayingRunner } from '../worker/saying-runner';

function arg(name: string, fallback: string): number {
  const i = process.argv.indexOf(name);
  return Number(i >= 0 ? process.argv[i + 1] : fallback);
}


async function main(): Promise<void> {
  const files = arg('--files', '200');
  const kib = arg('--kib', '16');
  const n = arg('--n', '100');
  const inFlight = arg('--in-flight', '4');
  const rounds = arg('--rounds', '3');
  const root = mkdtempSync(join(tmpdir(), 'kiln-shared-inputs-'));
  const disk = await DiskBlobStore.open({ dir: join(root, 'cas'), budgetBytes: 4 * 1024 ** 3 });
  const store = new LinkedBlobVerifier(disk);
  const runner = new SayingRunner(new ProcessRunner(), false);
  const executor = await LocalExecutor.create({ store, buildRoot: join(root, 'build'), runner });
  mkdirSync(join(root, 'logs'));
  const headers: Tree = {};
  for (let i = 0; i < files; i++) headers[`h${i}.h`] = `/* header ${i} */\n`.padEnd(kib * 1024, 'x');
  const wire = (d: BlobDigest) => reapi.Digest.create({ hash: d.hash, sizeBytes: d.size });
  let seq = 0;
  const prepare = async (): Promise<PreparedAction> => {
    const id = `a${++seq}`;
    // A different command each time (nothing cached), the same headers.
    const cmd = command(['/bin/true', id], { environmentVariables: [{ name: 'PATH', value: '/usr/bin:/bin' }] });
    const input = await putTree(store, { include: headers });
    const action = reapi.Action.create({ commandDigest: wire(await putMessage(store, reapi.Command, cmd)), inputRootDigest: wire(input) });
    const actionDigest = await putMessage(store, reapi.Action, action);
    return { id, instance: '', actionDigest, action, command: cmd, timeoutMs: 60_000, logs: { stdout: new FileLogSink(join(root, 'logs', `${id}.out`)), stderr: new FileLogSink(join(root, 'logs', `${id}.err`)) } };
  };
  const burst = async (count: number) => {
    const actions = await Promise.all(Array.from({ length: count }, prepare));
    let next = 0;
    const start = process.cpuUsage();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < actions.length) {
          const out = await executor.run(actions[next++], new AbortController().signal);
          if (out.result.exitCode !== 0) throw new Error(`action failed: ${out.result.exitCode}`);
        }
      }),
    );
    const cpu = process.cpuUsage(start);
    return (cpu.user + cpu.system) / 1000 / count;
  };
  try {
    await burst(20);
    console.log(`${files} shared inputs of ${kib} KiB, ${n} actions per round, ${inFlight} in flight`);
    for (let r = 0; r < rounds; r++) {
      for (const outOfReach of r % 2 ? [true, false] : [false, true]) {
        runner.outOfReach = outOfReach;
        const ms = await burst(n);
        console.log(`round ${r + 1}: ${outOfReach ? 'out of reach (no re-hash)' : 'as Kiln\'s user (re-hash)  '}: engine ${ms.toFixed(2)} ms CPU/action (load ${loadavg()[0].toFixed(2)})`);
      }
    }
  } finally {
    await executor.close();
    await store.close();
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
