// Two network namespaces joined by a veth pair, with addresses of the test's
// own (10.213.x.0/24): "another machine on the LAN" without touching any real
// interface. Needs root and iproute2; callers skip when unavailable.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface NetnsPair {
  server: { ns: string; address: string };
  client: { ns: string; address: string };
  /** Runs argv inside a namespace. */
  spawnIn(ns: string, argv: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  execIn(ns: string, argv: string[]): string;
  destroy(): void;
}

export function netnsAvailable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    const probe = `kiln-probe-${randomBytes(3).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function createNetnsPair(): NetnsPair {
  const id = randomBytes(3).toString('hex');
  const subnet = 1 + (parseInt(id.slice(0, 2), 16) % 250);
  const a = `kiln-srv-${id}`;
  const b = `kiln-cli-${id}`;
  const va = `kva${id}`;
  const vb = `kvb${id}`;
  const server = { ns: a, address: `10.213.${subnet}.1` };
  const client = { ns: b, address: `10.213.${subnet}.2` };
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const destroy = () => {
    for (const ns of [a, b]) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* not created */
      }
    }
  };
  try {
    ip('netns', 'add', a);
    ip('netns', 'add', b);
    ip('link', 'add', va, 'type', 'veth', 'peer', 'name', vb);
    ip('link', 'set', va, 'netns', a);
    ip('link', 'set', vb, 'netns', b);
    ip('-n', a, 'addr', 'add', `${server.address}/24`, 'dev', va);
    ip('-n', b, 'addr', 'add', `${client.address}/24`, 'dev', vb);
    for (const [ns, dev] of [[a, va], [b, vb]]) {
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      ip('-n', ns, 'link', 'set', dev, 'up');
      // Multicast (mDNS) stays on the veth link, inside the pair.
      ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', dev);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    server,
    client,
    spawnIn: (ns, argv, env) => spawn('ip', ['netns', 'exec', ns, ...argv], { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }),
    execIn: (ns, argv) => execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    destroy,
  };
}

/** Resolves with the first stdout line matching `re`, or rejects after `ms`. */
export function waitForLine(child: ChildProcess, re: RegExp, ms = 60_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stdout: ${buf}\nstderr: ${err}`)), ms);
    child.stderr?.on('data', (d) => (err += d));
    child.stdout?.on('data', (d) => {
      buf += d;
      const m = buf.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`process exited (${code}) before ${re}; stdout: ${buf}\nstderr: ${err}`));
    });
  });
}
