// What a caller sees of an execution: an operation's name, stage and, once it is
// done, its ExecuteResponse. Snapshots are plain values; `toOperation` turns one
// into the google.longrunning.Operation sent on the wire.
import { DIGEST_FUNCTIONS, toWireDigest, type BlobDigest } from '../digest';
import { longrunning, packAny, reapi, timestampFromMs } from '../proto';

export type OperationStage = 'QUEUED' | 'EXECUTING' | 'COMPLETED';

export const OPERATION_PREFIX = 'operations/';

export interface StreamNames {
  stdout: string;
  stderr: string;
}

export interface OperationSnapshot {
  /** `operations/{id}`: what Execute hands out and WaitExecution/GetOperation accept. */
  name: string;
  id: string;
  /** Creation order: larger is newer (stable paging in ListOperations). */
  seq: number;
  /** The execution this operation watches; operations of deduplicated callers share it. */
  jobId: string;
  instance: string;
  actionDigest: BlobDigest;
  stage: OperationStage;
  done: boolean;
  queuedAt: number;
  /** Set from EXECUTING on, when live log streams are available. */
  streamNames?: StreamNames;
  /** Set when done. */
  response?: reapi.ExecuteResponse;
  /** What the caller who created it asked to have inlined (the Execution service does the inlining). */
  inline?: { stdout: boolean; stderr: boolean };
}

const STAGES: Record<OperationStage, reapi.ExecutionStage.Value> = {
  QUEUED: reapi.ExecutionStage.Value.QUEUED,
  EXECUTING: reapi.ExecutionStage.Value.EXECUTING,
  COMPLETED: reapi.ExecutionStage.Value.COMPLETED,
};

export function executeOperationMetadata(op: OperationSnapshot): reapi.ExecuteOperationMetadata {
  return reapi.ExecuteOperationMetadata.create({
    stage: STAGES[op.stage],
    actionDigest: toWireDigest(op.actionDigest),
    digestFunction: DIGEST_FUNCTIONS[op.actionDigest.fn].value,
    stdoutStreamName: op.streamNames?.stdout ?? '',
    stderrStreamName: op.streamNames?.stderr ?? '',
    partialExecutionMetadata: { queuedTimestamp: timestampFromMs(op.queuedAt) },
  });
}

export function toOperation(op: OperationSnapshot): longrunning.Operation {
  return longrunning.Operation.create({
    name: op.name,
    metadata: packAny(reapi.ExecuteOperationMetadata, executeOperationMetadata(op)),
    done: op.done,
    ...(op.done && op.response ? { response: packAny(reapi.ExecuteResponse, op.response) } : {}),
  });
}
