// The platform property names some part of Kiln reads (the sandbox: network,
// memory, cpus, sandbox). Unknown names are ignored, as REAPI servers usually
// do, but an action's detail lists them so a typo ("memroy") does not go
// unnoticed. Parts declare their names as they load, like kind-names.ts.
const known = new Set<string>();

export function declarePlatformProperties(names: readonly string[]): void {
  for (const n of names) known.add(n);
}

/** The names in `platform` that nothing in Kiln reads, sorted. */
export function ignoredPlatformProperties(platform: Record<string, string>): string[] {
  return Object.keys(platform)
    .filter((n) => !known.has(n))
    .sort();
}
