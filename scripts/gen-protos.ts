// Generates engine/gen/protos.{js,d.ts} from protos/ with protobufjs-cli, offline.
// The output is a build artifact (gitignored); `npm run build`/`npm test` call this.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');
const out = join(root, 'engine', 'gen');
const entries = [
  'build/bazel/remote/execution/v2/remote_execution.proto',
  'build/bazel/remote/logstream/v1/remote_logstream.proto',
  'build/bazel/remote/asset/v1/remote_asset.proto',
  'google/bytestream/bytestream.proto',
  'google/longrunning/operations.proto',
  'google/rpc/error_details.proto',
  'google/devtools/build/v1/publish_build_event.proto',
  'build_event_stream/build_event_stream.proto',
].map((p) => join(root, 'protos', p));

const js = join(out, 'protos.js');
const dts = join(out, 'protos.d.ts');
const newest = Math.max(...entries.map((p) => statSync(p).mtimeMs), statSync(__filename).mtimeMs);
if (existsSync(js) && existsSync(dts) && statSync(dts).mtimeMs >= newest && !process.argv.includes('--force')) {
  process.exit(0);
}
mkdirSync(out, { recursive: true });
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
execFileSync(bin('pbjs'), [
  '-t', 'static-module', '-w', 'commonjs', '--no-beautify', '--no-service', '--no-delimited',
  '--no-verify', '--force-number', '-p', join(root, 'protos'), '-o', js, ...entries,
], { stdio: 'inherit' });
execFileSync(bin('pbts'), ['-o', dts, js], { stdio: 'inherit' });
