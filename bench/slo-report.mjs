// Measures the cost of an SLO evaluation (what the daemon does every minute, on the event loop it
// shares with the proxy) and of recording: a state store holding 400 days of history for three
// SLOs on one two-backend service (minute buckets for the last 8 days, hourly before), as
// compaction leaves it. No peer does this on the same data (Prometheus is not installed here), so
// it prints absolute figures. Usage: npm run build && node bench/slo-report.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../dist/core/config/load.js';
import { SqliteStore } from '../dist/store/sqlite.js';
import { SloEngine } from '../dist/slo/engine.js';
import { SloRepo, KEYS } from '../dist/slo/repo.js';
import { MinuteAggregator } from '../dist/slo/recorder.js';
import { SlidingSums } from '../dist/slo/sums.js';

const MIN = 60_000, HOUR = 3_600_000, DAY = 86_400_000;
const yaml = `
services:
  web: { listen: 127.0.0.1:0, backends: [{ name: web-1, address: 127.0.0.1:1 }, { name: web-2, address: 127.0.0.1:2 }] }
slos:
  web-availability: { service: web, objective: 99.9%, window: 30d }
  web-latency: { service: web, latency: { threshold: 200ms }, objective: 99%, window: 30d }
  web-probe: { service: web, sli: probe, objective: 99.95%, window: 90d }
`;
const config = parseConfigText(yaml, '/tmp/bench.yaml').config;
const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-slo-'));
const store = SqliteStore.open(dir);
try {
  const now = Date.UTC(2026, 5, 1);
  const keys = [KEYS.availability('web-availability'), KEYS.probe('web'), KEYS.node('web', 'web-1'), KEYS.node('web', 'web-2'), KEYS.observed];
  const les = [50, 100, 200, 500, Infinity];
  let t = Date.now();
  store.transaction(() => {
    for (let b = now - 400 * DAY; b < now; ) {
      const ms = b < now - 8 * DAY ? HOUR : MIN;
      for (const k of keys) store.run('INSERT INTO sli_buckets (slo_key, bucket_start, bucket_ms, good, total) VALUES (?, ?, ?, ?, ?)', k, b, ms, ms === HOUR ? 59_990 : 1000, ms === HOUR ? 60_000 : 1000);
      for (const le of les) store.run('INSERT INTO sli_latency (service, bucket_start, bucket_ms, le, count) VALUES (?, ?, ?, ?, ?)', 'web', b, ms, le, 200);
      b += ms;
    }
  });
  const rows = store.get('SELECT COUNT(*) AS n FROM sli_buckets').n + store.get('SELECT COUNT(*) AS n FROM sli_latency').n;
  console.log(`filled ${rows} bucket rows in ${Date.now() - t} ms`);

  const engine = new SloEngine(new SloRepo(store), config);
  engine.report(now);
  const n = 20;
  t = performance.now();
  for (let i = 0; i < n; i++) engine.report(now + i * MIN);
  const per = (performance.now() - t) / n;
  console.log(`full evaluation of 3 SLOs from SQL sums (report + alert tiers + prediction; offline report, first tick): ${per.toFixed(1)} ms each (${n} runs)`);
  let clock = now;
  const sliding = new SlidingSums(new SloRepo(store), () => clock);
  const daemonEngine = new SloEngine(new SloRepo(store), config, sliding);
  daemonEngine.report(clock);
  t = performance.now();
  for (let i = 0; i < n; i++) {
    clock += MIN;
    daemonEngine.report(clock);
  }
  const slide = (performance.now() - t) / n;
  console.log(`daemon evaluation each minute with sliding sums: ${slide.toFixed(1)} ms each (${n} runs; ${(per / slide).toFixed(1)}x faster than full)`);

  const agg = new MinuteAggregator();
  const events = 1_000_000;
  t = performance.now();
  for (let i = 0; i < events; i++) {
    agg.count('avail:web-availability', i % 1000 !== 0, now + (i % 60_000));
    agg.latency('web', 100, now + (i % 60_000));
  }
  const rec = performance.now() - t;
  console.log(`recording: ${((events / rec) * 1000 / 1e6).toFixed(2)} M requests/s aggregated in memory (${(rec / events * 1e6).toFixed(0)} ns each)`);
  t = performance.now();
  const d = agg.drain(now + MIN);
  new SloRepo(store).write(d.counts, d.latency);
  console.log(`flush of one minute: ${(performance.now() - t).toFixed(1)} ms`);
  t = performance.now();
  const removed = new SloRepo(store).compact(now + 9 * DAY);
  console.log(`compaction of one day of minute buckets (${removed} rows): ${(performance.now() - t).toFixed(1)} ms`);
} finally {
  store.close();
  rmSync(dir, { recursive: true, force: true });
}
