// The launcher: a small, long-lived process that starts actions for the engine.
// Spawning from the engine itself would fork a large process (Electron's main
// process) and block its event loop for milliseconds per action; this process
// stays small, so each spawn stays cheap. Each action leads its own process
// group, and holds a marker descriptor that follows processes out of the group
// (process-markers.ts, marker-sockets.ts), so a timeout or cancel can kill
// everything it started.
// If the engine goes (its end of either pipe closes), every action goes too.
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import { SocketMarkers, type SocketMarker } from './marker-sockets';
import { killProcessesHolding } from './process-markers';
import { isSlotAgent, killOthersNow, resetSlot, spawnInCgroups } from './slot-agent';
import { SLOT_SPAWNER_ENV, SlotSpawner } from './slot-spawner';
import { KILL_GRACE_MS, type ExitedMessage, type LauncherMessage, type LauncherRequest, type SignalRequest, type SpawnRequest } from './launcher-protocol';

interface Running {
  /** The action's leader (and its process group), once started. */
  pid?: number;
  /** The action's fd 3, held until the action is over (marker-sockets.ts). */
  marker?: SocketMarker;
  timedOut: boolean;
  killed: boolean;
  timer?: NodeJS.Timeout;
  /** Time left on the timeout while the group is stopped (SIGSTOP); undefined while it runs. */
  pausedLeft?: number;
  deadline?: number;
  done: boolean;
}

const running = new Map<string, Running>();
const markers = new SocketMarkers();
/** A slot's agent (slot-agent.ts): one action at a time in a PID namespace of the slot's own, so "everything else" is the action's. */
const slotAgent = isSlotAgent();
/** A slot's agent starts actions through kiln-spawn when the slot has it (slot-spawner.ts), else by forking itself. */
let spawner: SlotSpawner | undefined;
/** Processes a slot's sweeps between actions spare: the spawner. */
const spared = (): number[] => (spawner ? [spawner.pid] : []);

// A background launcher (polite mode) lowers its own priority before it starts anything, so each
// action inherits nice 19 at fork: nothing it starts ever runs at normal priority, not even briefly.
if (process.env.KILN_LAUNCHER_BACKGROUND === '1') {
  try {
    setPriority(19);
  } catch {
    /* not allowed here: background() below still renices each action */
  }
}

function send(msg: LauncherMessage): void {
  process.stdout.write(JSON.stringify(msg) + '\n');
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Everything the action started: its group, and whatever left the group but holds its marker. */
function killAll(r: Pick<Running, 'pid' | 'marker'>): void {
  if (slotAgent) return killOthersNow(spared());
  killGroup(r.pid, 'SIGKILL');
  if (r.marker) killProcessesHolding([r.marker.id], [], r.pid);
}

/**
 * After the action's leader exited: its group, and the /proc sweep only when
 * something still holds the action's marker (it left the group, or the group
 * outlived the leader). Without a marker (none could be made) there is nothing
 * to sweep by: the group kill is all, as it always was there.
 */
function killLeftovers(r: Running): void {
  if (slotAgent) return; // resetSlot() before the exit is reported
  killGroup(r.pid, 'SIGKILL');
  if (r.marker?.stillHeld()) killProcessesHolding([r.marker.id], [], r.pid);
}

function stop(r: Running): void {
  killGroup(r.pid, 'SIGTERM');
  // A stopped group only acts on SIGTERM once it runs again.
  if (r.pausedLeft !== undefined) killGroup(r.pid, 'SIGCONT');
  // Once the action is over, finish() has swept and released the marker: never sweep by it again.
  setTimeout(() => r.done || killAll(r), KILL_GRACE_MS).unref();
}

function armTimeout(r: Running, ms: number): void {
  r.deadline = Date.now() + ms;
  r.timer = setTimeout(() => {
    r.timedOut = true;
    stop(r);
  }, ms);
}

/**
 * The lowest priority an unprivileged process can have: nice 19 for the
 * action's leader (inherited already in a background launcher; what it starts
 * inherits it, and Linux derives the lowest best-effort I/O priority from
 * it), and nice 19 for its autogroup. The
 * action leads a session of its own (detached), and where the kernel groups
 * sessions for CPU fairness (sched_autogroup) a process's own nice counts only
 * inside its group: without the group's nice an action would still get as
 * much CPU as the person's terminal. Best effort: a failure leaves the normal
 * priority.
 */
function background(pid: number): void {
  try {
    setPriority(pid, 19);
  } catch {
    /* already gone, or not allowed */
  }
  if (process.platform !== 'linux') return;
  try {
    writeFileSync(`/proc/${pid}/autogroup`, '19');
  } catch {
    /* no autogroups in this kernel */
  }
}

/** CAP_SYS_NICE in the effective set: this process may raise its own priority back after lowering it. */
function maySetPriorityBack(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return hex !== undefined && (BigInt(`0x${hex}`) & (1n << 23n)) !== 0n;
  } catch {
    return false;
  }
}
const canLowerForSpawn = maySetPriorityBack();

