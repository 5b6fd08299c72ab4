// The same rules as the bubblewrap sandbox, as a macOS sandbox-exec (Seatbelt)
// profile: read the system, write only the exec root and a private temp folder,
// never read the home or Kiln's data folder, no network unless asked for.
// seatbelt-runner.ts runs each action under it on macOS; checked for its text and
// with a stand-in sandbox-exec only, never on a real Mac (README, "The sandbox").

export interface SeatbeltRules {
  execRoot: string;
  /** The action's own temporary folder (TMPDIR). */
  tmpDir: string;
  /** Folders the action must not read: the home, Kiln's data folder. */
  hidden: string[];
  network: boolean;
}

/** A path as an SBPL string literal. */
export function sbplString(path: string): string {
  return `"${path.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function seatbeltProfile(rules: SeatbeltRules): string {
  const lines = [
    '(version 1)',
    '(deny default)',
    // Later rules win: allow the system, then take the hidden folders away, then give the exec root back.
    '(allow process-fork)',
    '(allow process-exec)',
    '(allow signal (target same-sandbox))',
    '(allow sysctl-read)',
    '(allow mach-lookup)',
    '(allow ipc-posix-shm)',
    '(allow file-read*)',
    ...rules.hidden.map((p) => `(deny file-read* (subpath ${sbplString(p)}))`),
    `(allow file-read* (subpath ${sbplString(rules.execRoot)}) (subpath ${sbplString(rules.tmpDir)}))`,
    `(allow file-write* (subpath ${sbplString(rules.execRoot)}) (subpath ${sbplString(rules.tmpDir)}) (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty"))`,
    rules.network ? '(allow network*)' : '(deny network*)',
  ];
  return `${lines.join('\n')}\n`;
}
