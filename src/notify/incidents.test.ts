// Incident classification and route matching: which events become incidents, of which kind and
// severity, and which routes take them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromAuditEvent, fromBackupRun, fromHealth, fromSloAlert, INCIDENT_KINDS, kindMatches } from './incidents.js';
import { routeMatches } from './subsystem.js';

const route = (over: Partial<Parameters<typeof routeMatches>[0]> = {}): Parameters<typeof routeMatches>[0] => ({ channels: ['x'], kinds: ['*'], min_severity: 'warning', send_resolved: true, ...over });

test('kind patterns: * matches any run of characters, dots are literal', () => {
  assert.equal(kindMatches('node.down', 'node.*'), true);
  assert.equal(kindMatches('node.down', '*'), true);
  assert.equal(kindMatches('db.failover', 'db.failover'), true);
  assert.equal(kindMatches('db.failover.blocked', 'db.failover'), false);
  assert.equal(kindMatches('nodeXdown', 'node.down'), false);
  assert.equal(kindMatches('backup.failed', 'node.*'), false);
});

test('health: up->down is node.down, down->up is node.up, unknown->up is nothing', () => {
  assert.equal(fromHealth({ service: 's', node: 'n', from: 'up', to: 'down', reason: 'r', at: 1 })?.kind, 'node.down');
  assert.equal(fromHealth({ service: 's', node: 'n', from: 'down', to: 'up', reason: 'r', at: 1 })?.state, 'resolved');
  assert.equal(fromHealth({ service: 's', node: 'n', from: 'unknown', to: 'up', reason: 'r', at: 1 }), undefined);
});

test('backup runs: failed backup, verify and drill are critical incidents; a passed drill is an info result', () => {
  const run = { plan: 'p', target: 't', snapshot: undefined, bytes: 0, duration_ms: 1, message: 'm', at: 1 };
  assert.equal(fromBackupRun({ ...run, kind: 'backup', ok: false })?.kind, 'backup.failed');
  assert.equal(fromBackupRun({ ...run, kind: 'check', ok: false })?.kind, 'verify.failed');
  assert.equal(fromBackupRun({ ...run, kind: 'drill', ok: false })?.severity, 'critical');
  const passed = fromBackupRun({ ...run, kind: 'drill', ok: true });
  assert.equal(passed?.kind, 'drill.passed');
  assert.equal(passed?.severity, 'info');
});

test('audit events: failover, RPO breach and 3-2-1 violation are incidents; daemon.start is not', () => {
  assert.equal(fromAuditEvent({ kind: 'db.failover', subject: 'main', message: 'm', at: 1 })?.one_shot, true);
  assert.equal(fromAuditEvent({ kind: 'db.switchover', subject: 'main', message: 'm', at: 1, data: { ok: false } })?.severity, 'warning');
  assert.equal(fromAuditEvent({ kind: 'backup.rpo.breached', subject: 'p', message: 'm', at: 1 })?.kind, 'rpo.breached');
  assert.equal(fromAuditEvent({ kind: 'backup.rpo.resolved', subject: 'p', message: 'm', at: 1 })?.state, 'resolved');
  assert.equal(fromAuditEvent({ kind: 'audit.321.violation', subject: 'p', message: 'm', at: 1 })?.kind, 'audit.violation');
  assert.equal(fromAuditEvent({ kind: 'daemon.start', subject: 'bulwark', message: 'm', at: 1 }), undefined);
  assert.equal(fromAuditEvent({ kind: 'notify.failed', subject: 'x', message: 'm', at: 1 }), undefined, 'a failed notification must not notify (a loop)');
});

test('SLO alerts: page is critical, ticket is warning; firing and resolved share a key', () => {
  const f = fromSloAlert({ slo: 'api', severity: 'page', state: 'firing', burn_rate: 14.4, window: '1h', at: 1 });
  const r = fromSloAlert({ slo: 'api', severity: 'page', state: 'resolved', burn_rate: 1, window: '1h', at: 2 });
  assert.equal(f.severity, 'critical');
  assert.equal(f.key, r.key);
  assert.equal(fromSloAlert({ slo: 'api', severity: 'ticket', state: 'firing', burn_rate: 3, window: '3d', at: 1 }).severity, 'warning');
});

test('routes: by kind, by lowest severity, and resolved only when send_resolved', () => {
  const down = fromHealth({ service: 's', node: 'n', from: 'up', to: 'down', reason: 'r', at: 1 });
  const up = fromHealth({ service: 's', node: 'n', from: 'down', to: 'up', reason: 'r', at: 1 });
  assert.ok(down && up);
  assert.equal(routeMatches(route(), down), true);
  assert.equal(routeMatches(route({ kinds: ['backup.*'] }), down), false);
  assert.equal(routeMatches(route({ send_resolved: false }), up), false);
  assert.equal(routeMatches(route({ send_resolved: true }), up), true);
  const drill = fromBackupRun({ plan: 'p', target: 't', kind: 'drill', ok: true, snapshot: undefined, bytes: 0, duration_ms: 1, message: '', at: 1 });
  assert.ok(drill);
  assert.equal(routeMatches(route({ min_severity: 'warning' }), drill), false);
  assert.equal(routeMatches(route({ min_severity: 'info' }), drill), true);
});

test('every kind an incident can have is in the catalogue', () => {
  const kinds = new Set(INCIDENT_KINDS.map((k) => k.kind));
  for (const k of ['node.down', 'node.up', 'db.failover', 'db.switchover', 'backup.failed', 'rpo.breached', 'verify.failed', 'drill.failed', 'drill.passed', 'audit.violation', 'slo.alert.firing', 'slo.alert.resolved']) assert.ok(kinds.has(k), k);
});

test('the notify schema: an email smtp must be host:port, a route must name a configured channel', async () => {
  const { notifySchema } = await import('../core/config/notify-schema.js');
  const email = { type: 'email', from: 'a@b.test', to: ['c@d.test'] };
  assert.equal(notifySchema.safeParse({ channels: { m: { ...email, smtp: 'smtp.example.com:587' } } }).success, true);
  assert.equal(notifySchema.safeParse({ channels: { m: { ...email, smtp: '[::1]:25' } } }).success, true);
  assert.equal(notifySchema.safeParse({ channels: { m: { ...email, smtp: 'smtp.example.com' } } }).success, false);
  assert.equal(notifySchema.safeParse({ channels: { w: { type: 'webhook', url: 'ftp://x/' } } }).success, false);
  assert.equal(notifySchema.safeParse({ channels: {}, routes: [{ channels: ['w'] }] }).success, false);
  assert.equal(notifySchema.safeParse({ group_interval: '1h', repeat_interval: '5m' }).success, false, 'repeat shorter than group interval');
});
