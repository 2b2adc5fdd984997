// Owns what counts as an incident worth telling someone about: turns bus events (health
// transitions, proxy ejections, backup runs, SLO alerts, and the audit events failover, plans and
// the audit publish) into Incidents with a kind, a severity, a state and a grouping key. Pure.
import type { BulwarkEvents } from '../core/events.js';
import type { Severity } from '../core/config/notify-schema.js';

export interface Incident {
  /** What happened, e.g. node.down, db.failover, backup.failed, rpo.breached, slo.alert.firing. */
  kind: string;
  severity: Severity;
  /** firing: something is wrong (or just happened); resolved: the matching firing incident is over. */
  state: 'firing' | 'resolved';
  /** What it is about: service/node, database, plan/target, SLO name. */
  subject: string;
  /** Incidents with the same key are one story (node.down then node.up of one backend). */
  key: string;
  /** One-shot incidents (a failover) have no resolution and are never repeated. */
  one_shot: boolean;
  message: string;
  at: number;
  data?: Record<string, unknown>;
}

/** Every kind an incident can have, for docs, validation and `notify test`. */
export const INCIDENT_KINDS: ReadonlyArray<{ kind: string; severity: Severity; about: string }> = [
  { kind: 'node.down', severity: 'critical', about: 'a health-checked backend or heartbeat node went down' },
  { kind: 'node.up', severity: 'critical', about: 'it is up again (resolves node.down)' },
  { kind: 'backend.ejected', severity: 'warning', about: 'the proxy ejected a backend on live-traffic errors' },
  { kind: 'backend.restored', severity: 'warning', about: 'the ejection ended (resolves backend.ejected)' },
  { kind: 'db.failover', severity: 'critical', about: 'a PostgreSQL failover (or cold-standby failover) happened, or failed' },
  { kind: 'db.failover.blocked', severity: 'critical', about: 'the primary is lost and no standby may be promoted' },
  { kind: 'db.switchover', severity: 'info', about: 'a planned switchover finished (warning when it failed)' },
  { kind: 'db.fence', severity: 'critical', about: 'a node running as a second primary was fenced' },
  { kind: 'db.wal_archive.failing', severity: 'warning', about: 'archive_command fails: the cold standby would lose WAL' },
  { kind: 'db.base_backup.failed', severity: 'warning', about: 'a cold-standby base backup failed' },
  { kind: 'backup.failed', severity: 'critical', about: 'a backup, copy, forget or prune of a plan target failed' },
  { kind: 'backup.ok', severity: 'critical', about: 'the next one succeeded (resolves backup.failed)' },
  { kind: 'verify.failed', severity: 'critical', about: 'a verification (check --read-data) of a target failed' },
  { kind: 'verify.ok', severity: 'critical', about: 'a verification passed again (resolves verify.failed)' },
  { kind: 'drill.failed', severity: 'critical', about: 'a restore drill failed' },
  { kind: 'drill.passed', severity: 'info', about: 'a restore drill passed (the drill result; resolves drill.failed)' },
  { kind: 'rpo.breached', severity: 'critical', about: "a plan's (or target's) newest verified snapshot is older than its rpo" },
  { kind: 'rpo.met', severity: 'critical', about: 'the RPO is met again (resolves rpo.breached)' },
  { kind: 'audit.violation', severity: 'warning', about: 'a plan breaks 3-2-1-1-0' },
  { kind: 'audit.ok', severity: 'warning', about: 'the plan meets 3-2-1-1-0 again (resolves audit.violation)' },
  { kind: 'slo.alert.firing', severity: 'critical', about: 'an SLO burn-rate alert fired (page: critical, ticket: warning)' },
  { kind: 'slo.alert.resolved', severity: 'critical', about: 'the burn-rate alert resolved' },
];

const SEVERITY_RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

export function severityAtLeast(s: Severity, min: Severity): boolean {
  return SEVERITY_RANK[s] >= SEVERITY_RANK[min];
}

/** Matches an incident kind against a pattern with * wildcards (node.*, *, db.failover). */
export function kindMatches(kind: string, pattern: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(kind);
}

export function fromHealth(e: BulwarkEvents['health.transition']): Incident | undefined {
  const subject = `${e.service}/${e.node}`;
  if (e.to === 'down') return { kind: 'node.down', severity: 'critical', state: 'firing', subject, key: `node:${subject}`, one_shot: false, message: `${subject} is down: ${e.reason}`, at: e.at };
  if (e.to === 'up' && e.from === 'down') return { kind: 'node.up', severity: 'critical', state: 'resolved', subject, key: `node:${subject}`, one_shot: false, message: `${subject} is up again: ${e.reason}`, at: e.at };
  return undefined;
}

