// The dashboard's view of an action, taken from its Action and Command.
import type { ActionDetails } from '../events/event-bus';
import { ignoredPlatformProperties } from '../common/platform-properties';
import { effectivePlatform } from '../execution/platform';
import type { reapi } from '../proto';

export { effectivePlatform };

/** output_paths (v2.1+) replaces output_files/output_directories when set. */
export function outputPathsOf(command: reapi.Command): string[] {
  if (command.outputPaths.length > 0) return [...command.outputPaths];
  return [...command.outputFiles, ...command.outputDirectories];
}

export function actionDetails(action: reapi.Action, command: reapi.Command, timeoutMs: number): ActionDetails {
  const env: Record<string, string> = {};
  for (const v of command.environmentVariables) env[v.name ?? ''] = v.value ?? '';
  const platform: Record<string, string> = {};
  for (const p of effectivePlatform(action, command)?.properties ?? []) platform[p.name ?? ''] = p.value ?? '';
  return {
    argv: [...command.arguments],
    env,
    platform,
    ignoredPlatform: ignoredPlatformProperties(platform),
    workingDirectory: command.workingDirectory,
    outputPaths: outputPathsOf(command),
    timeoutMs,
    doNotCache: action.doNotCache,
  };
}
