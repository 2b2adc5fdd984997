// Windows, minute aggregation, compaction and retention against a real SQLite store; predicted
// availability; and the slos:/maintenance: sections of the config (validation with positions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../core/config/load.js';
import { SqliteStore } from '../store/sqlite.js';
import { HOUR_MS, MINUTE_MS } from './math.js';
import { DAY_MS, parallel } from './nines.js';
import { predictService } from './predict.js';
import { bucketFor, latencyBounds, LE_INF, MinuteAggregator } from './recorder.js';
import { KEYS, SloRepo } from './repo.js';
import { SlidingSums } from './sums.js';
import { percentText } from './engine.js';
import { compactToHours, normalise, splitByMinute, sumBuckets, windowAt } from './windows.js';

const T0 = Date.UTC(2026, 2, 10, 12, 0, 0);

test('windows: rolling and calendar month (UTC), including February of a leap year', () => {
  assert.deepEqual(windowAt(30 * DAY_MS, T0), { start: T0 - 30 * DAY_MS, end: T0, length_ms: 30 * DAY_MS, kind: 'rolling' });
  const m = windowAt('month', T0);
  assert.equal(m.start, Date.UTC(2026, 2, 1));
  assert.equal(m.length_ms, 31 * DAY_MS);
  assert.equal(windowAt('month', Date.UTC(2028, 1, 29, 23)).length_ms, 29 * DAY_MS);
});

test('intervals are clipped and merged; buckets touching an exclusion are dropped whole', () => {
  const r = { start: 0, end: 100 };
  assert.deepEqual(normalise([{ start: 50, end: 70 }, { start: -10, end: 10 }, { start: 60, end: 120 }], r), [{ start: 0, end: 10 }, { start: 50, end: 100 }]);
  const buckets = [0, 1, 2, 3].map((i) => ({ bucket_start: i * MINUTE_MS, bucket_ms: MINUTE_MS, good: 10 - i, total: 10 }));
  assert.deepEqual(sumBuckets(buckets, { start: 0, end: 4 * MINUTE_MS }), { good: 34, total: 40 });
  assert.deepEqual(sumBuckets(buckets, { start: MINUTE_MS, end: 4 * MINUTE_MS }, [{ start: 2 * MINUTE_MS + 1, end: 2 * MINUTE_MS + 2 }]), { good: 16, total: 20 });
  assert.deepEqual(splitByMinute(59_000, 121_000), [[0, 1000], [60_000, 60_000], [120_000, 1000]]);
});

test('time slices split across minutes; unknown state is not counted', () => {
  const a = new MinuteAggregator();
  a.setState('k', 'up', 30_000);
  a.setState('k', 'down', 90_000);
  a.setState('k', 'unknown', 100_000);
  a.setState('k', 'up', 110_000);
  const { counts } = a.drain(120_000);
  assert.deepEqual(counts.map((c) => [c.bucket_start, c.good, c.total]), [[0, 30_000, 30_000], [60_000, 30_000 + 10_000, 30_000 + 10_000 + 10_000]]);
  assert.deepEqual(a.drain(120_000).counts, []);
  // A transition stamped before the last drain is not counted twice.
  a.setState('k', 'down', 100_000);
  assert.deepEqual(a.drain(150_000).counts.map((c) => [c.bucket_start, c.good, c.total]), [[120_000, 0, 30_000]]);
});

test('latency bounds include the configured thresholds; observations land in the first bound at or above them', () => {
  const b = latencyBounds([180, 200]);
  assert.ok(b.includes(180));
  assert.equal(b.filter((x) => x === 200).length, 1);
  assert.equal(b[b.length - 1], LE_INF);
  assert.equal(bucketFor(b, 180), 180);
  assert.equal(bucketFor(b, 180.5), 200);
  assert.equal(bucketFor(b, 1e9), LE_INF);
});

