// The SLO subsystem on a FakeClock: simulated proxy traffic and health transitions on a real event
// bus, a real SQLite store (in memory), and a real local HTTP server receiving the webhooks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { FakeClock } from '../core/clock.js';
import { parseConfigText } from '../core/config/load.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../core/events.js';
import { silentLogger } from '../core/logger.js';
import { SqliteStore } from '../store/sqlite.js';
import { MINUTE_MS } from './math.js';
import { DAY_MS } from './nines.js';
import type { CountRow } from './recorder.js';
import { KEYS, SloRepo } from './repo.js';
import { createSlo, isBad, type SloSubsystem, type WebhookPayload } from './subsystem.js';

function config(yaml: string): BulwarkConfig {
  const r = parseConfigText(yaml, '/tmp/bulwark-slo-test.yaml');
  assert.ok(r.config, JSON.stringify(r.problems));
  return r.config;
}

const SERVICE = `
services:
  web:
    listen: 127.0.0.1:0
    backends: [{ name: web-1, address: 127.0.0.1:1 }]
`;

interface Harness {
  clock: FakeClock;
  events: EventBus;
  store: SqliteStore;
  metrics: Registry;
  slo: SloSubsystem;
  alerts: Array<BulwarkEvents['slo.alert']>;
  /** Emits `rps` requests a second for `seconds`, a share `errors` of them failing with 503. */
  traffic(seconds: number, rps: number, errors: number): void;
  close(): Promise<void>;
}

async function harness(yaml: string, start = Date.UTC(2026, 0, 1), seed?: (store: SqliteStore) => void, retryDelays: number[] = [10, 10]): Promise<Harness> {
  const clock = new FakeClock(start);
  const events = new EventBus((e, err) => {
    throw new Error(`listener of ${e} failed: ${String(err)}`);
  });
  const store = SqliteStore.open(':memory:');
  seed?.(store);
  const metrics = new Registry();
  const slo = createSlo({ config: config(yaml), baseDir: process.cwd(), events, logger: silentLogger(), clock, metrics, store }, { webhookRetryDelays: retryDelays });
  assert.ok(slo);
  const alerts: Array<BulwarkEvents['slo.alert']> = [];
  events.on('slo.alert', (a) => alerts.push(a));
  await slo.start();
  let errAcc = 0;
  return {
    clock,
    events,
    store,
    metrics,
    slo,
    alerts,
    traffic(seconds, rps, errors) {
      for (let s = 0; s < seconds; s++) {
        for (let i = 0; i < rps; i++) {
          errAcc += errors;
          const bad = errAcc >= 1 - 1e-9;
          if (bad) errAcc -= 1;
          events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: !bad, status: bad ? 503 : 200, latency_ms: bad ? 1 : 40, at: clock.now() + Math.floor((i * 1000) / rps) });
        }
        clock.advance(1000);
      }
    },
    async close() {
      await slo.stop();
      store.close();
    },
  };
}

async function webhookServer(): Promise<{ url: string; received: WebhookPayload[]; server: Server }> {
  const received: WebhookPayload[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      assert.equal(req.headers['content-type'], 'application/json');
      received.push(JSON.parse(body) as WebhookPayload);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received, server };
}

