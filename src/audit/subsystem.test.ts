// Tests the audit subsystem with a FakeClock and a real in-memory state store: it re-evaluates on
// 'backup.run' events, reports a violation and its end once each, and exports gauges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { FakeClock } from '../core/clock.js';
import { configSchema } from '../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../core/events.js';
import { createLogger } from '../core/logger.js';
import { SqliteStore } from '../store/sqlite.js';
import { AuditSubsystem, createAudit } from './subsystem.js';

test('audit subsystem: violation until every target has a fresh snapshot, then ok; one event per transition; gauges', async () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const store = SqliteStore.open(':memory:');
  const config = configSchema.parse({
    backups: {
      app: {
        paths: ['/srv'],
        targets: [
          { name: 'a', repo: '/a', media: 'hdd' },
          { name: 'b', repo: 'vault://127.0.0.1:1/app', media: 'vault', offsite: true, immutable: '30d' },
        ],
      },
    },
  });
  const events = new EventBus();
  const audits: Array<BulwarkEvents['audit.event']> = [];
  events.on('audit.event', (e) => audits.push(e));
  const metrics = new Registry();
  const sub = new AuditSubsystem({ config, baseDir: process.cwd(), events, logger: createLogger({ level: 'fatal' }), clock, metrics, store });
  await sub.start();
  assert.deepEqual(audits.map((a) => a.kind), ['audit.321.violation']);
  assert.match(audits[0]?.message ?? '', /3 copies \(1\)/);
  const record = (target: string): void => {
    store.run("INSERT INTO backup_runs (plan, target, kind, started_at, finished_at, ok, snapshot) VALUES ('app', ?, 'backup', ?, ?, 1, 'abcd')", target, clock.now(), clock.now());
    events.emit('backup.run', { plan: 'app', target, kind: 'backup', ok: true, snapshot: 'abcd', bytes: 1, duration_ms: 1, message: '', at: clock.now() });
  };
  record('a');
  record('b');
  assert.deepEqual(audits.map((a) => a.kind), ['audit.321.violation', 'audit.321.ok']);
  assert.match(await metrics.metrics(), /bulwark_audit_ok\{plan="app"\} 1/);
  clock.advance(25 * 3_600_000); // snapshots pass the default 24h rpo: the periodic re-evaluation notices
  assert.deepEqual(audits.map((a) => a.kind), ['audit.321.violation', 'audit.321.ok', 'audit.321.violation']);
  assert.match(await metrics.metrics(), /bulwark_audit_rule_ok\{plan="app",rule="copies"\} 0/);
  await sub.stop();
  assert.equal(createAudit({ config: configSchema.parse({}), baseDir: process.cwd(), events, logger: createLogger({ level: 'fatal' }), clock, metrics, store }), undefined);
  store.close();
});
