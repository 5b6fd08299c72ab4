// Hostile input over every method of `kiln serve`: fuzzed bytes and mutated
// messages, then structured attacks (tree bombs, bad names, digests, resource
// names, oversized fields). A client's mistake is never INTERNAL, never a hang,
// never a message echoing its input without bound, and never takes the server down.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STATUS_MESSAGE_CHARS } from '../../engine/common/fault-errors';
import { digestOf, toWireDigest, type BlobDigest } from '../../engine/digest';
import {
  ActionCacheService,
  ByteStreamService,
  CapabilitiesService,
  ContentAddressableStorageService,
  ExecutionService,
  LogStreamService,
  OperationsService,
} from '../../engine/grpc/services';
import { bytestream, encode, longrunning, reapi } from '../../engine/proto';
import { Status, grpc } from '../helpers';
import { startServer, type ServerProcess } from './server';

/** Fuzzed requests per method (KILN_FAULT_FUZZ). */
const FUZZ_PER_METHOD = Math.max(1, Number(process.env.KILN_FAULT_FUZZ ?? 100) || 100);
const DEADLINE_MS = 15_000;
const MESSAGE_BOUND = MAX_STATUS_MESSAGE_CHARS + 64;

interface Answer {
  code: number;
  details: string;
  /** The last message a server stream sent. */
  last?: Buffer;
}