/**
 * Spawns a polite action at nice 19 from its first instruction: a launcher
 * that may raise its priority back (root, or a root slot's agent) lowers its
 * own for the fork, so the child inherits it, instead of renicing the child
 * once it may already have run (and printed) at normal priority.
 */
function spawnPolite<T>(polite: boolean | undefined, spawnIt: () => T): T {
  if (!polite || !canLowerForSpawn) return spawnIt();
  const before = getPriority();
  if (before >= 19) return spawnIt();
  try {
    setPriority(19);
  } catch {
    return spawnIt();
  }
  try {
    return spawnIt();
  } finally {
    setPriority(before);
  }
}

function signal(req: SignalRequest): void {
  const r = running.get(req.id);
  if (!r || r.done) return;
  const pid = r.pid;
  if (req.signal === 'STOP') {
    if (r.pausedLeft !== undefined) return;
    r.pausedLeft = r.timer && r.deadline !== undefined ? Math.max(0, r.deadline - Date.now()) : -1;
    clearTimeout(r.timer);
    killGroup(pid, 'SIGSTOP');
  } else if (req.signal === 'CONT') {
    if (r.pausedLeft === undefined) return;
    const left = r.pausedLeft;
    r.pausedLeft = undefined;
    killGroup(pid, 'SIGCONT');
    if (left >= 0) armTimeout(r, left);
  } else {
    killGroup(pid, `SIG${req.signal}`);
    if (r.pausedLeft !== undefined && req.signal !== 'KILL') {
      // Let a stopped group see the signal; its timeout runs again with it.
      const left = r.pausedLeft;
      r.pausedLeft = undefined;
      killGroup(pid, 'SIGCONT');
      if (left >= 0) armTimeout(r, left);
    }
  }
}

/** Ends an action once: its leftovers killed, the slot made clean (an agent), then the engine told. */
function finisher(req: SpawnRequest): (msg: Omit<ExitedMessage, 'type' | 'id'>) => void {
  return (msg) => {
    const r = running.get(req.id);
    if (r?.done) return;
    if (r) {
      r.done = true;
      clearTimeout(r.timer);
      // Whatever the action left behind (background jobs, setsid daemons) goes with it.
      killLeftovers(r);
      r.marker?.close();
    }
    running.delete(req.id);
    if (!slotAgent) return send({ type: 'exited', id: req.id, ...msg });
    // The slot is clean before the engine hears the action is over (and sends the next one).
    resetSlot(req.runAs, spared()).then(
      () => send({ type: 'exited', id: req.id, ...msg }),
      (e: Error) => {
        process.stderr.write(`kiln slot agent: ${e.message}; the slot is made anew\n`);
        process.exit(70);
      },
    );
  };
}

function start(req: SpawnRequest, marker: SocketMarker | undefined): void {
  if (spawner) return startThrough(spawner, req);
  let out: number | undefined;
  let err: number | undefined;
  const writable: number[] = [];
  const finish = finisher(req);
  try {
    out = openSync(req.stdoutPath, 'a');
    err = openSync(req.stderrPath, 'a');
    for (const path of req.writableFds ?? []) writable.push(openSync(path, constants.O_WRONLY));
    // The marker is the action's fd 3 (MARKER_FD); the writable files follow from FIRST_WRITABLE_FD on.
    const stdio = [...(marker ? ['ignore', out, err, marker.childFd] : ['ignore', out, err, 'ignore']), ...writable];
    const child = spawnInCgroups(req.joinCgroups ?? [], () =>
      spawnPolite(req.background, () =>
        spawn(req.argv[0], req.argv.slice(1), {
          cwd: req.cwd,
          env: req.env,
          stdio: stdio as ('ignore' | number)[],
          detached: true,
          // The action user (libuv drops supplementary groups with it).
          ...(req.runAs ? { uid: req.runAs.uid, gid: req.runAs.gid } : {}),
        }),
      ),
    );
    // From now on only the action's processes hold its end: EOF on ours means they are all gone.
    marker?.releaseChildEnd();
    const r: Running = { pid: child.pid, marker, timedOut: false, killed: false, done: false };
    running.set(req.id, r);
    child.once('error', (e) => finish({ code: null, signal: null, timedOut: false, killed: r.killed, spawnError: e.message }));
    child.once('exit', (code, signal) => finish({ code, signal, timedOut: r.timedOut, killed: r.killed }));
    if (child.pid && req.background) background(child.pid);
    if (child.pid) send({ type: 'started', id: req.id, pid: child.pid, marker: marker?.id });
    if (req.timeoutMs > 0) armTimeout(r, req.timeoutMs);
  } catch (e) {
    if (marker && !running.has(req.id)) marker.close();
    finish({ code: null, signal: null, timedOut: false, killed: false, spawnError: (e as Error).message });
  } finally {
    // The child holds its own copies of the descriptors.
    if (out !== undefined) closeSync(out);
    if (err !== undefined) closeSync(err);
    for (const fd of writable) closeSync(fd);
  }
}