test('compaction: minute buckets older than 8 days become hourly with the same sums; older than 400 days are deleted; recent minutes stay', () => {
  const store = SqliteStore.open(':memory:');
  try {
    const repo = new SloRepo(store);
    const now = T0;
    const old = now - 10 * DAY_MS;
    const agg = new MinuteAggregator();
    for (let i = 0; i < 180; i++) agg.count('k', i % 7 !== 0, old + i * 20_000); // one hour, 3 per minute
    for (let i = 0; i < 30; i++) agg.count('k', true, now - 30 * MINUTE_MS + i * MINUTE_MS);
    agg.count('k', true, now - 401 * DAY_MS);
    for (let i = 0; i < 60; i++) agg.latency('web', 100, old + i * MINUTE_MS);
    const d = agg.drain(now);
    repo.write(d.counts, d.latency);
    const range = { start: now - 420 * DAY_MS, end: now };
    const before = sumBuckets(repo.buckets('k', range), range);
    const latBefore = sumBuckets(repo.latencyBuckets('web', 100, range), range);
    const merged = repo.compact(now);
    assert.equal(merged, 60 + 1, 'the old hour minute rows and the very old one');
    const after = repo.buckets('k', range);
    assert.equal(after.filter((b) => b.bucket_ms === HOUR_MS).length, 1, 'the old hour');
    assert.equal(after.filter((b) => b.bucket_ms === MINUTE_MS).length, 30);
    const sumAfter = sumBuckets(after, range);
    assert.deepEqual(sumAfter, { good: before.good - 1, total: before.total - 1 }, 'only the bucket older than 400 days is gone');
    assert.deepEqual(sumBuckets(repo.latencyBuckets('web', 100, range), range), latBefore);
    assert.equal(store.get<{ n: number }>('SELECT COUNT(*) AS n FROM sli_latency WHERE bucket_ms = ?', HOUR_MS)?.n, 1);
    // Compacting again changes nothing.
    assert.equal(repo.compact(now), 0);
    assert.deepEqual(sumBuckets(repo.buckets('k', range), range), sumAfter);
    assert.deepEqual(compactToHours([{ bucket_start: 60_000, bucket_ms: MINUTE_MS, good: 1, total: 2 }, { bucket_start: 120_000, bucket_ms: MINUTE_MS, good: 3, total: 4 }]), [{ bucket_start: 0, bucket_ms: HOUR_MS, good: 4, total: 6 }]);
    assert.equal(repo.firstBucket(KEYS.observed), undefined);
  } finally {
    store.close();
  }
});

test('predicted availability: proxy in series with redundant backends; measured where there is an hour of history', () => {
  const p = predictService(
    { name: 'bulwark', kind: 'proxy', measured: { availability: 0.9999, history_ms: 2 * HOUR_MS }, default: 0.9995 },
    [
      { name: 'a', kind: 'backend', measured: { availability: 0.98, history_ms: 5 * HOUR_MS }, default: 0.99 },
      { name: 'b', kind: 'backend', measured: { availability: 0.5, history_ms: 10 * MINUTE_MS }, default: 0.99 },
    ],
  );
  assert.ok(Math.abs(p.availability - 0.9999 * (1 - 0.02 * 0.01)) < 1e-12);
  assert.deepEqual(p.parts.map((x) => x.source), ['measured', 'measured', 'default']);
  assert.equal(p.formula, 'bulwark x (a || b)');
  assert.ok(Math.abs(parallel([0.99, 0.99, 0.99]) - 0.999999) < 1e-12);
});

function problems(yaml: string): string[] {
  return parseConfigText(yaml, '/tmp/x.yaml').problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
}

const SVC = `services:
  web: { listen: 127.0.0.1:0, backends: [{ name: web-1, address: 127.0.0.1:1 }] }
`;

test('config: the SLA must be looser than the objective; objective 100% and unknown services are refused', () => {
  assert.deepEqual(problems(`${SVC}slos:\n  a: { service: web, objective: 99.9%, sla: 99.5% }\n`), []);
  const p = problems(`${SVC}slos:\n  a: { service: web, objective: 99.9%, sla: 99.95% }\n  b: { service: web, objective: 100% }\n  c: { service: nope, objective: 99% }\n`);
  assert.equal(p.length, 3, p.join('\n'));
  assert.match(p[0] ?? '', /^4:slos\.a\.sla: the SLA \(99\.95%\) must be looser than the objective \(99\.9%\)/);
  assert.match(p[1] ?? '', /^5:slos\.b\.objective: an objective of 100% leaves no error budget/);
  assert.match(p[2] ?? '', /^6:slos\.c\.service: no service named 'nope'/);
  assert.match(problems(`${SVC}slos:\n  a: { service: web, objective: 99.9%, sla: 99.9% }\n`)[0] ?? '', /must be looser/);
});

