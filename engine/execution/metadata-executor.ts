// Fills ExecutedActionMetadata from what the executor measured: the worker's
// name and every timestamp from queued to worker completed.
import { reapi, timestampFromMs } from '../proto';
import { ExecutorDecorator, type Executor, type ExecutionHooks, type ExecutionOutcome, type PreparedAction } from './executor';

export class MetadataExecutor extends ExecutorDecorator {
  constructor(inner: Executor, private readonly defaultWorker: string) {
    super(inner);
  }

  override async run(action: PreparedAction, signal: AbortSignal, hooks?: ExecutionHooks): Promise<ExecutionOutcome> {
    const outcome = await this.inner.run(action, signal, hooks);
    const t = outcome.timings;
    const result = reapi.ActionResult.create({
      ...outcome.result,
      executionMetadata: reapi.ExecutedActionMetadata.create({
        ...outcome.result.executionMetadata,
        worker: outcome.worker ?? this.defaultWorker,
        ...(action.queuedAt !== undefined ? { queuedTimestamp: timestampFromMs(action.queuedAt) } : {}),
        workerStartTimestamp: timestampFromMs(t.workerStart),
        inputFetchStartTimestamp: timestampFromMs(t.inputFetchStart),
        inputFetchCompletedTimestamp: timestampFromMs(t.inputFetchCompleted),
        executionStartTimestamp: timestampFromMs(t.executionStart),
        executionCompletedTimestamp: timestampFromMs(t.executionCompleted),
        outputUploadStartTimestamp: timestampFromMs(t.outputUploadStart),
        outputUploadCompletedTimestamp: timestampFromMs(t.outputUploadCompleted),
        workerCompletedTimestamp: timestampFromMs(t.workerCompleted),
      }),
    });
    return { ...outcome, result };
  }
}
