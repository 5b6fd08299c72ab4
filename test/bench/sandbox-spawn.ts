// What a sandbox adds to one spawn of /bin/true, without Kiln around it, as an
// unprivileged user (nobody), as on a desk: Kiln's bubblewrap command line for
// one action, Bazel's own linux-sandbox for comparison, and, inside one
// long-lived unprivileged bubblewrap standing in for a slot made ahead, the
// nested namespaces a non-root slot would need (util-linux unshare), with and
// without a shell as the namespace's PID 1. Rounds alternate between the
// commands; medians and spread per spawn, wall and CPU (README, "The sandbox",
// "Cost"). Needs root (to drop to nobody), setpriv and bwrap.
//   tsx test/bench/sandbox-spawn.ts [--rounds 8] [--n 40] [--linux-sandbox PATH]
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bwrapArgs } from '../../engine/sandbox/bwrap-args';
import { probeBubblewrap } from '../../engine/sandbox/bwrap-probe';
import { spread } from './lib';
import { bundled } from './processes';

const NOBODY = { uid: 65534, gid: 65534, label: 'nobody' };
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const rounds = Number(arg('--rounds', '8'));
const perRound = Number(arg('--n', '40'));
const linuxSandbox = arg('--linux-sandbox', '/usr/libexec/x86_64-linux-gnu/bazel/linux-sandbox');
const asNobody = ['setpriv', '--reuid', String(NOBODY.uid), '--regid', String(NOBODY.gid), '--clear-groups'];
/** A shell as PID 1 that runs the action as its child, as bwrap-args.ts's prelude does. */
const PID1_SHELL = ['/bin/sh', '-c', '"$@"; exit $?', 'sh'];
const NESTED = ['unshare', '--user', '--map-current-user', '--pid', '--fork', '--kill-child', '--ipc'];

function measure(prefix: string[], variants: Record<string, string[]>): Record<string, { wall: number[]; cpu: number[] }> {
  const script = bundled('sandbox-spawn-measure.ts');
  const out = execFileSync(prefix[0], [...prefix.slice(1), process.execPath, script, JSON.stringify(variants), String(rounds), String(perRound)], { encoding: 'utf8', maxBuffer: 1 << 24 });
  return JSON.parse(out);
}

function report(title: string, base: string, results: Record<string, { wall: number[]; cpu: number[] }>): void {
  console.log(`\n${title}`);
  const f = (v: number[]) => {
    const s = spread(v);
    return `${s.median.toFixed(2)} (${s.kind} ${s.lo.toFixed(2)}–${s.hi.toFixed(2)})`;
  };
  const b = results[base];
  for (const [name, r] of Object.entries(results)) {
    const extra = name === base ? '' : `  extra: wall +${f(r.wall.map((w, i) => w - b.wall[i]))}, CPU +${f(r.cpu.map((c, i) => c - b.cpu[i]))}`;
    console.log(`  ${name.padEnd(44)} wall ${f(r.wall)} ms, CPU ${f(r.cpu)} ms${extra}`);
  }
}

function main(): void {
  if (process.getuid?.() !== 0) throw new Error('run as root: the spawns are measured as nobody (setpriv)');
  const probe = probeBubblewrap({ dataDir: '/nonexistent-kiln', runAs: NOBODY });
  if (!probe.available) throw new Error(probe.reason);
  const execRoot = mkdtempSync(join(tmpdir(), 'kiln-spawn-bench-'));
  chownSync(execRoot, NOBODY.uid, NOBODY.gid);
  const load0 = loadavg()[0];
  try {
    const host: Record<string, string[]> = {
      '/bin/true': ['/bin/true'],
      "Kiln's bwrap per action": [probe.bwrap, ...bwrapArgs(probe.host, { execRoot, workingDirectory: '', argv: ['/bin/true'], network: false })],
    };
    if (existsSync(linuxSandbox)) host["Bazel's linux-sandbox -W DIR --"] = [linuxSandbox, '-W', execRoot, '--', '/bin/true'];
    report(`as nobody, on the host (${rounds} alternating rounds of ${perRound})`, '/bin/true', measure(asNobody, host));
    const slot = [...asNobody, probe.bwrap, '--unshare-all', '--die-with-parent', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp'];
    const nested: Record<string, string[]> = {
      '/bin/true': ['/bin/true'],
      'unshare, no namespace': ['unshare', '/bin/true'],
      'unshare --user': ['unshare', '--user', '--map-current-user', '/bin/true'],
      'unshare --user --pid --fork': ['unshare', '--user', '--map-current-user', '--pid', '--fork', '--kill-child', '/bin/true'],
      'unshare --user --pid --fork --ipc': [...NESTED, '/bin/true'],
      'the same, a shell as PID 1': [...NESTED, ...PID1_SHELL, '/bin/true'],
    };
    report(`as nobody, inside one long-lived bwrap --unshare-all (a slot's stand-in)`, '/bin/true', measure(slot, nested));
    console.log(`\nload ${load0.toFixed(2)} → ${loadavg()[0].toFixed(2)}`);
  } finally {
    rmSync(execRoot, { recursive: true, force: true });
  }
}

main();
