// Ordinary build actions still work in the sandbox: the shell, coreutils and
// gcc (what the Bazel fixtures use), with inputs, outputs and a private /tmp.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction, type ActionSpec } from '../execution/harness';

const probe = probeBubblewrap({ dataDir: '/nonexistent-kiln' });
const hasGcc = existsSync('/usr/bin/gcc');

describe.skipIf(!probe.available)(`ordinary actions in the sandbox${probe.available ? '' : ` (skipped: ${probe.reason})`}`, () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await startTestEngine({ config: { sandbox: 'on' } });
  });
  afterAll(() => t?.stop());

  async function run(spec: ActionSpec) {
    const digest = await uploadAction(t.clients, spec);
    const ops = await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    return {
      result: response.result!,
      stdout: Buffer.from(response.result?.stdoutRaw ?? []).toString(),
      stderr: Buffer.from(response.result?.stderrRaw ?? []).toString(),
    };
  }

  it('runs shell and coreutils over its inputs, writes outputs and uses /tmp', async () => {
    const { result, stderr } = await run({
      argv: ['/bin/sh', '-c', 'mkdir -p out/sub && sort words.txt > /tmp/sorted && uniq -c /tmp/sorted > out/sub/counts.txt && sha256sum words.txt | cut -c1-8'],
      inputs: { 'words.txt': 'b\na\nb\n' },
      outputPaths: ['out/sub/counts.txt'],
    });
    expect(stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(result.outputFiles.map((f) => f.path)).toEqual(['out/sub/counts.txt']);
  });

  it.skipIf(!hasGcc)(`compiles and runs a C program with gcc${hasGcc ? '' : ' (skipped: /usr/bin/gcc is not installed)'}`, async () => {
    const { result, stdout, stderr } = await run({
      argv: ['/bin/sh', '-c', 'gcc -O1 -o hello hello.c && ./hello'],
      inputs: { 'hello.c': '#include <stdio.h>\nint main(void) { puts("hello from the sandbox"); return 0; }\n' },
      outputPaths: ['hello'],
    });
    expect(stderr).toBe('');
    expect(result.exitCode).toBe(0);
    expect(stdout).toBe('hello from the sandbox\n');
    expect(result.outputFiles.map((f) => [f.path, f.isExecutable])).toEqual([['hello', true]]);
  });

  it('keeps a PWD the Command sets (Bazel sets PWD=/proc/self/cwd), and no other variable', async () => {
    const { result, stdout } = await run({ argv: ['/usr/bin/env'], env: { PWD: '/proc/self/cwd', KILN_X: 'y' } });
    expect(result.exitCode).toBe(0);
    expect(stdout.split('\n').filter(Boolean).sort()).toEqual(['KILN_X=y', 'PATH=/usr/bin:/bin', 'PWD=/proc/self/cwd']);
  });

  it('reports a program that is not there as exit 127 with the reason in stderr', async () => {
    const { result, stderr } = await run({ argv: ['no-such-compiler', '-c', 'x.c'] });
    expect(result.exitCode).toBe(127);
    expect(stderr).toMatch(/no-such-compiler/);
  });

  it('ends by its own signals as it would outside (it is not the namespace\'s PID 1, which ignores them)', async () => {
    const term = await run({ argv: ['/bin/bash', '-c', 'kill -TERM $$; echo survived'] });
    expect([term.result.exitCode, term.stdout]).toEqual([143, '']);
    const abort = await run({ argv: ['/bin/bash', '-c', 'kill -ABRT $$; echo survived'] });
    expect([abort.result.exitCode, abort.stdout]).toEqual([134, '']);
  });

  it('honours the sandbox\'s platform properties and lists the ones nothing reads in the action\'s detail', async () => {
    const digest = await uploadAction(t.clients, { argv: ['/bin/true'], platform: { memory: '1GiB', cpus: '1', memroy: '2GiB', OSFamily: 'Linux' }, salt: 'ignored-props' });
    const ops = await t.clients.execution.execute.collect(executeRequest(digest));
    expect(responseOf(ops.at(-1)!).result?.exitCode).toBe(0);
    const id = ops.at(-1)!.name;
    const detail = t.engine.history.list().items.map((s) => t.engine.history.get(s.id)).find((d) => d && id.endsWith(d.id));
    expect(detail?.platform).toMatchObject({ memroy: '2GiB', OSFamily: 'Linux' });
    expect(detail?.ignoredPlatform).toEqual(['OSFamily', 'memroy']);
  });

  it('refuses an action that asks to run unsandboxed where the configuration sandboxes every action', async () => {
    const digest = await uploadAction(t.clients, { argv: ['/bin/true'], platform: { sandbox: 'none' } });
    const ops = await t.clients.execution.execute.collect(executeRequest(digest));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code).toBe(9); // FAILED_PRECONDITION
    expect(response.status?.message).toMatch(/sandbox=none is not allowed here/);
  });
});
