// Shared bits for the store tests: temp dirs and digests of test content.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { digestOf, type BlobDigest, type DigestFunctionName } from '../../engine/digest';

export async function tempDir(prefix = 'kiln-store-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function blob(text: string, fn: DigestFunctionName = 'sha256'): Promise<{ data: Buffer; digest: BlobDigest }> {
  const data = Buffer.from(text);
  return { data, digest: await digestOf(data, fn) };
}

export async function drain(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

export async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}
