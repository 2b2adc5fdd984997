// The shipped Prometheus rules and metrics, checked by Debian's promtool: the generated rules
// pass `promtool check rules`, and `promtool test rules` shows the burn-rate page firing on a
// service that fails every request and staying quiet on one that does not; the daemon's /metrics
// passes `promtool check metrics`. promtool itself is shown to reject bad input, so a pass means
// something. The Grafana dashboard is valid JSON naming only series that exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { configSchema } from '../core/config/schema.js';
import { silentLogger } from '../core/logger.js';
import { scratchDir } from '../testing/helpers.js';
import { Daemon } from './daemon.js';
import { grafanaDashboard } from './grafana.js';
import { prometheusRules } from './prom-rules.js';

const PROMTOOL = '/usr/bin/promtool';

function promtool(args: string[], input?: string): { code: number | null; out: string } {
  assert.ok(existsSync(PROMTOOL), 'promtool is missing: scripts/install-deps.sh installs Debian\'s prometheus package');
  const r = spawnSync(PROMTOOL, args, { input, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const SERVICES = { web: { listen: '127.0.0.1:18080', backends: [{ name: 'b1', address: '127.0.0.1:18081' }], health: { http: {} } } };
const AVAILABILITY = { service: 'web', objective: '99.9%' };
const config = configSchema.parse({
  services: SERVICES,
  slos: {
    'web-availability': AVAILABILITY,
    'web-latency': { service: 'web', objective: '99%', latency: { threshold: '300ms' } },
    'web-uptime': { service: 'web', objective: '99.95%', sli: 'probe', window: '7d' },
  },
  backups: { docs: { paths: ['/etc/hostname'], rpo: '2h', targets: [{ name: 'a', repo: '/tmp/x', media: 'hdd' }] } },
  notify: { channels: { hook: { type: 'webhook', url: 'http://127.0.0.1:1/' } }, routes: [{ channels: ['hook'] }] },
});

test('promtool check rules passes on the generated rules, and fails on a broken rule (the check can fail)', () => {
  const s = scratchDir();
  try {
    const rules = prometheusRules(config);
    writeFileSync(join(s.dir, 'rules.yml'), stringify(rules));
    const ok = promtool(['check', 'rules', join(s.dir, 'rules.yml')]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /SUCCESS: \d+ rules found/);
    const names = rules.groups.flatMap((g) => g.rules.map((r) => r.alert ?? r.record));
    for (const n of ['slo:sli_error:ratio_rate5m', 'slo:period_error_budget_remaining:ratio', 'BulwarkSLOErrorBudgetBurn', 'BulwarkNoHealthyBackend', 'BulwarkBackupRpoBreached', 'BulwarkNotificationsFailing']) assert.ok(names.includes(n), n);
    const broken = structuredClone(rules);
    (broken.groups[0]?.rules[0] as { expr: string }).expr = 'sum(rate(bulwark_proxy_requests_total[5m]'; // unbalanced
    writeFileSync(join(s.dir, 'broken.yml'), stringify(broken));
    assert.notEqual(promtool(['check', 'rules', join(s.dir, 'broken.yml')]).code, 0);
  } finally {
    s.cleanup();
  }
});

test('promtool test rules: the availability page fires when every request fails, and not when none does', () => {
  const s = scratchDir();
  try {
    const rules = prometheusRules(configSchema.parse({ services: SERVICES, slos: { 'web-availability': AVAILABILITY } }));
    writeFileSync(join(s.dir, 'rules.yml'), stringify(rules));
    const alerts = rules.groups.flatMap((g) => g.rules).filter((r) => r.alert === 'BulwarkSLOErrorBudgetBurn');
    const page = alerts.find((r) => r.labels?.['severity'] === 'page');
    assert.ok(page?.annotations);
    assert.match(page.annotations['description'] ?? '', /14\.4x over 1h and 5m; 6x over 6h and 30m\. Objective 99\.9% over 30d/);
    // Every request failing for 90 minutes: both pages and the ticket (1x over 6h) fire.
    const expected = alerts.map((a) => ({ exp_labels: { ...a.labels }, exp_annotations: a.annotations }));
    const tests = {
      rule_files: ['rules.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: 'bulwark_proxy_requests_total{service="web",backend="b1",code="5xx"}', values: '0+60x120' },
            { series: 'bulwark_proxy_requests_total{service="web",backend="b1",code="2xx"}', values: '0+0x120' },
          ],
          alert_rule_test: [{ eval_time: '90m', alertname: 'BulwarkSLOErrorBudgetBurn', exp_alerts: expected }],
        },
        {
          interval: '1m',
          input_series: [
            { series: 'bulwark_proxy_requests_total{service="web",backend="b1",code="5xx"}', values: '0+0x120' },
            { series: 'bulwark_proxy_requests_total{service="web",backend="b1",code="2xx"}', values: '0+60x120' },
          ],
          alert_rule_test: [{ eval_time: '90m', alertname: 'BulwarkSLOErrorBudgetBurn', exp_alerts: [] }],
        },
      ],
    };
    writeFileSync(join(s.dir, 'test.yml'), stringify(tests));
    const r = promtool(['test', 'rules', join(s.dir, 'test.yml')]);
    assert.equal(r.code, 0, r.out);
    // And the test harness does catch a wrong expectation: claim the healthy service pages.
    tests.tests[1] = { ...tests.tests[1], alert_rule_test: [{ eval_time: '90m', alertname: 'BulwarkSLOErrorBudgetBurn', exp_alerts: [{ exp_labels: { ...page.labels }, exp_annotations: page.annotations }] }] } as (typeof tests.tests)[number];
    writeFileSync(join(s.dir, 'test.yml'), stringify(tests));
    assert.notEqual(promtool(['test', 'rules', join(s.dir, 'test.yml')]).code, 0);
  } finally {
    s.cleanup();
  }
});

test('the daemon\'s /metrics passes promtool check metrics (unprefixed process_* metrics); a gauge named *_total does not', async () => {
  const s = scratchDir();
  const daemon = new Daemon({ config: configSchema.parse({ state_dir: s.dir, notify: config.notify }), file: join(s.dir, 'bulwark.yaml'), baseDir: s.dir }, { logger: silentLogger() });
  await daemon.start();
  try {
    const text = await daemon.metrics.metrics();
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^process_resident_memory_bytes /m);
    assert.doesNotMatch(text, /^bulwark_process_/m);
    const r = promtool(['check', 'metrics'], text);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out.trim(), '');
    const bad = promtool(['check', 'metrics'], '# HELP x_total a gauge\n# TYPE x_total gauge\nx_total 1\n');
    assert.match(bad.out, /non-counter metrics should not have "_total" suffix/);
  } finally {
    await daemon.stop();
    s.cleanup();
  }
});

test('the Grafana dashboard has a row per service, SLO and plan, unique panel ids, and queries only Bulwark series', () => {
  const d = grafanaDashboard(config) as { panels: Array<{ id: number; type: string; title: string; targets?: Array<{ expr: string }> }> };
  const rows = d.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.ok(rows.includes('Service web'));
  assert.ok(rows.some((t) => t.startsWith('SLO web-latency')));
  assert.ok(rows.includes('Backup plan docs'));
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  const known = /\b(bulwark_[a-z_]+|slo:[a-z_:0-9]+|process_[a-z_]+)\b|^vector\(\d+\)$/;
  for (const p of d.panels) for (const t of p.targets ?? []) assert.match(t.expr, known, `${p.title}: ${t.expr}`);
  JSON.parse(JSON.stringify(d));
});
