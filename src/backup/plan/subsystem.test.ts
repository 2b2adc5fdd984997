// Tests the plans subsystem with a FakeClock (schedules and RPO timing), a real in-memory state
// store and real local targets: the cron schedule runs the plan, runs are recorded and published,
// RPO breaches are reported on transition, metrics and status cover every target, and the
// verification rotation reads every pack within its period.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Registry } from 'prom-client';
import { FakeClock } from '../../core/clock.js';
import { configSchema } from '../../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../../core/events.js';
import { createLogger } from '../../core/logger.js';
import { SqliteStore } from '../../store/sqlite.js';
import { scratchDir, waitFor } from '../../testing/helpers.js';
import { lastRun } from './records.js';
import { cronInterval, nextRun } from './schedule.js';
import { PlansSubsystem, createPlans } from './subsystem.js';
import { packSlot, packsForRun, rotationSlots } from './verify.js';

test('plans subsystem: cron runs the plan, records and publishes it, watches RPO, exports metrics and status', async () => {
  const { dir, cleanup } = scratchDir('bulwark-plans-sub-');
  const store = SqliteStore.open(':memory:');
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 0));
  try {
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data', 'f'), randomBytes(100_000));
    writeFileSync(join(dir, 'pw'), 'pw');
    const config = configSchema.parse({
      backups: {
        app: {
          paths: ['./data'],
          password_file: 'pw',
          schedule: '0 3 * * *',
          rpo: '1h',
          targets: [
            { name: 'disk', repo: './r1', media: 'hdd' },
            { name: 'usb', repo: './r2', media: 'usb' },
          ],
        },
      },
    });
    const events = new EventBus();
    const runs: Array<BulwarkEvents['backup.run']> = [];
    const audits: Array<BulwarkEvents['audit.event']> = [];
    events.on('backup.run', (e) => runs.push(e));
    events.on('audit.event', (e) => audits.push(e));
    const metrics = new Registry();
    const sub = new PlansSubsystem({ config, baseDir: dir, events, logger: createLogger({ level: 'fatal' }), clock, metrics, store }, dir);
    await sub.start();
    // No snapshot yet: the plan and both targets are in breach from the start.
    assert.deepEqual(audits.map((a) => `${a.kind} ${a.subject}`).sort(), ['backup.rpo.breached app', 'backup.rpo.breached app/disk', 'backup.rpo.breached app/usb']);
    assert.equal((sub.status() as { plans: Array<{ next: { backup: string } }> }).plans[0]?.next.backup, '2026-01-01T03:00:00.000Z');

    clock.advance(3 * 3_600_000); // 03:00: the schedule fires
    await waitFor(() => runs.length === 2, { timeoutMs: 30_000, what: 'the scheduled run' });
    assert.deepEqual(runs.map((r) => [r.plan, r.target, r.kind, r.ok]).sort(), [['app', 'disk', 'backup', true], ['app', 'usb', 'backup', true]]);
    assert.equal(lastRun(store, 'app', 'disk', 'backup', true)?.ok, true);
    await waitFor(() => audits.filter((a) => a.kind === 'backup.rpo.resolved').length === 3, { what: 'RPO resolved' });

    const text = await metrics.metrics();
    assert.match(text, /bulwark_backup_age_seconds\{plan="app",target="disk",media="hdd"\} 0/);
    assert.match(text, /bulwark_backup_last_run_ok\{plan="app",target="usb",media="usb"\} 1/);
    assert.match(text, /bulwark_backup_plan_rpo_seconds\{plan="app"\} 3600/);

    audits.length = 0;
    clock.advance(61 * 60_000); // no new snapshot for 61 minutes: breach again
    assert.deepEqual(audits.map((a) => `${a.kind} ${a.subject}`).sort(), ['backup.rpo.breached app', 'backup.rpo.breached app/disk', 'backup.rpo.breached app/usb']);
    assert.match(audits[0]?.message ?? '', /RPO breached: newest verified snapshot 6\d min old, rpo 60 min/);
    await sub.stop();
  } finally {
    store.close();
    cleanup();
  }
});

test('plans subsystem: no plans, no subsystem; a bad cron expression is refused by the schema and by the subsystem', () => {
  const base = { baseDir: process.cwd(), events: new EventBus(), logger: createLogger({ level: 'fatal' }), clock: new FakeClock(), metrics: new Registry(), store: SqliteStore.open(':memory:') };
  assert.equal(createPlans({ ...base, config: configSchema.parse({}) }), undefined);
  const raw = { backups: { app: { paths: ['.'], schedule: 'every tuesday', targets: [{ name: 'd', repo: '/tmp/x', media: 'hdd' }] } } };
  assert.throws(() => configSchema.parse(raw), /expected a cron expression like '0 \* \* \* \*'.*got 'every tuesday'/);
  // a config built without the schema (a reload from an API, a test) still fails clearly
  const config = configSchema.parse({ backups: { app: { ...raw.backups.app, schedule: 'daily' } } });
  (config.backups['app'] as { schedule?: string }).schedule = 'every tuesday';
  assert.throws(() => createPlans({ ...base, config }), (e: Error & { code?: string }) => e.code === 'BULWARK_PLAN_SCHEDULE' && /backups\.app\.schedule: 'every tuesday'/.test(e.message));
});

test('schedule: next run and interval of cron expressions and friendly words (UTC)', () => {
  const t0 = Date.UTC(2026, 0, 1, 10, 30);
  assert.equal(nextRun('0 * * * *', t0), Date.UTC(2026, 0, 1, 11, 0));
  assert.equal(nextRun('daily', t0), Date.UTC(2026, 0, 2, 0, 0));
  assert.equal(cronInterval('0 */6 * * *', t0), 6 * 3_600_000);
  assert.equal(cronInterval('weekly', t0), 7 * 86_400_000);
});

test('verification rotation: every pack is read exactly once per cycle, deterministically, and slots do not move when packs are added', () => {
  const packs = Array.from({ length: 500 }, () => randomBytes(32).toString('hex'));
  const slots = rotationSlots({ periodMs: 7 * 86_400_000, intervalMs: 86_400_000 });
  assert.equal(slots, 7);
  const seen = new Map<string, number>();
  for (let run = 0; run < slots; run++) for (const p of packsForRun(packs, slots, run)) seen.set(p, (seen.get(p) ?? 0) + 1);
  assert.equal(seen.size, packs.length);
  assert.ok([...seen.values()].every((n) => n === 1));
  // the same run reads the same packs; run k and k+slots agree
  assert.deepEqual(packsForRun(packs, slots, 3), packsForRun(packs, slots, 3 + slots));
  // a new pack does not move the others
  const more = [...packs, randomBytes(32).toString('hex')];
  assert.deepEqual(packsForRun(more, slots, 3).filter((p) => packs.includes(p)), packsForRun(packs, slots, 3));
  const added = more.at(-1) as string;
  assert.ok(packsForRun(more, slots, packSlot(added, slots)).includes(added));
  assert.equal(rotationSlots({ readDataShare: 0.05 }), 20);
  assert.equal(rotationSlots({}), 1);
});
