// Owns the schema of the embedded state store: an ordered list of migrations, applied once each.
// Never edit a migration that has shipped; add a new one. Ids are grouped by owner so parallel
// work does not collide: 1-9 core, 10-19 health/proxy, 20-29 backup, 30-39 failover, 40-49 slo,
// 50-59 audit/drill.

export interface Migration {
  readonly id: number;
  readonly name: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'core tables: events, health history, SLI buckets, backup runs',
    sql: `
      CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
      );
      CREATE INDEX events_at ON events(at);
      CREATE INDEX events_kind_at ON events(kind, at);

      CREATE TABLE health_transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        service TEXT NOT NULL,
        node TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL
      );
      CREATE INDEX health_transitions_node ON health_transitions(service, node, at);

      CREATE TABLE sli_buckets (
        slo_key TEXT NOT NULL,
        bucket_start INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        good INTEGER NOT NULL DEFAULT 0,
        total INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (slo_key, bucket_start, bucket_ms)
      );

      CREATE TABLE backup_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        plan TEXT NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        ok INTEGER,
        snapshot TEXT,
        bytes INTEGER,
        errors INTEGER,
        message TEXT
      );
      CREATE INDEX backup_runs_plan ON backup_runs(plan, target, started_at);
    `,
  },
  {
    id: 30,
    name: 'failover: cluster roles (who is primary, who is the synchronous standby) and failover history',
    sql: `
      CREATE TABLE db_clusters (
        database TEXT PRIMARY KEY,
        primary_node TEXT,
        sync_node TEXT,
        fenced TEXT NOT NULL DEFAULT '[]',
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE db_failovers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        database TEXT NOT NULL,
        kind TEXT NOT NULL,
        old_primary TEXT,
        new_primary TEXT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        ok INTEGER,
        detect_ms INTEGER,
        promote_ms INTEGER,
        write_downtime_ms INTEGER,
        message TEXT
      );
      CREATE INDEX db_failovers_db ON db_failovers(database, started_at);
    `,
  },
  {
    id: 40,
    name: 'slo: latency histograms per minute, alerts, maintenance windows',
    sql: `
      CREATE INDEX sli_buckets_ms_start ON sli_buckets(bucket_ms, bucket_start);
      CREATE TABLE sli_latency (
        service TEXT NOT NULL,
        bucket_start INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        le REAL NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (service, bucket_start, bucket_ms, le)
      );
      CREATE INDEX sli_latency_ms_start ON sli_latency(bucket_ms, bucket_start);
      CREATE TABLE slo_alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        slo TEXT NOT NULL,
        tier INTEGER NOT NULL,
        severity TEXT NOT NULL,
        tier_window TEXT NOT NULL,
        threshold REAL NOT NULL,
        fired_at INTEGER NOT NULL,
        burn_long REAL NOT NULL,
        burn_short REAL NOT NULL,
        resolved_at INTEGER,
        webhook_fired TEXT,
        webhook_resolved TEXT
      );
      CREATE INDEX slo_alerts_slo ON slo_alerts(slo, fired_at);
      CREATE TABLE slo_maintenance (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        services TEXT,
        start_at INTEGER NOT NULL,
        end_at INTEGER NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
      );
    `,
  },
  {
    id: 50,
    name: 'backup plans: run details (verification rotation, drill rate) and a lookup index by kind',
    sql: `
      ALTER TABLE backup_runs ADD COLUMN data TEXT;
      CREATE INDEX backup_runs_kind ON backup_runs(plan, target, kind, finished_at);
    `,
  },
];