test('availability: 100% errors fire the fast page within the detection time plus one evaluation, once, and it resolves after recovery; the webhook receives both', async () => {
  const hook = await webhookServer();
  const start = Date.UTC(2026, 0, 10);
  // Three days of history at 2 requests a second, as a previous run of the daemon recorded them.
  const seed = (store: SqliteStore): void => {
    const rows: CountRow[] = [];
    for (let m = start - 3 * DAY_MS; m < start; m += MINUTE_MS) {
      rows.push({ key: KEYS.availability('web-availability'), bucket_start: m, good: 120, total: 120 }, { key: KEYS.observed, bucket_start: m, good: MINUTE_MS, total: MINUTE_MS });
    }
    new SloRepo(store).write(rows, []);
  };
  const h = await harness(`${SERVICE}
slos:
  web-availability: { service: web, objective: 99.9%, window: 30d, alerts: { webhook: '${hook.url}' } }
`, start, seed);
  try {
    h.traffic(10 * 60 + 17, 2, 0); // ten minutes of clean traffic (the fault starts 17 s into a minute)
    assert.equal(h.alerts.length, 0, 'no alert on clean traffic');
    const faultAt = h.clock.now();
    h.traffic(300, 2, 1); // five minutes of 100% errors
    const firing = h.alerts.filter((a) => a.state === 'firing');
    assert.equal(firing.length, 1, `one page, the slower tiers suppressed: ${JSON.stringify(h.alerts)}`);
    const page = firing[0] as BulwarkEvents['slo.alert'];
    assert.equal(page.severity, 'page');
    assert.equal(page.window, '1h/5m');
    // Workbook detection time for 100% errors: 0.001 x 14.4 x 1h = 51.84 s of errors in the hour
    // (the hour holds 7,200 requests), plus at most one minute until the next evaluation. (The
    // 6h tier needs 129.6 s and the 3d ticket 259.2 s: the fast page fires, the others are
    // suppressed.)
    const detection = page.at - faultAt;
    assert.ok(detection >= 51_840 && detection <= 51_840 + MINUTE_MS, `fired ${detection} ms after the fault`);
    const recoverAt = h.clock.now();
    h.traffic(40 * 60, 2, 0); // recovery, then 40 minutes of clean traffic
    const resolved = h.alerts.filter((a) => a.state === 'resolved');
    assert.equal(resolved.length, 1, JSON.stringify(h.alerts));
    assert.ok((resolved[0] as BulwarkEvents['slo.alert']).at - recoverAt <= 6 * MINUTE_MS, 'resolves once the 5m window is clean');
    assert.equal(h.alerts.length, 2, `no duplicate slower page after the fast one resolved: ${JSON.stringify(h.alerts)}`);
    await h.slo.settled();
    assert.deepEqual(hook.received.map((p) => [p.slo, p.severity, p.state, p.window]), [
      ['web-availability', 'page', 'firing', '1h/5m'],
      ['web-availability', 'page', 'resolved', '1h/5m'],
    ]);
    assert.equal(hook.received[0]?.alert_id, hook.received[1]?.alert_id);
    const rows = h.store.all<{ fired_at: number; resolved_at: number; webhook_fired: string; webhook_resolved: string }>('SELECT * FROM slo_alerts');
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.webhook_fired, 'ok 204');
    assert.equal(rows[0]?.webhook_resolved, 'ok 204');
    assert.equal(rows[0]?.fired_at, page.at);
    // The report counts the 3000 errors against the budget.
    const r = h.slo.report().slos[0];
    assert.ok(r);
    assert.equal(r.total - r.good, 600);
    const metrics = await h.metrics.metrics();
    assert.match(metrics, /bulwark_slo_error_budget_remaining_ratio\{slo="web-availability"\} /);
    assert.match(metrics, /bulwark_slo_burn_rate\{slo="web-availability",window="1h"\} /);
    assert.match(metrics, /bulwark_slo_sli_ratio\{slo="web-availability",service="web",sli="availability"\} 0\.9/);
  } finally {
    await h.close();
    hook.server.close();
  }
});

test('a quiet service with one error does not page (minimum-events guard), but the error still counts', async () => {
  const h = await harness(`${SERVICE}
slos:
  web-availability: { service: web, objective: 99.9%, window: 30d }
`);
  try {
    for (let i = 0; i < 18; i++) {
      // one request every ten minutes; the fifth one fails
      h.events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: i !== 4, status: i === 4 ? 502 : 200, latency_ms: 20, at: h.clock.now() });
      h.clock.advance(10 * MINUTE_MS);
    }
    assert.equal(h.alerts.length, 0);
    const r = h.slo.report().slos[0];
    assert.equal(r?.total, 18);
    assert.equal(r?.good, 17);
    assert.ok((r?.budget.consumed_ratio ?? 0) > 0);
    const tier = r?.tiers[0];
    assert.equal(tier?.condition, false);
  } finally {
    await h.close();
  }
});

