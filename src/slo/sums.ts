// Owns sliding-window sums for the daemon's minute-by-minute evaluation: a wrapper around any
// bucket-sum source that caches the sum of the part of a range no write can change any more, and
// moves it with the window by adding the minutes that entered and subtracting those that left.
// An evaluation then reads a few minutes of buckets instead of a whole 30 or 90-day window.
import type { Counts } from './math.js';
import type { Range } from './windows.js';

export type SumSource = { key: string } | { service: string; threshold: number };

/** What the report engine needs: sums of buckets starting in a range, minus excluded ones. */
export interface BucketSums {
  sum(source: SumSource, range: Range, excluded?: readonly Range[]): Counts;
}

interface Entry {
  start: number;
  end: number;
  counts: Counts;
}

export class SlidingSums implements BucketSums {
  readonly #inner: BucketSums;
  readonly #stableBefore: () => number;
  #cache = new Map<string, Entry>();
  /** Rows-free lookups served from the cache (for tests and metrics). */
  hits = 0;

  /** stableBefore(): buckets starting before this time receive no more writes (until invalidate()). */
  constructor(inner: BucketSums, stableBefore: () => number) {
    this.#inner = inner;
    this.#stableBefore = stableBefore;
  }

  /** Forgets every cached sum (after compaction or retention rewrote old buckets). */
  invalidate(): void {
    this.#cache.clear();
  }

  sum(source: SumSource, range: Range, excluded: readonly Range[] = []): Counts {
    const stable = Math.min(range.end, this.#stableBefore());
    if (stable <= range.start) return this.#inner.sum(source, range, excluded);
    // Rolling windows keep their length as they slide; calendar windows keep their start.
    const base = `${JSON.stringify(source)}|${JSON.stringify(excluded)}`;
    const byLength = `${base}|len:${range.end - range.start}`;
    const byStart = `${base}|start:${range.start}`;
    const e = this.#cache.get(byLength) ?? this.#cache.get(byStart);
    let head: Counts;
    if (e && e.start <= range.start && e.end <= stable && range.start < e.end) {
      const left = e.start < range.start ? this.#inner.sum(source, { start: e.start, end: range.start }, excluded) : { good: 0, total: 0 };
      const entered = e.end < stable ? this.#inner.sum(source, { start: e.end, end: stable }, excluded) : { good: 0, total: 0 };
      head = { good: e.counts.good - left.good + entered.good, total: e.counts.total - left.total + entered.total };
      this.hits++;
    } else {
      head = this.#inner.sum(source, { start: range.start, end: stable }, excluded);
    }
    const entry = { start: range.start, end: stable, counts: head };
    this.#cache.set(byLength, entry);
    this.#cache.set(byStart, entry);
    const tail = stable < range.end ? this.#inner.sum(source, { start: stable, end: range.end }, excluded) : { good: 0, total: 0 };
    return { good: head.good + tail.good, total: head.total + tail.total };
  }
}
