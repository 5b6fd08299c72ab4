// `kiln token`, `kiln connect` and `kiln discover`: LAN mode from the command
// line. They work on the data folder's files, so they act the same whether or
// not a server is running (a running engine re-reads tokens.json on change).
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TokenStore } from './auth/tokens';
import { defaultDataDir } from './config';
import { loadConfig, type RawSettings } from './config-load';
import { kilnCaPath, tokenStorePath, TLS_DIR } from './lan/access';
import { advertisedHost, bazelrcLines, connectTokenName } from './lan/connect';
import { discover } from './lan/discovery';
import { ensureTlsMaterial } from './tls/certificates';
import { isLanHost } from './common/loopback';
import { tokenHeaderFlag } from './common/bazel-flags';
import { join, resolve } from 'node:path';

export interface CliCommand {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

/** Thrown for bad usage: one line on stderr, exit 2. */
export class UsageError extends Error {}

const EXIT_FAILED = 1;

const TOKEN_USAGE = `Usage: kiln token add NAME | list | revoke NAME [--data-dir DIR]

Access tokens for LAN mode (and for loopback with --require-token). Only a hash
of each token is kept, in DIR/tokens.json; a running Kiln notices changes within
a second, so a revoked token stops working without a restart.

  add NAME        make a token and print it (shown only this once)
  list            names and creation times
  revoke NAME     remove a token

Flags:
  --data-dir DIR  Kiln's data folder (default: per-user app data folder)`;

const CONNECT_USAGE = `Usage: kiln connect [--data-dir DIR] [--host NAME] [--port N] [--config FILE]

Prints the .bazelrc lines that point Bazel on another machine at this Kiln in
LAN mode: the grpcs:// endpoint, --tls_certificate naming Kiln's CA file, and
an authorization header with a token made now (named connect-DATE; revoke it
with "kiln token revoke NAME").

Flags:
  --data-dir DIR  Kiln's data folder (default: per-user app data folder)
  --host NAME     the name or address other machines reach this one by
                  (default: the listen address, or this machine's first LAN IPv4)
  --port N        the gRPC port kiln serve listens on (default 8980)
  --config FILE   the config file kiln serve uses (tls, tls-cert, port, data-dir)`;

const DISCOVER_USAGE = `Usage: kiln discover [--timeout 3s] [--interface ADDR] [--json]

Lists the Kilns in LAN mode that advertise themselves on the local network
(mDNS), one per line: name, endpoint for --remote_executor, dashboard.

Flags:
  --timeout T       how long to listen: 3s, 500ms or seconds (default 3s)
  --interface ADDR  listen on the interface with this address only
  --json            print one JSON array instead`;

export const LAN_COMMANDS: Record<string, CliCommand> = {
  token: { summary: 'add, list or revoke access tokens', usage: TOKEN_USAGE, run: token },
  connect: { summary: 'print the .bazelrc lines for this machine (LAN mode)', usage: CONNECT_USAGE, run: connect },
  discover: { summary: 'list Kilns advertised on the LAN', usage: DISCOVER_USAGE, run: discoverCommand },
};

async function token(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, strict: true, allowPositionals: true, options: { 'data-dir': { type: 'string' } } });
  const [action, name, ...extra] = positionals;
  const dataDir = resolve(values['data-dir'] ?? defaultDataDir());
  const wantsName = action === 'add' || action === 'revoke';
  if (!['add', 'list', 'revoke'].includes(action ?? '')) {
    throw new UsageError(action ? `unknown action "${action}"; use add NAME, list or revoke NAME` : 'say what to do: add NAME, list or revoke NAME');
  }
  if (wantsName && !name) throw new UsageError(`${action} needs a token name, as in kiln token ${action} alice`);
  if (extra.length > 0 || (!wantsName && name)) throw new UsageError(`unexpected argument "${extra[0] ?? name}"`);

  const store = openTokens(dataDir);
  switch (action) {
    case 'add': {
      const value = store.add(name!);
      process.stdout.write(`${value}\n`);
      process.stderr.write(
        `kiln: token "${name}" made; it is shown only now. Give Bazel:\n  build ${tokenHeaderFlag(value)}\n`,
      );
      return 0;
    }
    case 'list': {
      const tokens = store.list();
      for (const t of tokens) process.stdout.write(`${t.name}\t${t.createdAt}\n`);
      if (tokens.length === 0) process.stderr.write(`kiln: no tokens in ${tokenStorePath(dataDir)}; make one with kiln token add NAME\n`);
      return 0;
    }
    default: {
      if (store.revoke(name!)) {
        process.stderr.write(`kiln: token "${name}" revoked\n`);
        return 0;
      }
      process.stderr.write(`kiln token revoke: no token named "${name}" in ${tokenStorePath(dataDir)}; kiln token list shows them\n`);
      return EXIT_FAILED;
    }
  }
}

