// The platform properties the sandbox reads, and the one-line errors for bad values.
import { describe, expect, it } from 'vitest';
import { GrpcError, Status } from '../../engine/grpc/status';
import { readSandboxProperties } from '../../engine/sandbox/sandbox-properties';

describe('readSandboxProperties', () => {
  it('leaves everything unset (network off by the runner\'s default) when nothing is asked for, and ignores other names', () => {
    expect(readSandboxProperties({ OSFamily: 'Linux', 'container-image': 'x' })).toEqual({ optOut: false });
    expect(readSandboxProperties(undefined)).toEqual({ optOut: false });
  });

  it('reads network, memory, cpus and sandbox', () => {
    expect(readSandboxProperties({ network: 'on', memory: '2GiB', cpus: '1.5' })).toEqual({ network: true, memoryBytes: 2 * 1024 ** 3, cpus: 1.5, optOut: false });
    expect(readSandboxProperties({ network: 'off' }).network).toBe(false);
    expect(readSandboxProperties({ sandbox: 'none' }).optOut).toBe(true);
    expect(readSandboxProperties({ sandbox: 'on' }).optOut).toBe(false);
  });

  it.each([
    [{ network: 'maybe' }, /platform property network: "maybe" is not a switch; use on or off/],
    [{ memory: 'lots' }, /platform property memory: "lots" is not a size/],
    [{ cpus: '-1' }, /platform property cpus: "-1" is not a number of cores/],
    [{ cpus: '0' }, /platform property cpus/],
    [{ sandbox: 'gvisor' }, /platform property sandbox: "gvisor" is not a sandbox; use on or none/],
  ])('refuses %o as INVALID_ARGUMENT naming the property', (platform, message) => {
    let err: unknown;
    try {
      readSandboxProperties(platform);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(GrpcError);
    expect((err as GrpcError).code).toBe(Status.INVALID_ARGUMENT);
    expect((err as Error).message).toMatch(message);
  });
});
