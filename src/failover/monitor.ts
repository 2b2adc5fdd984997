// Owns the SQL-level observation of PostgreSQL nodes: role (in recovery or not), WAL positions,
// the WAL receiver's state, and on a primary the replication view (pg_stat_replication). This is
// separate from health/'s generic probes on purpose: failover needs PostgreSQL facts (LSNs,
// timelines, sync state) that a TCP or HTTP probe cannot give, and must ask for them from the
// instance that decides (see docs/failover.md).
import pg from 'pg';

export interface ReplicaView {
  name: string;
  state: string;
  syncState: string;
  flushLsn: string | undefined;
  replayLsn: string | undefined;
}

export interface Observation {
  ok: boolean;
  error?: string;
  inRecovery?: boolean;
  /** primary: pg_current_wal_lsn(); standby: last received (flushed) WAL. */
  lsn?: string | undefined;
  replayLsn?: string | undefined;
  receiverStatus?: string | undefined;
  syncNames?: string | undefined;
  timeline?: number | undefined;
  replicas?: ReplicaView[] | undefined;
  at: number;
}

export interface ObserveTarget {
  host: string;
  port: number;
  user: string;
}

const NODE_SQL = `
  SELECT pg_is_in_recovery() AS recovery,
         CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()::text ELSE pg_current_wal_lsn()::text END AS lsn,
         pg_last_wal_replay_lsn()::text AS replay_lsn,
         (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver_status,
         current_setting('synchronous_standby_names') AS sync_names,
         (SELECT timeline_id FROM pg_control_checkpoint()) AS timeline`;

const REPL_SQL = `SELECT application_name, state, sync_state, flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn FROM pg_stat_replication`;

/** Opens a short-lived connection with tight timeouts. */
export async function connect(t: ObserveTarget, timeoutMs: number): Promise<pg.Client> {
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    user: t.user,
    database: 'postgres',
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    statement_timeout: timeoutMs,
    application_name: 'bulwark-monitor',
    // a dead host answers nothing: keepalives end a half-open connection in seconds
    keepAlive: true,
    keepAliveInitialDelayMillis: 1000,
  });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

/** One observation of one node. Never throws: failures come back as ok=false with the reason. */
export async function observe(t: ObserveTarget, timeoutMs: number, now: () => number): Promise<Observation> {
  let c: pg.Client | undefined;
  try {
    c = await connect(t, timeoutMs);
    const r = await c.query<{ recovery: boolean; lsn: string | null; replay_lsn: string | null; receiver_status: string | null; sync_names: string; timeline: number }>(NODE_SQL);
    const row = r.rows[0];
    if (!row) return { ok: false, error: 'no row', at: now() };
    const o: Observation = {
      ok: true,
      inRecovery: row.recovery,
      lsn: row.lsn ?? undefined,
      replayLsn: row.replay_lsn ?? undefined,
      receiverStatus: row.receiver_status ?? undefined,
      syncNames: row.sync_names,
      timeline: Number(row.timeline),
      at: now(),
    };
    if (!row.recovery) {
      const rr = await c.query<{ application_name: string; state: string; sync_state: string; flush_lsn: string | null; replay_lsn: string | null }>(REPL_SQL);
      o.replicas = rr.rows.map((x) => ({ name: x.application_name, state: x.state, syncState: x.sync_state, flushLsn: x.flush_lsn ?? undefined, replayLsn: x.replay_lsn ?? undefined }));
    }
    return o;
  } catch (err) {
    return { ok: false, error: (err as Error).message, at: now() };
  } finally {
    await c?.end().catch(() => undefined);
  }
}

/** Runs one statement on a node (CHECKPOINT, ALTER SYSTEM, the write probe). */
export async function execSql(t: ObserveTarget, sql: string, timeoutMs: number): Promise<void> {
  const c = await connect(t, timeoutMs);
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => undefined);
  }
}
