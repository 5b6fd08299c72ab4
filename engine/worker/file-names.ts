// Which file names an action may use: what a Linux file system accepts, no
// more and no less. A name is one path segment: not empty, not "." or "..",
// without "/" or NUL, at most NAME_MAX (255) bytes. Backslashes, colons,
// leading dashes, spaces, control characters and any UTF-8 are ordinary names
// and go through staging, the run and collection byte for byte.

/** NAME_MAX: the longest name (in bytes) Linux file systems take. */
export const MAX_NAME_BYTES = 255;

/** What is wrong with `name` as a single file name, or undefined when it is fine. */
export function fileNameProblem(name: string): string | undefined {
  if (name === '') return 'is empty';
  if (name === '.' || name === '..') return `is "${name}", which names a directory itself`;
  if (name.includes('/')) return 'contains "/" (a name is one path segment)';
  if (name.includes('\0')) return 'contains a NUL byte';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) return `is ${bytes} bytes long; names may be at most ${MAX_NAME_BYTES} bytes`;
  return undefined;
}

/** A name for an error message: quoted and escaped (control characters shown), long ones shortened. */
export function shownName(name: string, maxChars = 60): string {
  const short = [...name].length > maxChars ? `${[...name].slice(0, maxChars).join('')}…` : name;
  return JSON.stringify(short);
}

/**
 * A name read from the file system (readdir, readlink with encoding 'buffer')
 * as the string REAPI carries, or undefined when the bytes are not UTF-8 and so
 * cannot be reported exactly.
 */
export function utf8Name(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}
