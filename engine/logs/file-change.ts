// Wakes readers waiting for a log file to grow. One fs.watch per file, shared by
// every waiter, plus a short poll because fs.watch misses events on some file
// systems (network mounts, some containers) and cannot watch a file not yet created.
import { watch, type FSWatcher } from 'node:fs';

export interface ChangeWaiter {
  /** Resolves on a change, after `pollMs` at the latest, or when `signal` aborts. */
  wait(signal?: AbortSignal): Promise<void>;
  /** Wakes every waiter now (the action finished, the log was registered). */
  wakeAll(): void;
  close(): void;
}

export function fileChangeWaiter(path: () => string | undefined, pollMs: number): ChangeWaiter {
  const waiters = new Set<() => void>();
  let watcher: FSWatcher | undefined;
  let watchedPath: string | undefined;

  const wakeAll = () => {
    for (const w of [...waiters]) w();
  };

  const ensureWatcher = () => {
    const p = path();
    if (!p || watchedPath === p) return;
    stopWatcher();
    try {
      watcher = watch(p, { persistent: false }, wakeAll);
      watcher.on('error', stopWatcher);
      watchedPath = p;
    } catch {
      // Not created yet, or watching unsupported: the poll covers it.
    }
  };

  function stopWatcher() {
    watcher?.close();
    watcher = undefined;
    watchedPath = undefined;
  }

  return {
    wait(signal) {
      if (signal?.aborted) return Promise.resolve();
      ensureWatcher();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          waiters.delete(done);
          if (waiters.size === 0) stopWatcher();
          resolve();
        };
        const timer = setTimeout(done, pollMs);
        timer.unref?.();
        signal?.addEventListener('abort', done, { once: true });
        waiters.add(done);
      });
    },
    wakeAll,
    close() {
      wakeAll();
      stopWatcher();
    },
  };
}
