// WASI through the whole engine: an Execute call whose platform says
// OSFamily=wasi runs its .wasm argv[0] in the WASI runner (not the process
// runner), and /api/status advertises the platform.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIGEST_FUNCTIONS, toBlobDigest } from '../../engine/digest';
import { uploadBlob } from '../helpers/blobs';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { executeRequest, responseOf, uploadAction } from '../execution/harness';
import { PROGRAMS, compileWasi, removeWasiBuilds, toolchain } from './wasi-toolchain';

const title = toolchain.ok ? 'WASI actions through Execute' : `WASI actions through Execute (skipped: ${toolchain.reason})`;

describe.skipIf(!toolchain.ok)(title, () => {
  let t: TestEngine;
  let copy: Buffer;
  let talk: Buffer;
  beforeAll(async () => {
    copy = readFileSync(compileWasi('copy', PROGRAMS.copy));
    talk = readFileSync(compileWasi('talk', PROGRAMS.talk));
    t = await startTestEngine();
  }, 120_000);
  afterAll(async () => {
    await t?.stop();
    removeWasiBuilds();
  });

  it('routes OSFamily=wasi to the WASI runner and collects its outputs', async () => {
    const digest = await uploadAction(t.clients, {
      argv: ['copy.wasm', 'in.txt', 'out.txt'],
      inputs: { 'copy.wasm': copy, 'in.txt': 'through the engine\n' },
      outputPaths: ['out.txt'],
      platform: { OSFamily: 'wasi' },
    });
    const ops = await t.clients.execution.execute.collect(executeRequest(digest));
    const response = responseOf(ops.at(-1)!);
    expect(response.status?.code ?? 0).toBe(0);
    expect(response.result?.exitCode).toBe(0);
    const [file] = response.result!.outputFiles;
    expect(file.path).toBe('out.txt');
    expect((await t.engine.store.readAll(toBlobDigest(file.digest, DIGEST_FUNCTIONS.sha256))).toString()).toBe('through the engine\n');
  });

  it('inlines the module stdout and stderr like any action', async () => {
    const digest = await uploadAction(t.clients, { argv: ['talk.wasm', 'x'], inputs: { 'talk.wasm': talk }, platform: { OSFamily: 'wasi' }, env: { GREETING: 'hi' } });
    const response = responseOf((await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true, inlineStderr: true }))).at(-1)!);
    expect(response.result?.exitCode).toBe(2);
    expect(Buffer.from(response.result!.stdoutRaw).toString()).toBe('out: x\nGREETING=hi\n');
    expect(Buffer.from(response.result!.stderrRaw).toString()).toBe('to stderr\n');
  });

  it('without the platform property the same argv goes to the process runner, which cannot run a .wasm', async () => {
    const digest = await uploadAction(t.clients, { argv: ['talk.wasm'], inputs: { 'talk.wasm': talk }, salt: 'no-platform' });
    const response = responseOf((await t.clients.execution.execute.collect(executeRequest(digest, { inlineStderr: true }))).at(-1)!);
    // The WASI runner would have exited 1 (one argument); the process runner finds no program "talk.wasm" on PATH.
    expect(response.result?.exitCode).toBe(127);
    expect(Buffer.from(response.result!.stderrRaw).toString()).toMatch(/could not start "talk\.wasm"/);
  });

  it('tells the user about a missing module on the action stderr', async () => {
    const digest = await uploadAction(t.clients, { argv: ['tool.wasm'], platform: { OSFamily: 'wasi' } });
    const response = responseOf((await t.clients.execution.execute.collect(executeRequest(digest, { inlineStderr: true }))).at(-1)!);
    expect(response.result?.exitCode).toBe(127);
    expect(Buffer.from(response.result!.stderrRaw).toString()).toMatch(/no module tool\.wasm in the input root/);
  });

  it('runs a module named by its CAS digest (blobs/{hash}/{size}) that is not in the input root', async () => {
    const blob = await uploadBlob(t.clients, talk);
    const digest = await uploadAction(t.clients, { argv: [`blobs/${blob.hash}/${blob.size}`, 'from', 'cas'], platform: { OSFamily: 'wasi' } });
    const response = responseOf((await t.clients.execution.execute.collect(executeRequest(digest, { inlineStdout: true }))).at(-1)!);
    expect(response.result?.exitCode).toBe(3);
    expect(Buffer.from(response.result!.stdoutRaw).toString()).toBe('out: from cas\nGREETING=(unset)\n');

    const absent = 'ab'.repeat(32);
    const missing = await uploadAction(t.clients, { argv: [`blobs/${absent}/1234`], platform: { OSFamily: 'wasi' } });
    const failed = responseOf((await t.clients.execution.execute.collect(executeRequest(missing, { inlineStderr: true }))).at(-1)!);
    expect(failed.result?.exitCode).toBe(127);
    expect(Buffer.from(failed.result!.stderrRaw).toString()).toMatch(/no module blobs\/(ab)+\/1234 in the input root or the CAS/);
  });

  it('a memory property that is not a size is INVALID_ARGUMENT naming it', async () => {
    const digest = await uploadAction(t.clients, { argv: ['talk.wasm'], inputs: { 'talk.wasm': talk }, platform: { OSFamily: 'wasi', memory: 'plenty' } });
    const response = responseOf((await t.clients.execution.execute.collect(executeRequest(digest))).at(-1)!);
    expect(response.status?.code).toBe(3);
    expect(response.status?.message).toMatch(/memory="plenty"/);
  });

  it('advertises the wasi platform in /api/status', async () => {
    const status = await (await fetch(`${t.engine.httpUrl}api/status`)).json();
    expect(status.platforms).toEqual([
      { properties: {}, runner: 'process' },
      { properties: { OSFamily: 'wasi' }, runner: 'wasi' },
    ]);
  });
});