function openTokens(dataDir: string): TokenStore {
  try {
    return new TokenStore(tokenStorePath(dataDir));
  } catch (err) {
    throw new Error(`cannot read ${tokenStorePath(dataDir)}: ${(err as Error).message}`);
  }
}

async function connect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { 'data-dir': { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, config: { type: 'string' } },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; kiln connect takes only flags`);
  const flags: RawSettings = { 'data-dir': values['data-dir'], port: values.port };
  const config = loadConfig({ flags, configFile: values.config });
  // These lines are for other machines, so they describe LAN mode: TLS unless the operator turned it off.
  const tls = config.tls !== 'off';
  const userCert = config.tlsCertFile !== undefined;
  let caPath: string | undefined;
  if (tls && !userCert) {
    caPath = kilnCaPath(config.dataDir);
    // Make Kiln's CA now if the server never ran in LAN mode; it will use the same one.
    if (!existsSync(caPath)) caPath = ensureTlsMaterial(join(config.dataDir, TLS_DIR)).caPath;
  }
  const host = values.host ?? (isLanHost(config.host) ? advertisedHost(config.host) : advertisedHost('0.0.0.0'));
  const store = openTokens(config.dataDir);
  const name = connectTokenName((n) => store.list().some((t) => t.name === n));
  const value = store.add(name);
  for (const line of bazelrcLines({ host, grpcPort: config.port, tls, caPath, token: value })) process.stdout.write(`${line}\n`);
  const notes = [`kiln: made token "${name}" for these lines; revoke it with: kiln token revoke ${name}`];
  if (caPath) notes.push(`kiln: copy ${caPath} to each machine that runs Bazel (or download /api/tls/ca.pem from the dashboard) and point --tls_certificate at the copy`);
  if (!isLanHost(config.host)) notes.push('kiln: Kiln listens on loopback only; start it with kiln serve --host 0.0.0.0 (LAN mode) for other machines to reach it');
  process.stderr.write(`${notes.join('\n')}\n`);
  return 0;
}

async function discoverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { timeout: { type: 'string' }, interface: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; kiln discover takes only flags`);
  const timeoutMs = values.timeout === undefined ? 3000 : parseDuration(values.timeout);
  const found = await discover({ timeoutMs, interfaceAddress: values.interface });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(found)}\n`);
    return 0;
  }
  for (const k of found) {
    const host = k.addresses[0] ?? k.host;
    const dashboard = k.httpPort ? `\t${k.tls ? 'https' : 'http'}://${host}:${k.httpPort}/` : '';
    process.stdout.write(`${k.name}\t${k.endpoint}${dashboard}\n`);
  }
  if (found.length === 0) process.stderr.write(`kiln: no Kiln answered within ${timeoutMs} ms (Kilns advertise only in LAN mode)\n`);
  return 0;
}

/** "3s", "500ms", "2" (seconds) → milliseconds, from 100 ms to 10 minutes. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(text.trim());
  const ms = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : 1000) : NaN;
  if (!(ms >= 100 && ms <= 600_000)) throw new UsageError(`--timeout "${text}" is not a duration from 100ms to 600s (e.g. 3s or 500ms)`);
  return Math.round(ms);
}
