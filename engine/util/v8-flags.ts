// V8 flags the engine's Node must be started with. They size the heap, which V8
// fixes when the isolate is made: v8.setFlagsFromString at run time leaves the
// young generation as it was, and Node 20 refuses --min-semi-space-size in
// NODE_OPTIONS. So an entry point that finds one missing starts Node again with
// it (relaunch.ts), and launchers that start Node or Electron themselves pass them.

/**
 * A 16 MiB minimum semi-space: after a few hundred actions a serve's young
 * generation had shrunk, objects in flight during ByteStream transfers were
 * promoted, and 64 MiB streams set off ~60 mark-compacts instead of none.
 *
 * A 128 MiB floor under the old generation's limit: V8 counts every Buffer
 * allocated since the last full collection (short-lived ones too, until a
 * scavenge frees them, up to ~32 MB apart) against that limit, and after a
 * serve's first full collection the limit sits only ~8 MB above the live heap.
 * A stream allocates two to three times its size in Buffers, so after a
 * thousand actions each few MiB streamed started another full collection. An
 * initial old-space size given as a flag is the least limit V8 then sets
 * (README, "Performance notes: the cache path").
 */
export const ENGINE_V8_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--initial-old-space-size=128'];

/** V8 spells a flag with dashes or underscores; the name is what precedes '='. */
function flagName(arg: string): string {
  return arg.split('=', 1)[0]!.replace(/_/g, '-');
}

/**
 * The flags of `wanted` that `execArgv` does not set. A value the user chose
 * (node --min-semi-space-size=64 …) counts as set: it is theirs to choose.
 */
export function missingV8Flags(execArgv: readonly string[], wanted: readonly string[] = ENGINE_V8_FLAGS): string[] {
  const given = new Set(execArgv.map(flagName));
  return wanted.filter((flag) => !given.has(flagName(flag)));
}

/** The same flags as one Electron switch, for its main process (read only at its start). */
export function electronJsFlagsSwitch(flags: readonly string[] = ENGINE_V8_FLAGS): string {
  return `--js-flags=${flags.join(' ')}`;
}
