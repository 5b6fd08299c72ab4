// Starts `kiln serve` from the sources as nobody (setpriv; needs root) on a
// data folder nobody owns, optionally after joining cgroup folders first (as a
// delegating service manager would start it inside them), and stops it.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectClients, type KilnClients } from '../helpers/clients';

export const NOBODY = 65534;
const ROOT = join(__dirname, '..', '..');

export interface NobodyServe {
  dataDir: string;
  clients: KilnClients;
  /** Everything serve printed so far. */
  log(): string;
  stop(): Promise<void>;
}

export async function serveAsNobody(opts: { prefix: string; args: string[]; joinCgroups?: string[] }): Promise<NobodyServe> {
  // Not in /tmp: a slot's sandbox empties its /tmp after each action, so Kiln makes no slot over a build folder there.
  const dataDir = mkdtempSync(join('/var/tmp', opts.prefix));
  chownSync(dataDir, NOBODY, NOBODY);
  chmodSync(dataDir, 0o700);
  const serve = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, '--import', 'tsx', join(ROOT, 'engine', 'cli.ts'), 'serve',
    '--port', '0', '--http-port', '0', '--data-dir', dataDir, ...opts.args];
  // Joined as root, then dropped to nobody.
  const join_ = (opts.joinCgroups ?? []).map((dir) => `echo $$ > '${dir}/cgroup.procs' && `).join('');
  const child: ChildProcess = spawn('/bin/sh', ['-c', `${join_}exec "$@"`, 'sh', ...serve], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dataDir, TMPDIR: tmpdir() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (b) => (log += b));
  const address = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b) => {
      out += b;
      log += b;
      const m = /kiln listening (grpc:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`kiln serve exited ${code}: ${log}`)));
  });
  const clients = connectClients(address);
  return {
    dataDir,
    clients,
    log: () => log,
    stop: async () => {
      clients.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
