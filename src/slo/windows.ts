// Owns time ranges for SLOs: rolling and calendar-month windows, bucket alignment, excluded
// intervals (maintenance), summing stored buckets over a range with exclusions, and which
// buckets compaction merges. Pure: no I/O.
import { MINUTE_MS, HOUR_MS, type Counts } from './math.js';
import { DAY_MS } from './nines.js';

/** A window from the config: a rolling duration in ms, or the calendar month (UTC). */
export type WindowSpec = number | 'month';

export interface Range {
  start: number;
  end: number;
}

/** The SLO window at `now`: [now - ms, now) for rolling windows; [1st of month 00:00 UTC, now) and the month's length for 'month'. */
export function windowAt(spec: WindowSpec, now: number): Range & { length_ms: number; kind: 'rolling' | 'month' } {
  if (spec === 'month') {
    const d = new Date(now);
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    return { start, end: now, length_ms: next - start, kind: 'month' };
  }
  return { start: now - spec, end: now, length_ms: spec, kind: 'rolling' };
}

export function floorTo(t: number, step: number): number {
  return Math.floor(t / step) * step;
}

/** Merges overlapping intervals and clips them to [range.start, range.end). */
export function normalise(intervals: readonly Range[], range: Range): Range[] {
  const clipped = intervals
    .map((i) => ({ start: Math.max(i.start, range.start), end: Math.min(i.end, range.end) }))
    .filter((i) => i.end > i.start)
    .sort((a, b) => a.start - b.start);
  const out: Range[] = [];
  for (const i of clipped) {
    const last = out[out.length - 1];
    if (last && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else out.push({ ...i });
  }
  return out;
}

/** Total length of (already normalised) intervals. */
export function lengthOf(intervals: readonly Range[]): number {
  return intervals.reduce((acc, i) => acc + (i.end - i.start), 0);
}

/** A stored bucket: counts for [bucket_start, bucket_start + bucket_ms). */
export interface Bucket {
  bucket_start: number;
  bucket_ms: number;
  good: number;
  total: number;
}

/**
 * Sums buckets that start within [range.start, range.end) and do not overlap an excluded
 * interval. A bucket touching an exclusion is dropped whole (maintenance is rounded out to the
 * buckets it touches: a minute when it is recent, an hour once compacted).
 */
export function sumBuckets(buckets: readonly Bucket[], range: Range, excluded: readonly Range[] = []): Counts {
  let good = 0;
  let total = 0;
  for (const b of buckets) {
    if (b.bucket_start < range.start || b.bucket_start >= range.end) continue;
    const end = b.bucket_start + b.bucket_ms;
    if (excluded.some((x) => x.start < end && x.end > b.bucket_start)) continue;
    good += b.good;
    total += b.total;
  }
  return { good, total };
}

/** Splits [from, to) at minute boundaries: [[minuteStart, ms], ...]. */
export function splitByMinute(from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let t = from;
  while (t < to) {
    const m = floorTo(t, MINUTE_MS);
    const end = Math.min(to, m + MINUTE_MS);
    out.push([m, end - t]);
    t = end;
  }
  return out;
}

/** Retention: per-minute buckets older than this are compacted to hourly ones. */
export const COMPACT_AFTER_MS = 8 * DAY_MS;
/** Retention: buckets older than this are deleted (at least 400 days, beyond any SLO window). */
export const RETAIN_MS = 400 * DAY_MS;

/** The hourly buckets that replace minute buckets: groups by hour, summing counts. */
export function compactToHours(minutes: readonly Bucket[]): Bucket[] {
  const byHour = new Map<number, Bucket>();
  for (const b of minutes) {
    const h = floorTo(b.bucket_start, HOUR_MS);
    const cur = byHour.get(h) ?? { bucket_start: h, bucket_ms: HOUR_MS, good: 0, total: 0 };
    cur.good += b.good;
    cur.total += b.total;
    byHour.set(h, cur);
  }
  return [...byHour.values()].sort((a, b) => a.bucket_start - b.bucket_start);
}

/** Where compaction cuts at `now`: minute buckets in hours ending before this become hourly. */
export function compactionCutoff(now: number): number {
  return floorTo(now - COMPACT_AFTER_MS, HOUR_MS);
}
