// CreateLogStream's parent becomes part of resource names other tools read and
// write: it must be a plain relative name, with no "." or ".." to play with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { logstream } from '../../engine/proto';
import { Status, grpcError, startTestEngine, type TestEngine, type grpc } from '../helpers';

let t: TestEngine;
let create: (parent: string) => Promise<logstream.LogStream>;
beforeAll(async () => {
  t = await startTestEngine();
  const raw = t.clients.raw.LogStream as unknown as {
    createLogStream(req: { parent: string }, cb: (e: grpc.ServiceError | null, r?: logstream.LogStream) => void): void;
  };
  create = (parent) => new Promise((resolve, reject) => raw.createLogStream({ parent }, (e, r) => (e ? reject(e) : resolve(r!))));
});
afterAll(async () => {
  await t?.stop();
});

describe('CreateLogStream parent', () => {
  it.each(['..', 'a/..', '../x', 'a/./b', 'a//b', '/a', 'a/', 'a/\0/b'])('refuses %j with INVALID_ARGUMENT', async (parent) => {
    const err = await grpcError(create(parent));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/parent/);
  });

  it('still takes plain names and the empty parent', async () => {
    expect((await create('tools/ci')).name).toMatch(/^tools\/ci\/logstreams\//);
    expect((await create('')).name).toMatch(/^logstreams\//);
  });
});
