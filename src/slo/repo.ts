// Owns the SLO tables of the state store: SLI buckets (additive upserts, range reads, compaction
// of minute buckets to hourly ones and retention), latency histograms, alerts and maintenance
// windows declared through the API. The only module of src/slo that does I/O on the store.
import type { StateStore } from '../core/subsystem.js';
import { HOUR_MS, MINUTE_MS, type Counts } from './math.js';
import type { CountRow, LatencyRow } from './recorder.js';
import type { BucketSums, SumSource } from './sums.js';
import { compactionCutoff, RETAIN_MS, type Bucket, type Range } from './windows.js';

export interface AlertRow {
  id: number;
  slo: string;
  tier: number;
  severity: 'page' | 'ticket';
  tier_window: string;
  threshold: number;
  fired_at: number;
  burn_long: number;
  burn_short: number;
  resolved_at: number | null;
  webhook_fired: string | null;
  webhook_resolved: string | null;
}

export interface MaintenanceRow {
  id: number;
  services: string[] | null;
  start: number;
  end: number;
  reason: string;
  created_at: number;
}

/** Keys of sli_buckets rows. */
export const KEYS = {
  availability: (slo: string) => `avail:${slo}`,
  probe: (service: string) => `probe:${service}`,
  node: (service: string, node: string) => `node:${service}/${node}`,
  /** Milliseconds the daemon was running (everything else is missing data). */
  observed: 'observed',
} as const;

/** Rows copied from another instance are stored under "peer:<instance>:<key>" (and the same for latency services). */
export const PEER_PREFIX = 'peer:';
export function peerKey(instance: string, key: string): string {
  return `${PEER_PREFIX}${instance}:${key}`;
}

