// Owns the plan's history in the state store (table backup_runs): every backup, verification
// (check) and drill per plan and target, and the queries status, RPO, RTO and the audit need.
import type { StateStore } from '../../core/subsystem.js';

export type RunKind = 'backup' | 'check' | 'drill' | 'forget' | 'prune' | 'copy';

export interface RunRecord {
  plan: string;
  target: string;
  kind: RunKind;
  startedAt: number;
  finishedAt: number;
  ok: boolean;
  snapshot?: string | undefined;
  bytes?: number | undefined;
  errors?: number | undefined;
  message?: string | undefined;
  data?: Record<string, unknown> | undefined;
}

interface Row {
  plan: string;
  target: string;
  kind: string;
  started_at: number;
  finished_at: number | null;
  ok: number | null;
  snapshot: string | null;
  bytes: number | null;
  errors: number | null;
  message: string | null;
  data: string | null;
}

function fromRow(r: Row): RunRecord {
  return {
    plan: r.plan,
    target: r.target,
    kind: r.kind as RunKind,
    startedAt: r.started_at,
    finishedAt: r.finished_at ?? r.started_at,
    ok: r.ok === 1,
    snapshot: r.snapshot ?? undefined,
    bytes: r.bytes ?? undefined,
    errors: r.errors ?? undefined,
    message: r.message ?? undefined,
    data: r.data ? (JSON.parse(r.data) as Record<string, unknown>) : undefined,
  };
}

export function recordRun(store: StateStore, r: RunRecord): void {
  store.run(
    'INSERT INTO backup_runs (plan, target, kind, started_at, finished_at, ok, snapshot, bytes, errors, message, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    r.plan,
    r.target,
    r.kind,
    r.startedAt,
    r.finishedAt,
    r.ok ? 1 : 0,
    r.snapshot ?? null,
    r.bytes ?? null,
    r.errors ?? null,
    r.message ?? null,
    r.data ? JSON.stringify(r.data) : null,
  );
}

/** The newest run of a kind for a target (ok only when okOnly). */
export function lastRun(store: StateStore, plan: string, target: string, kind: RunKind, okOnly = false): RunRecord | undefined {
  const row = store.get<Row>(
    `SELECT * FROM backup_runs WHERE plan = ? AND target = ? AND kind = ? ${okOnly ? 'AND ok = 1' : ''} AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1`,
    plan,
    target,
    kind,
  );
  return row ? fromRow(row) : undefined;
}

/** How many verifications of a target have completed: the rotation counter. */
export function checkCount(store: StateStore, plan: string, target: string): number {
  return store.get<{ n: number }>("SELECT COUNT(*) AS n FROM backup_runs WHERE plan = ? AND target = ? AND kind = 'check' AND finished_at IS NOT NULL", plan, target)?.n ?? 0;
}

export function recentRuns(store: StateStore, plan: string, limit = 50): RunRecord[] {
  return store.all<Row>('SELECT * FROM backup_runs WHERE plan = ? ORDER BY id DESC LIMIT ?', plan, limit).map(fromRow);
}

/** What status, RPO, RTO and the audit need to know about one target. */
export interface TargetHistory {
  /** finished_at of the newest successful backup (its snapshot was read back after writing). */
  lastSuccess: number | undefined;
  lastSnapshot: string | undefined;
  lastBytes: number | undefined;
  snapshotBytes: number | undefined;
  lastRun: RunRecord | undefined;
  lastCheck: RunRecord | undefined;
  lastDrill: RunRecord | undefined;
  lastGoodDrill: RunRecord | undefined;
}

export function targetHistory(store: StateStore, plan: string, target: string): TargetHistory {
  const ok = lastRun(store, plan, target, 'backup', true);
  const drillOk = lastRun(store, plan, target, 'drill', true);
  return {
    lastSuccess: ok?.finishedAt,
    lastSnapshot: ok?.snapshot,
    lastBytes: ok?.bytes,
    snapshotBytes: typeof ok?.data?.['snapshotBytes'] === 'number' ? (ok.data['snapshotBytes'] as number) : undefined,
    lastRun: lastRun(store, plan, target, 'backup'),
    lastCheck: lastRun(store, plan, target, 'check'),
    lastDrill: lastRun(store, plan, target, 'drill'),
    lastGoodDrill: drillOk,
  };
}
