// The memory cap written into modules, and the module cache, on modules
// assembled by hand (no toolchain needed).
import { describe, expect, it } from 'vitest';
import { ModuleCache } from '../../engine/wasi/module-cache';
import { capMemory, checkHeader } from '../../engine/wasi/wasm-binary';

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

/** A module with one memory (min pages, optional max) exported as "memory"; with `start`, a _start that does nothing. */
function moduleWithMemory(min: number, max?: number, opts: { start?: boolean; flags?: number } = {}): Uint8Array {
  const flags = opts.flags ?? (max === undefined ? 0 : 1);
  const limits = [flags, ...leb(min), ...(max === undefined ? [] : leb(max))];
  const name = (s: string) => [s.length, ...Buffer.from(s)];
  const parts = [...HEADER];
  if (opts.start) parts.push(...section(1, [1, 0x60, 0, 0])); // type: () -> ()
  if (opts.start) parts.push(...section(3, [1, 0])); // one function of type 0
  parts.push(...section(5, [1, ...limits]));
  const exportsList = [[...name('memory'), 2, 0], ...(opts.start ? [[...name('_start'), 0, 0]] : [])];
  parts.push(...section(7, [exportsList.length, ...exportsList.flat()]));
  if (opts.start) parts.push(...section(10, [1, 2, 0, 0x0b])); // body: no locals, end
  return Uint8Array.from(parts);
}

function memoryOf(bytes: Uint8Array): { grow(pages: number): number } {
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes));
  return instance.exports.memory as { grow(pages: number): number };
}

describe('capMemory', () => {
  it('gives a memory without a maximum one at the cap: growing past it fails, up to it works', () => {
    const capped = capMemory(moduleWithMemory(1), 16);
    expect(memoryOf(capped).grow(15)).toBe(1);
    expect(() => memoryOf(capped).grow(16)).toThrow(RangeError);
    // The uncapped module really could grow that far: the cap is what stops it.
    expect(memoryOf(moduleWithMemory(1)).grow(16)).toBe(1);
  });

  it("keeps a module's own smaller maximum, and lowers a larger one", () => {
    expect(() => memoryOf(capMemory(moduleWithMemory(1, 4), 16)).grow(4)).toThrow(RangeError);
    expect(memoryOf(capMemory(moduleWithMemory(1, 4), 16)).grow(3)).toBe(1);
    expect(() => memoryOf(capMemory(moduleWithMemory(1, 1000), 16)).grow(16)).toThrow(RangeError);
  });

  it('reads and writes multi-byte sizes (300 pages, a 65536-page cap)', () => {
    const capped = capMemory(moduleWithMemory(300), 65536);
    expect(memoryOf(capped).grow(0)).toBe(300);
  });

  it('refuses a module whose initial memory is already beyond the limit, in MiB', () => {
    expect(() => capMemory(moduleWithMemory(32), 16)).toThrow(/needs 2 MiB of memory to start, more than its limit of 1 MiB/);
  });

  it('refuses memory64, a component, a file that is not wasm and a truncated module, each in words', () => {
    expect(() => capMemory(moduleWithMemory(1, undefined, { flags: 0x04 }), 16)).toThrow(/memory64/);
    expect(() => checkHeader(Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]))).toThrow(/component \(WASI preview 2\)/);
    expect(() => checkHeader(Buffer.from('#!/bin/sh\n'))).toThrow(/not a WebAssembly module/);
    expect(() => capMemory(moduleWithMemory(1).subarray(0, 12), 16)).toThrow(/truncated/);
  });
});

describe('ModuleCache', () => {
  it('compiles a module once per memory limit, and shares a compile between concurrent loads', async () => {
    const cache = new ModuleCache();
    const wasm = moduleWithMemory(1, undefined, { start: true });
    const [a, b] = await Promise.all([cache.load(wasm, 16), cache.load(wasm, 16)]);
    expect(a.problem).toBeUndefined();
    expect(b.module).toBe(a.module);
    expect(cache.compileCount).toBe(1);
    expect((await cache.load(Uint8Array.from(wasm), 16)).module).toBe(a.module);
    expect(cache.compileCount).toBe(1);
    await cache.load(wasm, 32);
    expect(cache.compileCount).toBe(2);
  });

  it('does not keep a module that cannot run, so a fixed one is not met by the old answer', async () => {
    const cache = new ModuleCache();
    const noStart = moduleWithMemory(1);
    expect((await cache.load(noStart, 16)).problem).toMatch(/has no _start export/);
    await new Promise((r) => setImmediate(r));
    await cache.load(noStart, 16);
    expect(cache.compileCount).toBe(2);
  });

  it('drops the least recently used module beyond its byte budget', async () => {
    const first = moduleWithMemory(1, undefined, { start: true });
    const second = moduleWithMemory(2, undefined, { start: true });
    const cache = new ModuleCache({ budgetBytes: first.length + 1 });
    await cache.load(first, 16);
    await cache.load(second, 16);
    await cache.load(second, 16);
    expect(cache.compileCount).toBe(2);
    await cache.load(first, 16);
    expect(cache.compileCount).toBe(3);
  });
});