test('a maintenance window (API and config) leaves the budget untouched, and the report shows the exclusion', async () => {
  const start = Date.UTC(2026, 0, 1);
  const h = await harness(`${SERVICE}
slos:
  web-availability: { service: web, objective: 99.9%, window: 30d }
maintenance:
  - { services: [web], start: '2026-01-01T01:00:00Z', end: '2026-01-01T01:10:00Z', reason: planned upgrade }
`, start);
  try {
    h.traffic(60 * 60, 5, 0);
    h.traffic(10 * 60, 5, 1); // 01:00-01:10, inside the configured window: all errors
    h.traffic(10 * 60, 5, 0);
    const added = h.slo.addMaintenance({ start: new Date(h.clock.now()).toISOString(), duration: '5m', services: ['web'], reason: 'failover drill' });
    assert.ok(added.id > 0);
    h.traffic(5 * 60, 5, 1); // inside the API window: all errors
    h.traffic(5 * 60, 5, 0);
    const r = h.slo.report().slos[0];
    assert.ok(r);
    assert.equal(r.total - r.good, 0, 'no error outside maintenance');
    assert.equal(r.budget.consumed, 0);
    assert.equal(r.budget.remaining_ratio, 1);
    assert.equal(r.maintenance.excluded_ms, 15 * MINUTE_MS);
    assert.deepEqual(r.maintenance.windows.map((w) => [w.source, w.reason]), [['config', 'planned upgrade'], ['api', 'failover drill']]);
    assert.equal(h.alerts.length, 0, 'no alert for errors inside maintenance');
    // Control: the same errors outside a window do consume budget.
    h.traffic(60, 5, 1);
    const after = h.slo.report().slos[0];
    assert.equal((after?.total ?? 0) - (after?.good ?? 0), 300);
    assert.ok((after?.budget.consumed_ratio ?? 0) > 0);
    assert.throws(() => h.slo.addMaintenance({ start: '2026-01-01T03:00:00Z', end: '2026-01-01T02:00:00Z' }), /BULWARK_SLO_MAINTENANCE_INVALID|end must come after start/);
    assert.throws(() => h.slo.addMaintenance({ duration: '1h', services: ['nope'] }), /unknown service/);
    assert.throws(() => h.slo.addMaintenance({ duration: 'soon' }), /duration/);
    // Regression: a duration ending past year 9999 answered 500 yet was stored, and broke every later read.
    const windows = h.slo.maintenance().length;
    assert.throws(() => h.slo.addMaintenance({ duration: '99999999999d' }), /BULWARK_SLO_MAINTENANCE_INVALID|between 1970 and 9999/);
    assert.throws(() => h.slo.addMaintenance({ start: '+275000-01-01T00:00:00Z', duration: '1h' }), /between 1970 and 9999|expected an ISO time/);
    assert.equal(h.slo.maintenance().length, windows, 'nothing stored');
    assert.ok(h.slo.report().slos[0], 'the report still works');
  } finally {
    await h.close();
  }
});

