// Owns the one parser for durations, sizes and percentages used by config and flags,
// and their human formatting. Pure: no I/O.
import { BulwarkError } from './errors.js';

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** Parses "500ms", "2s", "1h30m", "30d" into milliseconds. Throws BULWARK_UNITS_DURATION. */
export function parseDuration(input: string | number, what = 'duration'): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return input;
    throw durationError(String(input), what);
  }
  const s = input.trim();
  if (s === '0') return 0;
  let total = 0;
  let rest = s;
  let matched = false;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/.exec(rest);
    if (!m) throw durationError(input, what);
    total += Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
    matched = true;
  }
  if (!matched) throw durationError(input, what);
  return Math.round(total);
}

function durationError(input: string, what: string): BulwarkError {
  return new BulwarkError('BULWARK_UNITS_DURATION', `${what}: expected a duration like 500ms or 2s, got '${input}'`, {
    hint: 'units: ms, s, m, h, d, w; combinations like 1h30m are allowed',
  });
}

/** True when `s` parses as a duration. */
export function isDuration(s: string): boolean {
  return s.trim() === '0' || /^(\d+(?:\.\d+)?(ms|s|m|h|d|w))+$/.test(s.trim());
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/** Parses "512B", "16MB" (10^6), "1GiB" (2^30), "64k" (2^10) into bytes. Throws BULWARK_UNITS_SIZE. */
export function parseSize(input: string | number, what = 'size'): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return Math.floor(input);
    throw sizeError(String(input), what);
  }
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(input.trim());
  const unit = m ? (m[2] ?? '').toLowerCase() || 'b' : '';
  const mult = SIZE_UNITS[unit];
  if (!m || mult === undefined) throw sizeError(input, what);
  return Math.floor(Number(m[1]) * mult);
}

function sizeError(input: string, what: string): BulwarkError {
  return new BulwarkError('BULWARK_UNITS_SIZE', `${what}: expected a size like 16MB or 1GiB, got '${input}'`, {
    hint: 'units: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)',
  });
}

/** Parses "99.9%" or 99.9 into a ratio (0.999). Throws BULWARK_UNITS_PERCENT. */
export function parsePercent(input: string | number, what = 'percentage'): number {
  const s = typeof input === 'number' ? String(input) : input.trim();
  const m = /^(\d+(?:\.\d+)?)\s*%?$/.exec(s);
  const v = m ? Number(m[1]) : NaN;
  if (!m || !(v >= 0 && v <= 100)) {
    throw new BulwarkError('BULWARK_UNITS_PERCENT', `${what}: expected a percentage like 99.9%, got '${String(input)}'`, {
      hint: 'a number between 0 and 100, optionally followed by %',
    });
  }
  return Number(`${m[1] as string}e-2`); // exact decimal shift: 99.9 -> 0.999, not 0.9990000000000001
}

/** Formats milliseconds as the largest sensible unit with 3 significant digits: "8.77 h", "43.8 min", "26.3 s". */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  const steps: Array<[number, string]> = [
    [86_400_000, 'days'],
    [3_600_000, 'h'],
    [60_000, 'min'],
    [1000, 's'],
    [1, 'ms'],
  ];
  for (const [size, unit] of steps) {
    if (abs >= size) return `${sig3(ms / size)} ${unit}`;
  }
  return `${sig3(ms)} ms`;
}

/** Three significant digits, no trailing exponent: 8.766 -> "8.77", 43.83 -> "43.8", 525.96 -> "526". */
export function sig3(x: number): string {
  if (x === 0) return '0';
  return Number(x.toPrecision(3)).toString();
}

/** Formats bytes with binary units: "1.50 GiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(2)} ${units[i]}`;
}
