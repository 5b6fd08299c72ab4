// File names as POSIX allows them, end to end: gRPC Execute against a real
// Engine with its LocalExecutor. Any name a Linux file system accepts (not
// empty, not "." or "..", no "/" or NUL, at most 255 bytes) stages, runs and
// comes back byte for byte, in inputs, output files and output directories;
// anything else is INVALID_ARGUMENT with a message that shows no server path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, toWireDigest, type BlobDigest } from '../../engine/digest';
import { reapi } from '../../engine/proto';
import { uploadBlob, uploadProto } from '../helpers/blobs';
import { grpcError, Status } from '../helpers/clients';
import { startTestEngine, type TestEngine } from '../helpers/engine';
import { executeRequest, responseOf } from './harness';

/** Valid but unusual names: each one has broken some build tool somewhere. */
const NAMES = [
  'back\\slash',
  '\\',
  'trailing\\',
  'colon:name',
  'C:\\Windows\\look',
  '-leading-dash',
  '--',
  ' leading and trailing spaces ',
  'tab\there',
  'new\nline',
  'carriage\rreturn',
  '\x01\x02control\x1b[31m\x7f',
  '...',
  '.hidden',
  '..double-dot-prefix',
  '*?[glob]{a,b}',
  '$HOME `cmd` $(cmd)',
  `quotes ' and "`,
  'a=b;c|d&e<f>g',
  '~tilde',
  '#hash%20percent',
  'ünïcödé',
  '日本語のファイル',
  'emoji 🔥🦀',
  'e\u0301 combining',
  '\u202Eright-to-left',
  'x'.repeat(255),
  'é'.repeat(127) + 'x',
];

/** REAPI orders names by their UTF-8 bytes. */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const contentOf = (name: string) => Buffer.from(`content of ${JSON.stringify(name)}\n`);
const SUBDIR = 'sub\\dir: -odd ü';
const OUT_DIR = 'out\\dir :-x';

let t: TestEngine;
beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t?.stop();
});

const wire = toWireDigest;

async function uploadDir(files: Record<string, Buffer>, dirs: Record<string, BlobDigest> = {}): Promise<BlobDigest> {
  const fileNodes = await Promise.all(
    Object.keys(files)
      .sort(byBytes)
      .map(async (name) => ({ name, digest: wire(await uploadBlob(t.clients, files[name])), isExecutable: false })),
  );
  const dirNodes = Object.keys(dirs)
    .sort(byBytes)
    .map((name) => ({ name, digest: wire(dirs[name]) }));
  return (await uploadProto(t.clients, reapi.Directory, reapi.Directory.create({ files: fileNodes, directories: dirNodes }))).digest;
}

async function uploadAction(root: BlobDigest, command: reapi.Command.$Properties): Promise<BlobDigest> {
  const cmd = await uploadProto(
    t.clients,
    reapi.Command,
    reapi.Command.create({ environmentVariables: [{ name: 'PATH', value: '/usr/bin:/bin' }], ...command }),
  );
  const action = reapi.Action.create({ commandDigest: wire(cmd.digest), inputRootDigest: wire(root), doNotCache: true });
  return (await uploadProto(t.clients, reapi.Action, action)).digest;
}

async function execute(digest: BlobDigest): Promise<reapi.ExecuteResponse> {
  const ops = await t.clients.execution.execute.collect(executeRequest(digest));
  return responseOf(ops.at(-1)!);
}

async function readBlob(d: reapi.Digest.$Properties): Promise<Buffer> {
  const res = await t.clients.cas.batchRead({ digests: [d], digestFunction: reapi.DigestFunction.Value.SHA256 });
  expect(res.responses[0].status?.code ?? 0).toBe(Status.OK);
  return Buffer.from(res.responses[0].data);
}

/** Every file of an output Tree as path → bytes, read back from the CAS. */
async function treeFiles(treeDigest: reapi.Digest.$Properties): Promise<Map<string, Buffer>> {
  const tree = reapi.Tree.decode(await readBlob(treeDigest));
  const byHash = new Map<string, reapi.Directory>();
  for (const child of tree.children) byHash.set((await digestOf(Buffer.from(reapi.Directory.encode(child).finish()))).hash, child);
  const out = new Map<string, Buffer>();
  const walk = async (dir: reapi.Directory, prefix: string) => {
    for (const f of dir.files) out.set(prefix + f.name, await readBlob(f.digest!));
    for (const d of dir.directories) await walk(byHash.get(d.digest!.hash!)!, `${prefix}${d.name}/`);
  };
  await walk(tree.root!, '');
  return out;
}