test('probe uptime: time without a healthy backend is consumed to the millisecond; Bulwark downtime is missing data', async () => {
  const start = Date.UTC(2026, 0, 1);
  const yaml = `${SERVICE}
slos:
  web-probe: { service: web, sli: probe, objective: 99.9%, window: 30d }
`;
  const h = await harness(yaml, start);
  const up = (to: 'up' | 'down', from: 'up' | 'down' | 'unknown'): void =>
    h.events.emit('health.transition', { service: 'web', node: 'web-1', from, to, reason: 'test', at: h.clock.now() });
  up('up', 'unknown');
  h.clock.advance(10 * MINUTE_MS + 12_345);
  up('down', 'up');
  h.clock.advance(200_000); // 3 min 20 s down
  up('up', 'down');
  h.clock.advance(5 * MINUTE_MS);
  const r = h.slo.report().slos[0];
  assert.ok(r);
  assert.equal(r.unit, 'ms');
  assert.equal(r.total - r.good, 200_000);
  assert.ok(Math.abs(r.budget.consumed_minutes - 200_000 / MINUTE_MS) < 1e-9, String(r.budget.consumed_minutes));
  assert.ok(Math.abs(r.budget.consumed_ratio - 200_000 / (0.001 * 30 * 86_400_000)) < 1e-12);
  // Bulwark stops for 20 minutes, then starts again on the same store.
  await h.slo.stop();
  h.clock.advance(20 * MINUTE_MS);
  const again = createSlo({ config: config(yaml), baseDir: process.cwd(), events: h.events, logger: silentLogger(), clock: h.clock, metrics: h.metrics, store: h.store });
  assert.ok(again);
  await again.start();
  h.events.emit('health.transition', { service: 'web', node: 'web-1', from: 'unknown', to: 'up', reason: 'test', at: h.clock.now() });
  h.clock.advance(10 * MINUTE_MS);
  const r2 = again.report().slos[0];
  assert.ok(r2);
  assert.equal(r2.total - r2.good, 200_000, 'the 20 minutes Bulwark was down are not bad minutes');
  assert.equal(r2.total, 25 * MINUTE_MS + 212_345);
  // Missing data: the window before the first start, and the 20 minutes of Bulwark downtime.
  const elapsed = 30 * 86_400_000;
  assert.equal(r2.missing_data_ms, elapsed - r2.total);
  await again.stop();
  h.store.close();
});

test('latency: share of answered requests at or under the threshold, from per-minute histograms', async () => {
  const h = await harness(`${SERVICE}
slos:
  web-latency: { service: web, latency: { threshold: 180ms }, objective: 99%, window: 7d }
`);
  try {
    for (let i = 0; i < 1000; i++) {
      const latency = i % 10 === 0 ? 181 : i % 10 === 1 ? 180 : 30; // 10% just over the threshold, 10% exactly at it
      h.events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: true, status: 200, latency_ms: latency, at: h.clock.now() });
      if (i % 100 === 99) h.clock.advance(MINUTE_MS);
    }
    h.events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: false, status: undefined, latency_ms: 0, at: h.clock.now() });
    const r = h.slo.report().slos[0];
    assert.equal(r?.sli, 'latency');
    assert.equal(r?.total, 1000, 'failed requests are not latency events');
    assert.equal(r?.good, 900);
    assert.equal(r?.value_text, '90.0000%');
  } finally {
    await h.close();
  }
});

test('bad status rules: 5xx and connection failures by default; configurable', () => {
  assert.equal(isBad({ ok: false, status: undefined }, ['5xx']), true);
  assert.equal(isBad({ ok: true, status: 503 }, ['5xx']), true);
  assert.equal(isBad({ ok: true, status: 404 }, ['5xx']), false);
  assert.equal(isBad({ ok: true, status: 429 }, ['5xx', 429]), true);
  assert.equal(isBad({ ok: true, status: 404 }, ['4xx']), true);
});

test('status() gives rows and columns for the dashboard and `bulwark status`', async () => {
  const h = await harness(`${SERVICE}
slos:
  web-availability: { service: web, objective: 99.9%, sla: 99.5%, window: 30d }
`);
  try {
    h.traffic(120, 2, 0);
    const s = h.slo.status() as { rows: Array<Record<string, unknown>>; columns: string[] };
    assert.deepEqual(s.columns, ['slo', 'service', 'sli', 'objective', 'value', 'budget_left', 'burn_1h', 'alerts']);
    assert.equal(s.rows[0]?.['slo'], 'web-availability');
    assert.equal(s.rows[0]?.['value'], '100.0000%');
    assert.equal(s.rows[0]?.['alerts'], 'none');
    const r = h.slo.report().slos[0];
    assert.deepEqual(r?.sla, { target: 0.995, status: 'met' });
  } finally {
    await h.close();
  }
});

