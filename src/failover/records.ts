// Owns the history of role changes of one database: each failover, cold failover and switchover
// as a row of db_failovers (this instance's SQLite), an 'audit.event', a metric, and in cluster
// mode a copy in the shared state (db/<name>/history/...) so that every instance shows the
// whole cluster's history, whoever did the failover.
import type { Clock } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { StateStore } from '../core/subsystem.js';
import type { ClusterKV } from '../coord/lease.js';

export interface FailoverRecord {
  kind: 'failover' | 'switchover' | 'cold-failover';
  old_primary: string | undefined;
  new_primary: string | undefined;
  started_at: number;
  finished_at: number | undefined;
  ok: boolean;
  detect_ms: number | undefined;
  promote_ms: number | undefined;
  write_downtime_ms: number | undefined;
  message: string;
  /** Cluster mode: the instance that did it. */
  instance?: string | undefined;
}

/** What a cluster reports to metrics (the subsystem turns these into Prometheus series). */
export interface RecordMetrics {
  failover(database: string, kind: string, ok: boolean): void;
  downtime(database: string, kind: string, ms: number): void;
}

export interface HistoryDeps {
  database: string;
  store: StateStore;
  events: EventBus;
  clock: Clock;
  metrics: RecordMetrics;
  /** Cluster mode: the shared state the history is copied into. */
  kv?: ClusterKV | undefined;
}

/** Key of a record in the shared state: time-ordered, unique per instance. */
function historyKey(database: string, r: FailoverRecord): string {
  return `db/${database}/history/${String(r.started_at).padStart(15, '0')}-${r.instance ?? 'local'}-${r.kind}`;
}

export class FailoverHistory {
  readonly #d: HistoryDeps;
  #last: FailoverRecord | undefined;

  constructor(deps: HistoryDeps) {
    this.#d = deps;
  }

  get last(): FailoverRecord | undefined {
    return this.#last;
  }

  /** Records a finished (or failed) role change; returns its local row id. */
  record(r: FailoverRecord): number {
    const d = this.#d;
    this.#last = r;
    const res = d.store.run(
      'INSERT INTO db_failovers (database, kind, old_primary, new_primary, started_at, finished_at, ok, detect_ms, promote_ms, write_downtime_ms, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      d.database, r.kind, r.old_primary ?? null, r.new_primary ?? null, r.started_at, r.finished_at ?? null, r.ok ? 1 : 0, r.detect_ms ?? null, r.promote_ms ?? null, r.write_downtime_ms ?? null, r.message,
    );
    this.audit(`db.${r.kind}`, d.database, r.message, { ...r });
    d.metrics.failover(d.database, r.kind, r.ok);
    this.#share(r);
    return Number(res.lastInsertRowid);
  }

  /** The write downtime of a recorded change, once writes work again. */
  writesBack(id: number, r: FailoverRecord, ms: number, on: string): void {
    const d = this.#d;
    r.write_downtime_ms = ms;
    d.store.run('UPDATE db_failovers SET write_downtime_ms = ? WHERE id = ?', ms, id);
    d.metrics.downtime(d.database, r.kind, ms);
    this.audit(`db.${r.kind}.writes`, d.database, `writes work again on ${on}: write downtime ${ms} ms`, { write_downtime_ms: ms, id });
    this.#share(r);
  }

  audit(kind: string, subject: string, message: string, data?: Record<string, unknown>): void {
    this.#d.events.emit('audit.event', { kind, subject, message, at: this.#d.clock.now(), ...(data ? { data } : {}) });
  }

  #share(r: FailoverRecord): void {
    const kv = this.#d.kv;
    if (!kv) return;
    // best effort: the local row and the audit event are the record of last resort
    void kv.put(historyKey(this.#d.database, r), JSON.stringify(r)).catch(() => undefined);
  }

  /** The newest records: the whole cluster's (shared state) in cluster mode, else this instance's. */
  async list(limit = 20): Promise<unknown[]> {
    const d = this.#d;
    if (d.kv) {
      try {
        const all = await d.kv.list(`db/${d.database}/history/`);
        return [...all.entries()].sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0)).slice(0, limit).map(([, v]) => JSON.parse(v) as unknown);
      } catch {
        // etcd unreachable: show what this instance recorded
      }
    }
    return d.store.all('SELECT * FROM db_failovers WHERE database = ? ORDER BY id DESC LIMIT ?', d.database, limit);
  }
}
