// Human-readable figures. Every function accepts the API's raw units (bytes, ms,
// fractions) and never throws on odd input: a dashboard shows "—" rather than NaN.

const DASH = '—';
const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function finite(n: number | null | undefined): n is number {
  return typeof n === 'number' && Number.isFinite(n);
}

/** 1536 → "1.5 KiB"; three significant digits at most, whole bytes below 1 KiB. */
export function formatBytes(bytes: number | null | undefined): string {
  if (!finite(bytes) || bytes < 0) return DASH;
  let unit = 0;
  let value = bytes;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${trimZeros(value.toFixed(digits))} ${BYTE_UNITS[unit]}`;
}

export function formatByteRate(bytesPerSecond: number | null | undefined): string {
  const b = formatBytes(bytesPerSecond);
  return b === DASH ? b : `${b}/s`;
}

/** Durations at the precision a person reads: "850 ms", "4.2 s", "1m 05s", "2h 03m". */
export function formatDuration(ms: number | null | undefined): string {
  if (!finite(ms) || ms < 0) return DASH;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${trimZeros(s.toFixed(1))} s`;
  if (s < 60) return `${Math.floor(s)} s`;
  const totalSeconds = Math.floor(s);
  const minutes = Math.floor(totalSeconds / 60);
  if (minutes < 60) return `${minutes}m ${pad2(totalSeconds % 60)}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h ${pad2(minutes % 60)}m`;
  return `${Math.floor(hours / 24)}d ${pad2(hours % 24)}h`;
}

/** A fraction in [0, 1] as a whole percentage; null (no data yet) as "—". */
export function formatPercent(fraction: number | null | undefined): string {
  if (!finite(fraction)) return DASH;
  const pct = fraction * 100;
  if (pct > 0 && pct < 1) return '<1%';
  if (pct < 100 && pct > 99) return '>99%';
  return `${Math.round(pct)}%`;
}

export function formatCount(n: number | null | undefined): string {
  if (!finite(n)) return DASH;
  return Math.round(n).toLocaleString('en-US');
}

/** Rates like actions/s: one decimal below 10, whole numbers above. */
export function formatRate(perSecond: number | null | undefined): string {
  if (!finite(perSecond) || perSecond < 0) return DASH;
  if (perSecond === 0) return '0';
  if (perSecond < 10) return trimZeros(perSecond.toFixed(1));
  return formatCount(perSecond);
}

/** Wall-clock time of an event, e.g. "14:03:27". */
export function formatTime(epochMs: number | null | undefined): string {
  if (!finite(epochMs)) return DASH;
  const d = new Date(epochMs);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Shortens a digest "hash/size" to its first 12 hex characters for display. */
export function shortDigest(digest: string | undefined): string {
  if (!digest) return DASH;
  const [hash] = digest.split('/');
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : hash;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function trimZeros(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}