test('an alert firing when Bulwark stops resolves after a restart; a webhook that cannot be delivered is recorded as failed', async () => {
  const port = await (async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const p = (srv.address() as AddressInfo).port;
    await new Promise((r) => srv.close(r));
    return p;
  })();
  const yaml = `${SERVICE}
slos:
  web-availability: { service: web, objective: 99.9%, window: 30d, alerts: { webhook: 'http://127.0.0.1:${port}/gone' } }
`;
  const h = await harness(yaml);
  h.traffic(600, 10, 0);
  h.traffic(120, 10, 1);
  assert.equal(h.alerts.filter((a) => a.state === 'firing').length, 1);
  await h.slo.settled();
  const row = h.store.get<{ id: number; webhook_fired: string; resolved_at: number | null }>('SELECT * FROM slo_alerts');
  assert.match(row?.webhook_fired ?? '', /^failed: .*\(attempt 3\)$/);
  assert.equal(row?.resolved_at, null);
  await h.slo.stop();
  h.clock.advance(2 * MINUTE_MS);
  const again = createSlo({ config: config(yaml), baseDir: process.cwd(), events: h.events, logger: silentLogger(), clock: h.clock, metrics: h.metrics, store: h.store }, { webhookRetryDelays: [10] });
  assert.ok(again);
  await again.start();
  h.traffic(10 * 60, 10, 0);
  await again.settled();
  assert.deepEqual(h.alerts.map((a) => a.state), ['firing', 'resolved'], 'the restarted daemon resolves the open alert instead of paging again');
  const after = h.store.all<{ id: number; resolved_at: number | null; webhook_resolved: string }>('SELECT * FROM slo_alerts');
  assert.equal(after.length, 1);
  assert.equal(after[0]?.id, row?.id);
  assert.ok(after[0]?.resolved_at);
  assert.match(after[0]?.webhook_resolved ?? '', /^failed: .*\(attempt 2\)$/);
  await again.stop();
  h.store.close();
});

test('requests of a database listener (db:NAME) count for SLOs on that database; reload adds and removes SLOs', async () => {
  const yaml = `${SERVICE}
databases:
  main:
    engine: postgres
    listen: 127.0.0.1:0
    nodes: [{ name: pg-1, port: 5432, data_dir: /tmp/pg-1 }]
slos:
  main-availability: { service: main, objective: 99.9% }
`;
  const h = await harness(yaml);
  try {
    for (let i = 0; i < 10; i++) h.events.emit('proxy.request', { service: 'db:main', backend: undefined, ok: i !== 0, status: undefined, latency_ms: 1, at: h.clock.now() });
    h.events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: true, status: 200, latency_ms: 1, at: h.clock.now() });
    let r = h.slo.report();
    assert.deepEqual(r.slos.map((s) => [s.name, s.good, s.total]), [['main-availability', 9, 10]]);
    await h.slo.reload(config(`${yaml}  web-availability: { service: web, objective: 99% }\n`));
    h.events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: true, status: 200, latency_ms: 1, at: h.clock.now() });
    r = h.slo.report();
    assert.deepEqual(r.slos.map((s) => [s.name, s.good, s.total]), [['main-availability', 9, 10], ['web-availability', 1, 1]]);
    assert.throws(() => h.slo.report('nope'), /BULWARK_SLO_UNKNOWN|no SLO named 'nope'/);
  } finally {
    await h.close();
  }
});

