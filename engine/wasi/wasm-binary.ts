// Reads just enough of a WebAssembly binary to say what it is and to cap its
// memory. V8 cannot limit one module's linear memory, so the limit is written
// into the module itself: every memory it defines gets a maximum no larger
// than the action's limit, and memory.grow beyond it fails inside the program
// (malloc returns NULL) instead of taking the engine's memory.

const MAGIC = [0x00, 0x61, 0x73, 0x6d];
const CORE_VERSION = [0x01, 0x00, 0x00, 0x00];
/** Component-model binaries (WASI preview 2) share the magic but carry layer 1 in the version field. */
const COMPONENT_LAYER = 0x01;
const MEMORY_SECTION = 5;

export const WASM_PAGE_BYTES = 64 * 1024;
/** wasm32's address space: 4 GiB, 65536 pages. */
export const MAX_WASM32_PAGES = 65536;

export class WasmFormatError extends Error {}

/** Checks the header: a core module is fine; a component or anything else gets a message a person can act on. */
export function checkHeader(bytes: Uint8Array): void {
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new WasmFormatError('is not a WebAssembly module (it does not start with "\\0asm")');
  }
  if (CORE_VERSION.every((b, i) => bytes[4 + i] === b)) return;
  if (bytes[6] === COMPONENT_LAYER && bytes[7] === 0) {
    throw new WasmFormatError('is a WebAssembly component (WASI preview 2); Kiln runs WASI preview 1 core modules (build for wasm32-wasi / wasm32-wasip1)');
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(4, true);
  throw new WasmFormatError(`is WebAssembly binary version 0x${version.toString(16)}; Kiln runs version 1 core modules`);
}

/**
 * Returns the module with every memory it defines capped at `maxPages`
 * (a smaller maximum of its own is kept). A memory whose initial size is
 * already beyond the cap is an error: the module could never start.
 */
export function capMemory(bytes: Uint8Array, maxPages: number): Uint8Array {
  checkHeader(bytes);
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let pos = 8;
  while (pos < bytes.length) {
    const start = pos;
    const id = bytes[pos++];
    const size = readU32(bytes, pos);
    const contentStart = size.next;
    const end = contentStart + size.value;
    if (end > bytes.length) throw new WasmFormatError('is truncated (a section runs past the end of the file)');
    if (id === MEMORY_SECTION) {
      const content = rewriteMemorySection(bytes.subarray(contentStart, end), maxPages);
      parts.push(Uint8Array.of(id), encodeU32(content.length), content);
    } else {
      parts.push(bytes.subarray(start, end));
    }
    pos = end;
  }
  return Buffer.concat(parts);
}

function rewriteMemorySection(section: Uint8Array, maxPages: number): Uint8Array {
  const count = readU32(section, 0);
  const out: number[] = [...encodeU32(count.value)];
  let pos = count.next;
  for (let i = 0; i < count.value; i++) {
    const flags = section[pos++];
    if (flags === undefined) throw new WasmFormatError('is truncated (in its memory section)');
    if (flags & 0x04) throw new WasmFormatError('uses 64-bit memory (memory64); Kiln runs wasm32 modules');
    const min = readU32(section, pos);
    pos = min.next;
    let max: number | undefined;
    if (flags & 0x01) {
      const m = readU32(section, pos);
      max = m.value;
      pos = m.next;
    }
    if (min.value > maxPages) {
      throw new WasmFormatError(
        `needs ${mib(min.value)} of memory to start, more than its limit of ${mib(maxPages)} (raise the "memory" platform property)`,
      );
    }
    const capped = Math.min(max ?? maxPages, maxPages);
    out.push(flags | 0x01, ...encodeU32(min.value), ...encodeU32(capped));
  }
  if (pos !== section.length) throw new WasmFormatError('has a memory section Kiln cannot read');
  return Uint8Array.from(out);
}

function mib(pages: number): string {
  return `${(pages * WASM_PAGE_BYTES) / 2 ** 20} MiB`;
}

function readU32(bytes: Uint8Array, pos: number): { value: number; next: number } {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    const b = bytes[pos++];
    if (b === undefined) throw new WasmFormatError('is truncated (a number runs past the end of the file)');
    value += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return { value, next: pos };
  }
  throw new WasmFormatError('has a malformed number (LEB128 longer than 5 bytes)');
}

function encodeU32(value: number): Uint8Array {
  const out: number[] = [];
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value) b |= 0x80;
    out.push(b);
  } while (value);
  return Uint8Array.from(out);
}