export class SloRepo implements BucketSums {
  readonly #store: StateStore;

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** Adds deltas to the minute buckets. */
  write(counts: readonly CountRow[], latency: readonly LatencyRow[]): void {
    if (counts.length === 0 && latency.length === 0) return;
    this.#store.transaction(() => {
      for (const c of counts) {
        this.#store.run(
          `INSERT INTO sli_buckets (slo_key, bucket_start, bucket_ms, good, total) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (slo_key, bucket_start, bucket_ms) DO UPDATE SET good = good + excluded.good, total = total + excluded.total`,
          c.key, c.bucket_start, MINUTE_MS, c.good, c.total,
        );
      }
      for (const l of latency) {
        this.#store.run(
          `INSERT INTO sli_latency (service, bucket_start, bucket_ms, le, count) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (service, bucket_start, bucket_ms, le) DO UPDATE SET count = count + excluded.count`,
          l.service, l.bucket_start, MINUTE_MS, l.le, l.count,
        );
      }
    });
  }

  /** Buckets of a key that may fall in [range.start, range.end) (an hourly bucket reaches back up to an hour). */
  buckets(key: string, range: Range): Bucket[] {
    return this.#store.all<Bucket>(
      'SELECT bucket_start, bucket_ms, good, total FROM sli_buckets WHERE slo_key = ? AND bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start',
      key, range.start - HOUR_MS, range.end,
    );
  }

  /** Latency buckets as good (at or under the threshold) and total counts. */
  latencyBuckets(service: string, thresholdMs: number, range: Range): Bucket[] {
    return this.#store.all<Bucket>(
      `SELECT bucket_start, bucket_ms, SUM(CASE WHEN le <= ? THEN count ELSE 0 END) AS good, SUM(count) AS total
       FROM sli_latency WHERE service = ? AND bucket_start >= ? AND bucket_start < ?
       GROUP BY bucket_start, bucket_ms ORDER BY bucket_start`,
      thresholdMs, service, range.start - HOUR_MS, range.end,
    );
  }

  /**
   * Sums in SQL what sumBuckets sums in JS (buckets starting in [range.start, range.end), minus
   * those touching an excluded interval), without materialising the rows: the daemon evaluates
   * every minute on the event loop the proxy shares.
   */
  sum(source: SumSource, range: Range, excluded: readonly Range[] = []): Counts {
    const ex = JSON.stringify(excluded.filter((x) => x.end > range.start - HOUR_MS && x.start < range.end).map((x) => [x.start, x.end]));
    const notExcluded = `NOT EXISTS (SELECT 1 FROM json_each(?) j WHERE j.value ->> 0 < b.bucket_start + b.bucket_ms AND j.value ->> 1 > b.bucket_start)`;
    const noEx = ex === '[]';
    const row =
      'key' in source
        ? this.#store.get<{ good: number | null; total: number | null }>(
            `SELECT SUM(good) AS good, SUM(total) AS total FROM sli_buckets b WHERE slo_key = ? AND bucket_start >= ? AND bucket_start < ?${noEx ? '' : ` AND ${notExcluded}`}`,
            ...[source.key, range.start, range.end, ...(noEx ? [] : [ex])],
          )
        : this.#store.get<{ good: number | null; total: number | null }>(
            `SELECT SUM(CASE WHEN le <= ? THEN count ELSE 0 END) AS good, SUM(count) AS total FROM sli_latency b WHERE service = ? AND bucket_start >= ? AND bucket_start < ?${noEx ? '' : ` AND ${notExcluded}`}`,
            ...[source.threshold, source.service, range.start, range.end, ...(noEx ? [] : [ex])],
          );
    return { good: row?.good ?? 0, total: row?.total ?? 0 };
  }

  // --- request SLI rows of other instances (cluster mode: SLOs count every instance's traffic) ---

  /**
   * This instance's own request-SLI rows (availability counts and latency histograms, minute or
   * hourly) with bucket_start in [from, to): what a peer pulls. Rows copied from peers are not served.
   */
  ownRequestRows(from: number, to: number): { counts: Array<CountRow & { bucket_ms: number }>; latency: Array<LatencyRow & { bucket_ms: number }>; next: number | null } {
    const counts = this.#store.all<CountRow & { bucket_ms: number }>(
      `SELECT slo_key AS key, bucket_start, bucket_ms, good, total FROM sli_buckets WHERE slo_key LIKE 'avail:%' AND bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start`,
      from, to,
    );
    const latency = this.#store.all<LatencyRow & { bucket_ms: number }>(
      `SELECT service, bucket_start, bucket_ms, le, count FROM sli_latency WHERE service NOT LIKE '${PEER_PREFIX}%' AND bucket_start >= ? AND bucket_start < ? ORDER BY bucket_start`,
      from, to,
    );
    // Where the next page has rows at all: a puller skips empty spans instead of paging through them.
    const a = this.#store.get<{ t: number | null }>(`SELECT MIN(bucket_start) AS t FROM sli_buckets WHERE slo_key LIKE 'avail:%' AND bucket_start >= ?`, to)?.t ?? null;
    const b = this.#store.get<{ t: number | null }>(`SELECT MIN(bucket_start) AS t FROM sli_latency WHERE service NOT LIKE '${PEER_PREFIX}%' AND bucket_start >= ?`, to)?.t ?? null;
    const next = a === null ? b : b === null ? a : Math.min(a, b);
    return { counts, latency, next };
  }

  /**
   * Stores rows pulled from a peer under its prefix, replacing what was pulled before (a pull is
   * idempotent): an hourly row replaces everything of its hour, a minute row replaces its minute
   * unless that hour is already an hourly row here.
   */
  replacePeerRows(instance: string, counts: ReadonlyArray<CountRow & { bucket_ms: number }>, latency: ReadonlyArray<LatencyRow & { bucket_ms: number }>): void {
    if (counts.length === 0 && latency.length === 0) return;
    const st = this.#store;
    st.transaction(() => {
      for (const c of counts) {
        const key = peerKey(instance, c.key);
        const hour = Math.floor(c.bucket_start / HOUR_MS) * HOUR_MS;
        if (c.bucket_ms === HOUR_MS) {
          st.run('DELETE FROM sli_buckets WHERE slo_key = ? AND bucket_start >= ? AND bucket_start < ?', key, hour, hour + HOUR_MS);
        } else if (st.get('SELECT 1 FROM sli_buckets WHERE slo_key = ? AND bucket_start = ? AND bucket_ms = ?', key, hour, HOUR_MS)) {
          continue;
        }
        st.run(
          `INSERT INTO sli_buckets (slo_key, bucket_start, bucket_ms, good, total) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (slo_key, bucket_start, bucket_ms) DO UPDATE SET good = excluded.good, total = excluded.total`,
          key, c.bucket_start, c.bucket_ms, c.good, c.total,
        );
      }
      const clearedHours = new Set<string>();
      for (const l of latency) {
        const svc = peerKey(instance, l.service);
        const hour = Math.floor(l.bucket_start / HOUR_MS) * HOUR_MS;
        if (l.bucket_ms === HOUR_MS) {
          const id = `${svc}\u0000${hour}`;
          if (!clearedHours.has(id)) {
            st.run('DELETE FROM sli_latency WHERE service = ? AND bucket_start >= ? AND bucket_start < ?', svc, hour, hour + HOUR_MS);
            clearedHours.add(id);
          }
        } else if (st.get('SELECT 1 FROM sli_latency WHERE service = ? AND bucket_start = ? AND bucket_ms = ? LIMIT 1', svc, hour, HOUR_MS)) {
          continue;
        }
        st.run(
          `INSERT INTO sli_latency (service, bucket_start, bucket_ms, le, count) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (service, bucket_start, bucket_ms, le) DO UPDATE SET count = excluded.count`,
          svc, l.bucket_start, l.bucket_ms, l.le, l.count,
        );
      }
    });
  }

  /** The newest bucket pulled from a peer, or undefined (where the next pull resumes after a restart). */
  peerCursor(instance: string): number | undefined {
    const p = `${peerKey(instance, '')}%`;
    const a = this.#store.get<{ t: number | null }>('SELECT MAX(bucket_start) AS t FROM sli_buckets WHERE slo_key LIKE ?', p)?.t ?? undefined;
    const b = this.#store.get<{ t: number | null }>('SELECT MAX(bucket_start) AS t FROM sli_latency WHERE service LIKE ?', p)?.t ?? undefined;
    if (a === undefined) return b;
    return b === undefined ? a : Math.max(a, b);
  }

  /** Earliest bucket of a key, or undefined. */
  firstBucket(key: string): number | undefined {
    return this.#store.get<{ t: number | null }>('SELECT MIN(bucket_start) AS t FROM sli_buckets WHERE slo_key = ?', key)?.t ?? undefined;
  }

  /**
   * Compacts minute buckets in hours that ended more than COMPACT_AFTER_MS ago into hourly
   * buckets, and deletes buckets older than RETAIN_MS. Returns the number of minute rows merged.
   */
  compact(now: number): number {
    const cutoff = compactionCutoff(now);
    return this.#store.transaction(() => {
      this.#store.run(
        `INSERT INTO sli_buckets (slo_key, bucket_start, bucket_ms, good, total)
         SELECT slo_key, (bucket_start / ${HOUR_MS}) * ${HOUR_MS}, ${HOUR_MS}, SUM(good), SUM(total)
         FROM sli_buckets WHERE bucket_ms = ${MINUTE_MS} AND bucket_start < ? GROUP BY slo_key, bucket_start / ${HOUR_MS}
         ON CONFLICT (slo_key, bucket_start, bucket_ms) DO UPDATE SET good = good + excluded.good, total = total + excluded.total`,
        cutoff,
      );
      const removed = this.#store.run(`DELETE FROM sli_buckets WHERE bucket_ms = ${MINUTE_MS} AND bucket_start < ?`, cutoff).changes;
      this.#store.run(
        `INSERT INTO sli_latency (service, bucket_start, bucket_ms, le, count)
         SELECT service, (bucket_start / ${HOUR_MS}) * ${HOUR_MS}, ${HOUR_MS}, le, SUM(count)
         FROM sli_latency WHERE bucket_ms = ${MINUTE_MS} AND bucket_start < ? GROUP BY service, bucket_start / ${HOUR_MS}, le
         ON CONFLICT (service, bucket_start, bucket_ms, le) DO UPDATE SET count = count + excluded.count`,
        cutoff,
      );
      this.#store.run(`DELETE FROM sli_latency WHERE bucket_ms = ${MINUTE_MS} AND bucket_start < ?`, cutoff);
      this.#store.run('DELETE FROM sli_buckets WHERE bucket_start < ?', now - RETAIN_MS);
      this.#store.run('DELETE FROM sli_latency WHERE bucket_start < ?', now - RETAIN_MS);
      return removed;
    });
  }

  // --- maintenance windows declared through the API ---

  maintenance(): MaintenanceRow[] {
    return this.#store
      .all<{ id: number; services: string | null; start_at: number; end_at: number; reason: string; created_at: number }>('SELECT * FROM slo_maintenance ORDER BY start_at')
      .map((r) => ({ id: r.id, services: r.services === null ? null : (JSON.parse(r.services) as string[]), start: r.start_at, end: r.end_at, reason: r.reason, created_at: r.created_at }));
  }

  addMaintenance(m: { services: string[] | null; start: number; end: number; reason: string }, now: number): number {
    const r = this.#store.run('INSERT INTO slo_maintenance (services, start_at, end_at, reason, created_at) VALUES (?, ?, ?, ?, ?)', m.services === null ? null : JSON.stringify(m.services), m.start, m.end, m.reason, now);
    return Number(r.lastInsertRowid);
  }

  removeMaintenance(id: number): boolean {
    return this.#store.run('DELETE FROM slo_maintenance WHERE id = ?', id).changes > 0;
  }

  // --- alerts ---

  recordFiring(a: Omit<AlertRow, 'id' | 'resolved_at' | 'webhook_fired' | 'webhook_resolved'>): number {
    const r = this.#store.run(
      'INSERT INTO slo_alerts (slo, tier, severity, tier_window, threshold, fired_at, burn_long, burn_short) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      a.slo, a.tier, a.severity, a.tier_window, a.threshold, a.fired_at, a.burn_long, a.burn_short,
    );
    return Number(r.lastInsertRowid);
  }

  recordResolved(id: number, at: number): void {
    this.#store.run('UPDATE slo_alerts SET resolved_at = ? WHERE id = ?', at, id);
  }

  recordWebhook(id: number, state: 'firing' | 'resolved', result: string): void {
    this.#store.run(`UPDATE slo_alerts SET ${state === 'firing' ? 'webhook_fired' : 'webhook_resolved'} = ? WHERE id = ?`, result, id);
  }

  openAlerts(): AlertRow[] {
    return this.#store.all<AlertRow>('SELECT * FROM slo_alerts WHERE resolved_at IS NULL ORDER BY id');
  }

  alerts(limit = 100): AlertRow[] {
    return this.#store.all<AlertRow>('SELECT * FROM slo_alerts ORDER BY id DESC LIMIT ?', limit);
  }
}
