// An action's platform properties, as the runner that runs it sees them.
import type { reapi } from '../proto';

/** Action.platform wins over Command.platform (the v2.2+ rule); empty counts as unset. */
export function effectivePlatform(action: reapi.Action, command: reapi.Command): reapi.Platform.$Properties | undefined {
  if (action.platform?.properties?.length) return action.platform;
  return command.platform ?? undefined;
}

/** The effective platform as name → value (a later duplicate name wins). */
export function effectivePlatformProperties(action: reapi.Action, command: reapi.Command): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of effectivePlatform(action, command)?.properties ?? []) out[p.name ?? ''] = p.value ?? '';
  return out;
}