test('webhook deliveries are retried after a 5xx and not after a 4xx', async () => {
  let calls = 0;
  const statuses = [503, 204, 400];
  const got: string[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const status = statuses[calls++] ?? 204;
      got.push(String(status));
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const h = await harness(`${SERVICE}
slos:
  web-availability: { service: web, objective: 99.9%, window: 30d, alerts: { webhook: '${url}' } }
`);
  try {
    h.traffic(600, 10, 0);
    h.traffic(120, 10, 1);
    await h.slo.settled();
    h.traffic(10 * 60, 10, 0);
    await h.slo.settled();
    const row = h.store.get<{ webhook_fired: string; webhook_resolved: string }>('SELECT * FROM slo_alerts');
    assert.equal(row?.webhook_fired, 'ok 204 (attempt 2)');
    assert.equal(row?.webhook_resolved, 'failed: HTTP 400');
    assert.deepEqual(got, ['503', '204', '400']);
  } finally {
    await h.close();
    server.close();
  }
});

test('probe SLO: a blip right after Bulwark starts does not page; an outage with enough observed time does', async () => {
  const h = await harness(`${SERVICE}
slos:
  web-probe: { service: web, sli: probe, objective: 99.9%, window: 30d }
`);
  const set = (to: 'up' | 'down', from: 'up' | 'down' | 'unknown'): void => h.events.emit('health.transition', { service: 'web', node: 'web-1', from, to, reason: 'test', at: h.clock.now() });
  try {
    set('up', 'unknown');
    h.clock.advance(20_000);
    set('down', 'up');
    h.clock.advance(10_000);
    set('up', 'down');
    h.clock.advance(2 * MINUTE_MS);
    assert.equal(h.alerts.length, 0, 'less than the short window of observed time: guarded');
    const r = h.slo.report().slos[0];
    assert.equal(r?.total && r.total - r.good, 10_000, 'the blip still counts against the budget');
    assert.equal(r?.tiers[0]?.guarded, true);
    h.clock.advance(10 * MINUTE_MS);
    set('down', 'up');
    h.clock.advance(3 * MINUTE_MS);
    const page = h.alerts.find((a) => a.state === 'firing');
    assert.equal(page?.severity, 'page');
    assert.equal(page?.window, '1h/5m');
  } finally {
    await h.close();
  }
});

test('the subsystem runs with services but no SLOs yet (node history for predictions; SLOs added by reload record at once), and not without anything to measure', async () => {
  const store = SqliteStore.open(':memory:');
  const deps = (yaml: string) => ({ config: config(yaml), baseDir: process.cwd(), events: new EventBus(), logger: silentLogger(), clock: new FakeClock(), metrics: new Registry(), store });
  try {
    assert.equal(createSlo(deps('state_dir: ./var\n')), undefined);
    const d = deps(SERVICE);
    const slo = createSlo(d);
    assert.ok(slo);
    await slo.start();
    d.events.emit('health.transition', { service: 'web', node: 'web-1', from: 'unknown', to: 'up', reason: 'test', at: d.clock.now() });
    d.clock.advance(2 * MINUTE_MS);
    assert.deepEqual((slo.status() as { rows: unknown[] }).rows, []);
    await slo.reload(config(`${SERVICE}slos:\n  web-probe: { service: web, sli: probe, objective: 99.9% }\n  web-availability: { service: web, objective: 99.9% }\n`));
    d.events.emit('proxy.request', { service: 'web', backend: 'web-1', ok: true, status: 200, latency_ms: 3, at: d.clock.now() });
    d.clock.advance(MINUTE_MS);
    const r = slo.report();
    assert.equal(r.slos.find((s) => s.name === 'web-probe')?.total, 3 * MINUTE_MS, 'probe history from before the SLO existed');
    assert.equal(r.slos.find((s) => s.name === 'web-availability')?.total, 1);
    await slo.stop();
  } finally {
    store.close();
  }
});
