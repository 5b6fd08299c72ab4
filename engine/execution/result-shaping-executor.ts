// Puts output symlinks where the client's API version reads them: v2.1+
// (output_paths) in output_symlinks; v2.0 (output_files/output_directories) in
// output_file_symlinks and output_directory_symlinks, by what was declared.
import { reapi } from '../proto';
import { ExecutorDecorator, type ExecutionHooks, type ExecutionOutcome, type PreparedAction } from './executor';

export class ResultShapingExecutor extends ExecutorDecorator {
  override async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    const outcome = await this.inner.run(action, signal, hooks);
    return { ...outcome, result: shapeResult(action.command, outcome.result) };
  }
}

export function shapeResult(command: reapi.Command, result: reapi.ActionResult): reapi.ActionResult {
  if (command.outputPaths.length > 0) return result;
  const symlinks = [...result.outputSymlinks, ...result.outputFileSymlinks, ...result.outputDirectorySymlinks];
  const declared = (paths: string[]) => symlinks.filter((s) => paths.includes(s.path ?? ''));
  return reapi.ActionResult.create({
    ...result,
    outputSymlinks: [],
    outputFileSymlinks: declared(command.outputFiles),
    outputDirectorySymlinks: declared(command.outputDirectories),
  });
}
