// A slot's agent's way to start actions without forking itself: kiln-spawn
// (engine/sandbox/native/kiln-spawn.c), a small C process the agent starts
// once, forks and execs each action and reports its pid and its end. Forking
// the agent, a Node process of ~45 MiB, cost ~1.9 ms of CPU per spawn here
// against ~0.1 ms from C (README, "Performance notes").
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { createInterface } from 'node:readline';

/** Set in a slot agent's environment to kiln-spawn's path when the slot has it. */
export const SLOT_SPAWNER_ENV = 'KILN_SLOT_SPAWNER';

export interface SpawnerRequest {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  stdoutPath: string;
  stderrPath: string;
  /** Opened write-only as fds 4, 5, … */
  writable: string[];
  /** cgroup.procs files the child joins before exec. */
  cgroups: string[];
  runAs?: { uid: number; gid: number };
  /** nice 19, for the process and its autogroup. */
  polite: boolean;
}

export interface SpawnerEvents {
  started(pid: number): void;
  /** Nothing runs: `message` says what failed, as Node's spawn would. */
  failed(message: string): void;
  exited(code: number | null, signal: NodeJS.Signals | null): void;
}

const errnoNames = new Map<number, string>();
for (const [name, n] of Object.entries(constants.errno)) if (!errnoNames.has(n)) errnoNames.set(n, name);
/** By number; the first name where two share one (SIGABRT before SIGIOT), as Node reports it. */
const signalNames = new Map<number, NodeJS.Signals>();
for (const [name, n] of Object.entries(constants.signals)) if (!signalNames.has(n)) signalNames.set(n, name as NodeJS.Signals);

export class SlotSpawner {
  private readonly pending = new Map<string, { events: SpawnerEvents; argv0: string }>();
  private next = 0;
  private gone = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly onGone: (why: string) => void,
  ) {}

  /** Starts kiln-spawn; rejects when it does not say it is ready. `onGone` hears if it ends later. */
  static start(path: string, onGone: (why: string) => void): Promise<SlotSpawner> {
    return new Promise((resolve, reject) => {
      const child = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'] });
      const spawner = new SlotSpawner(child, onGone);
      let ready = false;
      child.once('error', (err) => (ready ? spawner.died(err.message) : reject(err)));
      child.once('exit', (code, signal) => {
        const why = `kiln-spawn ended (${signal ?? `exit code ${code}`})`;
        if (ready) spawner.died(why);
        else reject(new Error(why));
      });
      child.stdin!.on('error', () => {}); // a write to a dead spawner: its exit says so
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line === 'ready' && !ready) {
          ready = true;
          resolve(spawner);
        } else spawner.heard(line);
      });
    });
  }

  /** Its pid: the agent's sweeps between actions must spare it. */
  get pid(): number {
    return this.child.pid!;
  }

  spawn(req: SpawnerRequest, events: SpawnerEvents): void {
    if (this.gone) return events.failed('spawn: kiln-spawn is gone');
    const token = String(++this.next);
    this.pending.set(token, { events, argv0: req.argv[0] ?? '' });
    this.child.stdin!.write(encodeRequest(token, req));
  }

  private heard(line: string): void {
    const [kind, token, a, b] = line.split(' ');
    const p = this.pending.get(token ?? '');
    if (!p) return;
    const { events } = p;
    if (kind === 'started') events.started(Number(a));
    else if (kind === 'failed') {
      this.pending.delete(token!);
      events.failed(failureMessage(p.argv0, Number(a), b ?? 'exec'));
    } else if (kind === 'exited') {
      this.pending.delete(token!);
      const signal = Number(b);
      events.exited(signal ? null : Number(a), signal ? (signalNames.get(signal) ?? 'SIGKILL') : null);
    }
  }

  private died(why: string): void {
    if (this.gone) return;
    this.gone = true;
    for (const { events } of this.pending.values()) events.failed(`spawn: ${why}`);
    this.pending.clear();
    this.onGone(why);
  }
}

/** As Node's spawn words it ("spawn ARGV0 CODE"), with the step when it was not the exec or the working folder. */
function failureMessage(argv0: string, errno: number, step: string): string {
  const code = errnoNames.get(errno) ?? `errno ${errno}`;
  return step === 'exec' || step === 'chdir' ? `spawn ${argv0} ${code}` : `spawn ${argv0} ${code} (${step})`;
}

/** The wire form kiln-spawn.c reads: a little-endian u32 length, then NUL-terminated fields. */
export function encodeRequest(token: string, req: SpawnerRequest): Buffer {
  const fields = [
    token,
    String(req.runAs?.uid ?? -1),
    String(req.runAs?.gid ?? -1),
    req.polite ? '1' : '0',
    req.cwd,
    req.stdoutPath,
    req.stderrPath,
    ...counted(req.argv),
    ...counted(Object.entries(req.env).map(([k, v]) => `${k}=${v}`)),
    ...counted(req.writable),
    ...counted(req.cgroups),
  ];
  for (const f of fields) if (f.includes('\0')) throw new Error(`a spawn request's field holds a NUL byte: ${JSON.stringify(f.slice(0, 80))}`);
  const body = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
  const head = Buffer.alloc(4);
  head.writeUInt32LE(body.length);
  return Buffer.concat([head, body]);
}

function counted(list: readonly string[]): string[] {
  return [String(list.length), ...list];
}