export function fromOutlier(e: BulwarkEvents['proxy.outlier']): Incident {
  const subject = `${e.service}/${e.backend}`;
  return e.ejected
    ? { kind: 'backend.ejected', severity: 'warning', state: 'firing', subject, key: `outlier:${subject}`, one_shot: false, message: `the proxy ejected ${subject}: ${e.reason}`, at: e.at }
    : { kind: 'backend.restored', severity: 'warning', state: 'resolved', subject, key: `outlier:${subject}`, one_shot: false, message: `${subject} is back in rotation: ${e.reason}`, at: e.at };
}

export function fromBackupRun(e: BulwarkEvents['backup.run']): Incident | undefined {
  const subject = `${e.plan}/${e.target}`;
  const data = { plan: e.plan, target: e.target, run: e.kind, snapshot: e.snapshot ?? null, bytes: e.bytes, duration_ms: e.duration_ms };
  const base = { subject, at: e.at, data, one_shot: false };
  if (e.kind === 'check') {
    return e.ok
      ? { ...base, kind: 'verify.ok', severity: 'critical', state: 'resolved', key: `verify:${subject}`, message: `verification of ${subject} passed` }
      : { ...base, kind: 'verify.failed', severity: 'critical', state: 'firing', key: `verify:${subject}`, message: `verification of ${subject} failed: ${e.message}` };
  }
  if (e.kind === 'drill') {
    return e.ok
      ? { ...base, kind: 'drill.passed', severity: 'info', state: 'resolved', key: `drill:${subject}`, message: `restore drill of ${subject} passed: ${e.message}` }
      : { ...base, kind: 'drill.failed', severity: 'critical', state: 'firing', key: `drill:${subject}`, message: `restore drill of ${subject} failed: ${e.message}` };
  }
  return e.ok
    ? { ...base, kind: 'backup.ok', severity: 'critical', state: 'resolved', key: `backup:${subject}`, message: `${e.kind} of ${subject} succeeded` }
    : { ...base, kind: 'backup.failed', severity: 'critical', state: 'firing', key: `backup:${subject}`, message: `${e.kind} of ${subject} failed: ${e.message}` };
}

export function fromSloAlert(e: BulwarkEvents['slo.alert']): Incident {
  const severity: Severity = e.severity === 'page' ? 'critical' : 'warning';
  const firing = e.state === 'firing';
  return {
    kind: firing ? 'slo.alert.firing' : 'slo.alert.resolved',
    severity,
    state: e.state,
    subject: e.slo,
    key: `slo:${e.slo}:${e.severity}:${e.window}`,
    one_shot: false,
    message: firing ? `SLO ${e.slo}: error budget burning at ${e.burn_rate.toFixed(1)}x over ${e.window} (${e.severity})` : `SLO ${e.slo}: the ${e.severity} burn-rate alert over ${e.window} resolved`,
    at: e.at,
    data: { severity: e.severity, burn_rate: e.burn_rate, window: e.window },
  };
}

/** Audit events that are incidents; the others (daemon.start, health.transition, ...) are not or come typed. */
export function fromAuditEvent(e: BulwarkEvents['audit.event']): Incident | undefined {
  const base = { subject: e.subject, message: e.message, at: e.at, ...(e.data ? { data: e.data } : {}) };
  const okField = e.data && typeof e.data['ok'] === 'boolean' ? (e.data['ok'] as boolean) : true;
  switch (e.kind) {
    case 'db.failover':
    case 'db.cold-failover':
      return { ...base, kind: 'db.failover', severity: 'critical', state: 'firing', key: `db.failover:${e.subject}`, one_shot: true };
    case 'db.switchover':
      return { ...base, kind: 'db.switchover', severity: okField ? 'info' : 'warning', state: 'firing', key: `db.switchover:${e.subject}`, one_shot: true };
    case 'db.failover.blocked':
    case 'db.fence':
      return { ...base, kind: e.kind, severity: 'critical', state: 'firing', key: `${e.kind}:${e.subject}`, one_shot: true };
    case 'db.wal_archive.failing':
    case 'db.base_backup.failed':
      return { ...base, kind: e.kind, severity: 'warning', state: 'firing', key: `${e.kind}:${e.subject}`, one_shot: true };
    case 'backup.rpo.breached':
      return { ...base, kind: 'rpo.breached', severity: 'critical', state: 'firing', key: `rpo:${e.subject}`, one_shot: false };
    case 'backup.rpo.resolved':
      return { ...base, kind: 'rpo.met', severity: 'critical', state: 'resolved', key: `rpo:${e.subject}`, one_shot: false };
    case 'audit.321.violation':
      return { ...base, kind: 'audit.violation', severity: 'warning', state: 'firing', key: `audit:${e.subject}`, one_shot: false };
    case 'audit.321.ok':
      return { ...base, kind: 'audit.ok', severity: 'warning', state: 'resolved', key: `audit:${e.subject}`, one_shot: false };
    default:
      return undefined;
  }
}
