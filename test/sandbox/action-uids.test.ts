// One identity per running action, with real actions and the sandbox off:
// two actions run at once, the second learns the first's exec root and the
// pid of a process it started (through a folder both can write), and tries to
// read the one and kill the other. With a uid of its own per action (auto, as
// root) both fail; with one fixed user for all actions (the control) both
// work, so the test cannot pass vacuously.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';

const isRoot = process.getuid?.() === 0;
const cases = [
  { name: 'a uid of its own per action (auto)', actionUser: 'auto', isolated: true },
  { name: 'one fixed user for every action (the control)', actionUser: '65534:65534', isolated: false },
];

describe.skipIf(!isRoot)(`actions running at once, sandbox off${isRoot ? '' : ' (skipped: switching users needs Kiln to run as root)'}`, () => {
  describe.each(cases)('$name', ({ actionUser, isolated }) => {
    let t: TestEngine;
    let shared: string;
    beforeAll(async () => {
      t = await startTestEngine({ config: { sandbox: 'off', actionUser, concurrency: 2 } });
      shared = mkdtempSync(join(tmpdir(), 'kiln-action-uids-'));
      chmodSync(shared, 0o777);
    });
    afterAll(async () => {
      await t?.stop();
      rmSync(shared, { recursive: true, force: true });
    });

    async function run(script: string, salt: string) {
      const digest = await uploadAction(t.clients, { argv: ['/bin/sh', '-c', script], doNotCache: true, salt: `${actionUser}-${salt}`, timeoutMs: 90_000 });
      const ops = await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
      const response = responseOf(ops.at(-1)!);
      expect(response.status?.code ?? 0).toBe(0);
      return Buffer.from(response.result?.stdoutRaw ?? []).toString().split('\n').filter(Boolean);
    }

    it(`${isolated ? 'cannot' : 'can'} read another running action's exec root or kill its processes`, async () => {
      const wait = (file: string) => `i=0; while [ ! -e '${join(shared, file)}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`;
      const first = run(
        [
          'id -u',
          'echo private > secret.txt',
          `pwd > '${shared}/root.tmp' && mv '${shared}/root.tmp' '${shared}/root'`,
          'sleep 120 & victim=$!',
          `echo $victim > '${shared}/pid.tmp' && mv '${shared}/pid.tmp' '${shared}/pid'`,
          wait('done'),
          'if kill -0 $victim 2>/dev/null; then echo ALIVE; else echo GONE; fi',
        ].join('; '),
        'first',
      );
      const second = run(
        [
          'id -u',
          wait('pid'),
          `r=$(cat '${shared}/root')`,
          'cat "$r/secret.txt" 2>/dev/null',
          'ls "$r" >/dev/null 2>&1 && echo LISTED',
          `kill -9 $(cat '${shared}/pid') 2>/dev/null && echo KILLED`,
          `touch '${shared}/done'`,
        ].join('; '),
        'second',
      );
      const [a, b] = await Promise.all([first, second]);
      const [uidA, uidB] = [Number(a[0]), Number(b[0])];
      expect(uidA === uidB).toBe(!isolated);
      expect(b.slice(1)).toEqual(isolated ? [] : ['private', 'LISTED', 'KILLED']);
      expect(a.slice(1)).toEqual([isolated ? 'ALIVE' : 'GONE']);
    }, 120_000);
  });
});