/**
 * A slot's action started by kiln-spawn: it opens the files, joins the cgroups and
 * lowers the priority in the child itself, so the agent neither forks nor moves.
 */
function startThrough(s: SlotSpawner, req: SpawnRequest): void {
  const finish = finisher(req);
  const r: Running = { timedOut: false, killed: false, done: false };
  running.set(req.id, r);
  try {
    s.spawn(
      {
        argv: req.argv,
        env: req.env,
        cwd: req.cwd,
        stdoutPath: req.stdoutPath,
        stderrPath: req.stderrPath,
        writable: req.writableFds ?? [],
        cgroups: req.joinCgroups ?? [],
        runAs: req.runAs,
        polite: req.background === true,
      },
      {
        started: (pid) => {
          r.pid = pid;
          send({ type: 'started', id: req.id, pid });
          // A kill that came before the pid did: the action goes now.
          if (r.killed) stop(r);
          else if (req.timeoutMs > 0) armTimeout(r, req.timeoutMs);
        },
        failed: (message) => finish({ code: null, signal: null, timedOut: false, killed: r.killed, spawnError: message }),
        exited: (code, signal) => finish({ code, signal, timedOut: r.timedOut, killed: r.killed }),
      },
    );
  } catch (e) {
    finish({ code: null, signal: null, timedOut: false, killed: false, spawnError: (e as Error).message });
  }
}

async function handle(req: LauncherRequest): Promise<void> {
  // A slot's agent needs no marker: what the action left is everything else in the slot's namespace.
  if (req.type === 'spawn') start(req, slotAgent ? undefined : await markers.take());
  else if (req.type === 'signal') signal(req);
  else if (req.type === 'kill') {
    const r = running.get(req.id);
    if (r && !r.done) {
      r.killed = true;
      stop(r);
    }
  }
}

// Requests are handled in order: a spawn that waits for its marker is not overtaken by a kill for it.
let queue = Promise.resolve();
createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  let req: LauncherRequest;
  try {
    req = JSON.parse(line) as LauncherRequest;
  } catch (e) {
    process.stderr.write(`kiln launcher: bad request: ${(e as Error).message}\n`);
    return;
  }
  queue = queue
    .then(() => handle(req))
    .catch((e: Error) => {
      process.stderr.write(`kiln launcher: ${e.message}\n`);
    });
});

if (!slotAgent) markers.warm();
const spawnerPath = slotAgent ? process.env[SLOT_SPAWNER_ENV] : undefined;
if (spawnerPath) {
  SlotSpawner.start(spawnerPath, (why) => {
    // Actions under way were told; the slot is made anew with a spawner that works.
    process.stderr.write(`kiln slot agent: ${why}; the slot is made anew\n`);
    process.exit(70);
  }).then(
    (s) => {
      spawner = s;
      send({ type: 'ready' });
    },
    (e: Error) => {
      process.stderr.write(`kiln slot agent: kiln-spawn did not start (${e.message}); actions are forked from the agent\n`);
      send({ type: 'ready' });
    },
  );
} else send({ type: 'ready' });

/** The engine went away: take every running action with us, then go. */
function shutdown(): void {
  for (const r of running.values()) killAll(r);
  process.exit(0);
}
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
// Writing to an engine that died is EPIPE: without this handler the launcher
// crashed on it and left the other actions running.
process.stdout.on('error', shutdown);
