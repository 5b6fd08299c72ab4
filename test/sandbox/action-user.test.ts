// Actions as a user of their own (action-user), with the sandbox off and on:
// a real action cannot write an input hard-linked from the CAS, nor read or
// write Kiln's data folder (CAS, action cache, tokens, http-token), while its
// outputs are still collected. Each attack is also run against an engine with
// action-user: none and the sandbox off, where it must succeed, so none of
// these can pass vacuously. Switching users needs Kiln to run as root.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SandboxMode } from '../../engine/common/api-types';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { DEFAULT_UID_SPAN } from '../../engine/sandbox/uid-claims';
import { buildFolderPath } from '../../engine/sandbox/build-folder';
import { entryPath } from '../../engine/store/cas-layout';
import { uploadBlob } from '../helpers/blobs';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction, type ActionSpec } from '../execution/harness';

const isRoot = process.getuid?.() === 0;
const probe = probeBubblewrap({ dataDir: '/nonexistent-kiln' });
const cases: { name: string; sandbox: SandboxMode; actionUser: string; protectedFromIt: boolean; skip?: string }[] = [
  { name: 'sandbox off, action user', sandbox: 'off', actionUser: 'auto', protectedFromIt: true },
  { name: 'sandbox on, action user', sandbox: 'on', actionUser: 'auto', protectedFromIt: true, skip: probe.available ? undefined : probe.reason },
  { name: 'sandbox off, action-user none (the control)', sandbox: 'off', actionUser: 'none', protectedFromIt: false },
];

describe.skipIf(!isRoot)(`actions as the action user${isRoot ? '' : ' (skipped: switching users needs Kiln to run as root)'}`, () => {
  describe.each(cases)('$name', ({ sandbox, actionUser, protectedFromIt, skip }) => {
    let t: TestEngine;
    let seq = 0;
    beforeAll(async () => {
      if (skip) return;
      t = await startTestEngine({ config: { sandbox, actionUser } });
    });
    afterAll(() => t?.stop());
    /** Where this engine's exec roots are: a build folder outside the data folder when there is an action user. */
    const execRoots = () => (protectedFromIt ? buildFolderPath(t.dataDir, 0) : join(t.dataDir, 'build'));

    async function run(script: string, over: Partial<ActionSpec> = {}) {
      const digest = await uploadAction(t.clients, { argv: ['/bin/bash', '-c', script], doNotCache: true, salt: `${sandbox}-${actionUser}-${++seq}`, ...over });
      const ops = await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }));
      const response = responseOf(ops.at(-1)!);
      expect(response.status?.code ?? 0).toBe(0);
      return { result: response.result!, stdout: Buffer.from(response.result?.stdoutRaw ?? []).toString() };
    }

    it.skipIf(!!skip)(`runs as ${protectedFromIt ? 'a uid of its own' : 'root'}, and its outputs are collected${skip ? ` (skipped: ${skip})` : ''}`, async () => {
      const { result, stdout } = await run('id -u; id -g; mkdir -p out/dir && echo made > out/dir/file && echo top > out.txt', {
        outputPaths: ['out.txt', 'out/dir/file'],
      });
      expect(result.exitCode).toBe(0);
      const [uid, gid] = stdout.split('\n').filter(Boolean).map(Number);
      if (protectedFromIt) {
        expect(uid).toBeGreaterThanOrEqual(DEFAULT_UID_SPAN.first);
        expect(uid).toBeLessThanOrEqual(DEFAULT_UID_SPAN.last);
        expect(gid).toBe(uid);
      } else expect([uid, gid]).toEqual([0, 0]);
      expect(result.outputFiles.map((f) => f.path).sort()).toEqual(['out.txt', 'out/dir/file']);
      // GET /api/status names who actions run as.
      const res = await fetch(`${t.engine.httpUrl}api/status`, { headers: { authorization: `Bearer ${t.engine.httpToken}` } });
      const status = (await res.json()) as { sandbox?: { actionUser?: string } };
      expect(status.sandbox?.actionUser).toMatch(protectedFromIt ? /^a uid of its own per action \(a block of 256 in 2000000000-2001048575\)$/ : /^Kiln's own user: action-user: none/);
    });

    it.skipIf(!!skip)(`${protectedFromIt ? 'cannot' : 'can'} write an input hard-linked from the CAS${skip ? ` (skipped: ${skip})` : ''}`, async () => {
      const content = `an input to keep ${sandbox}-${actionUser}`;
      const digest = await uploadBlob(t.clients, Buffer.from(content));
      const blobPath = entryPath(join(t.dataDir, 'cas'), digest);
      const { stdout } = await run('chmod u+w in.txt 2>/dev/null; echo changed >> in.txt 2>/dev/null && echo WROTE; true', { inputs: { 'in.txt': content } });
      expect(stdout.trim()).toBe(protectedFromIt ? '' : 'WROTE');
      // Protected, the blob is untouched and still in the store; unprotected, the tamper check dropped it.
      expect(existsSync(blobPath)).toBe(protectedFromIt);
      if (protectedFromIt) expect((await t.engine.store.readAll(digest)).toString()).toBe(content);
    });

    it.skipIf(!!skip)(`${protectedFromIt ? 'cannot' : 'can'} read or write Kiln's data folder: CAS, action cache, tokens, http-token${skip ? ` (skipped: ${skip})` : ''}`, async () => {
      const digest = await uploadBlob(t.clients, Buffer.from(`a blob nobody gave the action ${sandbox}-${actionUser}`));
      const blobPath = entryPath(join(t.dataDir, 'cas'), digest);
      // A small blob's file follows its acknowledgement once the puts pause for a second (store/logged-files.ts): attack the file itself.
      await vi.waitFor(() => expect(existsSync(blobPath)).toBe(true), { timeout: 5_000 });
      const secrets = ['http-token', 'tokens.json'].map((f) => join(t.dataDir, f)).filter((p) => existsSync(p));
      expect(secrets.length).toBeGreaterThan(0);
      const reads = [blobPath, ...secrets];
      const acFile = join(t.dataDir, 'ac', 'forged-entry');
      const script = [
        ...reads.map((p) => `cat '${p}' >/dev/null 2>&1 && echo "READ ${p}"`),
        `ls '${t.dataDir}' >/dev/null 2>&1 && echo LISTED`,
        `ls '${execRoots()}' >/dev/null 2>&1 && echo LISTED build`,
        `echo corrupted > '${blobPath}' 2>/dev/null && echo WROTE cas`,
        `echo forged > '${acFile}' 2>/dev/null && echo WROTE ac`,
        'true',
      ].join('; ');
      const { stdout } = await run(script);
      // Sandboxed, the data folder is an empty skeleton around the exec root (listing it shows nothing of Kiln's).
      const did = stdout.split('\n').filter((l) => l && !(sandbox === 'on' && l.startsWith('LISTED')));
      expect(did).toEqual(protectedFromIt ? [] : [...reads.map((p) => `READ ${p}`), 'LISTED', 'LISTED build', 'WROTE cas', 'WROTE ac']);
      if (protectedFromIt) {
        expect(existsSync(acFile)).toBe(false);
        // Closed whole: the exec roots are in a build folder of their own, which others may pass through but not list.
        expect(statSync(t.dataDir).mode & 0o777).toBe(0o700);
        expect(statSync(execRoots()).mode & 0o777).toBe(0o711);
        expect(execRoots().startsWith(t.dataDir)).toBe(false);
      }
    });
  });
});
