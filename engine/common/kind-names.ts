// The names of the executor and runner kinds this Kiln can build. The factory
// (engine/executor-factory.ts) declares each kind it registers; settings are
// checked against these names where they are read (config-load), which must
// not import the factory and everything it builds.
export type KindRole = 'executor' | 'runner';

const names: Record<KindRole, Set<string>> = { executor: new Set(), runner: new Set() };

export function declareKindName(role: KindRole, name: string): void {
  names[role].add(name);
}

export function kindNames(role: KindRole): string[] {
  return [...names[role]];
}
