// Owns in-memory aggregation of SLI observations per minute before they are flushed to the store:
// request counts (good/valid) per key, latency histograms per service, and time slices (ms in
// which a service had a healthy backend, ms in which a node was up, ms the daemon was running).
// Pure: no I/O; the subsystem drains it into the store.
import { MINUTE_MS } from './math.js';
import { floorTo, splitByMinute } from './windows.js';

/** Latency histogram upper bounds in ms (Prometheus-style "le"); configured thresholds are added. */
export const DEFAULT_LATENCY_BOUNDS: readonly number[] = [5, 10, 25, 50, 100, 200, 250, 300, 500, 750, 1000, 2000, 2500, 5000, 10_000, 30_000];
/** The +Inf bucket, as stored (SQLite REAL keeps it exactly). */
export const LE_INF = Number.POSITIVE_INFINITY;

/** The bounds used for a service: defaults plus the latency thresholds of its SLOs, sorted, +Inf last. */
export function latencyBounds(thresholds: readonly number[]): number[] {
  return [...new Set([...DEFAULT_LATENCY_BOUNDS, ...thresholds])].sort((a, b) => a - b).concat([LE_INF]);
}

/** The bucket (upper bound) an observation falls into. */
export function bucketFor(bounds: readonly number[], latencyMs: number): number {
  for (const le of bounds) if (latencyMs <= le) return le;
  return LE_INF;
}

export interface CountRow {
  key: string;
  bucket_start: number;
  good: number;
  total: number;
}

export interface LatencyRow {
  service: string;
  bucket_start: number;
  le: number;
  count: number;
}

type TriState = 'up' | 'down' | 'unknown';

interface Slice {
  state: TriState;
  since: number;
}

/** Accumulates observations; drain() returns the deltas since the last drain (additive rows). */
export class MinuteAggregator {
  #counts = new Map<string, CountRow>();
  #latency = new Map<string, LatencyRow>();
  #slices = new Map<string, Slice>();

  /** One event for a count key (availability of an SLO, for example). */
  count(key: string, good: boolean, at: number): void {
    const m = floorTo(at, MINUTE_MS);
    const id = `${key}\u0000${m}`;
    const row = this.#counts.get(id) ?? { key, bucket_start: m, good: 0, total: 0 };
    row.total += 1;
    if (good) row.good += 1;
    this.#counts.set(id, row);
  }

  /** One latency observation for a service, into the histogram bucket le. */
  latency(service: string, le: number, at: number): void {
    const m = floorTo(at, MINUTE_MS);
    const id = `${service}\u0000${m}\u0000${le}`;
    const row = this.#latency.get(id) ?? { service, bucket_start: m, le, count: 0 };
    row.count += 1;
    this.#latency.set(id, row);
  }

  /**
   * Sets the state of a time-slice key from `at` on. Time in 'up' counts as good and valid, in
   * 'down' as valid only, in 'unknown' not at all (missing data).
   */
  setState(key: string, state: TriState, at: number): void {
    const cur = this.#slices.get(key);
    if (cur) this.#account(key, cur, at);
    // A transition stamped before time already accounted starts where the accounting stopped.
    this.#slices.set(key, { state, since: cur ? Math.max(at, cur.since) : at });
  }

  /** Stops accounting a time-slice key (its time becomes missing data). */
  clearState(key: string, at: number): void {
    const cur = this.#slices.get(key);
    if (cur) this.#account(key, cur, at);
    this.#slices.delete(key);
  }

  stateOf(key: string): TriState | undefined {
    return this.#slices.get(key)?.state;
  }

  #account(key: string, slice: Slice, to: number): void {
    if (to <= slice.since) return;
    if (slice.state !== 'unknown') {
      for (const [m, ms] of splitByMinute(slice.since, to)) {
        const id = `${key}\u0000${m}`;
        const row = this.#counts.get(id) ?? { key, bucket_start: m, good: 0, total: 0 };
        row.total += ms;
        if (slice.state === 'up') row.good += ms;
        this.#counts.set(id, row);
      }
    }
    slice.since = to;
  }

  /** Accounts time slices up to `now` and returns every delta since the last drain. */
  drain(now: number): { counts: CountRow[]; latency: LatencyRow[] } {
    for (const [key, s] of this.#slices) this.#account(key, s, now);
    const counts = [...this.#counts.values()];
    const latency = [...this.#latency.values()];
    this.#counts.clear();
    this.#latency.clear();
    return { counts, latency };
  }
}
