import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  budget,
  budgetMinutes,
  budgetSpentAtThreshold,
  burnRate,
  burnThreshold,
  detectionTime,
  evaluateTiers,
  HOUR_MS,
  MINUTE_MS,
  stepAlerts,
  timeToExhaustion,
  WORKBOOK_TIERS,
  type AlertTier,
} from './math.js';
import { DAY_MS } from './nines.js';

const close = (actual: number, expected: number, what: string, eps = 1e-12): void => {
  assert.ok(Math.abs(actual - expected) <= eps, `${what}: expected ${expected}, got ${actual}`);
};

// SRE Workbook, chapter 5, table 5-8 (99.9% SLO, 30-day window): 14.4x over 1h (2% of budget),
// 6x over 6h (5%), 1x over 3d (10%). For other windows the same budget shares give
// threshold = share x window / long window; the golden values below are computed by hand:
//   7d = 168h:  0.02 x 168 / 1 = 3.36;   0.05 x 168 / 6 = 1.4;  0.10 x 7 / 3 = 0.2333...
//   28d = 672h: 0.02 x 672 = 13.44;      0.05 x 672 / 6 = 5.6;  0.10 x 28 / 3 = 0.9333...
//   30d = 720h: 14.4;                    6;                     1
//   90d = 2160h: 43.2;                   18;                    3
const GOLDEN: Array<{ days: number; thresholds: [number, number, number]; budgetMinutes999: number }> = [
  { days: 7, thresholds: [3.36, 1.4, 0.7 / 3], budgetMinutes999: 10.08 },
  { days: 28, thresholds: [13.44, 5.6, 2.8 / 3], budgetMinutes999: 40.32 },
  { days: 30, thresholds: [14.4, 6, 1], budgetMinutes999: 43.2 },
  { days: 90, thresholds: [43.2, 18, 3], budgetMinutes999: 129.6 },
];

test('burn thresholds of the workbook tiers for 7, 28, 30 and 90-day windows (to 1e-12)', () => {
  for (const g of GOLDEN) {
    const w = g.days * DAY_MS;
    WORKBOOK_TIERS.forEach((tier, i) => close(burnThreshold(tier, w), g.thresholds[i] as number, `${g.days}d tier ${i}`));
  }
});

test('each tier spends the workbook share of the budget when it fires: 2%, 5%, 10%', () => {
  for (const g of GOLDEN) {
    const w = g.days * DAY_MS;
    close(budgetSpentAtThreshold(WORKBOOK_TIERS[0] as AlertTier, w), 0.02, `${g.days}d fast page`);
    close(budgetSpentAtThreshold(WORKBOOK_TIERS[1] as AlertTier, w), 0.05, `${g.days}d slow page`);
    close(budgetSpentAtThreshold(WORKBOOK_TIERS[2] as AlertTier, w), 0.1, `${g.days}d ticket`);
  }
});

test('budget minutes for 99.9% over 7, 28, 30 and 90 days (to 1e-12), and other objectives', () => {
  for (const g of GOLDEN) close(budgetMinutes(0.999, g.days * DAY_MS), g.budgetMinutes999, `${g.days}d`, 1e-12);
  close(budgetMinutes(0.99, 30 * DAY_MS), 432, '99% 30d');
  close(budgetMinutes(0.9999, 30 * DAY_MS), 4.32, '99.99% 30d', 1e-12);
  close(budgetMinutes(0.995, 28 * DAY_MS), 201.6, '99.5% 28d', 1e-10);
});

test('time to exhaustion at the workbook burn rates: 14.4x empties a 30d budget in 50h, 6x in 5 days, 1x in 30 days', () => {
  const w = 30 * DAY_MS;
  close(timeToExhaustion(1, 14.4, w), 50 * HOUR_MS, '14.4x', 1e-3);
  close(timeToExhaustion(1, 6, w), 5 * DAY_MS, '6x', 1e-3);
  close(timeToExhaustion(1, 1, w), 30 * DAY_MS, '1x', 1e-3);
  close(timeToExhaustion(0.5, 2, w), 7.5 * DAY_MS, 'half left at 2x', 1e-3);
  assert.equal(timeToExhaustion(1, 0, w), Infinity);
  assert.equal(timeToExhaustion(-0.1, 3, w), 0);
});

test('detection time of the fast page at 100% errors for 99.9%/30d is 51.84 s (the workbook figure)', () => {
  close(detectionTime(WORKBOOK_TIERS[0] as AlertTier, 30 * DAY_MS, 0.999, 1), 51_840, 'detection', 1e-6);
});

test('burn rate is the error ratio over the budget ratio', () => {
  close(burnRate(0.0144, 0.999), 14.4, 'burn', 1e-9);
  close(burnRate(0, 0.999), 0, 'none');
});

test('budget: requests are extrapolated from the covered part of the window; time slices use the window', () => {
  const w = 30 * DAY_MS;
  // 10 bad of 1,000,000 requests over the full window of a 99.9% SLO: 1% of the budget.
  const full = budget(0.999, w, { good: 999_990, total: 1_000_000 }, { timeBased: false, coveredMs: w });
  close(full.consumed_ratio, 0.01, 'consumed', 1e-9);
  close(full.remaining_ratio, 0.99, 'remaining', 1e-9);
  close(full.remaining_minutes, 43.2 * 0.99, 'remaining minutes', 1e-9);
  // The same counts seen in 3 of 30 days: traffic is extrapolated, so the budget is 10x larger.
  const young = budget(0.999, w, { good: 999_990, total: 1_000_000 }, { timeBased: false, coveredMs: 3 * DAY_MS });
  close(young.consumed_ratio, 0.001, 'young consumed', 1e-9);
  // Time slices: 4.32 minutes down of a 43.2-minute budget = 10%.
  const t = budget(0.999, w, { good: 3 * DAY_MS - 4.32 * MINUTE_MS, total: 3 * DAY_MS }, { timeBased: true, coveredMs: 3 * DAY_MS });
  close(t.consumed_ratio, 0.1, 'time consumed', 1e-9);
  close(t.consumed_minutes, 4.32, 'time consumed minutes', 1e-9);
  // No data: nothing consumed.
  const none = budget(0.999, w, { good: 0, total: 0 }, { timeBased: false, coveredMs: 0 });
  assert.equal(none.remaining_ratio, 1);
});

