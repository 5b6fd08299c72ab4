// `kiln` command line (its entry point is cli.ts). Subcommands live in COMMANDS; each parses its own flags.
// Usage errors print one line on stderr and exit 2; stdout carries only
// machine-readable lines (the ready line), so scripts can wait on it.
import { parseArgs } from 'node:util';
import { TokenError } from './auth/tokens';
import { LAN_COMMANDS, UsageError } from './cli-lan';
import { BOOLEAN_KEYS, CONFIG_KEYS, ConfigError, loadConfig, type RawSettings } from './config-load';
import { Engine } from './engine';
import { whenLauncherGone } from './util/relaunch';

const EXIT_USAGE = 2;

interface Command {
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

const SERVE_USAGE = `Usage: kiln serve [flags]

Runs the Kiln engine: a Bazel remote executor and cache (REAPI v2) on this machine.

Flags:
  --host ADDR          interface to listen on (default 127.0.0.1)
  --port N             gRPC port (default 8980; 0 picks a free port)
  --http-port N        dashboard/HTTP port (default 8981)
  --data-dir DIR       where the cache lives (default: per-user app data folder)
  --cache-size SIZE    cache budget, at least 64MiB, e.g. 20GiB, 500MB, 1.5TiB or bytes (default 20GiB)
  --concurrency N      actions run at once, 1 to 1024 (default: CPU count)
  --queue-size N       actions waiting for a slot (default 10000)
  --tls MODE           auto (default: on in LAN mode), on, or off
  --tls-cert FILE      your own server certificate (PEM) instead of one from Kiln's CA
  --tls-key FILE       its private key (PEM); goes with --tls-cert
  --tls-client-ca FILE another CA whose client certificates are accepted (Kiln's always are)
  --require-token      demand a token from loopback clients too
  --mdns BOOL          advertise on the LAN with mDNS in LAN mode (default true)
  --executor KIND      where actions run (default local: on this machine)
  --runner KIND        how the local executor runs a process (default process)
  --asset-max-size SIZE largest download for Bazel's remote downloader (default 4GiB)
  --asset-timeout SECS download timeout when the request sets none (default 300)
  --mode MODE          polite (background priority, slots follow the machine), normal
                       (default: the configured slots) or all-out (every core)
  --upstream URL       grpc://HOST:PORT or grpcs://HOST:PORT of a REAPI cluster behind this Kiln
  --upstream-instance NAME     instance name on the upstream (default empty)
  --upstream-header K=V        header sent with every upstream call (repeatable)
  --upstream-tls-ca FILE       CA (PEM) for the upstream's certificate
  --placement POLICY   local-first (default: overflow to the upstream), upstream, or local
  --invocation-history N       Bazel invocations kept, with their build events (default 2000)
  --invocation-history-days D  and for how many days at most (default 7)
  --peers LIST         other Kilns that take the overflow: auto (mDNS, LAN mode) or grpcs://HOST:PORT,...
  --peer-token TOKEN   token sent to peers without one of their own (per-peer tokens: config file)
  --peer-tls-ca FILE   CA bundle (PEM) for peers' certificates
  --config FILE        YAML or JSON file with the same keys (kebab-case); flags win
  -h, --help           show this help

Any --host but loopback is LAN mode: every call from another machine needs a
token (kiln token add NAME) or a client certificate from Kiln's CA, and gRPC and
the dashboard use TLS. The dashboard's LAN switch is saved in DIR/settings.json
and applies at the next start unless --host or the config file sets the host.

When ready, prints "kiln listening grpc://HOST:PORT" (grpcs:// with TLS) on stdout.
Point Bazel at it with --remote_executor=grpc://HOST:PORT (or --remote_cache= for the
cache alone); kiln connect prints the lines for LAN mode.`;

const COMMANDS: Record<string, Command> = {
  serve: { summary: 'run the engine: remote cache and remote executor', usage: SERVE_USAGE, run: serve },
  ...LAN_COMMANDS,
};

function mainUsage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `Usage: kiln <command> [flags]\n\nCommands:\n${lines.join('\n')}\n\nRun "kiln <command> --help" for a command's flags.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' && rest[0] ? COMMANDS[rest[0]] : undefined;
    // Bare `kiln` is a usage error: help goes to stderr and the exit code says so.
    (name === undefined ? process.stderr : process.stdout).write(`${topic ? topic.usage : mainUsage()}\n`);
    return name === undefined ? EXIT_USAGE : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`kiln: unknown command "${name}"; commands are ${Object.keys(COMMANDS).join(', ')} (see kiln --help)\n`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // Commands throw for usage problems and failures alike; each becomes one line.
    const usage = err instanceof UsageError || err instanceof ConfigError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(`kiln ${name}: ${err instanceof TokenError ? err.message : usageMessage(err, name)}
`);
    return usage ? EXIT_USAGE : 1;
  }
}

async function serve(args: string[]): Promise<number> {
  let config;
  try {
    const { values, positionals } = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        ...Object.fromEntries(CONFIG_KEYS.map((k) => [k, { type: BOOLEAN_KEYS.includes(k) ? ('boolean' as const) : ('string' as const) }])),
        // Repeatable: every --upstream-header K=V counts.
        'upstream-header': { type: 'string', multiple: true },
        config: { type: 'string' },
      },
    });
    if (positionals.length > 0) throw new ConfigError(`unexpected argument "${positionals[0]}"; kiln serve takes only flags`);
    const { config: configFile, ...flags } = values as Record<string, string | undefined>;
    config = loadConfig({ flags: flags as RawSettings, configFile });
  } catch (err) {
    process.stderr.write(`kiln serve: ${usageMessage(err)}\n`);
    return EXIT_USAGE;
  }

  let engine: Engine;
  try {
    engine = await Engine.start({ config, log: (line) => process.stderr.write(`${line}\n`) });
  } catch (err) {
    process.stderr.write(`kiln serve: ${(err as Error).message}\n`);
    // A setting this machine cannot honour (sandbox: on without bubblewrap) is a configuration problem too.
    return err instanceof ConfigError ? EXIT_USAGE : 1;
  }
  // Handlers go in before the ready line: a supervisor may signal as soon as it reads it.
  const stopped = new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`kiln: ${signal} again, exiting without waiting\n`);
        process.exit(1);
      }
      stopping = true;
      process.stderr.write(`kiln: ${signal}, stopping\n`);
      engine.stop().then(
        () => resolve(0),
        (err) => {
          process.stderr.write(`kiln: error while stopping: ${(err as Error).message}\n`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    whenLauncherGone(() => onSignal('SIGTERM'));
  });
  process.stdout.write(`kiln listening ${engine.grpcUrl}\n`);
  process.stdout.write(`kiln dashboard ${engine.httpUrl}\n`);
  return stopped;
}

/** One line for a flag or config problem. */
function usageMessage(err: unknown, command = 'serve'): string {
  if (err instanceof ConfigError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'([^']+)'/.exec(e.message)?.[1] ?? 'flag';
    if (command !== 'serve') return `unknown flag ${flag}; see kiln ${command} --help`;
    return `unknown flag ${flag}; allowed are ${[...CONFIG_KEYS, 'config'].map((k) => `--${k}`).join(', ')}`;
  }
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const flag = /'(--[^' ]+)/.exec(e.message)?.[1] ?? 'this flag';
    return `${flag} needs a value, as in ${flag} VALUE (write ${flag}=VALUE for a value starting with "-")`;
  }
  return e.message?.split('\n')[0] ?? String(err);
}