test('config: alert tiers, webhook and maintenance windows are validated with positions', () => {
  const ok = parseConfigText(
    `${SVC}slos:
  a:
    service: web
    objective: 99.9%
    alerts:
      webhook: http://127.0.0.1:9/hook
      min_events: 50
      tiers:
        - { severity: page, long: 1h, short: 5m, budget: 2% }
        - { severity: ticket, long: 1d, short: 2h, burn_rate: 2 }
maintenance:
  - { start: '2026-03-01T02:00:00Z', end: '2026-03-01T03:30:00+01:00', reason: upgrade }
`,
    '/tmp/x.yaml',
  );
  assert.deepEqual(ok.problems, []);
  assert.equal(ok.config?.slos['a']?.alerts?.tiers?.[0]?.budget, 0.02);
  assert.equal(ok.config?.maintenance[0]?.end, Date.UTC(2026, 2, 1, 2, 30));
  const p = problems(`${SVC}slos:
  a:
    service: web
    objective: 99.9%
    alerts:
      webhook: not a url
      tiers:
        - { severity: page, long: 5m, short: 1h, budget: 2% }
        - { severity: page, long: 1h, short: 5m }
        - { severity: sms, long: 1h, short: 5m, budget: 2% }
maintenance:
  - { start: yesterday, end: '2026-03-01T03:00:00Z' }
  - { start: '2026-03-01T03:00:00Z', end: '2026-03-01T02:00:00Z' }
`);
  const text = p.join('\n');
  assert.match(text, /slos\.a\.alerts\.webhook/);
  assert.match(text, /10:slos\.a\.alerts\.tiers\[0\]\.short: the short window of an alert tier must be shorter than its long window/);
  assert.match(text, /11:slos\.a\.alerts\.tiers\[1\]: give an alert tier either budget/);
  assert.match(text, /slos\.a\.alerts\.tiers\[2\]\.severity: expected one of page, ticket/);
  assert.match(text, /maintenance\[0\]\.start: expected a time like 2026-03-01T02:00:00Z/);
  assert.match(text, /maintenance\[1\]\.end: the end of a maintenance window must come after its start/);
});

test('sliding sums equal full sums as windows move, with exclusions, across rolling and calendar windows; compaction invalidates', () => {
  const store = SqliteStore.open(':memory:');
  try {
    const repo = new SloRepo(store);
    let flushed = T0;
    const sliding = new SlidingSums(repo, () => Math.floor(flushed / MINUTE_MS) * MINUTE_MS);
    const agg = new MinuteAggregator();
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const excluded = [{ start: T0 + 95 * MINUTE_MS + 5000, end: T0 + 130 * MINUTE_MS }];
    let t = T0;
    for (let minute = 0; minute < 400; minute++) {
      for (let i = 0; i < 5; i++) {
        agg.count('k', rnd() > 0.1, t + Math.floor(rnd() * MINUTE_MS));
        agg.latency('web', rnd() > 0.5 ? 100 : 500, t + Math.floor(rnd() * MINUTE_MS));
      }
      t += MINUTE_MS;
      const d = agg.drain(t);
      repo.write(d.counts, d.latency);
      flushed = t;
      for (const [range, ex] of [
        [{ start: t - 60 * MINUTE_MS, end: t }, excluded],
        [{ start: t - 5 * MINUTE_MS, end: t }, []],
        [{ start: T0 - DAY_MS, end: t }, excluded], // a calendar-like window: fixed start
      ] as const) {
        assert.deepEqual(sliding.sum({ key: 'k' }, range, ex), repo.sum({ key: 'k' }, range, ex), `minute ${minute}`);
        assert.deepEqual(sliding.sum({ service: 'web', threshold: 200 }, range, ex), repo.sum({ service: 'web', threshold: 200 }, range, ex));
        assert.deepEqual(repo.sum({ key: 'k' }, range, ex), sumBuckets(repo.buckets('k', range), range, ex), 'SQL sums match the pure reference');
      }
    }
    assert.ok(sliding.hits > 1000, `the cache served most lookups (${sliding.hits})`);
    repo.compact(t + 9 * DAY_MS);
    sliding.invalidate();
    const range = { start: T0 + 30 * MINUTE_MS, end: t };
    assert.deepEqual(sliding.sum({ key: 'k' }, range, excluded), repo.sum({ key: 'k' }, range, excluded));
  } finally {
    store.close();
  }
});

test('the SLI is printed with four decimals, truncated: 99.99996% is not 100.0000%', () => {
  assert.equal(percentText(0.0157), '1.5700%'); // 0.0157 x 1e6 = 15699.999999999998 in binary
  assert.equal(percentText(0.9999996), '99.9999%');
  assert.equal(percentText(1), '100.0000%');
  assert.equal(percentText(2 / 3), '66.6666%');
  assert.equal(percentText(0.999712), '99.9712%');
});