const W30 = 30 * DAY_MS;
const counts = (good: number, total: number) => ({ good, total });

test('tiers fire only when both windows burn at or above the threshold', () => {
  // 2% errors: burn 20x, above 14.4 over both windows.
  const hot = evaluateTiers(WORKBOOK_TIERS, [
    { long: counts(980, 1000), short: counts(98, 100) },
    { long: counts(5880, 6000), short: counts(490, 500) },
    { long: counts(100_000, 100_000), short: counts(10_000, 10_000) },
  ], 0.999, W30, 20);
  assert.deepEqual(hot.map((r) => r.condition), [true, true, false]);
  // Long window hot but the short one recovered: no page (this is what resolves alerts quickly).
  const recovered = evaluateTiers(WORKBOOK_TIERS.slice(0, 1), [{ long: counts(980, 1000), short: counts(100, 100) }], 0.999, W30, 20);
  assert.equal(recovered[0]?.condition, false);
});

test('the minimum-events guard holds back a quiet service with one error', () => {
  const quiet = evaluateTiers(WORKBOOK_TIERS.slice(0, 1), [{ long: counts(4, 5), short: counts(0, 1) }], 0.999, W30, 20);
  assert.equal(quiet[0]?.condition, false);
  const quietShort = evaluateTiers(WORKBOOK_TIERS.slice(0, 1), [{ long: counts(4, 5), short: counts(1, 2) }], 0.999, W30, 20);
  assert.equal(quietShort[0]?.guarded, true);
  assert.equal(quietShort[0]?.condition, false);
  const busy = evaluateTiers(WORKBOOK_TIERS.slice(0, 1), [{ long: counts(19, 25), short: counts(1, 2) }], 0.999, W30, 20);
  assert.equal(busy[0]?.condition, true);
});

test('explicit burn_rate tiers override the budget share', () => {
  const t: AlertTier = { severity: 'page', long_ms: HOUR_MS, short_ms: 5 * MINUTE_MS, burn_rate: 10 };
  assert.equal(burnThreshold(t, 7 * DAY_MS), 10);
});

test('the fast tier suppresses duplicate slower alerts; firing tiers resolve when their condition clears', () => {
  const results = (conds: boolean[]) =>
    evaluateTiers(WORKBOOK_TIERS, conds.map((c) => (c ? { long: counts(0, 1000), short: counts(0, 1000) } : { long: counts(1000, 1000), short: counts(1000, 1000) })), 0.999, W30, 0);
  // All three conditions hold: only the fast page fires.
  let s = stepAlerts(results([true, true, true]), new Set());
  assert.deepEqual([...s.firing], [0]);
  assert.deepEqual(s.transitions.map((t) => [t.index, t.state]), [[0, 'firing']]);
  // Fast page clears while the slower ones still hold the same errors: no duplicate page yet.
  const resolved = new Map([[0, 1000 * MINUTE_MS]]);
  s = stepAlerts(results([false, true, true]), s.firing, new Map(), 1000 * MINUTE_MS);
  assert.deepEqual(s.transitions.map((t) => [t.index, t.state]), [[0, 'resolved']]);
  s = stepAlerts(results([false, true, true]), s.firing, resolved, 1029 * MINUTE_MS);
  assert.deepEqual(s.transitions, [], 'within the slow tier short window (30m) of the fast page resolving');
  // The burn goes on past the slow tier's short window: the slow page fires (the ticket stays suppressed by it).
  s = stepAlerts(results([false, true, true]), s.firing, resolved, 1031 * MINUTE_MS);
  assert.deepEqual(s.transitions.map((t) => [t.index, t.state]), [[1, 'firing']]);
  assert.deepEqual([...s.firing], [1]);
  // Everything clears: the slow page resolves.
  s = stepAlerts(results([false, false, false]), s.firing);
  assert.deepEqual(s.transitions.map((t) => [t.index, t.state]), [[1, 'resolved']]);
  assert.equal(s.firing.size, 0);
  // Only the ticket condition: the ticket fires.
  s = stepAlerts(results([false, false, true]), s.firing);
  assert.deepEqual([...s.firing], [2]);
  // A page condition while a ticket is open: the page fires (escalation), the ticket stays open.
  s = stepAlerts(results([true, false, true]), s.firing);
  assert.deepEqual(s.transitions.map((t) => [t.index, t.state]), [[0, 'firing']]);
  assert.deepEqual([...s.firing].sort(), [0, 2]);
  // A slow burn that already paged (6h tier) does not page again when it speeds up (1h tier).
  s = stepAlerts(results([false, true, false]), new Set());
  assert.deepEqual(s.transitions.map((t) => [t.index, t.state]), [[1, 'firing']]);
  s = stepAlerts(results([true, true, false]), s.firing);
  assert.deepEqual(s.transitions, []);
  assert.deepEqual([...s.firing], [1]);
});
