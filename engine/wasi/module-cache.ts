// Compiled WASI modules, kept by content digest and memory limit, so a tool
// that many actions use is compiled once. Concurrent loads of one module share
// one compile. Least recently used modules go first beyond the byte budget.
import { createHash } from 'node:crypto';
import { capMemory, WasmFormatError } from './wasm-binary';
import { wasiCommandProblem } from './wasi-module';

export type LoadedModule = { module: WebAssembly.Module; problem?: undefined } | { module?: undefined; problem: string };

export interface ModuleCacheOptions {
  /** Wasm bytes kept (compiled code is a few times that); default 256 MiB. */
  budgetBytes?: number;
}

export class ModuleCache {
  private readonly entries = new Map<string, { loaded: Promise<LoadedModule>; bytes: number }>();
  private bytes = 0;
  private compiles = 0;
  private readonly budget: number;

  constructor(opts: ModuleCacheOptions = {}) {
    this.budget = opts.budgetBytes ?? 256 * 2 ** 20;
  }

  /** How many modules were compiled so far (tests check that a cached module is not compiled again). */
  get compileCount(): number {
    return this.compiles;
  }

  /** The module these bytes hold, with its memory capped at `maxPages`, or why it cannot run. */
  load(wasm: Uint8Array, maxPages: number): Promise<LoadedModule> {
    const key = `${createHash('sha256').update(wasm).digest('hex')}/${maxPages}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.loaded;
    }
    const loaded = this.compile(wasm, maxPages);
    const entry = { loaded, bytes: wasm.length };
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    // Only runnable modules stay: a fixed module under the same name must not meet an old answer.
    void loaded.then((l) => l.problem && this.drop(key, entry));
    this.evict();
    return loaded;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  private async compile(wasm: Uint8Array, maxPages: number): Promise<LoadedModule> {
    let capped: Uint8Array;
    try {
      capped = capMemory(wasm, maxPages);
    } catch (err) {
      if (err instanceof WasmFormatError) return { problem: err.message };
      throw err;
    }
    this.compiles++;
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(capped);
    } catch (err) {
      return { problem: `is not a valid WebAssembly module: ${(err as Error).message}` };
    }
    const problem = wasiCommandProblem(module);
    return problem ? { problem } : { module };
  }

  private drop(key: string, entry: { bytes: number }): void {
    if (this.entries.get(key) !== entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= this.budget || this.entries.size <= 1) break;
      this.drop(key, entry);
    }
  }
}
