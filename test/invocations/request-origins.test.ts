// RequestMetadata is read in a wrapper around the handlers (not an interceptor):
// every handler kind reports its call's origin once, before it runs, and the
// call goes on whatever the listener does.
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it, vi } from 'vitest';
import { ByteStreamService, REQUEST_METADATA_HEADER } from '../../engine/grpc/services';
import { observeRequestOrigins } from '../../engine/invocations/request-metadata';
import { encode, reapi } from '../../engine/proto';

function metadataFrom(tool: string): grpc.Metadata {
  const m = new grpc.Metadata();
  const meta = reapi.RequestMetadata.create({ toolInvocationId: 'inv-1', actionMnemonic: 'CppCompile', toolDetails: { toolName: tool } });
  m.set(REQUEST_METADATA_HEADER, encode(reapi.RequestMetadata, meta));
  return m;
}

describe('observeRequestOrigins', () => {
  it('reports each call’s origin with its method path, then runs the handler with the same call', async () => {
    const seen: unknown[] = [];
    const read = vi.fn(async () => 'read done');
    const write = vi.fn((_call: unknown, cb: (e: null, r: string) => void) => cb(null, 'written'));
    const impl = observeRequestOrigins(ByteStreamService as unknown as grpc.ServiceDefinition, { read, write }, (method, origin) => seen.push([method, origin]));

    const readCall = { metadata: metadataFrom('bazel') };
    await expect((impl.read as (c: unknown) => Promise<string>)(readCall)).resolves.toBe('read done');
    expect(read).toHaveBeenCalledWith(readCall, undefined);
    const cb = vi.fn();
    (impl.write as (c: unknown, cb: unknown) => void)({ metadata: metadataFrom('bazel') }, cb);
    expect(cb).toHaveBeenCalledWith(null, 'written');
    expect(seen).toEqual([
      ['/google.bytestream.ByteStream/Read', { toolInvocationId: 'inv-1', actionMnemonic: 'CppCompile', toolName: 'bazel' }],
      ['/google.bytestream.ByteStream/Write', { toolInvocationId: 'inv-1', actionMnemonic: 'CppCompile', toolName: 'bazel' }],
    ]);
    expect(impl.queryWriteStatus).toBeUndefined(); // not implemented stays not implemented
  });

  it('says nothing for calls without RequestMetadata or with garbage in it, and a failing listener does not fail the call', async () => {
    const listener = vi.fn(() => {
      throw new Error('listener broke');
    });
    const read = vi.fn(async () => 'ok');
    const impl = observeRequestOrigins(ByteStreamService as unknown as grpc.ServiceDefinition, { read }, listener);
    const garbage = new grpc.Metadata();
    garbage.set(REQUEST_METADATA_HEADER, Buffer.from([0xff, 0xff, 0xff]));
    await (impl.read as (c: unknown) => Promise<string>)({ metadata: new grpc.Metadata() });
    await (impl.read as (c: unknown) => Promise<string>)({ metadata: garbage });
    expect(listener).not.toHaveBeenCalled();
    const error = vi.spyOn(console, 'error').mockImplementation(() => {});
    await expect((impl.read as (c: unknown) => Promise<string>)({ metadata: metadataFrom('bazel') })).resolves.toBe('ok');
    expect(listener).toHaveBeenCalledTimes(1);
    expect(error).toHaveBeenCalled();
    error.mockRestore();
  });
});
