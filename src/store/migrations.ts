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
];
