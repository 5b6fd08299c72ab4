// The desktop app's own small settings (settings.json in userData), separate from the
// user's config.yaml: things the app remembers on the user's behalf, like the toggle.
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../engine/util/atomic-file';

export interface DesktopSettings {
  /** Last state of the execution switch, from the tray or the dashboard. */
  executionEnabled?: boolean;
}

export interface SettingsStore {
  load(): Promise<DesktopSettings>;
  /** Merges and persists; writes are serialized so the last update wins on disk. */
  update(patch: DesktopSettings): Promise<void>;
}

/**
 * `legacyPath`: where earlier versions kept the file, read while `path` does not exist yet.
 * (The desktop settings moved out of settings.json, which on macOS is the engine's own
 * {dataDir}/settings.json now that both live in the same folder.)
 */
export function fileSettingsStore(path: string, legacyPath?: string): SettingsStore {
  let current: DesktopSettings | undefined;
  let writing: Promise<void> = Promise.resolve();

  async function load(): Promise<DesktopSettings> {
    current ??= parse(
      await readFile(path, 'utf8').catch(async () => (legacyPath ? readFile(legacyPath, 'utf8').catch(() => '') : '')),
    );
    return { ...current };
  }

  return {
    load,
    update(patch) {
      const next = writing.then(async () => {
        current = { ...(await load()), ...patch };
        await mkdir(dirname(path), { recursive: true });
        await writeFileAtomic(path, JSON.stringify(current, null, 2) + '\n');
      });
      // A failed write must not wedge the ones after it; the caller still sees its own failure.
      writing = next.catch(() => {});
      return next;
    },
  };
}

/** Tolerates a missing or damaged file: settings are a convenience, never a reason not to start. */
function parse(text: string): DesktopSettings {
  try {
    const raw: unknown = JSON.parse(text);
    if (typeof raw !== 'object' || raw === null) return {};
    const enabled = (raw as Record<string, unknown>).executionEnabled;
    return typeof enabled === 'boolean' ? { executionEnabled: enabled } : {};
  } catch {
    return {};
  }
}
