// google.longrunning.Operations over the scheduler's operations: look one up,
// list them (newest first, paged), cancel, forget, or wait for one.
import type * as grpc from '@grpc/grpc-js';
import { systemClock, type Clock } from '../clock';
import { invalidArgument, unary } from '../grpc/status';
import { longrunning, msFromDuration, protobuf } from '../proto';
import { toOperation, type OperationSnapshot } from '../scheduler/operation';
import type { Scheduler } from '../scheduler/scheduler';
import { unknownOperation } from './execution';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
/** WaitOperation without a timeout returns after this, with the state so far. */
export const DEFAULT_WAIT_MS = 60_000;

export interface OperationsServiceOptions {
  scheduler: Scheduler;
  clock?: Clock;
}

export function createOperationsService(opts: OperationsServiceOptions): grpc.UntypedServiceImplementation {
  const { scheduler } = opts;
  const clock = opts.clock ?? systemClock;

  const lookup = (name: string): OperationSnapshot => {
    const op = scheduler.get(name);
    if (!op) throw unknownOperation(name);
    return op;
  };

  return {
    getOperation: unary<longrunning.GetOperationRequest, longrunning.Operation>((req) => toOperation(lookup(req.name))),

    listOperations: unary<longrunning.ListOperationsRequest, longrunning.ListOperationsResponse>((req) => {
      if (req.filter) throw invalidArgument('filter is not supported by Kiln; list without one', 'filter');
      if (req.pageSize < 0) throw invalidArgument(`page_size ${req.pageSize} is negative`, 'page_size');
      const pageSize = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
      const before = parsePageToken(req.pageToken);
      const rest = scheduler.list().filter((op) => before === undefined || op.seq < before);
      const page = rest.slice(0, pageSize);
      const nextPageToken = rest.length > pageSize ? String(page[page.length - 1].seq) : '';
      return longrunning.ListOperationsResponse.create({ operations: page.map(toOperation), nextPageToken });
    }),

    cancelOperation: unary<longrunning.CancelOperationRequest, protobuf.Empty>((req) => {
      if (!scheduler.cancel(req.name)) throw unknownOperation(req.name);
      return protobuf.Empty.create();
    }),

    deleteOperation: unary<longrunning.DeleteOperationRequest, protobuf.Empty>((req) => {
      if (!scheduler.delete(req.name)) throw unknownOperation(req.name);
      return protobuf.Empty.create();
    }),

    /** Answers when the operation is done or the timeout passes, whichever is first. */
    waitOperation: unary<longrunning.WaitOperationRequest, longrunning.Operation>(
      (req, call) =>
        new Promise<longrunning.Operation>((resolve, reject) => {
          const waitMs = msFromDuration(req.timeout) || DEFAULT_WAIT_MS;
          if (waitMs < 0) return reject(invalidArgument(`timeout ${waitMs} ms is negative`, 'timeout'));
          let latest: OperationSnapshot | undefined;
          let settled = false;
          const settle = () => {
            if (settled) return;
            settled = true;
            timer.cancel();
            unsubscribe?.();
            resolve(toOperation(latest!));
          };
          const timer = clock.setTimeout(settle, waitMs);
          const unsubscribe = scheduler.watch(req.name, (op) => {
            latest = op;
            if (op.done) settle();
          });
          if (!unsubscribe) {
            timer.cancel();
            return reject(unknownOperation(req.name));
          }
          if (settled) unsubscribe();
          call.on('cancelled', () => {
            settled = true;
            timer.cancel();
            unsubscribe();
          });
        }),
    ),
  };
}

function parsePageToken(token: string): number | undefined {
  if (!token) return undefined;
  if (!/^[0-9]+$/.test(token)) throw invalidArgument(`page_token "${token}" was not issued by this server; list again without one`, 'page_token');
  return Number(token);
}