let server: ServerProcess;
let dataDir: string;
let raw: grpc.Client;
const faults: string[] = [];
let calls = 0;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'kiln-fault-hostile-'));
  server = await startServer(dataDir, ['--cache-size', '1GiB', '--concurrency', '2']);
  raw = new grpc.Client(server.clients.address, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
});
afterAll(async () => {
  raw?.close();
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const identity = (b: Buffer) => b;

/** Sends `payload` as the request of `method` as it is, and waits for the status (a server stream is drained). */
function send(method: grpc.MethodDefinition<unknown, unknown>, payload: Buffer): Promise<Answer> {
  calls++;
  const deadline = Date.now() + DEADLINE_MS;
  return new Promise((resolve) => {
    let last: Buffer | undefined;
    const done = (err: grpc.ServiceError | null) => resolve({ code: err?.code ?? Status.OK, details: err?.details ?? '', last });
    if (method.requestStream && !method.responseStream) {
      const call = raw.makeClientStreamRequest(method.path, identity, identity, new grpc.Metadata(), { deadline }, (err) => done(err));
      call.write(payload);
      call.end();
    } else if (method.responseStream) {
      const call = raw.makeServerStreamRequest(method.path, identity, identity, payload, new grpc.Metadata(), { deadline });
      call.on('data', (m: Buffer) => (last = m));
      call.on('error', (err: grpc.ServiceError) => done(err));
      call.on('end', () => done(null));
    } else {
      raw.makeUnaryRequest(method.path, identity, identity, payload, new grpc.Metadata(), { deadline }, (err) => done(err));
    }
  });
}

/** Sends each of `payloads` as one message of a client-streaming call. */
function sendStream(method: grpc.MethodDefinition<unknown, unknown>, payloads: Buffer[]): Promise<Answer> {
  calls++;
  return new Promise((resolve) => {
    const call = raw.makeClientStreamRequest(method.path, identity, identity, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS }, (err) =>
      resolve({ code: err?.code ?? Status.OK, details: err?.details ?? '' }),
    );
    for (const p of payloads) call.write(p);
    call.end();
  });
}

function judge(what: string, answer: Answer): void {
  if (answer.code === Status.DEADLINE_EXCEEDED) faults.push(`${what}: no answer within ${DEADLINE_MS} ms`);
  if (answer.code === Status.INTERNAL) faults.push(`${what}: INTERNAL: ${answer.details.slice(0, 200)}`);
  if (answer.details.length > MESSAGE_BOUND) faults.push(`${what}: a ${answer.details.length}-character status message`);
  if (answer.code === Status.UNAVAILABLE) faults.push(`${what}: UNAVAILABLE (did the server go down?)`);
}

const SERVICES = {
  CapabilitiesService,
  ContentAddressableStorageService,
  ActionCacheService,
  ExecutionService,
  OperationsService,
  ByteStreamService,
  LogStreamService,
} as Record<string, Record<string, grpc.MethodDefinition<unknown, unknown>>>;

/** A valid request of each method, to mutate. */
async function seeds(): Promise<Record<string, Buffer>> {
  const blob = await digestOf(Buffer.from('seed'));
  const d = toWireDigest(blob);
  return {
    FindMissingBlobs: encode(reapi.FindMissingBlobsRequest, reapi.FindMissingBlobsRequest.create({ blobDigests: [d] })),
    BatchUpdateBlobs: encode(reapi.BatchUpdateBlobsRequest, reapi.BatchUpdateBlobsRequest.create({ requests: [{ digest: d, data: Buffer.from('seed') }] })),
    BatchReadBlobs: encode(reapi.BatchReadBlobsRequest, reapi.BatchReadBlobsRequest.create({ digests: [d] })),
    GetTree: encode(reapi.GetTreeRequest, reapi.GetTreeRequest.create({ rootDigest: d })),
    GetActionResult: encode(reapi.GetActionResultRequest, reapi.GetActionResultRequest.create({ actionDigest: d })),
    Execute: encode(reapi.ExecuteRequest, reapi.ExecuteRequest.create({ actionDigest: d })),
  };
}

function mutate(seed: Buffer): Buffer {
  const out = Buffer.from(seed);
  for (let i = 0, n = 1 + Math.floor(Math.random() * 4); i < n && out.length > 0; i++) {
    out[Math.floor(Math.random() * out.length)] = Math.floor(Math.random() * 256);
  }
  return Math.random() < 0.3 ? out.subarray(0, Math.floor(Math.random() * out.length)) : out;
}

describe('hostile input against kiln serve', () => {
  it(`fuzzed bytes and mutated messages, ${FUZZ_PER_METHOD} per method`, async () => {
    const valid = await seeds();
    for (const [service, methods] of Object.entries(SERVICES)) {
      for (const method of Object.values(methods)) {
        const short = method.path.split('/').pop()!;
        const seed = valid[short];
        const answers = await Promise.all(
          Array.from({ length: FUZZ_PER_METHOD }, (_, i) => {
            const payload = seed && i % 2 === 0 ? mutate(seed) : randomBytes(Math.floor(Math.random() * 600));
            return send(method, payload);
          }),
        );
        for (const a of answers) judge(`${service}.${short} fuzz`, a);
      }
    }
    expect(faults).toEqual([]);
  });

  it('structured attacks: trees, names, digests, resource names, oversized fields', async () => {
    const c = server.clients;
    const put = async (bytes: Buffer): Promise<BlobDigest> => {
      const digest = await digestOf(bytes);
      await c.cas.batchUpdate({ requests: [{ digest: toWireDigest(digest), data: bytes }] });
      return digest;
    };
    const putDir = (dir: reapi.Directory) => put(encode(reapi.Directory, dir));
    const emptyDir = await putDir(reapi.Directory.create({}));
    const file = await put(Buffer.from('x'));
    const execute = async (what: string, inputRoot: BlobDigest, command: reapi.Command.$Properties = {}) => {
      const cmd = await put(encode(reapi.Command, reapi.Command.create({ arguments: ['true'], ...command })));
      const action = await put(encode(reapi.Action, reapi.Action.create({ commandDigest: toWireDigest(cmd), inputRootDigest: toWireDigest(inputRoot) })));
      const payload = encode(reapi.ExecuteRequest, reapi.ExecuteRequest.create({ actionDigest: toWireDigest(action) }));
      const answer = await send(ExecutionService.execute as never, payload);
      judge(what, answer);
      // Problems found once the action is queued come back in ExecuteResponse.status.
      if (answer.code === Status.OK && answer.last) {
        const op = longrunning.Operation.decode(answer.last);
        const status = op.response?.value ? reapi.ExecuteResponse.decode(op.response.value).status : undefined;
        const inner = { code: status?.code ?? Status.OK, details: status?.message ?? '' };
        judge(`${what} (ExecuteResponse.status)`, inner);
        return inner;
      }
      return answer;
    };

    // A DAG bomb: 48 levels of two references to the level below.
    let level = await putDir(reapi.Directory.create({ files: [{ name: 'f', digest: toWireDigest(file) }] }));
    for (let i = 0; i < 48; i++) {
      level = await putDir(reapi.Directory.create({ directories: ['a', 'b'].map((name) => ({ name, digest: toWireDigest(level) })) }));
    }
    const started = Date.now();
    const bomb = await execute('tree bomb', level);
    expect([Status.RESOURCE_EXHAUSTED, Status.OK]).toContain(bomb.code);
    if (bomb.code === Status.OK) faults.push('tree bomb: accepted');
    if (Date.now() - started > 10_000) faults.push(`tree bomb: took ${Date.now() - started} ms to refuse`);

    // A chain deeper than allowed.
    let chain = emptyDir;
    for (let i = 0; i < 300; i++) chain = await putDir(reapi.Directory.create({ directories: [{ name: 'd', digest: toWireDigest(chain) }] }));
    await execute('deep chain', chain);

    // Names.
    for (const name of ['n'.repeat(256), 'é'.repeat(200), '..', '.', 'a/b', 'a\0b', '']) {
      await execute(`input name ${JSON.stringify(name.slice(0, 20))}`, await putDir(reapi.Directory.create({ files: [{ name, digest: toWireDigest(file) }] })));
      await execute(`output path ${JSON.stringify(name.slice(0, 20))}`, emptyDir, { outputPaths: [name] });
    }
    await execute('working directory of 300-byte name', emptyDir, { workingDirectory: 'w'.repeat(300) });

    // Digests.
    for (const d of [
      { hash: 'A'.repeat(64), sizeBytes: 1 },
      { hash: 'a'.repeat(63), sizeBytes: 1 },
      { hash: 'a'.repeat(64), sizeBytes: -1 },
      { hash: 'a'.repeat(64), sizeBytes: Number.MAX_SAFE_INTEGER },
      { hash: 'z'.repeat(64), sizeBytes: 1 },
      { hash: 'a'.repeat(100_000), sizeBytes: 1 },
    ]) {
      const label = `digest ${d.hash.slice(0, 4)}…/${d.sizeBytes}`;
      judge(`${label} FindMissing`, await send(ContentAddressableStorageService.findMissingBlobs as never, encode(reapi.FindMissingBlobsRequest, { blobDigests: [d] } as never)));
      judge(`${label} BatchRead`, await send(ContentAddressableStorageService.batchReadBlobs as never, encode(reapi.BatchReadBlobsRequest, { digests: [d] } as never)));
      judge(`${label} GetActionResult`, await send(ActionCacheService.getActionResult as never, encode(reapi.GetActionResultRequest, { actionDigest: d } as never)));
      judge(`${label} GetTree`, await send(ContentAddressableStorageService.getTree as never, encode(reapi.GetTreeRequest, { rootDigest: d } as never)));
    }

    // Resource names.
    const h = 'a'.repeat(64);
    for (const name of [`${'x'.repeat(200_000)}/blobs/${h}/1`, `../../blobs/${h}/1`, `blobs/${h}/1/../../..`, `uploads/../blobs/${h}/1`, `${'n'.repeat(300)}/uploads/u/blobs/${h}/1`, '\0', `uploads/${'u'.repeat(300)}/blobs/${h}/1`]) {
      const label = `resource ${JSON.stringify(name.slice(0, 24))}`;
      judge(`${label} Read`, await send(ByteStreamService.read as never, encode(bytestream.ReadRequest, { resourceName: name } as never)));
      judge(`${label} QueryWriteStatus`, await send(ByteStreamService.queryWriteStatus as never, encode(bytestream.QueryWriteStatusRequest, { resourceName: name } as never)));
      judge(`${label} Write`, await send(ByteStreamService.write as never, encode(bytestream.WriteRequest, { resourceName: name, data: Buffer.from('x'), finishWrite: true } as never)));
    }

    // A Write whose second message is not a WriteRequest (the first is fine).
    {
      const data = randomBytes(2000);
      const d = await digestOf(data);
      const first = encode(bytestream.WriteRequest, { resourceName: `uploads/u-mid/blobs/${d.hash}/${d.size}`, data: data.subarray(0, 1000) } as never);
      const answer = await sendStream(ByteStreamService.write as never, [first, Buffer.from([0x0a, 0x7f])]);
      judge('malformed WriteRequest mid-stream', answer);
      if (answer.code !== Status.INVALID_ARGUMENT) faults.push(`malformed WriteRequest mid-stream: ${Status[answer.code]}, not INVALID_ARGUMENT`);
    }

    // Oversized fields everywhere an instance name goes.
    const huge = 'i'.repeat(300_000);
    judge('huge instance FindMissing', await send(ContentAddressableStorageService.findMissingBlobs as never, encode(reapi.FindMissingBlobsRequest, { instanceName: huge } as never)));
    judge('huge instance GetCapabilities', await send(CapabilitiesService.getCapabilities as never, encode(reapi.GetCapabilitiesRequest, { instanceName: huge } as never)));
    judge('huge instance Execute', await send(ExecutionService.execute as never, encode(reapi.ExecuteRequest, { instanceName: huge } as never)));
    judge('huge instance GetActionResult', await send(ActionCacheService.getActionResult as never, encode(reapi.GetActionResultRequest, { instanceName: huge } as never)));

    expect(faults).toEqual([]);
  });

  it('leaves the server up and answering', async () => {
    const caps = await server.clients.capabilities.get();
    expect(caps.cacheCapabilities).toBeTruthy();
    expect(server.child.exitCode).toBeNull();
    process.stdout.write(`hostile input: ${calls} calls, faults: ${faults.length}\n`);
  });
});
