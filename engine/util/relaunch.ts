// Starts this same script again in a Node that has the given flags, and stands
// in for it: signals sent to this process reach the new one exactly once, and
// its exit code becomes this one's. Used by entry points whose Node lacks the
// engine's V8 flags (v8-flags.ts).
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** Set in the relaunched process's environment; it watches its launcher (launcherGone). */
const RELAUNCHED_ENV = 'KILN_RELAUNCHED';

const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Runs `script args` in a new Node with `flags` added; resolves with its exit status. */
export function relaunchWithFlags(flags: readonly string[], script = process.argv[1]!, args = process.argv.slice(2)): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, ...flags, script, ...args], {
      // Its own process group: Ctrl-C reaches this process only and is passed on once,
      // so the engine does not take the terminal's copy and ours as two Ctrl-Cs. (On
      // Windows detached means a console window of its own, and there are no groups to leave.)
      detached: process.platform !== 'win32',
      // The IPC channel closes when this process dies, even by SIGKILL: the engine then stops cleanly.
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [RELAUNCHED_ENV]: '1' },
    });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of FORWARDED) process.on(signal, forward);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      for (const s of FORWARDED) process.off(s, forward);
      // Killed by a signal: the shell's convention, 128 + its number.
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}

/**
 * In a relaunched process: calls `onGone` once if the process that relaunched
 * it goes away without passing on a signal (it was killed with SIGKILL).
 */
export function whenLauncherGone(onGone: () => void): void {
  if (process.env[RELAUNCHED_ENV] !== '1' || !process.channel) return;
  delete process.env[RELAUNCHED_ENV]; // not inherited by the engine's own children
  process.once('disconnect', onGone);
}
