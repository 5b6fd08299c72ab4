// Closing Kiln's data folder to the action user. The exec roots live outside
// it (build-folder.ts), so actions need nothing in it: the folder itself is
// made 0700, and everything below it (cas/, ac/, logs/, tokens.json,
// http-token, folders made later such as downloads/) is out of their reach
// whatever its own mode, with no check per action.
import { chmod } from 'node:fs/promises';

export async function closeDataDir(dataDir: string): Promise<void> {
  await chmod(dataDir, 0o700);
}