function expectNoServerPaths(message: string) {
  expect(message).not.toContain(t.dataDir);
  expect(message).not.toMatch(/ENAMETOOLONG|\/build\//);
}

describe('file names as POSIX allows them', () => {
  it('stages, runs and collects unusual but valid names byte for byte, in inputs, output files and output directories', async () => {
    const files = Object.fromEntries(NAMES.map((n) => [n, contentOf(n)]));
    const sub = await uploadDir(files);
    const inDir = await uploadDir(files, { [SUBDIR]: sub });
    const root = await uploadDir({}, { in: inDir });

    const script = [
      'set -e',
      'out="$1"; shift',
      'mkdir "$out" made',
      'cp -R in/. "$out"/',
      'for n in "$@"; do',
      '  cp "in/$n" "files/$n"',
      '  cp "in/$SUBDIR/$n" "nested/$SUBDIR/$n"',
      "  printf 'made:%s' \"$n\" > \"made/$n\"",
      'done',
    ].join('\n');
    const outputPaths = [OUT_DIR, 'made', ...NAMES.map((n) => `files/${n}`), ...NAMES.map((n) => `nested/${SUBDIR}/${n}`)].sort(byBytes);
    const digest = await uploadAction(root, {
      arguments: ['/bin/sh', '-c', script, 'sh', OUT_DIR, ...NAMES],
      environmentVariables: [
        { name: 'PATH', value: '/usr/bin:/bin' },
        { name: 'SUBDIR', value: SUBDIR },
      ],
      outputPaths,
    });
    const response = await execute(digest);
    expect(response.status?.message ?? '').toBe('');
    expect(response.status?.code ?? 0).toBe(Status.OK);
    const result = response.result!;
    expect(result.exitCode).toBe(0);

    // Output files: each path exactly as asked, each file's bytes exactly the input's.
    const outputFiles = new Map(result.outputFiles.map((f) => [f.path, f]));
    expect([...outputFiles.keys()].sort(byBytes)).toEqual(outputPaths.filter((p) => p.startsWith('files/') || p.startsWith('nested/')));
    for (const n of NAMES) {
      expect(await readBlob(outputFiles.get(`files/${n}`)!.digest!), n).toEqual(contentOf(n));
      expect(await readBlob(outputFiles.get(`nested/${SUBDIR}/${n}`)!.digest!), n).toEqual(contentOf(n));
    }

    // The output directory holds the whole input tree under the same names, and
    // names the action made itself come back exactly.
    const dirs = new Map(result.outputDirectories.map((d) => [d.path, d]));
    expect([...dirs.keys()].sort(byBytes)).toEqual([OUT_DIR, 'made'].sort(byBytes));
    const copied = await treeFiles(dirs.get(OUT_DIR)!.treeDigest!);
    const expected = new Map<string, Buffer>();
    for (const n of NAMES) {
      expected.set(n, contentOf(n));
      expected.set(`${SUBDIR}/${n}`, contentOf(n));
    }
    expect(new Set(copied.keys())).toEqual(new Set(expected.keys()));
    for (const [path, bytes] of expected) expect(copied.get(path), path).toEqual(bytes);
    const made = await treeFiles(dirs.get('made')!.treeDigest!);
    expect([...made.keys()].sort(byBytes)).toEqual([...NAMES].sort(byBytes));
    for (const n of NAMES) expect(made.get(n)!.toString('utf8')).toBe(`made:${n}`);
  });

  it.each([
    ['256 ASCII bytes', 'y'.repeat(256)],
    ['256 bytes in 128 characters', 'é'.repeat(128)],
  ])('refuses an input name of %s with INVALID_ARGUMENT, showing no server path', async (_what, name) => {
    const root = await uploadDir({ [name]: Buffer.from('too long a name') });
    const response = await execute(await uploadAction(root, { arguments: ['/bin/true'] }));
    expect(response.status?.code).toBe(Status.INVALID_ARGUMENT);
    const message = response.status!.message;
    expect(message).toMatch(/is 256 bytes long; names may be at most 255 bytes/);
    expectNoServerPaths(message);
  });

  it('refuses an output path with a 256-byte name with INVALID_ARGUMENT before anything runs', async () => {
    const root = await uploadDir({});
    const digest = await uploadAction(root, { arguments: ['/bin/true'], outputPaths: [`ok/${'z'.repeat(256)}`] });
    const err = await grpcError(t.clients.execution.execute.collect(executeRequest(digest)));
    expect(err.code).toBe(Status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/output_paths: .*is 256 bytes long; names may be at most 255 bytes/);
    expectNoServerPaths(err.details);
  });

  it.each([
    ['"."', '.'],
    ['".."', '..'],
    ['an empty name', ''],
    ['a "/"', 'a/b'],
  ])('still refuses an input name that is %s', async (_what, name) => {
    const bad = reapi.Directory.create({ files: [{ name, digest: wire(await uploadBlob(t.clients, Buffer.from('x'))) }] });
    const root = (await uploadProto(t.clients, reapi.Directory, bad)).digest;
    const response = await execute(await uploadAction(root, { arguments: ['/bin/true'] }));
    expect(response.status?.code).toBe(Status.INVALID_ARGUMENT);
    expectNoServerPaths(response.status!.message);
  });

  it('reports a name the action made that is not UTF-8 as an error instead of changing it', async () => {
    const root = await uploadDir({});
    const digest = await uploadAction(root, {
      arguments: ['/bin/sh', '-c', `mkdir out && printf x > "out/$(printf 'bad\\377name')"`],
      outputPaths: ['out'],
    });
    const response = await execute(digest);
    expect(response.status?.code).toBe(Status.FAILED_PRECONDITION);
    expect(response.status!.message).toMatch(/"bad\\xffname" that is not valid UTF-8/);
    expectNoServerPaths(response.status!.message);
  });
});
