// Capabilities service: what this server implements, so clients pick digest
// functions, batch sizes and whether to ask for remote execution.
import type * as grpc from '@grpc/grpc-js';
import { DIGEST_FUNCTIONS, SUPPORTED_DIGEST_FUNCTIONS } from '../digest';
import { reapi, semver } from '../proto';
import { unary } from '../grpc/status';
import { validateInstanceName } from './resource-names';

export interface CapabilitiesOptions {
  maxBatchTotalSizeBytes: number;
  /** Read on every call: execution can be switched on and off while running. */
  executionEnabled: () => boolean;
}

/**
 * 2.3 is what the cache services honour in full: digest_function on every
 * request, function-named ByteStream resources, and blake3.
 */
export const LOW_API_VERSION = { major: 2, minor: 0 };
export const HIGH_API_VERSION = { major: 2, minor: 3 };

export function serverCapabilities(opts: CapabilitiesOptions): reapi.ServerCapabilities {
  const digestFunctions = SUPPORTED_DIGEST_FUNCTIONS.map((n) => DIGEST_FUNCTIONS[n].value);
  return reapi.ServerCapabilities.create({
    cacheCapabilities: {
      digestFunctions,
      actionCacheUpdateCapabilities: { updateEnabled: true },
      maxBatchTotalSizeBytes: opts.maxBatchTotalSizeBytes,
      symlinkAbsolutePathStrategy: reapi.SymlinkAbsolutePathStrategy.Value.DISALLOWED,
      // zstd for ByteStream compressed-blobs and for batch uploads (batch reads follow acceptable_compressors).
      supportedCompressors: [reapi.Compressor.Value.ZSTD],
      supportedBatchUpdateCompressors: [reapi.Compressor.Value.ZSTD],
    },
    executionCapabilities: {
      digestFunction: reapi.DigestFunction.Value.SHA256,
      digestFunctions,
      execEnabled: opts.executionEnabled(),
    },
    deprecatedApiVersion: semver.SemVer.create(LOW_API_VERSION),
    lowApiVersion: semver.SemVer.create(LOW_API_VERSION),
    highApiVersion: semver.SemVer.create(HIGH_API_VERSION),
  });
}

export function createCapabilitiesService(opts: CapabilitiesOptions): grpc.UntypedServiceImplementation {
  return {
    getCapabilities: unary<reapi.GetCapabilitiesRequest, reapi.ServerCapabilities>(async (req) => {
      validateInstanceName(req.instanceName ?? '');
      return serverCapabilities(opts);
    }),
  };
}
